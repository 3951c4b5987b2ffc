"""The CLI end to end: click's runner and real subprocesses of the installed console scripts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.embed import main as embed
from embedder.runs.run import read_metadata
from tests.runfiles import invoke, snapshot

TRAIN = ["train", "--dataset", "digits", "--classes", "0-4", "--epochs", "10", "--m-per-class", "32", "--device", "cpu"]


def script(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"console script {name!r} is not installed: pip install -e '.[test]'"
    return found


def check_report(report: dict, run_dir: Path, trained: bool = True) -> None:
    """An eval report of a digits 0-4 run; ``trained``: by a real schedule, not a dry run's two steps."""
    assert report["run"] == str(run_dir)
    rows = report["per_class"]
    assert [r["class"] for r in rows] == list(range(10))
    assert [r["seen"] for r in rows] == [True] * 5 + [False] * 5
    assert all(r["queries"] > 0 and 0 <= r["accuracy"] <= 1 for r in rows)
    assert set(report["summary"]) >= {"seen", "unseen", "all"}
    assert report["summary"]["seen"] > (0.6 if trained else 0)  # chance is 0.1
    episodes = report["episodes"]
    assert episodes["shots"] == 1 and episodes["all"]["ways"] == 10 and episodes["unseen"]["ways"] == 5
    assert 0 < episodes["all"]["mean"] <= 1 and episodes["all"]["ci95"] >= 0


def test_train_then_eval_through_click(tmp_path):
    run_dir = tmp_path / "run"
    runner = CliRunner()
    trained = runner.invoke(embed, [*TRAIN, "--run-dir", str(run_dir)])
    assert trained.exit_code == 0, trained.output
    assert f"saved run to {run_dir}" in trained.output
    table = runner.invoke(embed, ["eval", "--per-class", "--run-dir", str(run_dir), "--episodes", "20"])
    assert table.exit_code == 0, table.output
    assert "unseen" in table.output and "10-way" in table.output and "± " in table.output
    as_json = runner.invoke(embed, ["eval", "--per-class", "--json", "--run-dir", str(run_dir), "--episodes", "20"])
    assert as_json.exit_code == 0
    check_report(json.loads(as_json.stdout), run_dir)


