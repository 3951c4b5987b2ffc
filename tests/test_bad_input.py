"""Bad input, one row per case: the exit code, one line on stderr naming the problem, no traceback,
and no file of an existing run changed."""

from __future__ import annotations

import json
import re
import shutil
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cli.adder import main as adder
from cli.embed import main as embed
from embedder.index.support_index import SupportIndex
from embedder.models.network import EmbeddingNet
from embedder.runs.store import state_to_bytes, tensors_to_bytes
from tests.runfiles import manifest, replace_and_resign, run_file, snapshot

TRAIN = ["train", "--dataset", "digits", "--device", "cpu", "--run-dir", "{run}"]
EVAL = ["eval", "--device", "cpu", "--episodes", "2", "--run-dir", "{run}"]
PREDICT = ["predict", "--run-dir", "{run}"]
ENROLL = ["enroll", "--run-dir", "{run}"]
EMBED_PREDICT = ["predict", "{tmp}/digit.png", "--run-dir", "{run}"]
REPORT = ["report", "--device", "cpu", "--episodes", "2", "--quiet", "--run-dir", "{run}"]


class Payload:
    """A pickle that would create a file if unpickled: what a malicious checkpoint looks like."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# --- ways to break a run (each applied to a private copy) ---


def truncate_model(run: Path) -> None:
    path = run_file(run, "model")
    path.write_bytes(path.read_bytes()[:1000])


def truncate_checkpoint(run: Path) -> None:
    path = run_file(run, "checkpoint")
    path.write_bytes(path.read_bytes()[:-100])


def alien_checkpoint(run: Path) -> None:
    replace_and_resign(run, "checkpoint", tensors_to_bytes({"config": {"colour": "blue"}, "model": {}}))


def flip_a_byte_of_the_index(run: Path) -> None:
    path = run_file(run, "index")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def other_architecture(run: Path) -> None:
    replace_and_resign(run, "model", state_to_bytes(EmbeddingNet(embedding_dim=1024, width=16).state_dict()))


def other_embedding_dim(run: Path) -> None:
    replace_and_resign(run, "model", state_to_bytes(EmbeddingNet(embedding_dim=64).state_dict()))


def index_of_other_dim(run: Path) -> None:
    index = SupportIndex(32)
    index.add(np.eye(10, 32, dtype=np.float32), list(range(10)))
    replace_and_resign(run, "index", index.to_bytes())


def pickled_code_as_model(run: Path) -> None:
    import pickle

    replace_and_resign(run, "model", pickle.dumps(Payload(run.parent / "pwned"), protocol=2))


def invalid_json(run: Path) -> None:
    (run / "run.json").write_text('{"format": "tripletshot-run", "format_version": 2, "files": {')


def future_format(run: Path) -> None:
    table = manifest(run)
    table["format_version"] = 99
    (run / "run.json").write_text(json.dumps(table))


def old_format(run: Path) -> None:
    table = manifest(run)
    table["format_version"] = 2  # tripletshot 0.1: centring was a buffer inside the weights
    (run / "run.json").write_text(json.dumps(table))


def unfinished(run: Path) -> None:
    table = manifest(run)
    del table["run"], table["files"]["model"], table["files"]["index"]
    (run / "run.json").write_text(json.dumps(table))


def read_only(run: Path) -> None:
    run.chmod(stat.S_IRUSR | stat.S_IXUSR)


def foreign_folder(run: Path) -> None:
    shutil.rmtree(run)
    run.mkdir()
    (run / "thesis.tex").write_text("years of work")


def a_file(run: Path) -> None:
    shutil.rmtree(run)
    run.write_text("not a folder")


def missing(run: Path) -> None:
    shutil.rmtree(run)


HELD: list[int] = []  # lock file descriptors held for the rest of the session, as a running writer would


def locked(run: Path) -> None:
    import fcntl
    import os

    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"pid 4242", 0)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a second open file: flock refuses it even in this process
    HELD.append(fd)


def empty_index(run: Path) -> None:
    from embedder.runs.run import Run

    dim = Run.load(run).embedder.model.embedding_dim  # the run's own width: only the emptiness is wrong
    replace_and_resign(run, "index", SupportIndex(dim).to_bytes())


CASES = [
    # (id, cli, args, break the run copy with, exit code, message on stderr)
    ("classes-empty", embed, [*TRAIN, "--classes", ""], None, 2, "--classes is empty"),
    ("classes-letter", embed, [*TRAIN, "--classes", "a,b"], None, 2, "'a', 'b' not in the dataset 'digits'"),
    ("classes-twice", embed, [*TRAIN, "--classes", "0,0"], None, 2, "class 0 is given twice"),
    ("classes-absent", embed, [*TRAIN, "--classes", "0,10"], None, 2, "10 not in the dataset"),
    ("classes-negative", embed, [*TRAIN, "--classes", "-1"], None, 2, "negative"),
    ("classes-single", embed, [*TRAIN, "--classes", "3"], None, 2, "at least two classes"),
    ("classes-too-many", embed, [*TRAIN, "--classes", "0-10"], None, 2, "10 not in the dataset"),
    ("epochs-zero", embed, [*TRAIN, "--epochs", "0"], None, 2, "--epochs must be at least 1"),
    ("epochs-negative", embed, [*TRAIN, "--epochs", "-3"], None, 2, "--epochs must be at least 1"),
    ("epochs-huge", embed, [*TRAIN, "--epochs", "100000000000000000000"], None, 2, "--epochs must be at most 100,000"),
    ("unlabelled-missing", embed, [*TRAIN, "--unlabelled", "no/such/folder"], None, 2, "no such folder"),
    ("classes-none-no-pool", embed, [*TRAIN, "--classes", "none"], None, 2, "--classes none trains on no labels"),
    ("batch-one-class", embed, [*TRAIN, "--batch-size", "64"], None, 2, "a batch needs 2 to 3 classes"),
    ("batch-below-classes", embed, [*TRAIN, "--batch-size", "2"], None, 2, "not a multiple of --m-per-class"),
    ("batch-not-multiple", embed, [*TRAIN, "--batch-size", "100"], None, 2, "not a multiple of --m-per-class"),
    ("lr-nan", embed, [*TRAIN, "--lr", "nan"], None, 2, "--lr must be a finite positive"),
    ("lr-negative", embed, [*TRAIN, "--lr", "-0.1"], None, 2, "--lr must be a finite positive"),
    ("margin-negative", embed, [*TRAIN, "--margin", "-1"], None, 2, "--margin must be"),
    ("train-shots-zero", embed, [*TRAIN, "--shots", "0"], None, 2, "--shots must be at least 1"),
    ("train-centroids-zero", embed, [*TRAIN, "--centroids", "0"], None, 2, "--centroids must be at least 1"),
    ("augment-negative", embed, [*TRAIN, "--augment", "-0.5"], None, 2, "--augment must be a finite non-negative"),
    ("train-shots-too-many", embed, [*TRAIN, "--shots", "5000"], None, 2, "--shots 5000 is more than class"),
    ("index-dim-too-big", embed, [*TRAIN, "--index-dim", "1024"], None, 2, "--index-dim must be below"),
    ("nlist-too-many", embed, [*TRAIN, "--index", "ivf", "--nlist", "5000"], None, 2, "--nlist 5000 needs 195000"),
    ("index-dim-too-big-to-train", embed, [*TRAIN, "--index-dim", "1000"], None, 2, "--index-dim 1000 needs 1000"),
    (
        "index-dim-off-code-size",
        embed,
        [*TRAIN, "--index", "ivfpq", "--index-dim", "90"],
        None,
        2,
        "--index-dim 90 is not a multiple",
    ),
    ("index-unknown", embed, [*TRAIN, "--index", "lsh"], None, 2, "'lsh' is not one of"),
    ("train-cuda", embed, [*TRAIN, "--device", "cuda"], None, 2, "CUDA is not available"),
    ("train-cuda-7", embed, [*TRAIN, "--device", "cuda:7"], None, 2, "cuda:7"),
    ("train-tpu", embed, [*TRAIN, "--device", "tpu"], None, 2, "unknown --device 'tpu'"),
    ("train-into-a-file", embed, TRAIN, a_file, 2, "is a file, not a directory"),
    ("train-into-foreign", embed, TRAIN, foreign_folder, 2, r"not a tripletshot run \(thesis\.tex"),
    ("train-read-only", embed, TRAIN, read_only, 1, "is read-only"),
    ("train-over-future", embed, TRAIN, future_format, 2, "newer tripletshot.*--force"),
    (
        "resume-missing",
        embed,
        ["train", "--resume", "--device", "cpu", "--run-dir", "{run}"],
        missing,
        1,
        "nothing to resume",
    ),  # fmt: skip
    (
        "resume-other-epochs",
        embed,
        ["train", "--resume", "--epochs", "50", "--device", "cpu", "--run-dir", "{run}"],
        None,
        2,
        "--epochs 50 conflicts with the checkpoint's 15",
    ),  # fmt: skip
    (
        "resume-damaged-checkpoint",
        embed,
        ["train", "--resume", "--device", "cpu", "--run-dir", "{run}"],
        truncate_checkpoint,
        1,
        r"checkpoint-\w+\.pt is damaged: its sha256",
    ),  # fmt: skip
    (
        "resume-alien-checkpoint",
        embed,
        ["train", "--resume", "--device", "cpu", "--run-dir", "{run}"],
        alien_checkpoint,
        1,
        "not one this tripletshot can resume",
    ),  # fmt: skip
    ("export-missing", embed, ["export", "--run-dir", "{run}", "--out", "{tmp}/m.onnx"], missing, 1, "no run at"),
    (
        "export-no-folder",
        embed,
        ["export", "--run-dir", "{run}", "--out", "{tmp}/nowhere/m.onnx"],
        None,
        2,
        "--out: the folder .*nowhere does not exist",
    ),  # fmt: skip
    ("eval-missing", embed, EVAL, missing, 1, "no run at"),
    ("eval-a-file", embed, EVAL, a_file, 1, "is not a directory"),
    ("eval-foreign", embed, EVAL, foreign_folder, 1, "not a tripletshot run"),
    ("eval-shots-zero", embed, [*EVAL, "--shots", "0"], None, 2, "--shots must be at least 1"),
    ("eval-shots-too-many", embed, [*EVAL, "--shots", "5000"], None, 2, "fewer than --shots 5000"),
    ("eval-episodes-zero", embed, [*EVAL, "--episodes", "0"], None, 2, "--episodes must be at least 1"),
    ("eval-tpu", embed, [*EVAL, "--device", "tpu"], None, 2, "unknown --device"),
    ("truncated-weights", embed, EVAL, truncate_model, 1, r"model-\w+\.safetensors is damaged: its sha256"),
    ("flipped-index-byte", embed, EVAL, flip_a_byte_of_the_index, 1, r"index-\w+\.npz is damaged: its sha256"),
    ("other-architecture", embed, EVAL, other_architecture, 1, "does not fit the model"),
    ("other-embedding-dim", embed, EVAL, other_embedding_dim, 1, "does not fit the model"),
    ("index-dim-mismatch", embed, EVAL, index_of_other_dim, 1, r"holds 32-d vectors but the model embeds to \d+-d"),
    ("pickled-code", embed, EVAL, pickled_code_as_model, 1, "damaged or not a tripletshot file"),
    ("invalid-json", embed, EVAL, invalid_json, 1, "run.json is damaged: not valid JSON"),
    ("future-format", embed, EVAL, future_format, 1, "format version 99, written by a newer tripletshot"),
    ("old-format", embed, EVAL, old_format, 1, "format version 2; this tripletshot reads version 4: train the run"),
    ("unfinished-run", embed, EVAL, unfinished, 1, "not finished.*--resume"),
    ("report-missing", embed, REPORT, missing, 1, "no run at"),
    ("report-episodes-zero", embed, [*REPORT, "--episodes", "0"], None, 2, "--episodes must be at least 1"),
    ("report-out-is-a-file", embed, [*REPORT, "--out", "{tmp}/notes.txt"], None, 2, "notes.txt.*is a file"),
    ("report-damaged-run", embed, REPORT, flip_a_byte_of_the_index, 1, r"index-\w+\.npz is damaged: its sha256"),
    ("adder-epochs-zero", adder, ["train", "--epochs", "0", "--run-dir", "{run}"], None, 2, "--epochs"),
    ("adder-max-value", adder, ["train", "--max-value", "0", "--run-dir", "{run}"], None, 2, "--max-value"),
    ("adder-train-missing", adder, ["train", "--run-dir", "{run}"], missing, 1, "no run at"),
    ("predict-missing-image", adder, [*PREDICT, "{tmp}/nope.png", "7"], None, 1, "nope.png"),
    ("predict-directory", adder, [*PREDICT, "{tmp}", "7"], None, 1, "directory"),
    ("predict-not-an-image", adder, [*PREDICT, "{tmp}/notes.txt", "7"], None, 1, "not an image"),
    ("predict-truncated-png", adder, [*PREDICT, "{tmp}/cut.png", "7"], None, 1, "cut.png"),
    ("predict-blank-image", adder, [*PREDICT, "{tmp}/blank.png", "7"], None, 1, "blank"),
    ("predict-number-word", adder, [*PREDICT, "{tmp}/digit.png", "seven"], None, 2, "integer"),
    ("predict-number-huge", adder, [*PREDICT, "{tmp}/digit.png", "1e400"], None, 2, "integer"),
    ("predict-no-number", adder, [*PREDICT, "{tmp}/digit.png"], None, 2, "give an image and a number"),
    ("predict-damaged-run", adder, [*PREDICT, "{tmp}/digit.png", "7"], truncate_model, 1, "damaged"),
    ("predict-cuda", adder, [*PREDICT, "{tmp}/digit.png", "7", "--device", "cuda"], None, 2, "CUDA"),
    ("train-far-2", embed, [*TRAIN, "--far", "2"], None, 2, "--far is a target false-accept rate"),
    ("train-far-0", embed, [*TRAIN, "--far", "0"], None, 2, "strictly between 0 and 1"),
    ("enroll-read-only", embed, [*ENROLL, "--label", "x", "{tmp}/digit.png"], read_only, 1, "is read-only"),
    ("enroll-locked", embed, [*ENROLL, "--label", "x", "{tmp}/digit.png"], locked, 1, "in use by pid 4242"),
    ("enroll-missing-run", embed, [*ENROLL, "--label", "x", "{tmp}/digit.png"], missing, 1, "no run at"),
    (
        "enroll-label-a-path",
        embed,
        [*ENROLL, "--label", "../../etc/x", "{tmp}/digit.png"],
        None,
        2,
        "looks like a path",
    ),
    ("enroll-label-absolute", embed, [*ENROLL, "--label", "/etc/passwd", "{tmp}/digit.png"], None, 2, "a path"),
    ("enroll-label-empty", embed, [*ENROLL, "--label", "", "{tmp}/digit.png"], None, 2, "is empty"),
    ("enroll-label-newline", embed, [*ENROLL, "--label", "a\nb", "{tmp}/digit.png"], None, 2, "newline"),
    ("enroll-label-long", embed, [*ENROLL, "--label", "x" * 201, "{tmp}/digit.png"], None, 2, "at most 200"),
    ("enroll-label-unknown", embed, [*ENROLL, "--label", "unknown", "{tmp}/digit.png"], None, 2, "choose another"),
    ("enroll-no-images", embed, [*ENROLL, "--label", "x"], None, 2, "give the IMAGE files"),
    ("enroll-no-label", embed, [*ENROLL, "{tmp}/digit.png"], None, 2, "give --label NAME"),
    ("enroll-not-an-image", embed, [*ENROLL, "--label", "x", "{tmp}/notes.txt"], None, 1, "not an image"),
    ("enroll-folder-a-file", embed, [*ENROLL, "--folder", "{tmp}/digit.png"], None, 2, "is not a folder"),
    ("enroll-folder-flat", embed, [*ENROLL, "--folder", "{tmp}"], None, 2, "holds images itself"),
    ("enroll-folder-and-images", embed, [*ENROLL, "--folder", "{tmp}", "{tmp}/digit.png"], None, 2, "no IMAGE"),
    ("forget-absent", embed, ["forget", "zebra", "--run-dir", "{run}"], None, 1, "has no class 'zebra'"),
    ("forget-read-only", embed, ["forget", "3", "--run-dir", "{run}"], read_only, 1, "is read-only"),
    ("index-missing-run", embed, ["index", "--run-dir", "{run}"], missing, 1, "no run at"),
    ("embed-predict-empty-index", embed, EMBED_PREDICT, empty_index, 1, "index is empty: enrol"),
    ("embed-predict-missing-run", embed, EMBED_PREDICT, missing, 1, "no run at"),
    ("embed-predict-k-zero", embed, [*EMBED_PREDICT, "--k", "0"], None, 2, "--k must be at least 1"),
    ("embed-predict-threshold-3", embed, [*EMBED_PREDICT, "--threshold", "3"], None, 2, "--threshold is a distance"),
    (
        "embed-predict-threshold-no-reject",
        embed,
        [*EMBED_PREDICT, "--threshold", "0.5", "--no-reject"],
        None,
        2,
        "--threshold and --no-reject contradict",
    ),  # fmt: skip
    ("embed-predict-blank", embed, ["predict", "{tmp}/blank.png", "--run-dir", "{run}"], None, 1, "blank"),
    ("calibrate-far-2", embed, ["calibrate", "--far", "2", "--run-dir", "{run}"], None, 2, "--far is a target"),
    ("calibrate-read-only", embed, ["calibrate", "--run-dir", "{run}"], read_only, 1, "is read-only"),
    ("eval-open-set-damaged", embed, [*EVAL, "--open-set"], truncate_model, 1, "damaged"),
    ("classes-name-unknown", embed, [*TRAIN, "--classes", "0,zero"], None, 2, "'zero' not in the dataset 'digits'"),
    ("classes-all-mixed", embed, [*TRAIN, "--classes", "all,1"], None, 2, "'all' stands alone"),
    ("val-classes-unknown", embed, [*TRAIN, "--val-classes", "1,eleven"], None, 2, "--val-classes: 'eleven' is not"),
    ("val-classes-not-trained", embed, [*TRAIN, "--val-classes", "7,8"], None, 2, "7 is not one of .* --classes"),
    (
        "val-classes-too-many",
        embed,
        [*TRAIN, "--classes", "0-4", "--val-classes", "4"],
        None,
        2,
        "holds out 4 of the 5",
    ),
    ("val-classes-negative", embed, [*TRAIN, "--val-classes", "-2"], None, 2, "--val-classes -2 is negative"),
    ("val-classes-one", embed, [*TRAIN, "--val-classes", "1"], None, 2, "--val-classes 1 would make 1-way"),
    ("val-classes-all", embed, [*TRAIN, "--val-classes", "all"], None, 2, "--val-classes cannot be all"),
    (
        "resume-other-val-classes",
        embed,
        ["train", "--resume", "--val-classes", "2", "--device", "cpu", "--run-dir", "{run}"],
        None,
        2,
        "--val-classes 2 conflicts with the checkpoint's 0",
    ),  # fmt: skip
    ("test-fraction-one", embed, [*TRAIN, "--test-fraction", "1"], None, 2, r"--test-fraction must be in \(0, 1\)"),
    ("dataset-unknown", embed, [*TRAIN, "--dataset", "cifar"], None, 2, "'cifar' is not one of .* or folder:PATH"),
    (
        "dataset-missing-offline",
        embed,
        [*TRAIN, "--dataset", "kmnist", "--data-dir", "{tmp}/no-data"],
        None,
        1,
        r"KMNIST is not in .*no-data/KMNIST/raw and could not be downloaded .*put train-images-idx3-ubyte.gz, ",
    ),
    ("folder-a-file", embed, [*TRAIN, "--dataset", "folder:{tmp}/notes.txt"], None, 2, "is a file, not a folder"),
    ("folder-missing", embed, [*TRAIN, "--dataset", "folder:{tmp}/nowhere"], None, 2, "nowhere': no such folder"),
    ("folder-empty", embed, [*TRAIN, "--dataset", "folder:"], None, 2, "'folder:' is not one of"),
    ("folder-one-class", embed, [*TRAIN, "--dataset", "folder:{tmp}/one-class"], None, 2, r"one class \('circle'\)"),
    (
        "folder-no-images",
        embed,
        [*TRAIN, "--dataset", "folder:{tmp}/nothing", "--classes", "all"],
        None,
        2,
        "nothing' holds no readable images",
    ),  # fmt: skip
    (
        "folder-empty-classes",
        embed,
        [*TRAIN, "--dataset", "folder:{tmp}/hollow", "--classes", "all"],
        None,
        2,
        "hollow' holds no readable images",
    ),  # fmt: skip
    (
        "folder-strict",
        embed,
        [*TRAIN, "--dataset", "folder:{tmp}/broken", "--classes", "all", "--strict"],
        None,
        1,
        "skipped 1 of 5 images .*broken.png",
    ),
    (
        "folder-unknown-class",
        embed,
        [*TRAIN, "--dataset", "folder:{tmp}/two-classes", "--classes", "bar,cat"],
        None,
        2,
        r"'cat' not in the dataset 'folder:.*two-classes', which has classes 0 'bar', 1 'ring'",
    ),
]


def offline(*args, **kwargs):
    raise OSError("network is unreachable (the bad-input tests run offline)")


def user_files(folder: Path) -> None:
    digit = np.full((56, 56), 255, np.uint8)
    digit[10:46, 26:30] = 0  # a dark vertical stroke on white: a 1
    Image.fromarray(digit).save(folder / "digit.png")
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(folder / "blank.png")
    (folder / "notes.txt").write_text("shopping list")
    (folder / "cut.png").write_bytes((folder / "digit.png").read_bytes()[:60])
    for tree, classes in (("one-class", ["circle"]), ("two-classes", ["bar", "ring"]), ("broken", ["bar", "ring"])):
        for name in classes:
            (folder / tree / name).mkdir(parents=True)
            for i in range(2):
                shutil.copy(folder / "digit.png", folder / tree / name / f"{i}.png")
    (folder / "broken" / "ring" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "nothing").mkdir()  # a new user's first folder: nothing in it yet
    for name in ("bar", "ring"):
        (folder / "hollow" / name).mkdir(parents=True)  # class folders, no images in them yet


@pytest.mark.parametrize(
    "cli, args, damage, code, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)  # fmt: skip
def test_bad_input(tmp_path, digits_run, monkeypatch, cli, args, damage, code, message):
    monkeypatch.setattr(socket.socket, "connect", offline)  # a missing dataset must fail the same everywhere
    monkeypatch.setenv("TRIPLETSHOT_DATA", str(tmp_path / "data"))  # where folder: datasets are cached
    files = tmp_path / "files"
    files.mkdir()
    user_files(files)
    run = tmp_path / "run"  # an existing run: whatever goes wrong, its files stay as they were
    shutil.copytree(digits_run, run)
    if damage is not None:
        damage(run)
    before = snapshot(run) if run.is_dir() else None
    argv = [a.replace("{run}", str(run)).replace("{tmp}", str(files)) for a in args]
    try:
        result = CliRunner().invoke(cli, argv)
    finally:
        if run.is_dir():
            run.chmod(0o755)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"uncaught {result.exception!r}"
    )
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert re.search(message, lines[0]), lines[0]
    if before is not None:
        assert snapshot(run) == before, "the run's files changed"
    assert not (tmp_path / "pwned").exists()  # the pickle's code never ran


def test_the_matrix_is_big_enough():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


def test_loading_refuses_a_pickle_that_runs_code(tmp_path, digits_run):
    """Even with a matching checksum (someone hand-signed it), the model file is never unpickled."""
    from embedder.errors import RunError
    from embedder.runs.run import Run
    from embedder.runs.store import tensors_from_bytes

    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    import pickle

    evil = pickle.dumps(Payload(marker), protocol=2)  # torch.save's own protocol
    pickle.loads(evil)  # the payload is real: plain unpickling runs it
    assert marker.exists()
    marker.unlink()
    path = replace_and_resign(run, "model", evil)
    with pytest.raises(RunError, match="damaged or not a tripletshot file"):
        Run.load(run)
    with pytest.raises(RunError, match="damaged or not a tripletshot file"):
        tensors_from_bytes(path.read_bytes(), str(path))  # how a checkpoint and an adder are read
    torch.save({"x": Payload(marker)}, tmp_path / "evil.pt")  # the torch.save form of the same attack
    with pytest.raises(RunError):
        tensors_from_bytes((tmp_path / "evil.pt").read_bytes(), "evil.pt")
    assert not marker.exists()
