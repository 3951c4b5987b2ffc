"""The wheel ``pip install tripletshot`` installs: no generic top-level names (``cli``, ``adder``), every package
folder of the repository inside it, and the ``embed`` and ``adder`` entry points resolving to code in the wheel.

The wheel is built from a copy of the tree (setuptools writes its egg-info beside setup.py) without build isolation,
from the setuptools already installed: no new virtualenv, no download.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["setup.py", "setup.cfg", "pyproject.toml", "README.md", "embedder", "adder", "cli", "tripletshot"]
INSTALLED_AS = {"embedder": "embedder", "adder": "tripletshot/adder", "cli": "tripletshot/cli"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tree, out = tmp_path_factory.mktemp("tree"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tree / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."]
    subprocess.run(command, cwd=tree, check=True, capture_output=True, text=True)
    (built,) = out.glob("tripletshot-*.whl")
    return built


def test_the_wheel_installs_no_generic_top_level_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"embedder", "tripletshot"}, top
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert set(zipfile.ZipFile(wheel).read(top_level).decode().split()) == {"embedder", "tripletshot"}


def test_every_package_folder_and_data_file_of_the_tree_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, installed in INSTALLED_AS.items():
        for module in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in module.parts:
                assert f"{installed}/{module.relative_to(ROOT / folder).as_posix()}" in names, module
    for static in (ROOT / "cli" / "serve" / "static").iterdir():
        assert f"tripletshot/cli/serve/static/{static.name}" in names, static
    assert "embedder/py.typed" in names and "tripletshot/__init__.py" in names


def test_the_entry_points_name_code_in_the_wheel_and_it_imports(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
        points = configparser.ConfigParser()
        points.read_string(archive.read(next(n for n in archive.namelist() if n.endswith("entry_points.txt"))).decode())
    scripts = dict(points["console_scripts"])
    assert scripts == {"embed": "tripletshot.cli.embed:main", "adder": "tripletshot.cli.adder:main"}
    # Load them as the console scripts do, from the unpacked wheel alone (cwd elsewhere, so not the source tree).
    code = (
        "import importlib.metadata as m, click;"
        "eps = m.distribution('tripletshot').entry_points;"
        "mains = {e.name: e.load() for e in eps if e.group == 'console_scripts'};"
        "import tripletshot, embedder, tripletshot.adder.pipeline, tripletshot.cli.embed.serve;"
        "print(sorted(mains), all(isinstance(v, click.Group) for v in mains.values()));"
        "print(tripletshot.cli.embed.__file__, tripletshot.adder.pipeline.__file__, embedder.__file__)"
    )
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    listing, files = out.stdout.splitlines()
    assert listing == "['adder', 'embed'] True"
    assert all(f.startswith(str(tmp_path / "site")) for f in files.split()), files
    help_text = subprocess.run(
        [sys.executable, "-m", "tripletshot.cli.embed", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert help_text.returncode == 0 and "Usage:" in help_text.stdout, help_text.stderr[-2000:]


def test_the_source_tree_and_the_installed_names_are_the_same_code():
    import tripletshot.adder.pipeline
    import tripletshot.cli.adder

    assert Path(tripletshot.adder.pipeline.__file__) == ROOT / "adder" / "pipeline.py"
    assert Path(tripletshot.cli.adder.__file__) == ROOT / "cli" / "adder.py"