def test_train_then_eval_as_real_processes(tmp_path):
    """The console scripts themselves, into the default run dir; what ten epochs learn is the test above's."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    dry_run = [*TRAIN, "--dry-run"]
    trained = subprocess.run([script("embed"), *dry_run], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    assert "saved run to runs/latest" in trained.stdout
    evaluated = subprocess.run(
        [script("embed"), "eval", "--per-class", "--json", "--episodes", "20"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    check_report(json.loads(evaluated.stdout), Path("runs/latest"), trained=False)


def test_version_and_help_do_not_import_torch():
    code = (
        "import sys; from cli.embed import main; import cli.adder; print(sorted({'torch', 'faiss'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    version = subprocess.run([script("embed"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "0." in version.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "--device", "tpu"], 2, "unknown --device 'tpu'"),
        (["train", "--dataset", "digits", "--classes", "0,a"], 2, "'a' not in the dataset 'digits'"),
        (["train", "--dataset", "digits", "--classes", "0,0"], 2, "twice"),
        (["train", "--dataset", "digits", "--classes", "5"], 2, "at least two"),
        (["train", "--dataset", "digits", "--epochs", "0"], 2, "--epochs"),
        (["train", "--dataset", "digits", "--lr", "nan"], 2, "--lr"),
        (["train", "--dataset", "cifar"], 2, "'cifar' is not one of"),
        (["train", "--epochs", "x"], 2, "not a valid integer"),
        (["eval", "--run-dir", "missing"], 1, "no run at missing"),
        (["eval", "--episodes", "0"], 2, "--episodes"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(tmp_path, args, code, message):
    """In process (click's runner goes through the same ``main`` as the console script; the one below is real)."""
    result = invoke(embed, *args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the machine without CUDA")
def test_cuda_without_cuda_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [script("embed"), "train", "--dataset", "digits", "--device", "cuda"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "CUDA is not available" in result.stderr and "Traceback" not in result.stderr


def test_mnist_missing_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIPLETSHOT_DATA", str(tmp_path / "empty"))
    for proxy in ("https_proxy", "http_proxy"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # nothing listens: offline everywhere
    result = invoke(embed, "train", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 1
    assert "train-images-idx3-ubyte.gz" in result.stderr and "Traceback" not in result.stderr


def write_idx(path: Path, array) -> None:
    """An unsigned-byte IDX file, gzipped, as MNIST ships them (magic 0x0800 + dims, then big-endian sizes)."""
    import gzip

    import numpy as np

    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()))


def small_mnist_root(mnist, folder: Path, train: int = 100, test: int = 20) -> Path:
    """A data root holding MNIST/raw/*.gz with the first ``train`` and ``test`` real images of each digit."""
    import numpy as np

    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem, images, labels, n in (("train", mnist.train_images, mnist.train_labels, train),
                                    ("t10k", mnist.test_images, mnist.test_labels, test)):  # fmt: skip
        rows = np.sort(np.concatenate([np.flatnonzero(labels.numpy() == c)[:n] for c in range(10)]))
        write_idx(raw / f"{stem}-images-idx3-ubyte.gz", images.numpy()[rows])
        write_idx(raw / f"{stem}-labels-idx1-ubyte.gz", labels.numpy()[rows])
    return folder


def test_mnist_dry_run_through_the_cli_and_eval_remembers_the_data(tmp_path, mnist, monkeypatch):
    """Trained with --data-dir, a bare `embed eval` finds the data where training read it, with no $TRIPLETSHOT_DATA.

    The data root is a small MNIST (real images, the real gzipped IDX files' format), so the check costs seconds.
    """
    import socket

    root = small_mnist_root(mnist, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRIPLETSHOT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))  # the per-user cache holds nothing either
    runner = CliRunner()
    result = runner.invoke(embed, ["train", "--dry-run", "--device", "cpu", "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    evaluated = runner.invoke(embed, ["eval", "--json", "--episodes", "3"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["dataset"] == "mnist" and sum(r["queries"] for r in report["per_class"]) == 200

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (this test runs offline)")

    monkeypatch.setattr(socket.socket, "connect", offline)
    elsewhere = runner.invoke(embed, ["eval", "--data-dir", str(tmp_path / "nowhere"), "--episodes", "3"])
    assert elsewhere.exit_code == 1 and "nowhere" in elsewhere.stderr  # the override wins
    assert not (tmp_path / "nowhere").exists()  # and a failed download leaves no empty folders


@pytest.fixture()
def interrupted(tmp_path, digits) -> Path:
    """A training of 2 epochs on digits 0-4 stopped by a real SIGINT in its second epoch (checkpointed)."""
    from embedder.config import TrainConfig
    from embedder.training.interrupt import Interrupted
    from embedder.training.trainer import train

    def ctrl_c_after_epoch_1(epoch, model):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    run_dir = tmp_path / "run"
    config = TrainConfig(dataset="digits", classes=[0, 1, 2, 3, 4], epochs=2, m_per_class=32, device="cpu",
                         run_dir=str(run_dir))  # fmt: skip
    with pytest.raises(Interrupted):
        train(config, progress=False, log=lambda _: None, dataset=digits, on_epoch_end=ctrl_c_after_epoch_1)
    return run_dir


def test_resume_refuses_options_that_conflict_with_the_checkpoint(interrupted):
    resumed = CliRunner().invoke(embed, ["train", "--resume", "--run-dir", str(interrupted), "--epochs", "50"])
    assert resumed.exit_code == 2
    assert resumed.stderr.strip() == (
        "Error: --epochs 50 conflicts with the checkpoint's 2: a resumed training keeps its options "
        "(start a new run to change them)"
    )


def test_resume_takes_its_options_from_the_checkpoint(tmp_path, interrupted):
    runner = CliRunner()
    resumed = runner.invoke(embed, ["train", "--resume", "--run-dir", str(interrupted), "--device", "cpu"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.stderr and "at epoch 2 of 2" in resumed.stderr
    meta = read_metadata(interrupted)
    assert meta["dataset"] == "digits" and meta["classes"] == [0, 1, 2, 3, 4] and len(meta["curve"]) == 2
    again = runner.invoke(embed, ["train", "--resume", "--run-dir", str(interrupted), "--device", "cpu"])
    assert (
        again.exit_code == 1
        and again.stderr == f"Error: this run ({interrupted}) finished at epoch 2; nothing to resume\n"
    )
    nothing = runner.invoke(embed, ["train", "--resume", "--run-dir", str(tmp_path / "empty"), "--device", "cpu"])
    assert nothing.exit_code == 1 and "nothing to resume" in nothing.output


def test_a_new_training_never_throws_away_an_interrupted_one_without_force(interrupted):
    """A fresh `embed train` (no --resume) into an interrupted run: refused, the checkpoint kept for --resume."""
    before = snapshot(interrupted)
    argv = ["train", "--dataset", "digits", "--classes", "0-4", "--device", "cpu", "--run-dir", str(interrupted)]
    refused = CliRunner().invoke(embed, [*argv, "--dry-run"])
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (
        f"Error: --run-dir {interrupted} holds an interrupted training (1 of 2 epochs done): continue it with "
        f"`embed train --resume --run-dir {interrupted}`, or use --force to start a new one over it\n"
    )
    assert snapshot(interrupted) == before
    forced = CliRunner().invoke(embed, [*argv, "--dry-run", "--force"])
    assert forced.exit_code == 0, forced.output
    assert read_metadata(interrupted)["steps_per_epoch"] == 2  # the dry run replaced it, as asked


def test_a_dry_run_never_replaces_a_trained_run_without_force(tmp_path, digits_run):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    before = snapshot(run)
    argv = ["train", "--dataset", "digits", "--classes", "0-4", "--device", "cpu", "--dry-run", "--run-dir", str(run)]
    refused = CliRunner().invoke(embed, argv)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (
        f"Error: --run-dir {run} holds a trained run, which a --dry-run (two steps) would replace: choose another "
        "--run-dir, or use --force\n"
    )
    assert snapshot(run) == before
    forced = CliRunner().invoke(embed, [*argv, "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(read_metadata(run)["curve"]) == 1


def test_a_new_training_never_drops_enrolments_without_force(tmp_path, digits_run, digits):
    """A plain `embed train` (the everyday path: runs/latest) over a run holding enrolled images refuses, naming
    them; the library's train() refuses the same way; after forgetting them, or with --force, it trains."""
    from embedder.config import TrainConfig
    from embedder.errors import ConfigError
    from embedder.runs.enrolment import enrol, forget
    from embedder.training.trainer import train

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    enrol(run, {"mine": digits.test_images[:2], "3": digits.test_images[2:3]})  # a new class, more of a trained one
    before = snapshot(run)
    argv = ["train", "--dataset", "digits", "--classes", "0-4", "--device", "cpu", "--run-dir", str(run)]
    refused = CliRunner().invoke(embed, argv)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (
        f"Error: --run-dir {run} holds a trained run with enrolments (3: 1 image; mine: 2 images), which a new "
        "training would drop (enrolled images are kept only as vectors of this run's network): choose another "
        "--run-dir, or use --force to train over it\n"
    )
    config = TrainConfig(dataset="digits", classes=[0, 1, 2, 3, 4], device="cpu", run_dir=str(run), dry_run=True)
    with pytest.raises(ConfigError, match=r"run_dir .* holds a trained run with enrolments \(3: 1 image; mine: 2"):
        train(config, progress=False, log=lambda _: None, dataset=digits)
    assert snapshot(run) == before
    forget(run, "mine")  # its images are gone already: what a new training would drop is the 3's image
    with pytest.raises(ConfigError, match=r"enrolments \(3: 1 image\)"):
        train(config, progress=False, log=lambda _: None, dataset=digits)
    forced = CliRunner().invoke(embed, [*argv, "--dry-run", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "enrolled_images" not in read_metadata(run)["index"]  # the new run holds only what it trained


def test_eval_says_when_a_retraining_is_pending(tmp_path, digits_run, digits):
    """A finished run, then a new training over it interrupted: eval scores the committed run and says so."""
    from embedder.config import TrainConfig
    from embedder.training.interrupt import Interrupted
    from embedder.training.trainer import train

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    plain = CliRunner().invoke(embed, ["eval", "--run-dir", str(run), "--episodes", "3"])
    assert plain.exit_code == 0 and "note:" not in plain.stdout

    def ctrl_c(epoch, model):
        os.kill(os.getpid(), signal.SIGINT)

    config = TrainConfig(dataset="digits", classes=[0, 1, 2, 3, 4], epochs=2, m_per_class=32, device="cpu",
                         run_dir=str(run))  # fmt: skip
    with pytest.raises(Interrupted):
        train(config, force=True, progress=False, log=lambda _: None, dataset=digits, on_epoch_end=ctrl_c)
    evaluated = CliRunner().invoke(embed, ["eval", "--run-dir", str(run), "--episodes", "3"])
    assert evaluated.exit_code == 0, evaluated.output
    assert evaluated.stdout.splitlines()[1] == (
        f"note: {run} also holds an unfinished training (1 of 2 epochs done), not yet part of this run: these "
        f"figures are the committed run's; if it was interrupted, `embed train --resume --run-dir {run}` finishes it"
    )
    as_json = CliRunner().invoke(embed, ["eval", "--json", "--run-dir", str(run), "--episodes", "3"])
    assert "1 of 2 epochs done" in json.loads(as_json.stdout)["pending_training"]
