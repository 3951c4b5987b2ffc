"""What the run and the CLI promise a user, checked on real runs: a finished run is never rebuilt by a resume,
enrolling nothing is an error, a bad image among good ones fails alone, and the texts say what the index holds."""

from __future__ import annotations

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
    assert resumed.stderr == f"Error: this run ({run}) finished at epoch 15; nothing to resume\n"
    assert snapshot(run) == before
    loaded = Run.load(run)
    assert "ring" in [loaded.class_name(c) for c in loaded.index.classes]
    assert manifest(run)["run"]["open_set"]["far"] == 0.05
