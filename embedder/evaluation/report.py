"""A run's report: its evaluation as PNG figures and one self-contained ``report.html``.

:func:`write_report` evaluates the run once (:func:`~embedder.evaluation.episodes.evaluate_run_in_detail`: the
numbers ``embed eval`` prints), draws the figures of :mod:`embedder.evaluation.figures` from what that evaluation
computed, and writes them with a page that embeds them as data URIs: no network, no JavaScript.

The open-set figure is drawn only for a run whose metadata holds ``open_set`` with a ``threshold``: the
distance strictly below which a query is accepted as a known class, as ``embed predict`` decides
(:data:`OPEN_SET_KEY`).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedder.config import EvalConfig
from embedder.data.dataset import Dataset
from embedder.errors import ConfigError
from embedder.evaluation import figures
from embedder.evaluation.episodes import RunEvaluation, evaluate_run_in_detail, open_set_summary
from embedder.evaluation.figures import Classes, Mistake
from embedder.fewshot.openset import genuine_and_impostor, scored
from embedder.index.support_index import SupportIndex, similarity_to_distance
from embedder.models.baselines import BASELINES
from embedder.runs.run import Run
from embedder.runs.unclaimed import unclaimed_clusters
from embedder.utils.files import write_bytes_atomic
from embedder.utils.formatting import percent
from embedder.utils.progress import progress_bar

OPEN_SET_KEY = "open_set"  # run metadata: {"threshold": float, ...}; other keys are shown, not read
TITLES = {
    "embedding_map": "Embedding map (t-SNE of test embeddings)",
    "confusion_matrix": "Confusion matrix of the saved index",
    "per_class_accuracy": "Per-class accuracy with 95% intervals",
    "training_curve": "Training curve",
    "hardest_mistakes": "Hardest mistakes",
    "open_set": "Open set: genuine and impostor distances, ROC",
}
UNCLAIMED_TITLE = "Pool: clusters no class claims"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    figures: dict[str, Path]  # name: PNG path, in :data:`TITLES` order
    evaluation: dict[str, Any]  # the numbers, as ``embed eval --json`` prints them


@dataclass(frozen=True)
class Supports:
    """The saved index, and the train-split images of its training supports, found by their stable ids.

    A training gives its supports ids ``0 .. len(support_rows) - 1`` (id ``i`` is train row ``support_rows[i]``);
    ids survive a ``forget``, and enrolled supports come after, without an image.
    """

    index: SupportIndex
    rows: np.ndarray  # support_rows: the train row behind each training support id
    train_images: np.ndarray  # uint8 (N, 28, 28)

    @classmethod
    def of(cls, run: Run, dataset: Dataset) -> Supports:
        rows = np.asarray(run.metadata["index"]["support_rows"], dtype=np.int64)
        return cls(run.index, rows, dataset.train_images.numpy())

    def image(self, support_id: int) -> np.ndarray:
        return self.train_images[self.rows[support_id]]

    def nearest_pictured(self, embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per query, the id of the nearest support *with an image* of its label (-1: none) and its distance,
        from the index's own search."""
        ids, distances = np.full(len(labels), -1, np.int64), np.full(len(labels), np.inf)
        pictured = self.index.ids < len(self.rows)
        for label in np.unique(labels).tolist():
            queries = labels == label
            if not (pictured & (self.index.labels == label)).any():
                continue
            found, similarity = self.index.search_ids(embeddings[queries], 1, classes=[label], among=pictured)
            ids[queries], distances[queries] = found[:, 0], similarity_to_distance(similarity[:, 0])
        return ids, distances


def write_report(
    run: Run,
    dataset: Dataset,
    out_dir: str | os.PathLike | None = None,
    config: EvalConfig = EvalConfig(),
    progress: bool = False,
    per_class_sample: int = 200,
) -> ReportFiles:
    """Evaluate ``run`` on ``dataset`` and write the figures and ``report.html`` into ``out_dir``
    (default: ``report/`` in the run folder). ``per_class_sample`` test images of each class go into the map."""
    out = Path(out_dir) if out_dir is not None else run.path / "report"
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{{out}} {out} is a file, not a folder")
    with _staged(out) as staging:  # an interrupted report leaves nothing behind
        evaluation = evaluate_run_in_detail(run, dataset, config, progress)
        pngs = draw_figures(run, dataset, evaluation, config.seed, per_class_sample, progress)
        page = render_html(run, evaluation.report, pngs)
        for name, data in pngs.items():
            write_bytes_atomic(staging / f"{name}.png", data)
        write_bytes_atomic(staging / "report.html", page.encode())
    return ReportFiles(out / "report.html", {name: out / f"{name}.png" for name in pngs}, evaluation.report)


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A temp folder beside ``out``, made at once (a place that cannot be written fails before the work), whose
    files move into ``out`` when the block completes; on an error or Ctrl-C, it and any parents made for it go."""
    made = [p for p in [out.parent, *out.parent.parents] if not p.exists()]  # innermost first
    done = False
    try:
        staging = _staging_folder(out)
        try:
            yield staging
            _move_into(staging, out)
            done = True
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        for folder in made if not done else []:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _staging_folder(out: Path) -> Path:
    """A new temp folder in ``out``'s parent (made, parents included), for :func:`_move_into`."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-", suffix=".partial"))
    except OSError as exc:
        raise ConfigError("out", f"cannot write the report into {{out}} {out}: {exc.strerror}") from None


