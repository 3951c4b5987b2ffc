"""Test helpers that look inside a run folder the way a curious user (or an attacker) would, and run a command
line in process."""

from __future__ import annotations

import hashlib
import json
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

import click

from embedder.runs.store import MANIFEST_FILE, SUFFIXES


def manifest(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / MANIFEST_FILE).read_text())


def run_file(run_dir: Path, role: str) -> Path:
    """The file that holds ``role`` (model, index, checkpoint, adder) in the run's manifest."""
    return Path(run_dir) / manifest(run_dir)["files"][role]["name"]


def replace_and_resign(run_dir: Path, role: str, data: bytes) -> Path:
    """Swap in other bytes for ``role`` *and* fix the manifest's checksum, as a hand-edited run would be.

    The checksum then passes, so what is tested is the check behind it (architecture, dimension, pickle).
    """
    run_dir = Path(run_dir)
    table = manifest(run_dir)
    digest = hashlib.sha256(data).hexdigest()
    name = f"{role}-{digest[:16]}{SUFFIXES[role]}"
    (run_dir / name).write_bytes(data)
    table["files"][role] = {"name": name, "sha256": digest, "bytes": len(data)}
    (run_dir / MANIFEST_FILE).write_text(json.dumps(table))
    return run_dir / name


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, to show that a command changed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@dataclass(frozen=True)
class Ran:
    """What a console script's process would give: exit code, stdout, stderr (a traceback included)."""

    returncode: int
    stdout: str
    stderr: str


def invoke(cli: click.Command, *args: object, cwd: Path) -> Ran:
    """``cli`` with ``args`` run in this process by click's runner, from ``cwd``: a command line without a
    process's start-up (about 5 s of imports each). An uncaught exception lands on stderr as a traceback, as it
    would in a process, so "no traceback" checks keep their teeth."""
    from click.testing import CliRunner

    previous = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        os.chdir(previous)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return Ran(result.exit_code, result.stdout, stderr)
