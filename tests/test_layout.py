"""The package's shape: every public name resolves where it is documented, and cheap imports stay cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import embedder

PACKAGES = ["data", "models", "losses", "training", "index", "fewshot", "runs", "evaluation"]


def test_every_public_name_resolves_and_dir_lists_it():
    for name in embedder.__all__:
        assert getattr(embedder, name) is not None, name
    assert set(embedder.__all__) <= set(dir(embedder))


@pytest.mark.parametrize("package", PACKAGES)
def test_each_sub_package_exports_what_it_names(package):
    module = importlib.import_module(f"embedder.{package}")
    assert module.__doc__, f"embedder.{package} says what it holds"
    for name in module.__all__:
        value = getattr(module, name)
        home = getattr(value, "__module__", None)  # registries (DATASETS, CLASSIFIERS) are plain dicts
        assert home is None or home.startswith(f"embedder.{package}."), (name, home)
    assert set(module.__all__) <= set(dir(module))


def test_top_level_names_are_the_sub_packages_own_objects():
    assert embedder.NearestNeighbor is embedder.fewshot.NearestNeighbor
    assert embedder.Run is embedder.runs.Run
    assert embedder.Dataset is embedder.data.Dataset


def test_the_package_ships_py_typed():
    assert (Path(embedder.__file__).parent / "py.typed").is_file()
    assert "py.typed" in (Path(__file__).parent.parent / "setup.cfg").read_text()


def test_importing_embedder_and_its_options_imports_no_torch():
    code = "import sys, embedder, embedder.config, embedder.data; print('torch' in sys.modules, embedder.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", embedder.__version__]


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        embedder.nope  # noqa: B018
    with pytest.raises(AttributeError):
        embedder.fewshot.nope  # noqa: B018
