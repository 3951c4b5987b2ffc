"""The package list, which setup.cfg cannot write: the ``adder/`` and ``cli/`` folders install as ``tripletshot.adder``
and ``tripletshot.cli`` (``tripletshot/__init__.py`` says why); ``embedder`` installs under its own name."""

from setuptools import find_packages, setup

MOVED = ["adder", "cli"]

setup(
    packages=[
        *find_packages(include=["embedder", "embedder.*"]),
        "tripletshot",
        *(f"tripletshot.{p}" for p in find_packages(include=[f"{m}{s}" for m in MOVED for s in ("", ".*")])),
    ],
    package_dir={f"tripletshot.{m}": m for m in MOVED},
)