def _move_into(staging: Path, out: Path) -> None:
    """``staging``'s files into ``out``: a rename of the whole folder when ``out`` is new, else file by file (the
    other files of an existing ``out`` are kept)."""
    if not out.exists():
        with contextlib.suppress(OSError):
            staging.rename(out)  # the caller's clean-up of ``staging`` then finds nothing
            return
    out.mkdir(exist_ok=True)
    for path in staging.iterdir():
        os.replace(path, out / path.name)


def draw_figures(
    run: Run, dataset: Dataset, evaluation: RunEvaluation, seed: int, per_class_sample: int, progress: bool
) -> dict[str, bytes]:
    """Every figure the run has data for, as PNG bytes by name."""
    meta, report = run.metadata, evaluation.report
    classes = Classes(dataset.classes, list(meta.get("class_names") or []), run.trained_classes)
    truth = dataset.test_labels.numpy()
    supports = Supports.of(run, dataset)
    stages = {
        "embedding_map": lambda: _embedding_map(evaluation.test_embeddings, truth, classes, seed, per_class_sample),
        "confusion_matrix": lambda: figures.confusion_matrix(truth, evaluation.predicted, classes),
        "per_class_accuracy": lambda: figures.per_class_accuracy(report["per_class"], report["episodes"], classes),
        "training_curve": lambda: figures.training_curve(meta["curve"], classes, meta.get("held_out")),
        "hardest_mistakes": lambda: figures.hardest_mistakes(
            find_mistakes(evaluation, truth, dataset.test_images.numpy(), supports), classes
        ),
    }
    threshold = (meta.get(OPEN_SET_KEY) or {}).get("threshold")
    if threshold is not None:
        stages["open_set"] = lambda: _open_set(run, evaluation.test_embeddings, truth, float(threshold), classes)
    pngs = {}
    with progress_bar(len(stages), "report", progress, unit="figure") as bar:
        for name, draw in stages.items():
            bar.set_description_str(TITLES[name])  # which stage runs: t-SNE is the long one
            pngs[name] = draw()
            bar.update()
    return pngs


def stratified_sample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Up to ``per_class`` seeded random indices of each label, sorted."""
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def _embedding_map(
    embeddings: np.ndarray, labels: np.ndarray, classes: Classes, seed: int, per_class: int
) -> bytes:  # fmt: skip
    from sklearn.manifold import TSNE

    rows = stratified_sample(labels, per_class, seed)
    perplexity = min(30.0, (len(rows) - 1) / 3)  # t-SNE needs more points than 3 x perplexity
    points = TSNE(perplexity=perplexity, init="pca", random_state=seed).fit_transform(embeddings[rows])
    return figures.embedding_map(points, labels[rows], classes)


def find_mistakes(
    evaluation: RunEvaluation, truth: np.ndarray, images: np.ndarray, supports: Supports, limit: int = 12
) -> list[Mistake]:
    """The test queries the saved index got most confidently wrong: the largest gap between the distance to
    their true class's nearest support and to the wrong one they matched; at most two per (true, matched) pair."""
    wrong = np.flatnonzero(evaluation.predicted != truth)
    embeddings = evaluation.test_embeddings[wrong]
    matched, matched_distance = supports.nearest_pictured(embeddings, evaluation.predicted[wrong])
    true, true_distance = supports.nearest_pictured(embeddings, truth[wrong])
    found: list[tuple[float, Mistake]] = []
    for k, q in enumerate(wrong):
        if matched[k] < 0 or true[k] < 0:
            continue
        mistake = Mistake(images[q], int(truth[q]), int(evaluation.predicted[q]), supports.image(matched[k]),
                          float(matched_distance[k]), supports.image(true[k]), float(true_distance[k]))  # fmt: skip
        found.append((mistake.true_distance - mistake.matched_distance, mistake))
    chosen, per_pair = [], {}
    for _, m in sorted(found, key=lambda item: -item[0]):
        pair = (m.truth, m.predicted)
        if per_pair.get(pair, 0) < 2 and len(chosen) < limit:
            chosen.append(m)
            per_pair[pair] = per_pair.get(pair, 0) + 1
    return chosen


def _open_set(
    run: Run, embeddings: np.ndarray, truth: np.ndarray, threshold: float, classes: Classes
) -> bytes:  # fmt: skip
    """The run's genuine and impostor distances on the test queries, by the search that prediction uses."""
    classifier = run.classifier()
    genuine, impostor = genuine_and_impostor(classifier, embeddings, truth)
    kept = scored(classifier, truth)
    # Accepted means strictly below the threshold, as predict decides; the figure counts "at most" its
    # argument, so it gets the largest float under the threshold: the same queries, the same dots.
    below = float(np.nextafter(np.float64(threshold), -np.inf))
    return figures.open_set(genuine, impostor, np.isin(truth[kept], classes.seen), below, classes)


