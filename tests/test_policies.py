"""What ``auto`` picks (embedder.training.policies): the table, and the options a command line with no flag resolves
to, read from the training as it starts (on MNIST, before any step: the same data and pool as a real run)."""

from __future__ import annotations

from dataclasses import fields

import pytest
from click.testing import CliRunner

from cli.embed import main as embed
from embedder.config import TrainConfig
from embedder.training import policies, trainer


class Started(Exception):
    """Raised in place of the epochs: carries the options the training resolved."""

    def __init__(self, config: TrainConfig, ways: int, m: int) -> None:
        super().__init__("started")
        self.config, self.ways, self.m = config, ways, m


@pytest.fixture
def started(monkeypatch):
    """``embed train`` as a user types it, stopped where the epochs would begin."""

    def stop(self, on_epoch_end):
        raise Started(self.config, self.ways, self.m)

    monkeypatch.setattr(trainer._Training, "run", stop)

    def invoke(tmp_path, *args: str) -> Started:
        result = CliRunner().invoke(embed, ["train", *args, "--device", "cpu", "--run-dir", str(tmp_path / "r")])
        assert isinstance(result.exception, Started), result.output
        return result.exception

    return invoke


def test_every_row_of_the_auto_table_names_an_option():
    names = {f.name for f in fields(TrainConfig)}
    assert [row[0] for row in policies.AUTO if row[0] not in names] == []
    assert {"loss", "augment", "augmentation", "epochs", "m_per_class", "batch_size"} <= {r[0] for r in policies.AUTO}


def test_a_pooled_mnist_run_with_no_other_flag_trains_the_measured_schedule(mnist, started, tmp_path):
    """``embed train --classes 0,1,2 --unlabelled rest``: 32 images a class, 8 epochs (what 0.6 measured)."""
    got = started(tmp_path, "--classes", "0,1,2", "--unlabelled", "rest", "--data-dir", str(mnist.root))
    assert (got.config.m_per_class, got.config.epochs, got.m, got.ways) == (32, 8, 32, 3)
    assert (got.config.loss, got.config.augment) == ("contrast", 2.0)


def test_a_strict_mnist_run_keeps_the_strict_defaults(mnist, started, tmp_path):
    got = started(tmp_path, "--classes", "0,1,2", "--data-dir", str(mnist.root))
    assert (got.config.m_per_class, got.config.epochs, got.m) == (64, 30, 64)
    assert (got.config.loss, got.config.augment) == ("triplet", 1.0)


def test_given_options_win_over_the_pooled_schedule(mnist, started, tmp_path):
    args = ["--classes", "0,1,2", "--unlabelled", "rest", "--data-dir", str(mnist.root)]
    got = started(tmp_path, *args, "--m-per-class", "64", "--epochs", "3")
    assert (got.config.m_per_class, got.config.epochs) == (64, 3)


def test_the_pooled_schedule_is_for_labelled_classes_of_strokes():
    pooled = TrainConfig(dataset="digits", classes=[0, 1, 2], unlabelled="rest")
    assert policies.m_for(pooled, pooled=True) == 32 and policies.epochs_for(pooled, True, 1000) == 8
    assert policies.m_for(pooled, pooled=False) == 64 and policies.epochs_for(pooled, False, 1000) == 30
    clothes = TrainConfig(dataset="fashion-mnist", classes=[0, 1, 2], unlabelled="rest")
    assert policies.m_for(clothes, pooled=True) == 64 and policies.epochs_for(clothes, True, 1000) == 30
    alone = TrainConfig(dataset="digits", classes="none", unlabelled="rest")
    assert policies.m_for(alone, pooled=True) == 64  # a pool alone: its batch is 2 x m pool images, as before
    assert policies.epochs_for(pooled, True, 2) == 30  # two steps an epoch: at least 60 steps
