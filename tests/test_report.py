"""``embed report`` and progress output: real figures from a real run, a page that stands alone, and stderr
that stays readable in a log file while stdout carries only results."""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import termios
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.embed import main as embed
from embedder.config import EvalConfig
from embedder.evaluation.figures import area_under, roc_points
from embedder.evaluation.report import OPEN_SET_KEY, write_report
from embedder.runs.run import Run
from embedder.runs.store import RunDir
from tests.runfiles import invoke
from tests.test_cli import script

FIGURES = [
    "embedding_map",
    "confusion_matrix",
    "per_class_accuracy",
    "training_curve",
    "hardest_mistakes",
    "open_set",
]  # fmt: skip  (open_set: a run trained now is calibrated, so it has a threshold)
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class Page(HTMLParser):
    """Every tag of a page, and the sources of its images and scripts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))


def check_png(data: bytes) -> None:
    """A PNG that decodes, of a size a person can read, with more than one colour in it."""
    image = Image.open(io.BytesIO(data))
    image.verify()  # a valid, complete PNG
    image = Image.open(io.BytesIO(data)).convert("RGB")
    assert image.format is None or image.format == "PNG"
    assert 400 <= image.width <= 2500 and 300 <= image.height <= 2500, image.size
    pixels = np.asarray(image).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50  # drawn on, not a blank canvas


def test_embed_report_writes_every_figure_and_one_self_contained_page(digits_run, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(embed, ["report", "--run-dir", str(digits_run), "--out", str(out), "--episodes", "20"])
    assert result.exit_code == 0, result.output
    printed = result.stdout.split()
    assert printed == [str(out / f"{name}.png") for name in FIGURES] + [str(out / "report.html")]
    pngs = {name: (out / f"{name}.png").read_bytes() for name in FIGURES}
    for data in pngs.values():
        check_png(data)

    text = (out / "report.html").read_text()
    page = Page(text)
    assert "script" not in page.tags and "link" not in page.tags and "http" not in text
    sources = [image["src"] for image in page.images]
    assert len(sources) == len(FIGURES) and all(src.startswith("data:image/png;base64,") for src in sources)
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in sources}
    assert embedded == set(pngs.values())  # every figure, byte for byte, and nothing else
    (open_set,) = re.findall(r"<td>open_set</td><td>(.*?)</td>", text)  # one sentence, not ~150 raw distances
    assert "impostor_distances" not in text and len(open_set) < 200 and "false-accept rate" in open_set, open_set

    # The same numbers as `embed eval`, on the same episodes.
    evaluated = CliRunner().invoke(embed, ["eval", "--json", "--run-dir", str(digits_run), "--episodes", "20"])
    report = json.loads(evaluated.stdout)
    assert f"{100 * report['episodes']['all']['mean']:.1f}% ± {100 * report['episodes']['all']['ci95']:.1f}" in text
    assert f"{100 * report['summary']['unseen']:.1f}%" in text
    assert all("episodes" in row and 0 <= row["episodes"]["mean"] <= 1 for row in report["per_class"])


def test_a_run_without_a_threshold_gets_no_open_set_figure(digits_run, digits, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(digits_run, run_dir)
    store = RunDir(run_dir)
    assert store.metadata()[OPEN_SET_KEY]["threshold"] > 0  # training calibrated one
    store.commit({}, run={**store.metadata(), OPEN_SET_KEY: None})  # as a run from before calibration
    files = write_report(Run.load(run_dir), digits, tmp_path / "out", EvalConfig(episodes=5), per_class_sample=20)
    assert list(files.figures) == FIGURES[:-1]
    assert files.html.read_text().count("<img") == len(FIGURES) - 1


def test_roc_points_span_from_accepting_nothing_to_everything():
    fpr, tpr = roc_points(np.array([0.1, 0.2, 0.3]), np.array([0.8, 0.9]))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert area_under(fpr, tpr) == 1.0  # every genuine distance is below every impostor's
    same = np.linspace(0, 1, 101)
    assert area_under(*roc_points(same, same)) == pytest.approx(0.5, abs=0.01)


def test_training_into_a_log_file_writes_one_plain_line_per_epoch(tmp_path):
    log = tmp_path / "train.log"
    args = [
        "train",
        "--dataset",
        "digits",
        "--classes",
        "0-4",
        "--epochs",
        "2",
        "--width",
        "8",
        "--embedding-dim",
        "128",
    ]
    trained = invoke(embed, *args, "--device", "cpu", cwd=tmp_path)  # stderr is no terminal, as a log file is not
    assert trained.returncode == 0, trained.stderr
    log.write_text(trained.stderr)
    text = log.read_text()
    assert "\r" not in text and "\x1b" not in text and text.startswith("training on digits classes 0,1,2,3,4")
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2, text
    pattern = r"epoch \d/2: train loss [\d.]+, val loss [\d.]+, \d+ images/s, (\d+ min )?\d+ s left"
    assert all(re.fullmatch(pattern, line) for line in epochs), epochs
    assert trained.stdout.startswith("saved run to runs/latest")  # the result, alone on stdout


def run_with_a_terminal_on_stderr(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``argv`` with stderr on a pseudo-terminal (where bars are drawn) and stdout on a pipe."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a size, as a terminal has
    try:
        process = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=follower)
        os.close(follower)
        shown = b""
        while True:  # drain the terminal as the process writes, or it blocks when the buffer fills
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            shown += chunk
        stdout = process.stdout.read().decode()
        process.wait()
    finally:
        os.close(leader)
    return subprocess.CompletedProcess(argv, process.returncode, stdout), shown.decode(errors="replace")


def test_bars_on_a_terminal_never_reach_json_on_stdout_and_quiet_draws_none(digits_run, tmp_path):
    argv = [script("embed"), "eval", "--json", "--run-dir", str(digits_run), "--episodes", "50"]
    result, terminal = run_with_a_terminal_on_stderr(argv, tmp_path)
    assert result.returncode == 0, terminal
    assert "episodes" in terminal and "\r" in terminal  # the bar was drawn, on stderr
    assert json.loads(result.stdout)["episodes"]["count"] == 50  # and stdout is JSON alone

    quiet, terminal = run_with_a_terminal_on_stderr([*argv, "--quiet"], tmp_path)
    assert quiet.returncode == 0 and terminal == ""
    assert json.loads(quiet.stdout) == json.loads(result.stdout)


def test_quiet_training_writes_only_its_result(tmp_path):
    """Without ``--quiet`` the same training notes its start and each epoch (the log-file test above)."""
    args = ["train", "--dataset", "digits", "--classes", "0-4", "--dry-run", "--device", "cpu", "--quiet"]
    quiet = CliRunner().invoke(embed, [*args, "--run-dir", str(tmp_path / "run")])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert quiet.stdout.startswith(f"saved run to {tmp_path / 'run'}")
    assert ", 1 epoch in " in quiet.stdout  # not "1 epochs"
    assert (
        "up to 32 k-means centroids of each class (2-3 a class here: k-means gets one centroid per 39" in quiet.stdout
    )


def test_quiet_silences_the_adders_notes_and_keeps_its_result(digits_run):
    from cli.adder import main as adder

    args = ["eval", "--json", "--run-dir", str(digits_run), "--device", "cpu"]
    noted, quiet = CliRunner().invoke(adder, args), CliRunner().invoke(adder, [*args, "--quiet"])
    assert noted.exit_code == quiet.exit_code == 0
    assert "has no adder" in noted.stderr and quiet.stderr == ""
    assert json.loads(quiet.stdout) == json.loads(noted.stdout)


def test_the_per_class_figure_keeps_its_legend_off_the_bars_and_its_tick_labels_apart():
    """Ten classes, five unseen, the last bars full height: nothing the reader needs is covered."""
    from embedder.evaluation.figures import Classes, per_class_figure

    classes = Classes(labels=list(range(10)), names=[str(c) for c in range(10)], seen=[0, 1, 2, 3, 4])
    rows = [{"class": c, "accuracy": 0.9, "episodes": {"mean": 0.97, "ci95": 0.02}} for c in range(10)]
    rows[3]["episodes"]["ci95"] = None  # one episode: no interval, drawn without a bar's whisker
    episodes = {"method": "nn", "all": {"ways": 10}, "shots": 1, "count": 30}
    figure = per_class_figure(rows, episodes, classes)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (ax,) = figure.axes
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [patch.get_window_extent(renderer) for patch in ax.patches]
    assert len(bars) == 10 and not any(legend.overlaps(bar) for bar in bars)
    ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    gaps = [b.x0 - a.x1 for a, b in zip(ticks, ticks[1:], strict=False)]
    assert len(ticks) == 10 and min(gaps) >= 10, gaps  # pixels at 100 dpi; "5\n(unseen)" labels left 1.5
    assert [t.get_color() for t in ax.get_xticklabels()][4:6] != ["black", "black"]  # unseen names are marked


def test_the_time_left_reads_as_a_person_reads_it_even_for_absurd_schedules():
    from embedder.utils.progress import duration

    seconds = (42, 372, 3_900, 30 * 3_600, 3 * 86_400 + 5, 42_449_492_333_332_725 * 3_600, float("inf"))
    assert [duration(s) for s in seconds] == [
        "42 s", "6 min 12 s", "1 h 05 min", "30 h 00 min", "3 days", "over a year", "over a year"
    ]  # fmt: skip


def test_an_interrupted_report_leaves_no_folder_behind(digits_run, digits, tmp_path, monkeypatch):
    """Ctrl-C while the figures are drawn: no empty report/ (nor the parents made for it), no temp folder, and an
    existing folder's own files untouched; the next report then writes every file."""
    import embedder.evaluation.report as report_module

    run_dir = tmp_path / "run"
    shutil.copytree(digits_run, run_dir)
    kept = tmp_path / "figures"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    real = report_module.draw_figures
    monkeypatch.setattr(report_module, "draw_figures", ctrl_c)
    for out in [None, tmp_path / "new" / "deeper" / "report", kept]:
        with pytest.raises(KeyboardInterrupt):
            write_report(Run.load(run_dir), digits, out, EvalConfig(episodes=3), per_class_sample=20)
    assert sorted(p.name for p in run_dir.iterdir() if not p.is_file()) == []  # no report/, no temp folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "run"]
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]
    monkeypatch.setattr(report_module, "draw_figures", real)
    files = write_report(Run.load(run_dir), digits, kept, EvalConfig(episodes=3), per_class_sample=20)
    written = ["notes.txt", "report.html", *(f"{name}.png" for name in files.figures)]
    assert sorted(p.name for p in kept.iterdir()) == sorted(written)
