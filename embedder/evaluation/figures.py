"""The report's figures, each a function from numbers (and images) to PNG bytes.

matplotlib draws on its Agg canvas, without pyplot's global state, so nothing needs a display and
nothing leaks between figures. Every figure tells seen classes (the network trained on them) from
unseen ones (it never saw them): unseen classes are drawn with hollow or hatched marks, a triangle
marker, or a red tick label, and named in the legend or title. :mod:`embedder.evaluation.report` calls these.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedder.models.baselines import BASELINES

UNSEEN_COLOUR = "#c0392b"  # tick labels of unseen classes


@dataclass(frozen=True)
class Classes:
    """The classes a figure shows: labels, names, and which ones the network trained on."""

    labels: list[int]
    names: list[str]  # label i is names[i] when there is one
    seen: list[int]

    def name(self, label: int) -> str:
        return self.names[label] if 0 <= label < len(self.names) else str(label)

    def tag(self, label: int) -> str:
        """``3`` for a seen class, ``3 (unseen)`` for the others."""
        return self.name(label) if label in self.seen else f"{self.name(label)} (unseen)"

    def ordered(self) -> list[int]:
        """Seen classes first, then unseen: the two groups sit apart on every axis."""
        return [c for c in self.labels if c in self.seen] + [c for c in self.labels if c not in self.seen]

    def colour(self, label: int) -> Any:
        from matplotlib import colormaps

        cmap = colormaps["tab10" if len(self.labels) <= 10 else "tab20"]
        return cmap(self.labels.index(label) % cmap.N)


def _figure(width: float, height: float, **subplots: Any) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(**subplots)


def _png(figure: Any, dpi: int = 100) -> bytes:
    from PIL import Image

    drawn, small = io.BytesIO(), io.BytesIO()
    figure.savefig(drawn, format="png", dpi=dpi)
    # 256 colours are plenty for a chart, and make the file (and report.html) about 3x smaller than RGBA.
    Image.open(drawn).convert("RGB").quantize(256).save(small, format="PNG", optimize=True)
    return small.getvalue()


def _mark_unseen_ticks(labels: Sequence[Any], classes: Classes, order: list[int]) -> None:
    for text, label in zip(labels, order, strict=True):
        if label not in classes.seen:
            text.set_color(UNSEEN_COLOUR)


def embedding_map(points: np.ndarray, labels: np.ndarray, classes: Classes) -> bytes:
    """A 2-D map (t-SNE ``points``) coloured by class: seen classes as dots, unseen ones as hollow triangles."""
    figure, ax = _figure(8, 7)
    for c in classes.ordered():
        where = labels == c
        if not where.any():
            continue
        colour, seen = classes.colour(c), c in classes.seen
        style = (
            {"color": colour, "marker": "o"} if seen else {"facecolors": "none", "edgecolors": colour, "marker": "^"}
        )
        ax.scatter(*points[where].T, s=10, linewidths=0.8, alpha=0.75, label=classes.tag(c), **style)
        x, y = np.median(points[where], axis=0)
        ax.annotate(classes.name(c), (x, y), ha="center", va="center", fontsize=14, fontweight="bold",
                    color="black" if seen else UNSEEN_COLOUR,
                    bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7, "lw": 0})  # fmt: skip
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(f"t-SNE of {len(points)} test embeddings (dots: seen classes, triangles: unseen)")
    figure.legend(loc="outside right center", markerscale=2, frameon=False)
    return _png(figure)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: Classes) -> bytes:
    """Row-normalised confusion of the saved index on the test split; seen classes first, a line between."""
    order = classes.ordered()
    position = {c: i for i, c in enumerate(order)}
    counts = np.zeros((len(order), len(order)))
    for t, p in zip(truth, predicted, strict=True):
        if t in position and p in position:
            counts[position[t], position[p]] += 1
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, ax = _figure(7.5, 6.5)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if len(order) <= 20:
        for (i, j), rate in np.ndenumerate(rates):
            if rate >= 0.005:
                ax.text(j, i, f"{100 * rate:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if rate > 0.5 else "black")  # fmt: skip
    names = [classes.name(c) for c in order]
    ax.set_xticks(range(len(order)), names, rotation=90 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(range(len(order)), names)
    _mark_unseen_ticks(ax.get_xticklabels(), classes, order)
    _mark_unseen_ticks(ax.get_yticklabels(), classes, order)
    boundary = len([c for c in order if c in classes.seen]) - 0.5
    ax.axhline(boundary, color="black", lw=1), ax.axvline(boundary, color="black", lw=1)
    ax.set_xlabel("predicted (saved index)"), ax.set_ylabel("true class")
    ax.set_title("Confusion matrix, % of each true class (red: unseen classes)")
    figure.colorbar(image, ax=ax, shrink=0.8)
    return _png(figure)


def per_class_accuracy(rows: list[dict[str, Any]], episodes: dict[str, Any], classes: Classes) -> bytes:
    """Bars: each class's mean accuracy over the episodes with its 95% interval; dots: the saved index's accuracy."""
    return _png(per_class_figure(rows, episodes, classes))


def _percent(values: list[float | None]) -> np.ndarray:
    """Shares as percentages; a missing one (None: one episode gives no interval) is NaN, drawn as nothing."""
    return np.array([np.nan if v is None else 100 * v for v in values], dtype=np.float64)


def per_class_figure(rows: list[dict[str, Any]], episodes: dict[str, Any], classes: Classes) -> Any:
    """:func:`per_class_accuracy`'s figure. The legend sits outside the axes (it hid the last bars), and the
    tick labels are the names alone, unseen ones red (a "(unseen)" under each ran into the next)."""
    by_class = {r["class"]: r for r in rows}
    order = [c for c in classes.ordered() if c in by_class]
    x = np.arange(len(order))
    means = _percent([by_class[c]["episodes"]["mean"] for c in order])
    ci = _percent([by_class[c]["episodes"]["ci95"] for c in order])
    figure, ax = _figure(max(6.0, 0.55 * len(order) + 4), 4.5)
    for i, c in enumerate(order):
        seen = c in classes.seen
        ax.bar(i, means[i], yerr=None if np.isnan(ci[i]) else ci[i], capsize=3, color=classes.colour(c),
               alpha=0.85 if seen else 0.45, hatch=None if seen else "//", edgecolor="black", lw=0.6)  # fmt: skip
    ax.scatter(x, _percent([by_class[c]["accuracy"] for c in order]), color="black", marker="D", s=18, zorder=3,
               label=f"saved index ({episodes['method']}, its own supports)")  # fmt: skip
    names = [classes.name(c) for c in order]
    ax.set_xticks(x, names, rotation=90 if max(map(len, names)) > 3 else 0)
    _mark_unseen_ticks(ax.get_xticklabels(), classes, order)
    ax.set_xlabel("class (red names, hatched bars: unseen, never trained on)")
    ax.set_ylim(0, 105), ax.set_ylabel("accuracy (%)")
    ax.set_title(
        f"{episodes['all']['ways']}-way {episodes['shots']}-shot accuracy per class: mean of {episodes['count']} "
        "episodes ± 95% CI"
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return figure


def training_curve(curve: list[dict[str, Any]], classes: Classes, held_out: dict[str, Any] | None = None) -> bytes:
    """Train and validation loss per epoch; the title names the (seen) classes both are measured on. A run with
    validation classes (``held_out``, from its training metadata) adds their 1-shot accuracy on a second axis, with
    the baselines' on the same episodes as flat lines."""
    epochs = [row["epoch"] for row in curve]
    figure, ax = _figure(7, 4.5)
    ax.plot(epochs, [row["train_loss"] for row in curve], "o-", label="train (augmented views)")
    ax.plot(epochs, [row["val_loss"] for row in curve], "s--", label="validation (held-out images)")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss")
    seen = ", ".join(classes.name(c) for c in classes.seen)
    ax.set_title(f"Training curve: seen classes {seen} only (unseen classes take no part)")
    ax.grid(alpha=0.3), ax.legend(loc="upper left")
    if held_out and held_out.get("curve"):
        _held_out_axis(ax, held_out)
    return _png(figure)


