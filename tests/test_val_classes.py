"""Validation classes: held out of training, scored N-way 1-shot while it runs beside raw pixels and HOG-like
features, the best epoch's weights kept. Real trainings on a folder of 20 classes (the bundled digits, upright and
turned a quarter): 20 is where the default starts holding a fifth of the classes out."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cli.embed import main as embed
from embedder.config import EvalConfig, TrainConfig
from embedder.data.classes import resolve_val_classes
from embedder.data.datasets import load_dataset
from embedder.errors import ConfigError
from embedder.evaluation.episodes import evaluate_run
from embedder.fewshot.fixed_episodes import FixedEpisodes
from embedder.models.baselines import hog_features, raw_pixel_features
from embedder.runs.run import Run, read_metadata
from embedder.runs.store import RunDir
from embedder.training.held_out import scored_epoch
from embedder.training.interrupt import Interrupted
from embedder.training.trainer import resume, train

PER_CLASS = 24  # images a class: about 19 train-split images, 5 test
SMALL = ["--embedding-dim", "64", "--width", "8", "--m-per-class", "8", "--device", "cpu"]
SMALL_API = dict(embedding_dim=64, width=8, m_per_class=8, device="cpu")
LINE = re.compile(
    r"held-out classes: (\d+)-way 1-shot (\d+\.\d)% \(pixels (\d+\.\d)%, HOG-like (\d+\.\d)%\), "
    r"best at epoch (\d+) of (\d+)"
)


@pytest.fixture(scope="module")
def twenty(tmp_path_factory, digits) -> str:
    """``folder:`` dataset of 20 classes: each digit upright (``up-3``) and turned a quarter (``turned-3``)."""
    root = tmp_path_factory.mktemp("twenty")
    images, labels = digits.train_images.numpy(), digits.train_labels.numpy()
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)[:PER_CLASS]
        for kind, turn in (("up", 0), ("turned", 1)):
            folder = root / f"{kind}-{digit}"
            folder.mkdir()
            for i, row in enumerate(rows):
                Image.fromarray(np.rot90(images[row], turn).copy()).save(folder / f"{i}.png")
    return f"folder:{root}"


def trained(name: str, tmp_path: Path, *args: str) -> tuple[dict, str]:
    """``embed train`` through click: the run's metadata and the notes it printed (stderr)."""
    result = CliRunner().invoke(embed, ["train", "--dataset", name, "--classes", "all", *SMALL, *args,
                                        "--run-dir", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 0, result.output
    return read_metadata(tmp_path / "run"), result.stderr


def test_the_default_holds_out_a_fifth_of_twenty_classes_scores_them_and_ends_with_the_best_epoch(tmp_path, twenty):
    meta, notes = trained(twenty, tmp_path, "--epochs", "4")
    held_out, everything = meta["val_classes"], meta["dataset_classes"]
    assert len(held_out) == 4 and held_out != everything[-4:]  # seeded random, not the last four
    assert sorted(meta["classes"] + held_out) == everything and not set(meta["classes"]) & set(held_out)
    assert meta["options"]["val_classes"] == held_out and meta["options"]["classes"] == meta["classes"]
    summary = meta["held_out"]
    assert summary["classes"] == held_out and summary["ways"] == 4 and summary["shots"] == 1
    assert [row["epoch"] for row in summary["curve"]] == [1, 2, 3, 4]  # 4 epochs: every one is scored
    scores = [row["accuracy"] for row in summary["curve"]]
    assert summary["best_epoch"] == 1 + int(np.argmax(scores)) and summary["accuracy"] == max(scores)
    # The line, with the baselines, scored on the same episodes.
    (found,) = LINE.findall(notes)
    assert found == ("4", f"{100 * max(scores):.1f}", f"{100 * summary['baselines']['pixels']:.1f}",
                     f"{100 * summary['baselines']['hog']:.1f}", str(summary["best_epoch"]), "4")  # fmt: skip
    beaten = max(scores) > max(summary["baselines"].values())
    assert ("warning: on the held-out classes the embedding" in notes) == (not beaten)

    # The run's weights are the best epoch's, which the checkpoint keeps for a resume.
    run, best = Run.load(tmp_path / "run"), RunDir(tmp_path / "run").read_tensors("checkpoint")["best"]
    assert best["epoch"] == summary["best_epoch"]
    for name, value in run.embedder.model.state_dict().items():
        assert torch.equal(value, best["weights"][name]), name
    if summary["best_epoch"] < 4:  # seed 0 at 1 thread: epoch 1; then the run is not the last epoch's weights
        last = RunDir(tmp_path / "run").read_tensors("checkpoint")["model"]
        assert not all(torch.equal(value, last[name]) for name, value in run.embedder.model.state_dict().items())
    # Scored again from the saved run (its centring included), the same episodes give the recorded score.
    data = run.load_dataset()
    episodes = FixedEpisodes.draw(data.train_labels.numpy(), held_out, meta["seed"])
    images = data.train_images[torch.as_tensor(episodes.rows)]
    assert episodes.score(run.embedder.embed(images)) == pytest.approx(summary["accuracy"], abs=1e-6)
    assert episodes.score(raw_pixel_features(images)) == summary["baselines"]["pixels"]
    assert episodes.score(hog_features(images)) == summary["baselines"]["hog"]

    # Indexed like every class, and unseen for the evaluation.
    assert sorted(run.index.classes) == everything
    report = evaluate_run(run, data, EvalConfig(episodes=2))
    assert report["trained_classes"] == meta["classes"]
    assert {r["class"] for r in report["per_class"] if not r["seen"]} == set(held_out)


def test_val_classes_0_holds_none_out_and_under_20_classes_none_is_the_default(tmp_path, twenty):
    meta, notes = trained(twenty, tmp_path, "--dry-run", "--val-classes", "0")
    assert meta["val_classes"] == [] and meta["held_out"] is None and len(meta["classes"]) == 20
    assert "held-out classes" not in notes
    result = CliRunner().invoke(embed, ["train", "--dataset", "digits", "--classes", "0-9", "--dry-run", *SMALL,
                                        "--run-dir", str(tmp_path / "digits")])  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = read_metadata(tmp_path / "digits")
    assert meta["classes"] == list(range(10)) and meta["val_classes"] == [] and meta["held_out"] is None


def test_named_val_classes_are_held_out_and_the_draw_follows_the_seed(tmp_path, twenty):
    meta, _ = trained(twenty, tmp_path, "--dry-run", "--val-classes", "up-7,turned-7")
    names = meta["class_names"]
    assert [names[c] for c in meta["val_classes"]] == ["turned-7", "up-7"]  # sorted by label
    assert meta["held_out"]["class_names"] == ["turned-7", "up-7"] and meta["held_out"]["ways"] == 2
    twenty_labels = list(range(20))
    draw = resolve_val_classes(4, twenty_labels, names, seed=0)
    assert draw == resolve_val_classes(4, twenty_labels, names, seed=0)
    assert draw != resolve_val_classes(4, twenty_labels, names, seed=1)
    with pytest.raises(ConfigError, match="'nope' is not a class of the dataset") as info:
        resolve_val_classes(["nope", "up-1"], twenty_labels, names, seed=0)
    assert info.value.param == "val_classes"


def test_scored_epochs_are_about_ten_and_always_the_last():
    assert [e for e in range(1, 67) if scored_epoch(e, 66)] == [7, 14, 21, 28, 35, 42, 49, 56, 63, 66]
    assert [e for e in range(1, 4) if scored_epoch(e, 3)] == [1, 2, 3]


def test_an_interrupted_training_resumes_with_its_val_classes_curve_and_best_weights(tmp_path, twenty):
    dataset = load_dataset(twenty)

    def config(name: str) -> TrainConfig:
        return TrainConfig(dataset=twenty, classes="all", epochs=4, run_dir=str(tmp_path / name), **SMALL_API)

    quiet = dict(progress=False, log=lambda _: None, dataset=dataset)
    train(config("straight"), **quiet)

    def ctrl_c_after_epoch_2(epoch, model):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="SIGINT at epoch 3, step 1 of"):
        train(config("resumed"), on_epoch_end=ctrl_c_after_epoch_2, **quiet)
    checkpoint = RunDir(tmp_path / "resumed").read_tensors("checkpoint")
    held_out = checkpoint["config"]["val_classes"]
    assert len(held_out) == 4 and [r["epoch"] for r in checkpoint["best"]["curve"]] == [1, 2]
    with pytest.raises(ConfigError, match=r"val_classes 5 conflicts with the checkpoint's \[") as info:
        resume(tmp_path / "resumed", val_classes=5, **quiet)
    assert info.value.param == "val_classes"
    with pytest.raises(ConfigError, match="val_classes"):
        resume(tmp_path / "resumed", val_classes=[c for c in range(20) if c not in held_out][:4], **quiet)
    # The count it was started with, and every class it was asked for, agree with the checkpoint.
    resume(tmp_path / "resumed", val_classes=4, classes=list(range(20)), **quiet)

    straight, resumed = (read_metadata(tmp_path / name) for name in ("straight", "resumed"))
    assert resumed["val_classes"] == straight["val_classes"] == held_out
    assert resumed["held_out"]["curve"] == straight["held_out"]["curve"]
    assert resumed["held_out"]["best_epoch"] == straight["held_out"]["best_epoch"]
    a, b = (RunDir(tmp_path / name).read_tensors("model") for name in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_pooled_runs_validation_score_is_the_saved_runs_and_says_it_is_a_best_of(tmp_path, twenty, digits):
    """Beside a pool the saved run centres on the labelled *and* the pool images: the validation classes are scored
    with that centring, so the recorded score replays from the saved run; the line says it is a best of epochs."""
    pool = tmp_path / "pool"
    pool.mkdir()
    for i, image in enumerate(digits.test_images[:120].numpy()):  # images of no class of the dataset's, unlabelled
        Image.fromarray(np.rot90(image, 2).copy()).save(pool / f"{i}.png")
    meta, notes = trained(twenty, tmp_path, "--epochs", "3", "--unlabelled", str(pool))
    summary = meta["held_out"]
    assert meta["unlabelled"]["images"] == 120
    run, data = Run.load(tmp_path / "run"), load_dataset(twenty)
    episodes = FixedEpisodes.draw(data.train_labels.numpy(), meta["val_classes"], meta["seed"])
    images = data.train_images[torch.as_tensor(episodes.rows)]
    assert episodes.score(run.embedder.embed(images)) == pytest.approx(summary["accuracy"], abs=1e-6)
    (found,) = LINE.findall(notes)
    assert f"best at epoch {found[4]} of 3 (the best of 3 scored epochs on the same {summary['episodes']} episodes: " \
           "optimistic by the choice)" in notes  # fmt: skip