def held_out_html(held_out: dict[str, Any] | None) -> str:
    """The validation classes' paragraph: which, the best score beside the baselines, and the curve as a table."""
    if not held_out:
        return ""
    baselines = ", ".join(f"{BASELINES[n]} {percent(v)}" for n, v in held_out["baselines"].items())
    text = (
        f"Validation classes (held out of training, and counted as unseen): {', '.join(held_out['class_names'])}. "
        f"{held_out['ways']}-way 1-shot on {held_out['episodes']} fixed episodes over {held_out['images']} of their "
        f"train-split images: {percent(held_out['accuracy'])} at epoch {held_out['best_epoch']} of "
        f"{held_out['epochs']}, the best-scoring epoch, whose weights the run keeps ({baselines} on the same episodes)."
    )
    rows = [[r["epoch"], percent(r["accuracy"])] for r in held_out["curve"]]
    return f"<h2>Validation classes</h2><p>{html.escape(text)}</p>" + _table(rows, ["epoch", "1-shot accuracy"])


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _numbers(report: dict[str, Any], classes: Classes) -> str:
    summary, episodes = report["summary"], report["episodes"]
    lines = [
        ["saved index: seen classes", percent(summary["seen"])],
        ["saved index: unseen classes", percent(summary["unseen"])],
        ["saved index: all classes (macro)", percent(summary["all"])],
    ]
    for group in ("all", "unseen"):
        if group in episodes:
            e = episodes[group]
            what = f"{e['ways']}-way {episodes['shots']}-shot episodes ({group}, {episodes['count']} draws, 95% CI)"
            lines.append([what, percent(e["mean"], e["ci95"])])
    per_class = [
        [classes.name(r["class"]), "seen" if r["seen"] else "unseen", r["queries"], percent(r["accuracy"]),
         percent(r["episodes"]["mean"], r["episodes"]["ci95"])]
        for r in report["per_class"]
    ]  # fmt: skip
    header = ["class", "", "test queries", "saved index", f"episodes ({episodes['all']['ways']}-way)"]
    return _table(lines, ["measure", "accuracy"]) + _table(per_class, header)


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
img{max-width:100%;border:1px solid #eee}code{background:#f4f4f4;padding:1px 3px}"""


def _png(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).resize((56, 56)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def unclaimed_html(run: Run) -> str:
    """The pool's clusters that no class claims (:mod:`embedder.runs.unclaimed`), each with its size and the
    thumbnails and ids that ``embed enroll --pool-image`` names; nothing for a run without a pool."""
    if run.pool is None:
        return ""
    entry = run.metadata.get("pool") or {}
    head = f"<h2>{UNCLAIMED_TITLE}</h2><p>{html.escape(entry.get('description', ''))}. "
    clusters = unclaimed_clusters(run)
    if not clusters:
        return head + "Every pool image is claimed by a class the run knows.</p>"
    rows = "".join(
        f"<h3>about {c.images:,} images</h3><p>"
        + "".join(
            f'<figure style="display:inline-block;margin:2px"><img alt="pool image {i}" '
            f'src="data:image/png;base64,{_png(t)}"><figcaption>{i}</figcaption></figure>'
            for i, t in zip(c.ids, c.thumbnails, strict=True)
        )
        + "</p>"
        for c in clusters
    )
    hint = "Name one: <code>embed enroll --label NAME --pool-image ID</code>.</p>"
    return head + f"What the run would call unknown, in {len(clusters)} clusters, largest first. {hint}{rows}"


def render_html(run: Run, report: dict[str, Any], pngs: dict[str, bytes]) -> str:
    """One page: the run, its numbers and options, and every figure embedded as a data URI."""
    meta = run.metadata
    labels = [r["class"] for r in report["per_class"]]
    classes = Classes(labels, list(meta.get("class_names") or []), run.trained_classes)
    options = [[k, json.dumps(v)] for k, v in sorted(meta.get("options", {}).items())]
    if OPEN_SET_KEY in meta:
        options.append([OPEN_SET_KEY, open_set_summary(meta[OPEN_SET_KEY])])  # not its raw distances
    images = "".join(
        f'<h2>{html.escape(TITLES[name])}</h2><img alt="{html.escape(TITLES[name])}" '
        f'src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
        for name, data in pngs.items()
    )
    title = f"tripletshot report: {run.path}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(report['dataset'])}: {html.escape(run.trained_on)}; "
        f"{len(meta.get('curve', []))} epochs in {meta.get('train_seconds', 0):.0f} s on "
        f"{html.escape(str(meta.get('device')))}; tripletshot {html.escape(str(meta.get('tripletshot_version')))}.</p>"
        f"<h2>Numbers</h2>{_numbers(report, classes)}{held_out_html(meta.get('held_out'))}"
        f"<h2>Options</h2>{_table(options, ['option', 'value'])}"
        f"{unclaimed_html(run)}{images}</body></html>\n"
    )
