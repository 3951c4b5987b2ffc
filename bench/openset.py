"""Open set: which images the threshold is calibrated on, scored on the classes the network never trained on.

    python bench/openset.py --run-dir R [--data-dir DIR] [--far 0.01] [--left-out unseen]

A run's threshold is the distance below which a share ``far`` of *impostors* fall: held-out images whose own
class is taken out of the index, searched among the others. Which images those are decides what ``far``
means. Four sources are compared, each with the run's own index and search (:func:`genuine_and_impostor`):

- ``trained``: the validation split of the training classes, as they are (what 0.4 calibrated on);
- ``trained+aug``: the same images under the training augmentation, as a scan or a photo would see them;
- ``indexed``: ``trained`` plus as many train-split images of every indexed class the network did not train
  on (leaving such a class out of the index makes it an unknown the network never saw, which is what an
  unknown in use is): :func:`embedder.runs.calibration.calibration_rows`, what a run calibrates on since 0.5;
- ``indexed+aug``: that, augmented.

``--scores`` adds a second table: the same impostors, but the score is the ratio of the distance to the nearest
class and to the second nearest (Lowe's ratio test) instead of the distance itself, by brute force over the
index's vectors (clean queries only).

Each threshold is then scored on the test split, leaving each class of ``--left-out`` (``unseen``: the classes
not trained on; ``all``) out of the index in turn: its queries should be unknown (``accepted`` is the share that
is not), the other classes' queries known and right (``known right and accepted``), clean and under the augmentation (a
stand-in for another style of image). Augmentation is seeded; nothing is written.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from embedder.config import TrainConfig
from embedder.fewshot.openset import calibrate, evaluate_open_set, genuine_and_impostor
from embedder.runs.calibration import calibration_rows
from embedder.runs.run import Run
from embedder.training.augment import PRESETS, augment_batch
from embedder.training.policies import augmentation_for


def augmented(images: torch.Tensor, preset: str, seed: int) -> torch.Tensor:
    """uint8 images under the training augmentation, back as uint8."""
    generator = torch.Generator().manual_seed(seed)
    out = augment_batch(images.unsqueeze(1).float() / 255.0, generator, PRESETS[preset])
    return (out.squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8)


def class_distances(run: Run, embeddings: np.ndarray) -> np.ndarray:
    """``(N, classes)``: each embedding's cosine distance to the nearest vector of each indexed class."""
    vectors, labels = run.index.vectors(), run.index.labels
    similarity = embeddings @ vectors.T
    return 1 - np.stack([similarity[:, labels == c].max(1) for c in run.index.classes], axis=1)


def nearest_two(distances: np.ndarray, left_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nearest class (column), and the distances to the nearest and second nearest, column ``left_out`` of
    each row excluded (-1: none)."""
    d = distances.copy()
    rows = np.flatnonzero(left_out >= 0)
    d[rows, left_out[rows]] = np.inf
    order = np.argsort(d, axis=1)[:, :2]
    first, second = np.take_along_axis(d, order, 1).T
    return order[:, 0], first, second


def score_table(run: Run, dataset, rows: dict[str, np.ndarray], far: float, left_out: list[int]) -> None:
    """Distance against ratio, each with its threshold from the same impostors."""
    column = {c: j for j, c in enumerate(run.index.classes)}
    classes, labels = np.asarray(run.index.classes), dataset.train_labels.numpy()
    test = class_distances(run, run.embedder.embed(dataset.test_images))
    truth = dataset.test_labels.numpy()
    nearest, first, second = nearest_two(test, np.full(len(truth), -1))
    print("\n| impostors from | score | threshold (distance: 1 - cosine) | left-out accepted "
          "| known right and accepted |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, chosen in rows.items():
        own = np.array([column[c] for c in labels[chosen]])
        _, i1, i2 = nearest_two(class_distances(run, run.embedder.embed(dataset.train_images[chosen])), own)
        for score, impostor, known in (("distance", i1, first), ("ratio", i1 / i2, first / second)):
            threshold = np.sort(impostor)[int(np.floor(far * len(impostor)))]
            accepted = []
            for c in left_out:
                q = truth == c
                _, u1, u2 = nearest_two(test[q], np.full(int(q.sum()), column[c]))
                accepted.append(float(((u1 if score == "distance" else u1 / u2) < threshold).mean()))
            right = float(((classes[nearest] == truth) & (known < threshold)).mean())
            print(f"| {name} | {score} | {threshold:.3f} | {100 * np.mean(accepted):.1f} | {100 * right:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--far", type=float, default=0.01)
    parser.add_argument("--left-out", default="unseen", choices=["unseen", "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scores", action="store_true", help="also compare the distance with the ratio test")
    args = parser.parse_args()
    run = Run.load(args.run_dir)
    dataset = run.load_dataset(args.data_dir)
    options = {k: v for k, v in run.metadata["options"].items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**options)
    preset = augmentation_for(config)
    classifier, method = run.classifier(), run.metadata["index"]["method"]
    labels = dataset.train_labels.numpy()
    support_rows = np.asarray(run.metadata["index"].get("support_rows", []), dtype=np.int64)
    val, others = calibration_rows(dataset, config, support_rows, run.index.classes)
    sources = {"trained": val, "indexed": np.concatenate([val, others])}
    distances = {}
    for name, rows in sources.items():
        for aug in (False, True):
            images = dataset.train_images[rows]
            images = augmented(images, preset, args.seed) if aug else images
            genuine, impostor = genuine_and_impostor(classifier, run.embedder.embed(images), labels[rows])
            distances[name + ("+aug" if aug else "")] = (genuine, impostor)
    trained = run.trained_classes
    left_out = [c for c in run.index.classes if args.left_out == "all" or c not in trained]
    test_labels = dataset.test_labels.numpy()
    queries = {
        "clean": run.embedder.embed(dataset.test_images),
        "augmented": run.embedder.embed(augmented(dataset.test_images, preset, args.seed + 1)),
    }
    print(f"{args.run_dir}: trained on {len(trained)} classes, {len(run.index.classes)} indexed, far {args.far}, "
          f"left out in turn: {len(left_out)} ({args.left_out}); augmentation {preset}")  # fmt: skip
    print("| impostors from | images | threshold | left-out accepted | known right and accepted "
          "| left-out accepted (aug) | known right and accepted (aug) |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for name, (genuine, impostor) in distances.items():
        threshold = calibrate(genuine, impostor, args.far).threshold
        cells = []
        for view in ("clean", "augmented"):
            result = evaluate_open_set(run.index, method, queries[view], test_labels, left_out, threshold)["mean"]
            cells += [f"{100 * (1 - result['unknown_rejected']):.1f}", f"{100 * result['known_accuracy']:.1f}"]
        print(f"| {name} | {len(impostor)} | {threshold:.3f} | " + " | ".join(cells) + " |", flush=True)
    if args.scores:
        score_table(run, dataset, sources, args.far, left_out)


if __name__ == "__main__":
    main()
