"""Open set: each rule's false-accept rate on classes absent from calibration, and the known images it keeps.

    python bench/openset.py --run-dir R [--data-dir DIR] [--far 0.01] [--unseen PATH] [--rotate K]

The run's calibration images (:func:`embedder.runs.calibration.calibration_images`, what ``embed train`` and
``embed calibrate`` fit on) are fitted by each rule of :func:`embedder.fewshot.openset.calibrate` alone, then by
the automatic choice (``auto``, what a run stores). For each, nothing written:

- ``stated``: the held-out-class estimate and its 95% interval (``-``: too few classes to state one);
- ``unseen accepted``: with ``--unseen PATH`` (a folder, one sub-folder per class of *no* indexed class, e.g.
  digits 8 and 9 beside a run of 0-7), the share of each class's images answered with a class, mean over classes;
- ``known right and accepted``: the test split of the trained classes, and of the indexed classes it did not
  train on, answered with their class within the threshold (mean over classes).

``--rotate K`` adds the rotation table: of the indexed classes the network did not train on, every K are the
calibration classes in turn and the rest are taken out of the index (unknown); the stated rate and its interval
(fitted on the K) against the rate met on the rest's test images. It reports on how many splits the met rate
lies within the stated interval. The network is not retrained per split: its training classes stay the run's.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from embedder.config import TrainConfig
from embedder.data.folders import class_folders, load_images
from embedder.fewshot.classifiers import FewShotClassifier, make_classifier
from embedder.fewshot.openset import RULES, Calibration, CalibrationImages, calibrate, class_mean, limits
from embedder.index.support_index import SupportIndex
from embedder.runs.calibration import calibration_images
from embedder.runs.run import Run


def accepted(calibration: Calibration, classifier: FewShotClassifier, embeddings: np.ndarray) -> np.ndarray:
    """Which images ``embed predict`` would answer with a class, and which class."""
    predicted, distance = classifier.predict_embeddings(embeddings)
    return np.where(distance < limits(calibration, classifier, embeddings, predicted), predicted, -1)


def stated(calibration: Calibration) -> str:
    if calibration.rate is None or calibration.interval is None:
        return f"- ({calibration.impostor_classes} classes)"
    low, high = calibration.interval
    return f"{100 * calibration.rate:.1f} [{100 * low:.1f}, {100 * high:.1f}] ({calibration.impostor_classes})"


def rules_table(run: Run, images: CalibrationImages, far: float, unseen: dict[str, np.ndarray]) -> None:
    dataset, classifier, trained = run.load_dataset(), run.classifier(), run.trained_classes
    embeddings, labels = run.embedder.embed(dataset.test_images), dataset.test_labels.numpy()
    groups = {"trained": np.isin(labels, trained), "indexed, not trained": ~np.isin(labels, trained)}
    groups = {k: v & np.isin(labels, classifier.classes) for k, v in groups.items() if v.any()}
    print("| rule | chosen | stated % [95%] (classes) | unseen accepted % | "
          + " | ".join(f"known right and accepted: {k} %" for k in groups) + " |")  # fmt: skip
    print("|---" * (4 + len(groups)) + "|")
    for rules in [(r,) for r in RULES] + [RULES]:
        calibration = calibrate(classifier, images, far, rules)
        name = "auto" if len(rules) > 1 else rules[0]
        shares = [float(np.mean(accepted(calibration, classifier, e) >= 0)) for e in unseen.values()]
        cells = [f"{100 * np.mean(shares):.1f} ({len(shares)} classes)" if shares else "-"]
        for rows in groups.values():
            answer = accepted(calibration, classifier, embeddings[rows])
            cells.append(f"{100 * class_mean(answer == labels[rows], labels[rows]):.1f}")
        print(f"| {name} | {calibration.rule} | {stated(calibration)} | " + " | ".join(cells) + " |", flush=True)


def without(run: Run, classes: list[int]) -> FewShotClassifier:
    """The run's classifier on its index less ``classes`` (as ``embed forget`` leaves it)."""
    index = SupportIndex.from_bytes(run.index.to_bytes())
    for c in classes:
        index.remove(c)
    return make_classifier(run.metadata["index"]["method"], index=index)


def rotation_table(run: Run, images: CalibrationImages, far: float, k: int) -> None:
    dataset = run.load_dataset()
    untrained = [c for c in run.index.classes if c not in run.trained_classes]
    test_embeddings, test_labels = run.embedder.embed(dataset.test_images), dataset.test_labels.numpy()
    splits = list(itertools.combinations(untrained, k))
    rows: dict[str, list[tuple[float, float, bool]]] = {}
    for chosen in splits:
        rest = [c for c in untrained if c not in chosen]
        classifier, kept = without(run, rest), ~np.isin(images.labels, rest)
        fitted_on = CalibrationImages(images.embeddings[kept], images.labels[kept], images.trained)
        known = np.isin(test_labels, classifier.classes)
        for rules in [(r,) for r in RULES] + [RULES]:
            calibration = calibrate(classifier, fitted_on, far, rules)
            met = float(np.mean([np.mean(accepted(calibration, classifier, test_embeddings[test_labels == c]) >= 0)
                                 for c in rest]))  # fmt: skip
            answer = accepted(calibration, classifier, test_embeddings[known])
            right = class_mean(answer == test_labels[known], test_labels[known])
            low, high = calibration.interval or (np.nan, np.nan)
            name = "auto" if len(rules) > 1 else rules[0]
            rate = np.nan if calibration.rate is None else calibration.rate
            rows.setdefault(name, []).append((met, right, bool(low <= met <= high), bool(met <= high), rate))
    print(f"\n{len(splits)} splits: {k} of the {len(untrained)} classes it did not train on calibrate, the other "
          f"{len(untrained) - k} are taken out of the index and their test images asked")  # fmt: skip
    print(
        "| rule | stated %, mean | met on the absent classes %, mean [min, max] | splits met <= 2x far "
        "| met within the stated interval | met under its upper end | known right and accepted %, mean |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, got in rows.items():
        met, right, inside, under, rate = (np.array(x) for x in zip(*got, strict=True))
        print(f"| {name} | {100 * np.nanmean(rate):.1f} | {100 * met.mean():.1f} [{100 * met.min():.1f}, "
              f"{100 * met.max():.1f}] | {int((met <= 2 * far).sum())}/{len(met)} | {int(inside.sum())}/{len(met)} "
              f"| {int(under.sum())}/{len(met)} "
              f"| {100 * right.mean():.1f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--far", type=float, default=0.01)
    parser.add_argument("--unseen", help="a folder of classes no index holds, one sub-folder each")
    parser.add_argument("--rotate", type=int, default=0, help="K: rotate K calibration classes among the untrained")
    args = parser.parse_args()
    run = Run.load(args.run_dir)
    dataset = run.load_dataset(args.data_dir)
    options = {k: v for k, v in run.metadata["options"].items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**options)
    support_rows = np.asarray(run.metadata["index"].get("support_rows", []), dtype=np.int64)
    images, _, _ = calibration_images(run.embedder, dataset, config, support_rows, run.index.classes)
    unseen = {}
    if args.unseen:
        unseen = {name: run.embedder.embed(load_images(files).images) for name, files in
                  class_folders(args.unseen).items()}  # fmt: skip
    print(f"{args.run_dir}: trained on {run.trained_classes}, indexed {run.index.classes}, far {args.far}")
    rules_table(run, images, args.far, unseen)
    if args.rotate:
        rotation_table(run, images, args.far, args.rotate)


if __name__ == "__main__":
    main()
