import pytest
import torch

from embedder.config import TrainConfig
from embedder.data.classes import parse_classes, resolve_classes
from embedder.errors import ConfigError, DeviceError
from embedder.training.devices import resolve_device


@pytest.mark.parametrize(
    "text, expected",
    [("0,1,2", [0, 1, 2]), ("0-4", [0, 1, 2, 3, 4]), ("7, 3", [3, 7]), ("0-2,7", [0, 1, 2, 7]), ("8-9", [8, 9])],
)
def test_parse_classes_accepts_lists_and_ranges(text, expected):
    assert TrainConfig(classes=parse_classes(text)).classes == expected  # parsed, then checked and sorted


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("a,b", "'a', 'b' not in the dataset"),
        ("0,0", "twice"),
        ("0,10", "not in the dataset"),
        ("-1,2", "negative"),
        ("3", "at least two"),
        ("4-2", "backwards"),
        ("0-10", "not in the dataset"),
        ("1,,2", "'' is not a class label"),
    ],
)
def test_parse_classes_rejects_bad_lists(text, message):
    """Syntax is parse_classes's, the list itself TrainConfig's, membership resolve_classes's: each names classes."""
    with pytest.raises(ConfigError, match=message) as info:
        resolve_classes(
            TrainConfig(classes=parse_classes(text)).classes, [str(d) for d in range(10)], list(range(10)), "digits"
        )
    assert info.value.param == "classes" and str(info.value).startswith("classes")


def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:7"])
def test_resolve_device_cuda_without_cuda_is_a_usage_error(spec):
    with pytest.raises(DeviceError, match="CUDA is not available") as info:
        resolve_device(spec)
    assert info.value.param == "device" and isinstance(info.value, ValueError)


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "gpu", "cuda:-1"])
def test_resolve_device_rejects_unknown_names(spec):
    with pytest.raises(DeviceError):
        resolve_device(spec)
