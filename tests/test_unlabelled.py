"""The unlabelled pool (``--unlabelled``): real trainings on the bundled digits and on small folders of images.

What is checked: which images a pool holds (``rest`` leaves out the trained and validation classes and the share
calibration draws its impostors from), that training reads them (the weights differ, run.json and the first lines
say so), a folder dataset's ``unlabelled/`` picked up and never a class, resume, and bad pools.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cli.embed import main as embed
from embedder.config import TrainConfig
from embedder.data import pool as pool_module
from embedder.data.datasets import load_dataset
from embedder.data.pool import load_pool, pool_rows
from embedder.errors import ConfigError
from embedder.runs.calibration import calibration_rows
from embedder.runs.run import Run, read_metadata
from embedder.runs.store import RunDir
from embedder.training.interrupt import Interrupted
from embedder.training.trainer import resume, train

SMALL = dict(embedding_dim=64, width=8, m_per_class=16, device="cpu")
SMALL_CLI = ["--embedding-dim", "64", "--width", "8", "--m-per-class", "16", "--device", "cpu"]
QUIET = dict(progress=False, log=lambda _: None)


def digits_config(tmp_path: Path, name: str, **options) -> TrainConfig:
    defaults = dict(dataset="digits", classes=[0, 1, 2, 3, 4], epochs=3, **SMALL)
    return TrainConfig(run_dir=str(tmp_path / name), **{**defaults, **options})


def test_rest_holds_the_other_classes_less_the_calibration_share_and_their_impostors_are_unseen(digits):
    config = TrainConfig(dataset="digits", classes=[0, 1, 2, 3, 4], val_classes=0)
    rows = pool_rows(digits, config)
    labels = digits.train_labels.numpy()
    assert set(labels[rows]) == {5, 6, 7, 8, 9}
    for c in range(5, 10):  # 10% of each other class stays out, as the trained classes' validation split does
        count = int((labels == c).sum())
        assert int((labels[rows] == c).sum()) == count - round(0.1 * count)
    pooled = TrainConfig(dataset="digits", classes=[0, 1, 2, 3, 4], val_classes=0, unlabelled="rest")
    _, impostors = calibration_rows(digits, pooled, np.empty(0, np.int64), list(range(10)))
    assert len(impostors) > 0 and not np.isin(impostors, rows).any()
    _, strict_impostors = calibration_rows(digits, config, np.empty(0, np.int64), list(range(10)))
    assert np.isin(strict_impostors, rows).any()  # without a pool the impostors come from anywhere
    pool = load_pool(pooled, digits)
    assert torch.equal(pool.images, digits.train_images[torch.from_numpy(rows)])


def rest_count(digits, trained: range = range(5)) -> int:
    """Images ``rest`` holds beside ``trained``: each other class less its calibration share (10%), counted here."""
    counts = [int((digits.train_labels == c).sum()) for c in range(10) if c not in trained]
    return sum(n - round(0.1 * n) for n in counts)


def test_a_pooled_run_trains_on_its_pool_and_says_so(tmp_path, digits):
    train(digits_config(tmp_path, "strict"), dataset=digits, **QUIET)
    lines: list[str] = []
    train(digits_config(tmp_path, "pooled", unlabelled="rest"), dataset=digits, progress=False, log=lines.append)
    rest = rest_count(digits)
    assert f"and on {rest} unlabelled images (classes unknown) from the train split's other classes" in lines[0]
    assert ", contrast loss;" in lines[0]  # auto: class contrast beside a pool
    ways, m = (int(n) for n in re.search(r"steps of (\d+) classes x (\d+)", lines[0]).groups())
    strict, pooled = read_metadata(tmp_path / "strict"), read_metadata(tmp_path / "pooled")
    assert strict["unlabelled"] is None and strict["options"]["loss"] == "triplet"  # auto on strokes, no pool
    assert (strict["options"]["augment"], pooled["options"]["augment"]) == (1.0, 2.0)  # twice as strong beside a pool
    assert pooled["unlabelled"]["images"] == rest and pooled["unlabelled"]["source"] == "rest"
    assert pooled["unlabelled"]["per_step"] == ways * m  # as many pool images a step as labelled ones
    assert Run.load(tmp_path / "strict").trained_on == "trained on labels of 0,1,2,3,4 only, no unlabelled images"
    assert Run.load(tmp_path / "pooled").trained_on.startswith(f"trained on labels of 0,1,2,3,4 and on {rest} unlab")
    a, b = (RunDir(tmp_path / name).read_tensors("model") for name in ("strict", "pooled"))
    assert not all(torch.equal(a[k], b[k]) for k in a)
    # The pool's loss is in the curve: the same objective with the pool weighted next to nothing loses its instance
    # term, about log(2 x 80) at first.
    train(digits_config(tmp_path, "light", unlabelled="rest", unlabelled_weight=1e-6), dataset=digits, **QUIET)
    light = read_metadata(tmp_path / "light")
    assert light["options"]["loss"] == pooled["options"]["loss"] and light["options"]["augment"] == 2.0
    assert pooled["curve"][0]["train_loss"] > light["curve"][0]["train_loss"] + 2.0


def test_the_pool_is_label_blind(tmp_path, digits):
    """Relabelling the pool's images among themselves changes no weight: training never reads a pool label.
    (``val_fraction=0``: no calibration share, so the labels do not even choose which images the pool holds.)"""
    rows = np.flatnonzero(digits.train_labels.numpy() >= 5)
    shuffled = digits.train_labels.clone()
    shuffled[rows] = shuffled[rows][torch.randperm(len(rows), generator=torch.Generator().manual_seed(1))]
    assert not torch.equal(shuffled, digits.train_labels)
    relabelled = replace(digits, train_labels=shuffled)
    for name, dataset in (("as is", digits), ("relabelled", relabelled)):
        config = digits_config(tmp_path, name, unlabelled="rest", val_fraction=0.0, val_classes=0, epochs=2)
        train(config, dataset=dataset, **QUIET)
    a, b = (RunDir(tmp_path / name).read_tensors("model") for name in ("as is", "relabelled"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    centred = [RunDir(tmp_path / name).read_tensors("centering")["mean"] for name in ("as is", "relabelled")]
    assert torch.equal(*centred)


def test_the_cli_eval_and_report_say_what_the_network_saw(tmp_path, digits):
    run = str(tmp_path / "run")
    result = CliRunner().invoke(embed, ["train", "--dataset", "digits", "--classes", "0-4", "--epochs", "2",
                                        "--unlabelled", "rest", *SMALL_CLI, "--run-dir", run])  # fmt: skip
    assert result.exit_code == 0, result.output
    first, rest = result.stderr.splitlines()[0], rest_count(digits)
    assert first.startswith("training on digits classes 0,1,2,3,4") and f"{rest} unlabelled images" in first
    result = CliRunner().invoke(embed, ["eval", "--run-dir", run, "--episodes", "5"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        f"run {run} (digits): trained on labels of 0,1,2,3,4 and on {rest} unlabelled images (classes unknown) "
        "from the train split's other classes"
    )
    (caption,) = [line for line in result.stdout.splitlines() if line.startswith("  its index: ")]
    assert caption.endswith("; the network trained on labels of 0,1,2,3,4 and an unlabelled pool"), caption


def symbols(root: Path, digits, classes: range, per_class: int, offset: int = 0) -> None:
    """Class folders of bundled digits as PNGs (``d3/7.png``), ``per_class`` images each from ``offset`` on."""
    images, labels = digits.train_images.numpy(), digits.train_labels.numpy()
    for digit in classes:
        folder = root / f"d{digit}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, row in enumerate(np.flatnonzero(labels == digit)[offset : offset + per_class]):
            Image.fromarray(images[row]).save(folder / f"{i}.png")


def test_a_folder_datasets_unlabelled_folder_is_its_pool_and_never_a_class(tmp_path, digits):
    root = tmp_path / "symbols"
    symbols(root, digits, range(4), 20)
    symbols(root / "unlabelled" / "any" / "nesting", digits, range(4, 8), 10)  # nested, named or not
    (root / "unlabelled" / "notes.txt").write_text("not an image")
    dataset = load_dataset(f"folder:{root}")
    assert dataset.class_names == ["d0", "d1", "d2", "d3"]
    lines: list[str] = []
    config = TrainConfig(dataset=f"folder:{root}", classes="all", epochs=2, run_dir=str(tmp_path / "run"), **SMALL)
    train(config, dataset=dataset, progress=False, log=lines.append)
    assert f"and on 40 unlabelled images (classes unknown) from {root / 'unlabelled'}" in lines[0]
    assert read_metadata(tmp_path / "run")["unlabelled"]["source"] == str(root / "unlabelled")
    lines.clear()
    train(TrainConfig(**{**config.__dict__, "unlabelled": "none", "run_dir": str(tmp_path / "none")}),
          dataset=dataset, progress=False, log=lines.append)  # fmt: skip
    assert "unlabelled" not in lines[0] and read_metadata(tmp_path / "none")["unlabelled"] is None
    # Any folder is a pool, whatever its nesting.
    pool = load_pool(TrainConfig(dataset="digits", unlabelled=str(root / "unlabelled")), digits)
    assert pool.images.shape == (40, 28, 28)


def test_an_interrupted_pooled_training_resumes_bit_identically(tmp_path, digits):
    quiet = dict(dataset=digits, **QUIET)
    train(digits_config(tmp_path, "straight", unlabelled="rest", epochs=3), **quiet)

    def ctrl_c_after_epoch_1(epoch, model):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="SIGINT at epoch 2, step 1 of"):
        train(digits_config(tmp_path, "resumed", unlabelled="rest", epochs=3), on_epoch_end=ctrl_c_after_epoch_1,
              **quiet)  # fmt: skip
    with pytest.raises(ConfigError, match="unlabelled") as info:
        resume(tmp_path / "resumed", unlabelled="none", **quiet)
    assert info.value.param == "unlabelled"
    resume(tmp_path / "resumed", **quiet)
    straight, resumed = (read_metadata(tmp_path / name) for name in ("straight", "resumed"))
    assert resumed["unlabelled"] == straight["unlabelled"]
    assert [r["train_loss"] for r in resumed["curve"]] == [r["train_loss"] for r in straight["curve"]]
    a, b = (RunDir(tmp_path / name).read_tensors("model") for name in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the resumed run keeps its pool for inference, checked as the straight one was: the same decision
    assert resumed["pool"]["decision"] == straight["pool"]["decision"] and resumed["index"]["method"] == "pool"


def test_validation_classes_stay_out_of_the_pool(tmp_path, digits):
    config = digits_config(tmp_path, "val", classes=[0, 1, 2, 3, 4, 5], val_classes=[4, 5], unlabelled="rest")
    train(config, dataset=digits, **QUIET)
    meta = read_metadata(tmp_path / "val")
    assert meta["classes"] == [0, 1, 2, 3] and meta["val_classes"] == [4, 5]
    labels = digits.train_labels.numpy()
    expected = sum(int((labels == c).sum()) - round(0.1 * int((labels == c).sum())) for c in range(6, 10))
    assert meta["unlabelled"]["images"] == expected
    assert meta["held_out"]["ways"] == 2


def test_a_pool_larger_than_memory_allows_is_a_seeded_subset_with_a_warning(tmp_path, digits, monkeypatch):
    monkeypatch.setattr(pool_module, "pool_capacity", lambda: 100)
    lines: list[str] = []
    train(digits_config(tmp_path, "capped", unlabelled="rest", epochs=1), dataset=digits, progress=False,
          log=lines.append)  # fmt: skip
    assert any(line.startswith("warning: the pool holds more images than") and "100 of them" in line for line in lines)
    assert read_metadata(tmp_path / "capped")["unlabelled"]["images"] == 100
    config = TrainConfig(dataset="digits", classes=[0, 1, 2, 3, 4], unlabelled="rest")
    assert torch.equal(load_pool(config, digits).images, load_pool(config, digits).images)  # seeded


def bad(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(embed, ["train", "--dataset", "digits", "--classes", "0-4", "--epochs", "1",
                                        *SMALL_CLI, "--run-dir", str(tmp_path / "run"), *args])  # fmt: skip
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    "make, args, code, message",
    [
        (lambda p: p.mkdir(), [], 2, "holds no image files"),
        (lambda p: (p.mkdir(), (p / "a.txt").write_text("x")), [], 2, "holds no image files"),
        (lambda p: (p.mkdir(), (p / "a.png").write_text("not a png")), [], 1, "none of its 1 image files can be read"),
        (lambda p: None, [], 2, "no such folder"),
        (lambda p: p.write_text("x"), [], 2, "a file, not a folder of images"),
    ],
    ids=["empty folder", "no images", "not an image", "missing", "a file"],
)
def test_bad_pools_are_one_line_and_leave_nothing_behind(tmp_path, make, args, code, message):
    make(tmp_path / "pool")
    exit_code, stderr = bad(tmp_path, "--unlabelled", str(tmp_path / "pool"), *args)
    assert exit_code == code and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr and not (tmp_path / "run").exists()


def test_a_pool_with_nothing_in_it_and_an_empty_option_are_usage_errors(tmp_path):
    code, stderr = bad(tmp_path, "--classes", "all", "--unlabelled", "rest")
    assert code == 2 and "--unlabelled rest is empty: every class of 'digits' is trained on or held out" in stderr
    code, stderr = bad(tmp_path, "--unlabelled", " ")
    assert code == 2 and "--unlabelled is empty" in stderr
    assert not (tmp_path / "run").exists()


def test_a_run_on_a_pool_alone_is_a_self_supervised_embedder_one_can_enrol_into(tmp_path, digits):
    config = digits_config(tmp_path, "ssl", classes="none", unlabelled="rest", epochs=2)
    assert config.classes == []
    lines: list[str] = []
    train(config, dataset=digits, progress=False, log=lines.append)
    assert lines[0].startswith("training on digits no labels on cpu: 2 epochs x")
    assert "no held-out images (no labelled classes): the run has no open-set threshold" in lines
    meta = read_metadata(tmp_path / "ssl")
    assert meta["classes"] == [] and meta["open_set"] is None
    labels = digits.train_labels.numpy()
    assert meta["unlabelled"]["images"] == sum(int((labels == c).sum()) - round(0.1 * int((labels == c).sum()))
                                               for c in range(10))  # fmt: skip
    run = Run.load(tmp_path / "ssl")
    assert run.trained_on.startswith("trained on no labels and on ")
    from embedder import enrol, predict

    image = digits.test_images[:1]
    enrol(tmp_path / "ssl", {"mine": image})
    answer = predict(Run.load(tmp_path / "ssl"), image, ["x.png"])[0]
    assert answer.name == "mine" and answer.distance < 0.01 and answer.threshold is None


def test_no_labels_without_a_pool_is_a_usage_error(tmp_path):
    code, stderr = bad(tmp_path, "--classes", "none")
    assert code == 2 and "--classes none trains on no labels: give a pool, --unlabelled rest or a folder" in stderr
    root = tmp_path / "folder"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    result = CliRunner().invoke(embed, ["train", "--dataset", f"folder:{root}", "--classes", "none",
                                        "--run-dir", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_pseudo_labels_are_redrawn_about_eight_times_and_a_resumed_run_keeps_them(tmp_path, digits):
    from embedder.training.pseudo_labels import refresh_due

    assert [e for e in range(1, 31) if refresh_due(e, 30)] == [2, 6, 10, 14, 18, 22, 26, 30]
    assert [e for e in range(1, 4) if refresh_due(e, 3)] == [2, 3]
    quiet = dict(dataset=digits, **QUIET)
    options = dict(unlabelled="rest", unlabelled_clusters=12, epochs=3)
    train(digits_config(tmp_path, "straight", **options), **quiet)

    def ctrl_c_in_epoch_3(epoch, model):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        train(digits_config(tmp_path, "resumed", **options), on_epoch_end=ctrl_c_in_epoch_3, **quiet)
    clusters = RunDir(tmp_path / "resumed").read_tensors("checkpoint")["pool_clusters"]
    assert clusters.shape == (537,) and 2 <= len(clusters.unique()) <= 12
    resume(tmp_path / "resumed", **quiet)
    a, b = (RunDir(tmp_path / name).read_tensors("model") for name in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    no_clusters = digits_config(tmp_path, "plain", unlabelled="rest", epochs=3)
    train(no_clusters, **quiet)
    c = RunDir(tmp_path / "plain").read_tensors("model")
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the clusters' contrast changed the training
