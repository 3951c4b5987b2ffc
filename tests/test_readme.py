"""The README is run, not just read: every Python block as written, and every shell block a test can afford.

A shell block preceded by ``<!-- not run by the tests: REASON -->`` is skipped (the reason is printed). In the
others, ``pip install -e '.[EXTRAS]' &&`` is dropped (this environment is that install) and a line that runs
pytest is skipped (it is this test suite). Each block runs in a fresh folder holding ``photo.jpg``: a digit
drawn as a user would photograph it, dark on light, and a copy of ``examples/``. An ``embed`` or ``adder``
command runs in this process through click's runner (the console scripts as real processes are
tests/test_cli.py's); anything else runs in bash.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.adder import main as adder
from cli.embed import main as embed

README = Path(__file__).resolve().parent.parent / "README.md"
GUIDE = README.parent / "docs" / "guide.md"
INSTALL = re.compile(r"pip install -e '\.\[[a-z,]+\]' && ")
SKIP = re.compile(r"<!-- not run by the tests: (.+?) -->")


def blocks(language: str) -> list[tuple[str, str | None]]:
    """``(code, reason to skip or None)`` for each fenced block of ``language``, in order."""
    found, lines = [], README.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"```{language}":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            skip = SKIP.search(lines[i - 1]) if i else None
            found.append(("\n".join(lines[i + 1 : end]), skip.group(1) if skip else None))
    return found


@pytest.fixture()
def workdir(tmp_path: Path, digits) -> Path:
    shutil.copytree(README.parent / "examples", tmp_path / "examples")  # the README's commands use them
    digit = digits.test_images[3].numpy()  # a 28x28 digit, bright on black
    big = np.asarray(Image.fromarray(255 - digit).resize((140, 140), Image.BILINEAR))
    Image.fromarray(big).convert("RGB").save(tmp_path / "photo.jpg", quality=90)
    return tmp_path


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_every_python_block_runs_as_written(workdir):
    code = [c for c, _ in blocks("python")]
    assert code, "the README has no Python block"
    result = run([sys.executable, "-c", "\n\n".join(code)], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = int(re.search(r"1-shot accuracy on 200 test digits: (\d+)%", result.stdout).group(1))
    assert accuracy > 40  # chance is 10%
    assert re.search(r"photo\.jpg: digit \d, \d\.\d\d from its nearest support", result.stdout)
    assert re.search(r"photo\.jpg: digit (\d) \(nearest support [\d.]+ away\) \+ 7 = \d+", result.stdout)


def shell_lines(code: str) -> list[str]:
    lines = []
    for line in code.splitlines():
        line = INSTALL.sub("", re.sub(r"\s+#.*$", "", line)).strip()
        if line and "pytest" not in line:
            lines.append(line)
    return lines


CLIS = {"embed": embed, "adder": adder}
SHELL = re.compile(r"[|<>;$`*&(){}\\]")  # what only a shell can run


def run_line(line: str, cwd: Path) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of a README line: each ``&&`` part in turn, stopping at a failure."""
    out = err = ""
    for part in line.split(" && "):
        words = shlex.split(part)
        if words[0] in CLIS and not SHELL.search(part):
            result = CliRunner().invoke(CLIS[words[0]], words[1:])
            code, stdout, stderr = result.exit_code, result.stdout, result.stderr
        else:
            done = run(["bash", "-c", part], cwd)
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        out, err = out + stdout, err + stderr
        if code:
            return code, out, err
    return 0, out, err


def test_every_affordable_shell_block_runs(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    ran, outputs, notes = 0, {}, {}
    for code, skip in blocks("bash"):
        if skip:
            print(f"skipped a block: {skip}")
            continue
        for line in shell_lines(code):
            returncode, outputs[line], notes[line] = run_line(line, workdir)
            assert returncode == 0, f"{line}\n{notes[line][-3000:]}"
            ran += 1
    assert ran >= 6  # the main job, adder predict, and the symbols round trip at least
    assert (workdir / "runs" / "latest" / "run.json").is_file()
    predicted = next(out for line, out in outputs.items() if line.startswith("embed predict symbols/star-4.png"))
    assert re.search(r"star-4\.png: star \(", predicted) and re.search(r"noise\.png: unknown", predicted), predicted
    symbols = next(out for line, out in notes.items() if line.startswith("embed train --dataset folder:symbols"))
    held_out = re.search(r"calibrated on (\d+) of them", README.read_text()).group(1)  # the prose's count
    assert f"from {held_out} held-out images of the trained classes" in symbols, symbols


def test_the_guide_counts_the_bad_input_matrix_right():
    from tests.test_bad_input import CASES

    claimed = re.search(r"(\d+) cases over `embed train`", GUIDE.read_text())
    assert claimed and int(claimed.group(1)) == len(CASES)
