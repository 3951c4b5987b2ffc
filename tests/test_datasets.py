"""torchvision's datasets read in place: tiny files written in the real IDX format (gzipped or not) for the ones
this machine lacks, the real Fashion-MNIST where it is on disk; class names, and ``--classes`` resolved by name."""

from __future__ import annotations

import gzip
import socket

import numpy as np
import pytest

from embedder.config import TrainConfig
from embedder.data.classes import parse_classes, resolve_classes
from embedder.data.datasets import IDX_DATASETS, default_data_root, find_raw, load_dataset
from embedder.errors import ConfigError, DataError, DataNotFoundError


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    """The IDX format: two zero bytes, 0x08 (unsigned byte), the number of dimensions, each size big-endian."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def tiny_images(labels: np.ndarray) -> np.ndarray:
    """One 28x28 image per label with a bright bar at row ``label``, columns 0-9: which way is up is visible."""
    images = np.zeros((len(labels), 28, 28), np.uint8)
    for i, label in enumerate(labels):
        images[i, label % 28, :10] = 255
    return images


def write_dataset(root, name: str, gz: bool, first_label: int = 0) -> dict[str, np.ndarray]:
    """Write the four files of ``name`` under ``root`` as torchvision lays them out; return the stored labels."""
    layout = IDX_DATASETS[name]
    raw = root / layout.folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    stored = {}
    for split, (images, labels) in layout.files.items():
        label_values = np.arange(len(layout.class_names)).repeat(2) + first_label
        pictures = tiny_images(label_values - first_label)
        if layout.transposed:  # EMNIST stores each image transposed
            pictures = pictures.transpose(0, 2, 1)
        write_idx(raw / images, pictures, gz)
        write_idx(raw / labels, label_values, gz)
        stored[split] = label_values
    return stored


@pytest.mark.parametrize(
    "name, gz, first_label",
    [
        ("fashion-mnist", True, 0),
        ("kmnist", False, 0),
        ("emnist-letters", False, 1),
        ("emnist-digits", True, 0),
        ("emnist-balanced", False, 0),
    ],
)
def test_each_torchvision_layout_loads_upright_with_its_class_names(tmp_path, name, gz, first_label):
    write_dataset(tmp_path, name, gz, first_label)
    data = load_dataset(name, tmp_path)
    layout = IDX_DATASETS[name]
    n = len(layout.class_names)
    assert data.name == name and data.class_names == layout.class_names and data.classes == list(range(n))
    assert data.train_images.shape == (2 * n, 28, 28) and data.test_labels.tolist() == list(np.arange(n).repeat(2))
    for image, label in zip(data.train_images, data.train_labels, strict=True):  # the bar is a row, not a column
        assert image[int(label) % 28, :10].eq(255).all() and int(image.sum()) == 10 * 255


def test_class_names_are_torchvisions():
    assert IDX_DATASETS["fashion-mnist"].class_names[:2] == ["T-shirt/top", "Trouser"]
    assert (
        IDX_DATASETS["emnist-letters"].class_names[0] == "a" and len(IDX_DATASETS["emnist-letters"].class_names) == 26
    )
    balanced = IDX_DATASETS["emnist-balanced"].class_names
    assert len(balanced) == 47 and balanced[:11] == [*"0123456789", "A"] and balanced[-1] == "t"
    assert load_dataset("digits").class_names == [str(d) for d in range(10)]


def test_labels_outside_the_classes_are_refused(tmp_path):
    write_dataset(tmp_path, "kmnist", gz=True, first_label=5)  # labels 5..14 for ten classes
    with pytest.raises(DataError, match="labels fall outside the 10 classes of KMNIST"):
        load_dataset("kmnist", tmp_path)


def test_offline_missing_files_name_the_folder_and_the_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", offline)
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("emnist-letters", tmp_path / "root")
    message = str(info.value)
    assert f"{tmp_path / 'root' / 'EMNIST' / 'raw'}" in message and "could not be downloaded" in message
    assert "emnist-letters-train-images-idx3-ubyte" in message and "emnist-letters-test-labels-idx1-ubyte" in message
    assert not (tmp_path / "root").exists()  # no empty folders left behind


def test_real_fashion_mnist_is_read_in_place():
    """The shared copy's .gz checksums differ from torchvision's list: it must be read, never re-downloaded."""
    root = default_data_root()
    if find_raw(root / "FashionMNIST" / "raw", "train-images-idx3-ubyte") is None:
        pytest.skip(f"Fashion-MNIST not under {root}")
    data = load_dataset("fashion-mnist")
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert data.train_labels.bincount().tolist() == [6000] * 10 and data.class_names[9] == "Ankle boot"


FASHION = IDX_DATASETS["fashion-mnist"].class_names


@pytest.mark.parametrize(
    "text, labels",
    [
        ("T-shirt/top,Trouser", [0, 1]),
        ("Ankle boot, Bag ,0", [0, 8, 9]),
        ("0-4", [0, 1, 2, 3, 4]),
        ("Sneaker,2-3", [2, 3, 7]),
        ("all", list(range(10))),
    ],
)
def test_classes_by_name_index_range_or_all(text, labels):
    config = TrainConfig(dataset="fashion-mnist", classes=text)  # parsed and checked without the data
    assert resolve_classes(config.classes, FASHION, list(range(10)), "fashion-mnist") == labels


@pytest.mark.parametrize(
    "text, message",
    [
        ("Trouser,Jumper", r"'Jumper' not in the dataset 'fashion-mnist', which has classes 0 'T-shirt/top', 1"),
        ("Trouser,1", "class 1 is given twice"),
        ("Trouser,12", "12 not in the dataset"),
        ("all,1", "'all' stands alone"),
        ("Trouser,Trouser", "class 'Trouser' is given twice"),
    ],
)
def test_class_names_that_do_not_resolve_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        resolve_classes(TrainConfig(classes=parse_classes(text)).classes, FASHION, list(range(10)), "fashion-mnist")
    assert info.value.param == "classes"
