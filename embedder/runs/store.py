"""Every file tripletshot writes, in one place: atomic writes, pickle-free tensor files, and the run folder.

A run directory holds files named by their content, and ``run.json``, the manifest that commits them:

run.json                     the manifest: format version, the run's metadata, each file's name, size and sha256
model-<sha>.safetensors      the embedder's weights (a state dict): safetensors, no unpickler at all
centering-<sha>.safetensors  the feature centring fitted after training (its mean vector)
index-<sha>.npz              the faiss support index, its labels and support ids (``allow_pickle=False``)
index_changes-<sha>.npz      what enrol and forget changed in the index since it was written whole: the vectors
                             added, with labels and ids, and the classes removed (small; compacted into the index)
checkpoint-<sha>.pt          model, optimizer, RNG states, epoch and step, options: what ``--resume`` needs
adder-<sha>.pt               the linear adder, once trained; it belongs to the model beside it
pool-<sha>.npz               the unlabelled pool inference uses (embedder.runs.pool_files); it belongs to the model
.lock                        held (``flock``) by the one process writing the run; the kernel frees it when it dies

What is unpickled: nothing a run needs to predict. The weights and the centring are safetensors (a JSON
header and raw tensor bytes). The checkpoint (nested optimizer and scheduler state, RNG states, options)
and the adder (its weights and a report of plain values) are ``torch.save`` files read with
``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which rebuilds tensors, dicts, lists,
tuples, strings and numbers and refuses any other global (a pickle that would run code fails to load).
Only ``embed train --resume`` reads the checkpoint; only ``adder`` reads the adder.

A save writes its new files first, each atomically (temp file in the folder, fsync, ``os.replace``), then
replaces ``run.json`` atomically, then deletes the files it no longer names. Because a new file never
overwrites one the manifest names, a crash at any moment, ``kill -9`` included, leaves ``run.json`` naming a
complete set: the previous state or the new one. Reads check a file's sha256 against the manifest before
parsing it, and name the file that does not match.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from embedder.errors import ConfigError, RunError, RunNotFoundError
from embedder.utils.files import write_bytes_atomic
from embedder.version import __version__

MANIFEST_FILE = "run.json"
LOCK_FILE = ".lock"
FORMAT = "tripletshot-run"
FORMAT_VERSION = 4  # 4: weights and centring in safetensors, support ids in the index; 3: centring its own file
CHANGES = {3: "before the weights moved to safetensors and the index kept support ids"}  # why an old one is refused
SUFFIXES = {
    "model": ".safetensors",
    "centering": ".safetensors",
    "index": ".npz",
    "index_changes": ".npz",
    "checkpoint": ".pt",
    "adder": ".pt",
    "pool": ".npz",
}
SAFETENSORS = ("model", "centering")  # roles read without any unpickler
BELONGS_TO_MODEL = ("adder", "pool")  # dropped when a commit brings a model: a training over the run replaced it
BELONGS_TO_INDEX = ("index_changes",)  # dropped when a commit brings a whole index: it holds them already


class RunBusyError(RunError):
    """Another process holds the run's lock: a write may try again once it is done."""


_OURS = re.compile(r"^(model|centering|index|index_changes|checkpoint|adder|pool)-[0-9a-f]{16}\.(pt|npz|safetensors)$")
ENROLLED = "enrolled_images"  # run metadata's index: {name: images enrolled under it since the training}
_TEMP = re.compile(r"^\..+\.tmp$")  # write_bytes_atomic's temp files, left behind only by a killed process


# --- pickle-free tensors ---


