"""The run's index rule (k-means centroids of each class) and the augmentation strength option."""

import numpy as np
import torch

from embedder.config import TrainConfig
from embedder.data.sampling import split_validation
from embedder.evaluation.episodes import describe_sources, index_sources
from embedder.index.build import build_support_index
from embedder.index.supports import centroid_count, centroid_supports, class_centroids
from embedder.runs.calibration import calibrate_index, calibration_rows
from embedder.runs.run import Run, read_metadata
from embedder.training.augment import AugmentConfig, augment_batch
from tests.conftest import DIGITS_TRAIN


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_centroids_find_the_modes_of_a_class():
    rng = np.random.default_rng(0)
    modes = _unit(rng.normal(size=(2, 16)))
    points = _unit(np.repeat(modes, 100, axis=0) + 0.05 * rng.normal(size=(200, 16)))
    centroids = class_centroids(points, 2)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)
    assert sorted(np.argmax(centroids @ modes.T, axis=1).tolist()) == [0, 1]  # one centroid per mode
    assert (centroids @ modes.T).max(axis=1).min() > 0.99
    mean = class_centroids(points, 1)  # one centroid: the normalised mean, which lies between the two modes
    similarity = (mean @ modes.T)[0]
    assert abs(similarity[0] - similarity[1]) < 0.05


def test_centroid_count_needs_39_images_each_and_caps():
    assert [centroid_count(n) for n in (1, 38, 78, 117, 100_000)] == [1, 1, 2, 3, 32]
    assert centroid_count(10_000, most=4) == 4


def test_centroid_supports_label_each_centroid_and_point_to_an_image_of_its_class():
    rng = np.random.default_rng(1)
    labels = np.repeat([3, 7], 120)
    embeddings = _unit(rng.normal(size=(240, 8)) + 4 * (labels[:, None] == 7))
    vectors, vector_labels, nearest = centroid_supports(embeddings, labels, [3, 7], most=2)
    assert vector_labels.tolist() == [3, 3, 7, 7] and len(vectors) == 4
    assert labels[nearest].tolist() == vector_labels.tolist()


def test_the_default_index_leaves_out_the_images_the_threshold_is_calibrated_on(digits_run, digits):
    meta = read_metadata(digits_run)
    _, held_out = split_validation(digits.train_labels, DIGITS_TRAIN["classes"], 0.1, 0)
    assert not np.isin(meta["index"]["support_rows"], held_out).any()
    assert meta["index"]["rule"] == "up to 32 k-means centroids of each class"
    loaded = Run.load(digits_run)
    config = TrainConfig(**{k: v for k, v in meta["options"].items() if k in TrainConfig.__dataclass_fields__})
    held, others = calibration_rows(digits, config, np.asarray(meta["index"]["support_rows"]), loaded.index.classes)
    assert held.tolist() == held_out.tolist() and not np.isin(meta["index"]["support_rows"], others).any()
    assert loaded.metadata["open_set"]["genuine"] == len(held_out) + len(others)  # each scored as its own class


def test_shots_leave_out_the_images_the_threshold_is_calibrated_on_and_the_line_counts_them(digits_run, digits):
    """As the README's symbols run (--shots 5 --val-fraction 0.3): every held-out image calibrates, none is a support;
    an unseen class gives as many impostors as a trained one holds out, and at least 100."""
    embedder = Run.load(digits_run).embedder
    for classes, unseen in (
        (DIGITS_TRAIN["classes"], "and 500 images of the 5 indexed classes it did not train on"),
        (list(range(10)), "no false-accept rate is stated, 0 class(es) it did not train on to hold out"),
    ):
        config = TrainConfig(dataset="digits", classes=classes, shots=5, val_fraction=0.3, run_dir="unused")
        _, held_out = split_validation(digits.train_labels, classes, 0.3, 0)
        index, support_rows = build_support_index(embedder, digits, config.index_rule, held_out=held_out)
        assert len(support_rows) == 50 and not np.isin(support_rows, held_out).any()
        lines = []
        calibration = calibrate_index(embedder, index, digits, config, support_rows, log=lines.append)
        assert calibration.genuine == len(held_out) + (500 if len(classes) == 5 else 0)
        assert f"from {len(held_out)} held-out images of the trained classes" in lines[0]
        assert unseen in lines[0], lines[0]


def test_the_index_caption_says_why_a_class_has_fewer_centroids_and_names_unseen_classes_only_if_any(
    digits_run, digits
):
    sources = index_sources(Run.load(digits_run), digits)
    centroids = sorted({centroid_count(n) for n in sources["labelled_images"].values()})
    assert sorted(set(sources["vectors"].values())) == centroids and max(centroids) < 32  # 100-150 digits a class
    caption = describe_sources(sources)
    assert caption.startswith(
        f"up to 32 k-means centroids of each class ({centroids[0]}-{centroids[-1]} a class here: k-means gets one "
        "centroid per 39 labelled images at most), from "
    )
    assert "(unseen ones included); the network trained on 0,1,2,3,4 only" in caption
    every = {**sources, "trained_class_names": [str(c) for c in range(10)]}  # a run trained on every class
    assert "unseen" not in describe_sources(every) and describe_sources(every).endswith(
        "trained on 0,1,2,3,4,5,6,7,8,9"
    )
    full = {**sources, "vectors": dict.fromkeys(sources["vectors"], 32)}  # as on MNIST: every class has its 32
    assert "a class here" not in describe_sources(full)


def test_augmentation_strength_zero_leaves_images_as_they_are(digits):
    images = digits.train_images[:16].unsqueeze(1).float() / 255
    same = augment_batch(images, torch.Generator().manual_seed(0), AugmentConfig().scaled(0))
    assert torch.allclose(same, images, atol=1e-5)
    moved = augment_batch(images, torch.Generator().manual_seed(0), AugmentConfig().scaled(1))
    stronger = augment_batch(images, torch.Generator().manual_seed(0), AugmentConfig().scaled(2))
    assert (moved - images).abs().mean() < (stronger - images).abs().mean()  # same draws, larger magnitudes
