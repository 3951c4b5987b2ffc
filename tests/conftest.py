"""Shared fixtures: real data (the bundled digits, an MNIST subset) and a run trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from embedder.config import TrainConfig
from embedder.data.dataset import Dataset
from embedder.data.datasets import default_data_root, find_raw, load_dataset
from embedder.training.trainer import train

torch.set_num_threads(min(2, torch.get_num_threads()))

# Few epochs on the tiny digits set: a real training run that finishes in seconds.
DIGITS_TRAIN = dict(dataset="digits", classes=[0, 1, 2, 3, 4], epochs=15, m_per_class=32, device="cpu")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never write into a data root: decoded folders are cached in a temporary folder ($TRIPLETSHOT_CACHE,
    inherited by the CLI processes tests start; test_folders.py checks that one did not write beside its data)."""
    previous = os.environ.get("TRIPLETSHOT_CACHE")
    os.environ["TRIPLETSHOT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    os.environ.pop("TRIPLETSHOT_CACHE")
    if previous is not None:
        os.environ["TRIPLETSHOT_CACHE"] = previous


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory, digits: Dataset) -> Path:
    """A run trained on digits 0-4, shared read-only by the tests that only load it."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    train(TrainConfig(run_dir=str(run_dir), **DIGITS_TRAIN), progress=False, log=lambda _: None, dataset=digits)
    return run_dir


def _mnist_root() -> Path | None:
    """Where the CLI would look: $TRIPLETSHOT_DATA, else the per-user cache; None if MNIST is not there."""
    root = default_data_root()
    return root if find_raw(root / "MNIST" / "raw", "train-images-idx3-ubyte") else None


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """MNIST from the default data root. Skipped where it is absent, except in CI, where that fails."""
    if _mnist_root() is None:
        message = f"MNIST not found under {default_data_root()} (MNIST/raw/*.gz)"
        if os.environ.get("TRIPLETSHOT_REQUIRE_MNIST"):
            pytest.fail(message + "; CI sets TRIPLETSHOT_REQUIRE_MNIST, so this is a failure, not a skip")
        pytest.skip(message)
    return load_dataset("mnist")
