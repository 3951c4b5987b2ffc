"""A user's folder tree: classes found by folder, images decoded in parallel, bad files skipped with a reason."""

from __future__ import annotations

import numpy as np
from PIL import Image

from embedder.folders import class_folders, load_images


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
