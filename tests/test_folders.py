"""A user's folder tree: classes found by folder, images decoded in parallel, bad files skipped with a reason."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli.embed import main as embed
from embedder.data.datasets import load_dataset
from embedder.data.folders import class_folders, load_images
from embedder.data.sampling import BalancedBatchSampler, batch_shape
from embedder.errors import ImageError
from tests.runfiles import invoke


def stroke(path, size=(40, 60), mode="L"):
    pixels = np.full(size[::-1], 255, np.uint8)
    pixels[10:50, 15:22] = 0  # a dark bar on white
    Image.fromarray(pixels).convert(mode).save(path)


def test_every_folder_that_holds_images_is_a_class_named_by_its_path(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "Greek" / "alpha").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    stroke(tmp_path / "cats" / "a.png")
    stroke(tmp_path / "cats" / "b.JPG", mode="RGB")
    stroke(tmp_path / "Greek" / "alpha" / "1.bmp")
    (tmp_path / "Greek" / "notes.txt").write_text("not an image")
    classes = class_folders(tmp_path)
    assert list(classes) == ["Greek/alpha", "cats"]
    assert [p.name for p in classes["cats"]] == ["a.png", "b.JPG"]


def test_unreadable_and_blank_images_are_skipped_with_a_reason(tmp_path):
    stroke(tmp_path / "good.png")
    Image.fromarray(np.full((30, 30), 255, np.uint8)).save(tmp_path / "blank.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    paths = [tmp_path / "broken.png", tmp_path / "good.png", tmp_path / "blank.png"]
    loaded = load_images(paths, workers=2)
    assert loaded.images.shape == (1, 28, 28) and loaded.images.dtype.is_floating_point is False
    assert loaded.kept == [1] and int(loaded.images.max()) == 255
    assert [p.name for p, _ in loaded.skipped] == ["broken.png", "blank.png"]
    assert "blank" in loaded.skipped[1][1]


# --- folder:PATH as a dataset ---


def shape(path, kind: str, size=(40, 60), mode="L", shift=0):
    """A dark shape on white: a bar, a ring or a cross, moved by ``shift`` pixels so each file differs."""
    w, h = size
    pixels = np.full((h, w), 255, np.uint8)
    cy, cx = h // 2 + shift % 5, w // 2 - shift % 4
    if kind == "bar":
        pixels[cy - 15 : cy + 15, cx - 3 : cx + 3] = 0
    elif kind == "ring":
        yy, xx = np.mgrid[:h, :w]
        pixels[np.abs(np.hypot(yy - cy, xx - cx) - 12) < 3] = 0
    else:
        pixels[cy - 2 : cy + 2, cx - 15 : cx + 15] = 0
        pixels[cy - 15 : cy + 15, cx - 2 : cx + 2] = 0
    Image.fromarray(pixels).convert(mode).save(path)


def user_tree(root, per_class: int = 6) -> None:
    """Nested classes, mixed formats and sizes, a corrupt and a blank file, an empty folder."""
    for folder, kind in (("cats", "bar"), ("Greek/alpha", "ring"), ("Greek/beta", "cross")):
        (root / folder).mkdir(parents=True)
        for i in range(per_class):
            suffix, mode, size = [(".png", "L", (40, 60)), (".jpg", "RGB", (90, 70)), (".bmp", "L", (28, 28))][i % 3]
            shape(root / folder / f"{i}{suffix}", kind, size, mode, shift=i)
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(np.full((30, 30), 255, np.uint8)).save(root / "Greek" / "beta" / "blank.png")
    (root / "empty").mkdir()


def test_folder_dataset_names_classes_by_path_and_skips_bad_files_with_a_warning(tmp_path):
    user_tree(tmp_path / "images", per_class=10)
    data = load_dataset(f"folder:{tmp_path / 'images'}", tmp_path / "data")
    assert data.class_names == ["Greek/alpha", "Greek/beta", "cats"] and data.classes == [0, 1, 2]
    assert data.train_labels.bincount().tolist() == [8, 8, 8] and data.test_labels.bincount().tolist() == [2, 2, 2]
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape[1:] == (28, 28)
    (warning,) = [w for w in data.warnings if w.startswith("skipped")]
    assert "skipped 2 of 32 images" in warning and "broken.png" in warning and "blank.png" in warning
    with pytest.raises(ImageError, match="skipped 2 of 32 images"):
        load_dataset(f"folder:{tmp_path / 'images'}", tmp_path / "data", strict=True)


def test_the_decoded_images_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.delenv("TRIPLETSHOT_CACHE")  # a user's default: beside the data (here a private data root)
    user_tree(tmp_path / "images", per_class=3)
    name, data_root = f"folder:{tmp_path / 'images'}", tmp_path / "data"
    first = load_dataset(name, data_root)
    (cache,) = (data_root / "cache" / "folders").glob("*.npz")
    target = tmp_path / "images" / "cats" / "0.png"
    stat = target.stat()
    target.write_bytes(b"x" * stat.st_size)  # same size and mtime, other bytes: the cache cannot tell
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = load_dataset(name, data_root)
    assert torch.equal(again.train_images, first.train_images) and again.warnings == first.warnings  # from the cache
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a newer file: decoded again
    renewed = load_dataset(name, data_root)
    assert len(list(cache.parent.glob("*.npz"))) == 2
    assert (
        "skipped 2 of 11" in first.warnings[0]
        and "skipped 3 of 11" in renewed.warnings[0]
        and "0.png" in renewed.warnings[0]
    )


def test_the_cache_is_under_the_data_root_unless_tripletshot_cache_names_another(tmp_path, monkeypatch):
    """A user's cache sits beside the data; the suite's (conftest sets $TRIPLETSHOT_CACHE) never does."""
    user_tree(tmp_path / "images", per_class=3)
    name, data_root = f"folder:{tmp_path / 'images'}", tmp_path / "data"
    monkeypatch.setenv("TRIPLETSHOT_CACHE", str(tmp_path / "elsewhere"))
    load_dataset(name, data_root)
    assert not data_root.exists() and len(list((tmp_path / "elsewhere" / "folders").glob("*.npz"))) == 1
    monkeypatch.delenv("TRIPLETSHOT_CACHE")
    load_dataset(name, data_root)
    assert len(list((data_root / "cache" / "folders").glob("*.npz"))) == 1


def test_train_and_test_folders_give_the_split(tmp_path):
    for split, count in (("train", 4), ("test", 2)):
        for kind in ("bar", "ring"):
            (tmp_path / "set" / split / kind).mkdir(parents=True)
            for i in range(count):
                shape(tmp_path / "set" / split / kind / f"{i}.png", kind, shift=i)
    data = load_dataset(f"folder:{tmp_path / 'set'}", tmp_path / "data")
    assert data.class_names == ["bar", "ring"]
    assert data.train_labels.tolist() == [0] * 4 + [1] * 4 and data.test_labels.tolist() == [0, 0, 1, 1]


def test_batches_of_small_classes_never_hold_an_image_twice():
    labels = torch.tensor([0] * 3 + [1] * 5 + [2] * 40 + [3] * 7)
    counts = [3, 5, 40, 7]
    ways, m = batch_shape(counts, m_per_class=64, batch_size=None, max_ways=8)
    assert (ways, m) == (4, 3)  # m shrinks to the smallest class; the batch takes every class
    sampler = BalancedBatchSampler(labels, [0, 1, 2, 3], m, ways, torch.Generator().manual_seed(0))
    seen = set()
    for _ in range(200):
        indices, batch_labels = sampler.sample()
        assert len(set(indices.tolist())) == len(indices) == 12
        assert torch.equal(labels[indices], batch_labels)
        seen.update(indices.tolist())
    assert seen == set(range(len(labels)))  # and every image is drawn sooner or later


def test_training_on_a_folder_from_the_cli(tmp_path, monkeypatch):
    """In process: names in, a class of one image indexed but not trained on, names out of embed eval."""
    user_tree(tmp_path / "images", per_class=5)
    (tmp_path / "images" / "lonely").mkdir()
    shape(tmp_path / "images" / "lonely" / "only.png", "cross", shift=3)
    monkeypatch.setenv("TRIPLETSHOT_DATA", str(tmp_path / "data"))
    train = [
        "train", "--dataset", f"folder:{tmp_path / 'images'}", "--classes", "all", "--dry-run",
        "--device", "cpu", "--run-dir", str(tmp_path / "run"), "--embedding-dim", "64", "--width", "8",
    ]  # fmt: skip
    trained = invoke(embed, *train, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    # Its decoded images went to the suite's own cache (conftest's $TRIPLETSHOT_CACHE), not beside the data.
    assert not (tmp_path / "data").exists() and list(Path(os.environ["TRIPLETSHOT_CACHE"]).glob("folders/*.npz"))
    assert "skipped 2 of 18 images" in trained.stderr
    assert "1 class(es) with under 2 training images are indexed, not trained on: lonely" in trained.stderr
    assert "classes Greek/alpha,Greek/beta,cats," in trained.stdout
    meta = json.loads((tmp_path / "run" / "run.json").read_text())["run"]
    assert meta["classes"] == [0, 1, 2] and meta["dataset_classes"] == [0, 1, 2, 3]
    assert meta["options"]["epochs"] == 60  # one step an epoch: the default grows to 60 steps
    evaluated = invoke(embed, "eval", "--per-class", "--episodes", "2", "--run-dir", tmp_path / "run", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert re.search(r"Greek/alpha\s+seen\s+1\s", evaluated.stdout) and re.search(
        r"lonely\s+unseen\s+0", evaluated.stdout
    )
