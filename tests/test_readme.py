"""The README is run, not just read: every Python block as written, and every shell block a test can afford.

A shell block preceded by ``<!-- not run by the tests: REASON -->`` is skipped (the reason is printed). In the
others, ``pip install -e '.[EXTRAS]' &&`` is dropped (this environment is that install) and a line that runs
pytest is skipped (it is this test suite). Each block runs in a fresh folder holding a copy of ``examples/``, as
the repository root does (``examples/photo.jpg``: a 3 as a user would photograph it). A ``# → ...`` comment is
what the line prints, and is checked against what it printed. An ``embed`` or ``adder``
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

import pytest
import torch
from click.testing import CliRunner

from cli.adder import main as adder
from cli.embed import main as embed

README = Path(__file__).resolve().parent.parent / "README.md"
GUIDE = README.parent / "docs" / "guide.md"
INSTALL = re.compile(r"pip install -e '\.\[[a-z,]+\]' && ")
SKIP = re.compile(r"<!-- not run by the tests: (.+?) -->")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # as the README's printed figures were made
PRINTS = re.compile(r"# → (.+?)\s*$", re.MULTILINE)  # what the line prints, in a README comment


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
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(README.parent / "examples", tmp_path / "examples")  # as the repository root: examples/photo.jpg
    return tmp_path


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           **ONE_THREAD}  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def check_printed(expected: str, output: str, where: str) -> None:
    """``expected``, a README comment ``# → ...`` (``...``: any text), is what ``output`` printed, its lines joined
    by ``; ``: the README's printed lines come from the run that prints them, so they cannot drift."""
    joined = "; ".join(line.strip() for line in output.splitlines() if line.strip())
    pattern = ".*?".join(re.escape(part.strip()) for part in expected.split("..."))
    assert re.search(pattern, joined), f"{where}: the README says it prints\n  {expected}\nbut it printed\n  {joined}"


def test_every_python_block_runs_as_written(workdir):
    code = [c for c, _ in blocks("python")]
    assert code, "the README has no Python block"
    result = run([sys.executable, "-c", "\n\n".join(code)], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    claims = [m.group(1) for c in code for m in PRINTS.finditer(c)]
    assert len(claims) >= 5, claims
    printed = result.stdout.splitlines()
    for claim in claims:  # each on a line of its own
        assert any(re.search(".*?".join(map(re.escape, claim.split("..."))), line) for line in printed), (
            f"the README says a line prints\n  {claim}\nbut the blocks printed\n  " + "\n  ".join(printed)
        )


def shell_lines(code: str) -> list[tuple[str, str | None]]:
    """Each command line of a shell block, and what its ``# →`` comment says it prints (None if it says not)."""
    lines: list[tuple[str, str | None]] = []
    for raw in code.splitlines():
        claim = PRINTS.search(raw)
        line = INSTALL.sub("", re.sub(r"\s+#.*$|^#.*$", "", raw)).strip()
        if line and "pytest" not in line:
            lines.append((line, claim.group(1) if claim else None))
        elif claim and lines and not line:  # a comment line of its own: what the line above prints
            lines[-1] = (lines[-1][0], claim.group(1))
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


@pytest.fixture()
def one_thread():
    """Trainings at one thread, as the README's printed figures were: a sum in another order moves a last digit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_affordable_shell_block_runs(workdir, monkeypatch, one_thread):
    monkeypatch.chdir(workdir)
    ran, claims, outputs, notes = 0, 0, {}, {}
    for code, skip in blocks("bash"):
        if skip:
            print(f"skipped a block: {skip}")
            continue
        for line, claim in shell_lines(code):
            returncode, outputs[line], notes[line] = run_line(line, workdir)
            assert returncode == 0, f"{line}\n{notes[line][-3000:]}"
            if claim is not None:
                check_printed(claim, outputs[line], line)
                claims += 1
            ran += 1
    assert ran >= 6 and claims >= 2  # the main job, adder predict, and the symbols round trip at least
    assert (workdir / "runs" / "latest" / "run.json").is_file()
    predicted = next(out for line, out in outputs.items() if line.startswith("embed predict symbols/star-4.png"))
    assert re.search(r"star-4\.png: star \(", predicted) and re.search(r"noise\.png: unknown", predicted), predicted
    symbols = next(out for line, out in notes.items() if line.startswith("embed train --dataset folder:symbols"))
    held_out = re.search(r"calibrated on (\d+) of them", README.read_text()).group(1)  # the prose's count
    assert f"from {held_out} held-out images of the trained classes" in symbols, symbols
    refusal = re.search(r"\(`(Error: examples/photo\.jpg: [^`]+)`, exit (\d)\)", README.read_text())
    code, _, said = run_line("adder predict examples/photo.jpg 7", workdir)  # the prose's refusal, as printed
    assert (code, said.strip()) == (int(refusal.group(2)), refusal.group(1))


def test_the_guide_counts_the_bad_input_matrix_right():
    from tests.test_bad_input import CASES

    claimed = re.search(r"(\d+) cases over `embed train`", GUIDE.read_text())
    assert claimed and int(claimed.group(1)) == len(CASES)