def tensors_to_bytes(obj: Any) -> bytes:
    """``torch.save`` a dict of tensors and plain values into bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def tensors_from_bytes(data: bytes, source: str, device: torch.device | str = "cpu") -> Any:
    """Load what :func:`tensors_to_bytes` made, refusing anything that would unpickle code."""
    try:
        return torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:  # weights_only refuses pickled code with an UnpicklingError
        raise RunError(f"{source} is damaged or not a tripletshot file ({type(exc).__name__})") from None


def state_to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """A flat dict of tensors (a state dict) as safetensors bytes."""
    from safetensors.torch import save

    return save({name: tensor.detach().cpu().contiguous() for name, tensor in state.items()})


def state_from_bytes(data: bytes, source: str) -> dict[str, torch.Tensor]:
    """Read :func:`state_to_bytes` output: no unpickler is involved."""
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError on anything that is not one
        raise RunError(f"{source} is damaged or not a tripletshot file ({type(exc).__name__})") from None


# --- the run folder ---


class StaleManifest(RunError):
    """A file named by a manifest read earlier is gone because a newer save replaced it: read again."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_run_file(name: str) -> bool:
    """A name this module writes (a hidden temp file counts: the folder it is in is a run)."""
    return name in (MANIFEST_FILE, LOCK_FILE) or bool(_OURS.match(name) or _TEMP.match(name))