def _held_out_axis(ax: Any, held_out: dict[str, Any]) -> None:
    scored = held_out["curve"]
    right = ax.twinx()
    colour = UNSEEN_COLOUR
    label = f"validation classes: {held_out['ways']}-way 1-shot"
    right.plot([r["epoch"] for r in scored], [100 * r["accuracy"] for r in scored], "^-", color=colour, label=label)
    for (name, value), style in zip(held_out.get("baselines", {}).items(), (":", "-."), strict=False):
        right.axhline(100 * value, color="grey", linestyle=style, label=f"{BASELINES[name]}, same episodes")
    if held_out.get("best_epoch") is not None:
        right.axvline(held_out["best_epoch"], color=colour, alpha=0.3, label="best epoch (the run's weights)")
    right.set_ylabel("1-shot accuracy on the validation classes (%)", color=colour)
    right.legend(loc="lower left", fontsize=8)


@dataclass(frozen=True)
class Mistake:
    query: np.ndarray  # uint8 (28, 28)
    truth: int
    predicted: int
    matched: np.ndarray  # the predicted class's nearest support
    matched_distance: float
    true_support: np.ndarray  # the true class's nearest support
    true_distance: float


def hardest_mistakes(mistakes: list[Mistake], classes: Classes, columns: int = 2) -> bytes:
    """A grid of wrong queries, each beside the support it matched and the nearest support of its true class."""
    rows = max(1, -(-len(mistakes) // columns))
    figure, axes = _figure(3.3 * columns, 1.25 * rows + 0.6, nrows=rows, ncols=3 * columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k, m in enumerate(mistakes):
        row, group = k % rows, 3 * (k // rows)
        panels = [
            (m.query, f"query: {classes.tag(m.truth)}", "black"),
            (m.matched, f"matched {classes.name(m.predicted)}\nd = {m.matched_distance:.2f}", UNSEEN_COLOUR),
            (m.true_support, f"true {classes.name(m.truth)}\nd = {m.true_distance:.2f}", "#1e7b34"),
        ]
        for offset, (image, title, colour) in enumerate(panels):
            ax = axes[row, group + offset]
            ax.imshow(image, cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(title, fontsize=7, color=colour, pad=2)
    if not mistakes:
        axes[0, 0].text(0, 0.5, "no mistakes on the test split", fontsize=12)
    figure.suptitle("Hardest mistakes: query | support it matched | nearest support of its true class", fontsize=10)
    return _png(figure, dpi=110)


def open_set(
    genuine: np.ndarray, impostor: np.ndarray, query_seen: np.ndarray, threshold: float, classes: Classes
) -> bytes:
    """Histograms of genuine and impostor distances with the threshold, and ROC curves for seen and unseen queries.

    ``genuine[i]``: query i's distance to its own class's nearest support; ``impostor[i]``: to the nearest support of
    another class. A query is accepted when its distance is at most ``threshold``.
    """
    figure, (hist, roc) = _figure(11, 4.5, ncols=2)
    bins = np.linspace(0, max(genuine.max(), impostor.max(), threshold) * 1.02, 60)
    hist.hist(genuine[query_seen], bins, alpha=0.6, label="genuine, seen classes", color="#1f77b4")
    hist.hist(genuine[~query_seen], bins, alpha=0.6, label="genuine, unseen classes", color="#2ca02c", hatch="//")
    hist.hist(impostor, bins, alpha=0.5, label="impostor (nearest other class)", color=UNSEEN_COLOUR)
    hist.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.3f}")
    hist.set_xlabel("distance to nearest support"), hist.set_ylabel("test queries"), hist.legend(fontsize=8)
    hist.set_title("Genuine and impostor distances")
    for name, group, style in (("seen", query_seen, "-"), ("unseen", ~query_seen, "--")):
        if not group.any():
            continue
        fpr, tpr = roc_points(genuine[group], impostor[group])
        roc.plot(fpr, tpr, style, label=f"{name} classes (AUC {area_under(fpr, tpr):.3f})")
        at = (np.mean(impostor[group] <= threshold), np.mean(genuine[group] <= threshold))
        roc.plot(*at, "ko")
    roc.plot([0, 1], [0, 1], color="grey", lw=0.5)
    roc.set_xlabel("false accept rate (impostors under the threshold)")
    roc.set_ylabel("true accept rate"), roc.set_title("ROC (dots: the run's threshold)"), roc.legend(fontsize=8)
    return _png(figure)


def roc_points(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true accept rates at every threshold, from accepting nothing to accepting everything."""
    thresholds = np.concatenate([[-np.inf], np.sort(np.concatenate([genuine, impostor]))])
    fpr = np.searchsorted(np.sort(impostor), thresholds, side="right") / len(impostor)
    tpr = np.searchsorted(np.sort(genuine), thresholds, side="right") / len(genuine)
    return fpr, tpr


def area_under(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The area under a ROC curve given by :func:`roc_points` (trapezoids; numpy 1.26 has no ``trapezoid``)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
