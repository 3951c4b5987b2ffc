"""Test helpers that look inside a run folder the way a curious user (or an attacker) would."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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
