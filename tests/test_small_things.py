"""Small things a user or a maintainer tripped on (issue 26, section 5): the embedder's mode after ``embed``, the
threshold that predates an enrolment, the export's preprocessing as the code's own steps, ``Dataset`` as a real
PyTorch dataset, and the IDX files read by torchvision's readers."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import stat

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from embedder.data import images as image_steps
from embedder.data.datasets import default_data_root, find_raw, load_dataset, read_idx
from embedder.errors import DataError, ImageError
from embedder.models.embedder import FUSE_FROM, Embedder
from embedder.models.network import EmbeddingNet
from tests.test_enrolment import draw


@pytest.mark.parametrize("training", [True, False])
def test_embed_and_features_leave_the_model_in_the_mode_it_was_in(training):
    torch.manual_seed(0)
    embedder = Embedder(EmbeddingNet(64, width=8), mean=0.1, std=0.3)
    images = torch.randint(0, 256, (FUSE_FROM, 28, 28), dtype=torch.uint8)
    embedder.model.train(training)
    few, many = embedder.embed(images[:8]), embedder.embed(images)  # the model, and its fused copy
    embedder.features(images[:8])
    assert embedder.model.training is training and all(m.training is training for m in embedder.model.modules())
    embedder.model.eval()
    np.testing.assert_allclose(few, embedder.embed(images[:8]), atol=1e-6)  # batch norm's running statistics
    np.testing.assert_allclose(many, embedder.embed(images), atol=1e-5)


def test_a_dataset_and_its_splits_are_pytorch_datasets():
    dataset = load_dataset("digits")
    assert isinstance(dataset, torch.utils.data.Dataset)
    assert isinstance(dataset.split("test"), torch.utils.data.Dataset)
    images, labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=5)))
    assert images.shape == (5, 28, 28) and images.dtype == torch.uint8
    assert labels.tolist() == dataset.train_labels[:5].tolist()


def write_idx(path, array: np.ndarray) -> bytes:
    data = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return data


def test_idx_files_are_read_by_torchvision_in_place_from_a_read_only_folder(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    folder = tmp_path / "raw"
    folder.mkdir()
    pictures = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(folder / "images.gz", pictures), write_idx(folder / "images", pictures)
    write_idx(folder / "labels.gz", labels)
    (folder / "cut").write_bytes(write_idx(folder / "whole", pictures)[:-100])
    (folder / "not-gzip.gz").write_bytes(b"plain bytes")
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)  # read in place: nothing is written beside the files
    try:
        before = sorted(os.listdir(folder))
        assert torch.equal(read_idx(folder / "images.gz", "images"), read_image_file(str(folder / "images")))
        assert torch.equal(read_idx(folder / "images", "images"), torch.from_numpy(pictures))
        got = read_idx(folder / "labels.gz", "labels")
        assert got.dtype == torch.int64 and got.tolist() == list(range(7))
        with pytest.raises(DataError, match="cut is not a whole unsigned-byte IDX file of images"):
            read_idx(folder / "cut", "images")
        with pytest.raises(DataError, match="images is not a whole unsigned-byte IDX file of labels"):
            read_idx(folder / "images", "labels")
        with pytest.raises(DataError, match="not-gzip.gz cannot be read"):
            read_idx(folder / "not-gzip.gz", "images")
        assert torch.equal(read_idx(folder / "labels.gz", "labels"), read_label_file(str(_plain(folder, tmp_path))))
        assert sorted(os.listdir(folder)) == before
    finally:
        folder.chmod(stat.S_IRWXU)


def _plain(folder, tmp_path):
    """labels.gz decompressed elsewhere, for torchvision's reader to read directly."""
    plain = tmp_path / "labels"
    plain.write_bytes(gzip.decompress((folder / "labels.gz").read_bytes()))
    return plain


def test_the_real_fashion_mnist_reads_in_place_to_its_published_bytes():
    """/work/shared/data's Fashion-MNIST is recompressed .gz, read-only; the uncompressed md5 sums are published."""
    raw = default_data_root() / "FashionMNIST" / "raw"
    if find_raw(raw, "t10k-labels-idx1-ubyte") is None:
        pytest.skip("no Fashion-MNIST under the data root")
    labels = read_idx(find_raw(raw, "t10k-labels-idx1-ubyte"), "labels")
    header = bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big")
    published = "15d484375f8d13e6eb1aabb0c3f46965"  # t10k-labels-idx1-ubyte, /work/shared/data/README.md
    assert hashlib.md5(header + labels.to(torch.uint8).numpy().tobytes()).hexdigest() == published


def test_the_export_preprocessing_is_the_list_of_steps_load_image_runs(monkeypatch, tmp_path):
    from embedder.runs.export import PREPROCESSING

    assert PREPROCESSING[:-1] == image_steps.preprocessing_steps()
    ran: list[str] = []
    recorded = []
    for description, step in image_steps.TO_MNIST:

        def record(x, name, step=step, description=description):
            ran.append(description)
            return step(x, name)

        recorded.append((description, record))
    monkeypatch.setattr(image_steps, "TO_MNIST", recorded)
    image_steps.load_image(draw(tmp_path / "ring.png", "ring"))
    assert ran == PREPROCESSING[len(image_steps.READING) : -1]  # every step described ran, in that order
    # The blank rule is a step, and its number is the one the code applies.
    (blank,) = [s for s in PREPROCESSING if s.startswith("refuse a blank image")]
    contrast = float(re.search(r"less than ([0-9.]+)", blank).group(1))
    faint = np.zeros((28, 28))
    faint[10:18, 10:18] = contrast * 0.95
    with pytest.raises(ImageError, match="blank"):
        image_steps.to_mnist(faint)
    faint[10:18, 10:18] = contrast * 1.05
    assert image_steps.to_mnist(faint).max() == 255


def test_enrol_and_forget_say_that_the_threshold_predates_them_until_it_is_refitted(digits_run, tmp_path):
    from cli.embed import main as embed

    run_dir = tmp_path / "run"
    shutil.copytree(digits_run, run_dir)
    runner, where = CliRunner(), ["--run-dir", str(run_dir)]
    listed = runner.invoke(embed, ["index", *where])
    assert listed.exit_code == 0 and "predates" not in listed.output
    enrolled = runner.invoke(embed, ["enroll", "--label", "ring", str(draw(tmp_path / "ring.png", "ring")), *where])
    assert enrolled.exit_code == 0, enrolled.output
    assert re.search(r"note: the open-set threshold \d\.\d{3} predates 1 change to the index \(enrolled 1 image\(s\) "
                     r"as ring\): `embed calibrate` fits it", enrolled.stderr), enrolled.stderr  # fmt: skip
    forgot = runner.invoke(embed, ["forget", "ring", *where])
    assert forgot.exit_code == 0 and "predates 2 changes" in forgot.stderr, forgot.output
    listed = runner.invoke(embed, ["index", *where])
    assert "The open-set threshold" in listed.stdout and "(enrolled 1 image(s) as ring; forgot ring)" in listed.stdout
    assert runner.invoke(embed, ["calibrate", *where]).exit_code == 0
    assert "predates" not in runner.invoke(embed, ["index", *where]).output
