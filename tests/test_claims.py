"""What the run and the CLI promise a user, checked on real runs: a finished run is never rebuilt by a resume,
enrolling nothing is an error, a bad image among good ones fails alone, and the texts say what the index holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.embed import main as embed
from embedder.runs.run import Run
from tests.runfiles import manifest, snapshot
from tests.test_enrolment import draw


@pytest.fixture()
def run(tmp_path, digits_run) -> Path:
    target = tmp_path / "run"
    shutil.copytree(digits_run, target)
    return target


def test_resuming_a_finished_run_refuses_and_keeps_enrolments_and_threshold(tmp_path, run):
    runner = CliRunner()
    ring = draw(tmp_path / "ring.png", "ring")
    assert runner.invoke(embed, ["enroll", "--label", "ring", str(ring), "--run-dir", str(run)]).exit_code == 0
    assert runner.invoke(embed, ["calibrate", "--far", "0.05", "--run-dir", str(run)]).exit_code == 0
    before = snapshot(run)
    resumed = runner.invoke(embed, ["train", "--resume", "--run-dir", str(run), "--device", "cpu"])
    assert resumed.exit_code == 1, resumed.output
    last = manifest(run)["run"]["curve"][-1]["epoch"]  # the epochs it was trained for, whatever the fixture's
    assert resumed.stderr == f"Error: this run ({run}) finished at epoch {last}; nothing to resume\n"
    assert snapshot(run) == before
    loaded = Run.load(run)
    assert "ring" in [loaded.class_name(c) for c in loaded.index.classes]
    assert manifest(run)["run"]["open_set"]["far"] == 0.05


def test_enrolling_a_folder_whose_only_image_is_unreadable_is_an_error_and_changes_nothing(tmp_path, run):
    (tmp_path / "symbols" / "ring").mkdir(parents=True)
    (tmp_path / "symbols" / "ring" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    before = snapshot(run)
    result = CliRunner().invoke(embed, ["enroll", "--folder", str(tmp_path / "symbols"), "--run-dir", str(run)])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: nothing to enrol from ") and "broken.png" in line and result.stdout == ""
    assert snapshot(run) == before  # the lock file included: nothing was even locked


def test_predict_answers_every_readable_image_and_names_each_bad_one(tmp_path, run):
    ring = draw(tmp_path / "ring.png", "ring")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "notes.txt").write_text("shopping list")
    args = ["predict", str(tmp_path / "corrupt.png"), str(ring), str(tmp_path / "notes.txt"), "--run-dir", str(run)]
    result = CliRunner().invoke(embed, args)
    assert result.exit_code == 1
    (answer,) = result.stdout.splitlines()
    assert answer.startswith(f"{ring}: ")
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and "corrupt.png" in errors[0] and "notes.txt" in errors[1]
    assert all(e.startswith("Error: ") for e in errors)
    as_json = CliRunner().invoke(embed, [*args, "--json"])
    assert as_json.exit_code == 1 and [a["image"] for a in json.loads(as_json.stdout)] == [str(ring)]
    nothing = CliRunner().invoke(embed, ["predict", str(tmp_path / "corrupt.png"), "--run-dir", str(run)])
    assert nothing.exit_code == 1 and nothing.stdout == "" and len(nothing.stderr.splitlines()) == 1


def strict_json(text: str):
    """``json.loads`` that refuses NaN and Infinity, as every JSON parser but Python's does."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_eval_json_with_one_episode_is_strict_json_with_null_for_no_interval(run):
    result = CliRunner().invoke(embed, ["eval", "--json", "--episodes", "1", "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    report = strict_json(result.stdout)
    assert report["episodes"]["all"]["ci95"] is None and 0 < report["episodes"]["all"]["mean"] <= 1
    assert all(row["episodes"]["ci95"] is None for row in report["per_class"])


def test_pixel_normalisation_is_measured_on_the_training_images_alone(tmp_path, digits):
    """The unseen classes (and the held-out images) take no part in training, the input statistics included."""
    from embedder.config import TrainConfig
    from embedder.data.sampling import split_validation
    from embedder.runs.run import read_metadata
    from embedder.training.trainer import train

    config = TrainConfig(dataset="digits", classes=[0, 1], dry_run=True, run_dir=str(tmp_path / "r"), device="cpu")
    train(config, progress=False, log=lambda _: None, dataset=digits)
    stored = read_metadata(tmp_path / "r")["normalization"]
    rows, _ = split_validation(digits.train_labels, [0, 1], config.val_fraction, config.seed)
    trained_on = digits.train_images[rows].double() / 255
    everything = digits.train_images.double() / 255
    assert stored["mean"] == pytest.approx(float(trained_on.mean()), rel=1e-5)
    assert stored["std"] == pytest.approx(float(trained_on.std()), rel=1e-5)
    assert abs(stored["mean"] - float(everything.mean())) > 1e-3  # 0s and 1s are not the average digit


def test_a_training_killed_after_its_last_epoch_but_before_saving_the_run_still_resumes():
    """Only the run this very checkpoint committed counts as finished: not an older run it was replacing."""
    from embedder.training.checkpoint import finished_epoch

    curve = [{"epoch": 1, "train_loss": 0.5, "val_loss": float("nan"), "seconds": 1.0}]
    checkpoint = {"epoch": 1, "step": 0, "curve": curve}
    assert finished_epoch(checkpoint, {"curve": [dict(row) for row in curve]}) == 1  # NaN compares as itself
    assert finished_epoch(checkpoint, None) is None  # killed before the run was committed
    older = [{**curve[0], "seconds": 7.5}]
    assert finished_epoch(checkpoint, {"curve": older}) is None  # a previous training's run, being replaced
    assert finished_epoch({**checkpoint, "step": 3}, {"curve": curve}) is None  # mid-epoch


AUTO_LOSS = (
    "triplet loss on under {n} classes of strokes with no pool, class contrast beside an unlabelled pool, on objects "
    "and on {n} classes or more"
)


def test_the_readme_setup_cfg_and_embed_help_say_what_the_default_objective_is():
    """One sentence says what --loss auto trains with, in the three places a user reads first; and it is what
    the code picks."""
    import configparser
    import re as regex

    from embedder.config import CONTRAST_FROM, TrainConfig
    from embedder.training.policies import loss_for

    claim = AUTO_LOSS.format(n=CONTRAST_FROM)
    root = Path(__file__).resolve().parent.parent

    def flat(text: str) -> str:
        return regex.sub(r"\s+", " ", text)

    readme = flat((root / "README.md").read_text().split("\n\n", 2)[1])  # the first paragraph
    setup = configparser.ConfigParser()
    setup.read(root / "setup.cfg")
    helped = CliRunner().invoke(embed, ["--help"], terminal_width=200)
    for where, text in (("README", readme), ("setup.cfg", setup["metadata"]["description"]), ("--help", helped.output)):
        assert claim in flat(text), where
    assert "triplet loss on a few classes" not in flat(helped.output) and "trained with triplet loss" not in readme
    strokes, objects = TrainConfig(classes=[0, 1, 2]), TrainConfig(dataset="fashion-mnist", classes=[0, 1, 2])
    many = TrainConfig(classes=list(range(CONTRAST_FROM)))
    assert loss_for(strokes, pooled=False) == "triplet"  # under 20 classes of strokes, no pool
    assert loss_for(strokes, pooled=True) == loss_for(objects, pooled=False) == loss_for(many, False) == "contrast"
    assert loss_for(TrainConfig(classes=list(range(CONTRAST_FROM - 1))), pooled=False) == "triplet"


def test_only_runs_data_and_the_report_write_files():
    """docs/architecture.md: the run store, the data caches (and MNIST's download) and the report write files;
    no other module of the library does (a figure or an index is drawn or serialised into memory)."""
    import re as regex

    writes = regex.compile(
        r"write_bytes_atomic\(|\.write_(bytes|text)\(|\.mkdir\(|os\.replace\(|rmtree\(|\.unlink\(|\.rename\("
        r"|open\([^)]*[\"'][wa]b?[\"']|(np|torch)\.save\w*\((?!\s*buffer)"
    )
    root = Path(__file__).resolve().parent.parent / "embedder"
    writers = {
        path.relative_to(root).as_posix() for path in root.rglob("*.py") if writes.search(path.read_text())
    }
    allowed = {"data/folders.py", "data/datasets.py", "evaluation/report.py", "utils/files.py"}
    assert {w for w in writers if not w.startswith("runs/")} == allowed, writers
    assert "runs/store.py" in writers  # the pattern finds writes where there are some
