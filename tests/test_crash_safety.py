"""Interrupted and crashed trainings: signals checkpoint and exit 130, kill -9 never leaves a broken run,
and a second writer is turned away by the run's lock, which a dead process does not keep."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cli.embed import main as embed
from embedder.runs.run import Run
from embedder.runs.store import RunDir
from embedder.training.checkpoint import finished_epoch
from tests.test_cli import script

# Tiny and fast, so that checkpoints (each a commit: files, fsync, manifest) come every fraction of a second.
TINY = dict(dataset="digits", classes=[0, 1, 2, 3, 4], epochs=3, m_per_class=8, embedding_dim=64, width=8)
TINY_CLI = ["--dataset", "digits", "--classes", "0-4", "--m-per-class", "8", "--embedding-dim", "64", "--device", "cpu"]


def wait_for_checkpoint(run: Path, proc: subprocess.Popen, after: bytes | None = None, timeout: float = 120) -> None:
    """Until run.json names a checkpoint (a different one from ``after``, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        manifest = run / "run.json"
        if manifest.exists() and b"checkpoint" in manifest.read_bytes() and manifest.read_bytes() != after:
            return
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_sigterm_and_ctrl_c_finish_the_step_checkpoint_and_exit_130(tmp_path):
    run = tmp_path / "run"
    command = [script("embed"), "train", *TINY_CLI, "--epochs", "500", "--run-dir", str(run)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert "interrupted by SIGTERM" in last and f"embed train --resume --run-dir {run}" in last
    assert "Traceback" not in stderr and "Error" not in last
    first = RunDir(run).read_tensors("checkpoint")
    assert first["config"]["epochs"] == 500 and first["config"]["embedding_dim"] == 64  # the options, for resume

    resumed_from = (run / "run.json").read_bytes()
    proc = subprocess.Popen(
        [script("embed"), "train", "--resume", "--run-dir", str(run), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_checkpoint(run, proc, after=resumed_from)  # resumed, and saved again
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"resuming {run} at epoch {first['epoch'] + 1}" in stderr and "interrupted by SIGINT" in stderr
    second = RunDir(run).read_tensors("checkpoint")
    assert (second["epoch"], second["step"]) > (first["epoch"], first["step"])


def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_free(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom embedder.runs.store import RunDir\n"
         "with RunDir(sys.argv[1]).lock():\n    print('locked', flush=True)\n    time.sleep(300)", str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        dry_run = ["train", *TINY_CLI, "--dry-run", "--run-dir", str(run)]
        busy = CliRunner().invoke(embed, dry_run)
        assert busy.exit_code == 1 and f"run dir {run} is in use by pid {holder.pid}" in busy.stderr
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # the refused training wrote nothing
    finally:
        holder.kill()  # kill -9: no chance to clean up
        holder.wait()
    after_death = CliRunner().invoke(embed, dry_run)
    assert after_death.exit_code == 0, after_death.output
    Run.load(run)


def _train(run_dir: str, resume: bool) -> None:  # runs in a forked child; the test kills it
    from embedder.config import TrainConfig
    from embedder.training.trainer import resume as resume_training
    from embedder.training.trainer import train

    if resume:
        resume_training(run_dir, progress=False, log=lambda _: None)
    else:
        train(TrainConfig(run_dir=run_dir, device="cpu", **TINY), progress=False, log=lambda _: None)


def check_run_dir(run: Path) -> tuple[tuple[int, int] | None, bool]:
    """Everything run.json names is intact and loads. Returns (checkpoint position, whether a run is complete)."""
    if not (run / "run.json").exists():
        return None, False
    store = RunDir(run)
    manifest = store.manifest()
    for role in manifest["files"]:
        store.read(role, manifest)  # size and sha256 match
    checkpoint = store.read_tensors("checkpoint", manifest)
    complete = "run" in manifest
    if complete:
        Run.load(run)
    return (checkpoint["epoch"], checkpoint["step"]), complete


def run_finished(run: Path) -> bool:
    """The run's last training committed its final state (a kill can land after that): resume refuses it."""
    store = RunDir(run)
    if not store.has("checkpoint"):
        return False
    manifest = store.manifest()
    return finished_epoch(store.read_tensors("checkpoint", manifest), manifest.get("run")) is not None


def temp_files(run: Path) -> set[str]:
    return {name for name in os.listdir(run) if name.endswith(".tmp")}


def unnamed_files(run: Path) -> set[str]:
    """Content-named files that run.json does not name: written by a save that was killed before its commit."""
    files = RunDir(run).manifest()["files"] if (run / "run.json").exists() else {}
    named = {entry["name"] for entry in files.values()}
    return {n for n in os.listdir(run) if n.split("-")[0] in ("model", "index", "checkpoint") and n not in named}


def wait_for_writes(run: Path, child: multiprocessing.Process, count: int, timeout: float = 60) -> None:
    """Until the child has begun writing ``count`` files (each shows as a temp file while it is written)."""
    seen = temp_files(run)
    started = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.is_alive():
        started |= temp_files(run) - seen
        if len(started) >= count:
            return
        time.sleep(0.0005)


def test_kill_9_at_random_moments_never_leaves_a_broken_run(tmp_path):
    """>= 20 SIGKILLs of real trainings: half at a random moment, half a random 0-20 ms after the first to fourth
    file write of the process began (so inside a save, or between its files and its manifest).

    After each, run.json must name a complete, checksummed set that loads: the state before the kill or a
    later one. A killed training is resumed; a finished run is trained over, so kills also land while a new
    training replaces a complete run, which must stay loadable throughout.
    """
    context = multiprocessing.get_context("forkserver")  # children start with torch imported: kills are cheap
    context.set_forkserver_preload(["embedder.training.trainer"])
    run = tmp_path / "run"
    run.mkdir()
    rng = random.Random(0)
    kills, inside_a_save, finished, position, was_complete, last_finished = 0, 0, 0, None, False, False
    deadline = time.monotonic() + 600  # the time bound; typically one to two minutes
    while kills < 20:
        assert time.monotonic() < deadline, f"only {kills} kills before the deadline"
        # Resume a killed training (even one killed in its final save); after one that finished, train anew.
        resume = not last_finished and RunDir(run).exists() and not run_finished(run)  # killed after its commit
        if not resume:
            position = None  # a new training starts its checkpoints from zero
        left_before = temp_files(run)
        child = context.Process(target=_train, args=(str(run), resume))
        child.start()
        if kills % 2:
            wait_for_writes(run, child, count=rng.randint(1, 4))
            time.sleep(rng.uniform(0, 0.02))
        else:
            child.join(timeout=rng.uniform(0.5, 4.0))
        child.kill()  # SIGKILL, unless it has finished already
        child.join()
        assert child.exitcode in (0, -signal.SIGKILL), child.exitcode
        kills += child.exitcode == -signal.SIGKILL
        finished += child.exitcode == 0
        last_finished = child.exitcode == 0
        now, complete = check_run_dir(run)
        inside_a_save += bool(temp_files(run) - left_before) or bool(unnamed_files(run))
        assert complete or not was_complete, "a complete run stopped loading"
        if now is not None and position is not None:
            assert now >= position, f"checkpoint went back from {position} to {now}"
        position, was_complete = now or position, complete
        print(f"kill {kills}: checkpoint {now}, complete {complete}")
    print(f"\n{kills} kills ({inside_a_save} inside a save), {finished} trainings finished; all consistent")


def test_a_reader_overtaken_by_a_save_reads_again(tmp_path, digits_run, monkeypatch):
    """eval reads run.json, a training commits and deletes the old model, eval then opens the old name."""
    from embedder.runs.store import StaleManifest, state_to_bytes

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    store = RunDir(run)
    before = store.manifest()
    newer = Run.load(run).embedder.model.state_dict()
    newer["head.3.bias"] += 1.0  # different bytes: a new content-named file, the old one collected
    store.commit({"model": state_to_bytes(newer)})
    with pytest.raises(StaleManifest):
        store.read("model", before)  # the old model file is gone: the caller must read run.json again

    manifests = iter([before])  # Run.load's first read sees the manifest from before the commit
    real = RunDir.manifest
    monkeypatch.setattr(RunDir, "manifest", lambda self: next(manifests, None) or real(self))
    loaded = Run.load(run)
    assert torch.equal(loaded.embedder.model.state_dict()["head.3.bias"], newer["head.3.bias"])
