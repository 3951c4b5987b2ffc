"""The held-out rows are drawn once, by the training, and stored in its run: the trainer, the pool, the index and
calibration read them from there (embedder.data.sampling.hold_out / validation_split)."""

from __future__ import annotations

import json

import numpy as np

from embedder.config import TrainConfig
from embedder.data.pool import pool_rows
from embedder.data.sampling import hold_out, split_validation, validation_split
from embedder.runs.calibration import calibration_rows
from embedder.runs.run import Run
from tests.conftest import DIGITS_TRAIN


def test_the_run_stores_the_rows_its_training_held_out_as_the_seed_drew_them(digits_run, digits):
    run = Run.load(digits_run)
    stored = np.asarray(run.metadata["index"]["held_out_rows"])
    trained, others = DIGITS_TRAIN["classes"], [5, 6, 7, 8, 9]
    drawn = [split_validation(digits.train_labels, c, 0.1, 0)[1] for c in (trained, others)]
    assert stored.tolist() == np.sort(np.concatenate(drawn)).tolist()  # the same rows as before they were stored
    assert run.load_dataset().held_out.tolist() == stored.tolist()


def test_calibration_and_the_pool_read_the_stored_rows_not_the_seed(digits_run, digits):
    """Told another seed, they still take the run's rows: the split is the run's, not recomputed."""
    dataset = Run.load(digits_run).load_dataset()
    other_seed = TrainConfig(dataset="digits", classes=[0, 1, 2, 3, 4], unlabelled="rest", seed=7)
    genuine, _ = calibration_rows(dataset, other_seed, np.empty(0, np.int64), list(range(10)))
    assert set(genuine) == set(dataset.held_out[np.isin(digits.train_labels.numpy()[dataset.held_out], range(5))])
    assert not set(pool_rows(dataset, other_seed)) & set(dataset.held_out.tolist())
    assert set(genuine) != set(split_validation(digits.train_labels, [0, 1, 2, 3, 4], 0.1, 7)[1])


def test_validation_split_with_the_rows_drawn_once_is_the_split_drawn_from_the_seed(digits):
    dataset = hold_out(digits, [0, 1, 2], [3, 4, 5, 6, 7, 8, 9], 0.2, 3)
    for classes in ([0, 1, 2], [3, 4, 5, 6, 7, 8, 9]):
        got, want = validation_split(dataset, classes, 0.2, 3), split_validation(digits.train_labels, classes, 0.2, 3)
        assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert json.dumps(dataset.held_out.tolist())  # plain ints: what run.json holds