class RunDir:
    """One run folder: verified reads, locked atomic commits."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    # --- reading ---

    def manifest(self) -> dict[str, Any]:
        """The parsed ``run.json``, checked for format and version before anything trusts it."""
        if not self.path.exists():
            raise RunNotFoundError(f"no run at {self.path}: train one first with `embed train`")
        if not self.path.is_dir():
            raise RunError(f"{self.path} is not a directory")
        if not self.exists():
            raise RunNotFoundError(
                f"{self.path} is not a tripletshot run (no {MANIFEST_FILE}): train one with `embed train`"
            )
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunError(f"{self.manifest_path} is damaged: not valid JSON") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise RunError(f"{self.manifest_path} is not a tripletshot run manifest")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            if isinstance(version, int) and version > FORMAT_VERSION:
                raise RunError(
                    f"{self.manifest_path} is format version {version}, written by a newer tripletshot "
                    f"(this one, {__version__}, reads version {FORMAT_VERSION}): upgrade tripletshot"
                )
            why = f" ({CHANGES[version]})" if version in CHANGES else ""
            raise RunError(
                f"{self.manifest_path} is format version {version!r}{why}; this tripletshot reads version "
                f"{FORMAT_VERSION}: train the run again"
            )
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(self._entry_ok(role, e) for role, e in files.items()):
            raise RunError(f"{self.manifest_path} is damaged: its file table is malformed")
        return manifest

    @staticmethod
    def _entry_ok(role: str, entry: Any) -> bool:
        return (
            role in SUFFIXES
            and isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and bool(_OURS.match(entry["name"]))  # never a path: nothing outside the folder is read
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("bytes"), int)
        )

    def metadata(self, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
        """The metadata of the run's last *complete* training."""
        run = (manifest or self.manifest()).get("run")
        if not isinstance(run, dict):
            raise RunError(
                f"{self.path} holds a training that has not finished: "
                f"continue it with `embed train --resume --run-dir {self.path}`"
            )
        return run

    def has(self, role: str) -> bool:
        return role in self.manifest()["files"]

    def file_path(self, role: str, manifest: dict[str, Any] | None = None) -> Path:
        """Where the manifest says the file holding ``role`` is."""
        entry = (manifest or self.manifest())["files"].get(role)
        if entry is None:
            raise RunError(f"{self.path} has no {role} file")
        return self.path / entry["name"]

    def read(self, role: str, manifest: dict[str, Any] | None = None) -> bytes:
        """The bytes of the file holding ``role``, after checking their size and sha256."""
        manifest = manifest or self.manifest()
        path, entry = self.file_path(role, manifest), manifest["files"][role]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if self.exists() and self.manifest() != manifest:
                raise StaleManifest(f"{self.path} changed while it was read: a new save replaced {path.name}") from None
            raise RunError(f"{path} is missing: the {role} file named in {MANIFEST_FILE} is gone") from None
        if len(data) != entry["bytes"] or sha256(data) != entry["sha256"]:
            raise RunError(f"{path} is damaged: its sha256 does not match {MANIFEST_FILE} (truncated or modified)")
        return data

    def read_tensors(self, role: str, manifest: dict[str, Any] | None = None) -> Any:
        """The tensors of ``role``'s file: safetensors for the weights and centring, else ``weights_only``."""
        manifest = manifest or self.manifest()
        data, source = self.read(role, manifest), str(self.file_path(role, manifest))
        return state_from_bytes(data, source) if role in SAFETENSORS else tensors_from_bytes(data, source)

    # --- writing ---

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock: a second writer fails at once. A dead holder's lock is freed by the kernel."""
        if self._lock_fd is not None:  # re-entrant within one object
            yield
            return
        self.check_writable()
        path = self.path / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _try_lock(fd)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunBusyError(
                f"run dir {self.path} is in use by {holder}; wait for it or choose another run dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._lock_fd = fd
        try:
            yield
        finally:
            self._lock_fd = None
            os.close(fd)  # closing releases the lock; the file stays, unlocked, for the next writer

    def check_writable(self) -> None:
        """Refuse a read-only folder, by its mode too: root may write anywhere, but chmod -w says "keep"."""
        if not self.path.is_dir():
            return
        mode = self.path.stat().st_mode
        if not os.access(self.path, os.W_OK) or not mode & stat.S_IWUSR:
            raise RunError(f"run dir {self.path} is read-only")

    def commit(
        self, files: dict[str, bytes], run: dict[str, Any] | None = None, fresh: bool = False, drop: tuple = ()
    ) -> None:
        """Write ``files`` (role -> bytes) and, if given, the run metadata, as one atomic step.

        Roles not in ``files`` keep their current file, except those in ``drop``; a ``model`` (a training's result)
        drops the files that belonged to the old one (:data:`BELONGS_TO_MODEL`), and a whole ``index`` the changes
        kept beside the old one (:data:`BELONGS_TO_INDEX`); ``fresh`` starts from an empty manifest.
        """
        with self.lock():
            manifest = (
                {"format": FORMAT, "format_version": FORMAT_VERSION, "files": {}}
                if fresh or not self.exists()
                else self.manifest()
            )
            for role in drop:
                manifest["files"].pop(role, None)  # collected below
            for owner, belongings in (("model", BELONGS_TO_MODEL), ("index", BELONGS_TO_INDEX)):
                if owner in files:  # what the old file had beside it goes with it
                    for role in belongings:
                        if role not in files:
                            manifest["files"].pop(role, None)  # collected below, with the old file
            for role, data in files.items():
                digest = sha256(data)
                name = f"{role}-{digest[:16]}{SUFFIXES[role]}"
                if manifest["files"].get(role, {}).get("name") != name:  # else that very file is in place
                    write_bytes_atomic(self.path / name, data)
                manifest["files"][role] = {"name": name, "sha256": digest, "bytes": len(data)}
            if run is not None:
                manifest["run"] = run
            manifest["tripletshot_version"] = __version__
            write_bytes_atomic(self.manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
            self._collect_garbage(manifest)

    def _collect_garbage(self, manifest: dict[str, Any]) -> None:
        """Delete our files that ``run.json`` no longer names, and temp files of killed writers."""
        named = {entry["name"] for entry in manifest["files"].values()}
        for child in self.path.iterdir():
            if (_OURS.match(child.name) and child.name not in named) or _TEMP.match(child.name):
                child.unlink(missing_ok=True)


def _try_lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            raise BlockingIOError from None
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def check_new_run_dir(path: Path, force: bool = False) -> None:
    """Refuse a ``run_dir`` that is a file, or a folder of someone else's files (unless ``force``)."""
    if path.exists() and not path.is_dir():
        raise ConfigError("run_dir", f"{{run_dir}} {path} is a file, not a directory")
    if path.is_dir() and not force and not (path / MANIFEST_FILE).exists():
        foreign = sorted(p.name for p in path.iterdir() if not is_run_file(p.name))
        if foreign:
            raise ConfigError(
                "run_dir",
                f"{{run_dir}} {path} holds files that are not a tripletshot run ({foreign[0]}, ...); "
                "choose another folder or use {force}",
            )


def finished_epoch(checkpoint: dict[str, Any], run: dict[str, Any] | None) -> int | None:
    """The last epoch, if the run's committed metadata is this checkpoint's finished training; else None.

    The run is committed once, after the last epoch, with the loss curve the checkpoint holds; a run that an
    unfinished training is replacing still holds the *previous* training's curve, so that one resumes.
    """
    if not isinstance(run, dict) or not checkpoint.get("curve"):
        return None
    as_text = [json.dumps(c, sort_keys=True) for c in (run.get("curve"), list(checkpoint["curve"]))]  # NaN-safe
    return int(checkpoint["epoch"]) if as_text[0] == as_text[1] and int(checkpoint["step"]) == 0 else None


def interrupted_training(store: RunDir, manifest: dict[str, Any]) -> str | None:
    """How far the interrupted training in ``store`` got (``1 of 2 epochs done``), or None if it holds none: its
    checkpoint is not the committed run's finished training."""
    if "checkpoint" not in manifest["files"]:
        return None
    checkpoint = store.read_tensors("checkpoint", manifest)
    if finished_epoch(checkpoint, manifest.get("run")) is not None:
        return None
    epochs = checkpoint.get("config", {}).get("epochs")
    return f"{int(checkpoint.get('epoch', 0))}{f' of {epochs}' if epochs else ''} epochs done"


def check_replacing(store: RunDir, manifest: dict[str, Any], dry_run: bool = False) -> None:
    """Refuse a new training that would throw away what was trained in ``store``: an interrupted training's
    checkpoint (``--resume`` continues it), a finished run's enrolments (:func:`enrolled_classes`), or, for a dry
    run (two steps), a finished run. Not asked under ``force``."""
    path = store.path
    done = interrupted_training(store, manifest)
    if done is not None:
        raise ConfigError(
            "run_dir",
            f"{{run_dir}} {path} holds an interrupted training ({done}): continue it with "
            f"`embed train --resume --run-dir {path}`, or use {{force}} to start a new one over it",
        )
    enrolled = enrolled_classes(manifest.get("run"))
    if enrolled:
        raise ConfigError(
            "run_dir",
            f"{{run_dir}} {path} holds a trained run with enrolments ({'; '.join(enrolled)}), which a new training "
            "would drop (enrolled images are kept only as vectors of this run's network): choose another "
            "{run_dir}, or use {force} to train over it",
        )
    if dry_run and isinstance(manifest.get("run"), dict):
        raise ConfigError(
            "run_dir",
            f"{{run_dir}} {path} holds a trained run, which a {{dry_run}} (two steps) would replace: "
            "choose another {run_dir}, or use {force}",
        )


def enrolled_classes(run: dict[str, Any] | None) -> list[str]:
    """What enrolment added to a run's index, in words (``star: 3 images``); [] if nothing.

    ``enrol`` counts the images it adds under each name (``index.enrolled_images``: a training class's name
    too); a run enrolled into before that count was kept shows its classes of ``origin: enrolled``."""
    index = run.get("index") if isinstance(run, dict) else None
    if not isinstance(index, dict):
        return []
    counts = index.get(ENROLLED)
    if counts is None:
        counts = {r.get("name"): r.get("shots", 0) for r in index.get("classes", []) if r.get("origin") == "enrolled"}
    return [f"{name}: {n} image{'' if n == 1 else 's'}" for name, n in counts.items() if n]


def check_training_dir(run_dir: Path, force: bool = False, dry_run: bool = False) -> bool:
    """Whether a new training may write into ``run_dir``, changing nothing; return whether its first save must
    start a fresh manifest (``force`` over a run this version cannot read).

    Refuses a file, a folder of someone else's files, a run this version cannot read, an interrupted training,
    a run holding enrolments and, for a ``dry_run``, a finished run (:func:`check_replacing`), unless ``force``.
    """
    check_new_run_dir(run_dir, force)
    store = RunDir(run_dir)
    if not store.exists():
        return False
    try:
        manifest = store.manifest()
        if not force:
            check_replacing(store, manifest, dry_run)
    except RunError as exc:  # damaged, or a version this one cannot read (a ConfigError passes through)
        if not force:
            raise ConfigError("run_dir", f"{exc}; use {{force}} to train a new run over it") from None
        return True
    return False


def prepare_run_dir(run_dir: Path, force: bool = False, dry_run: bool = False) -> bool:
    """Create ``run_dir`` for a new training, after :func:`check_training_dir`; return whether its first save
    must start a fresh manifest."""
    fresh = check_training_dir(run_dir, force, dry_run)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create run dir {run_dir}: {exc.strerror}") from None
    return fresh  # taking the run's lock, next, refuses a read-only folder
