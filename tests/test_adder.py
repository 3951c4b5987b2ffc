"""The linear adder learns exact addition from MSE; `adder predict` works on real image files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from embedder.data.images import load_image
from embedder.errors import ConfigError, RunError
from embedder.runs.run import Run
from embedder.runs.store import RunDir
from tests.runfiles import invoke, run_file
from tests.test_images import bad_files, forms
from tripletshot.adder.config import AdderConfig
from tripletshot.adder.model import LinearAdder
from tripletshot.adder.pipeline import (
    MAX_NUMBER,
    add,
    adder_config,
    evaluate_adder,
    load_adder,
    parse_number,
    save_adder,
)
from tripletshot.adder.training import exact_fraction, train_adder
from tripletshot.cli.adder import main as adder


def has_adder(run_dir) -> bool:
    return RunDir(run_dir).has("adder")


def test_adder_is_linear_and_learns_exact_addition():
    model, report = train_adder(AdderConfig(max_value=9, seed=0))
    assert [type(m) for m in model.modules()] == [LinearAdder, torch.nn.Linear]  # no activation anywhere
    assert report.in_range_exact == 1.0 and report.extrapolation_exact == 1.0
    assert report.final_mse < 1e-12
    assert report.weights == pytest.approx([1.0, 1.0], abs=1e-9) and abs(report.bias) < 1e-9
    assert add(model, [3, -40, 9], [7, 5, 123456789]).tolist() == [10, -35, 123456798]


def test_the_weights_are_learned_a_second_seed_starts_elsewhere_and_ends_at_the_same_place():
    starts = []
    for seed in (0, 1):
        torch.manual_seed(seed)  # what train_adder does before it builds the model
        starts.append(LinearAdder().double().linear.weight.detach().clone())
    assert not torch.allclose(starts[0], starts[1]) and not torch.allclose(
        starts[1], torch.ones(1, 2, dtype=torch.float64)
    )
    _, report = train_adder(AdderConfig(max_value=9, seed=1))
    assert report.weights == pytest.approx([1.0, 1.0], abs=1e-9) and abs(report.bias) < 1e-9
    assert report.in_range_exact == 1.0


def test_untrained_adder_is_not_exact():
    torch.manual_seed(0)
    assert exact_fraction(LinearAdder().double(), 9) < 0.5


def test_the_stated_exact_range_holds_at_its_edge_and_ends_there():
    """A digit plus any number within ±MAX_NUMBER is exact; one past it is refused, not answered wrongly."""
    model, report = train_adder()
    assert report.weights == [1.0, 1.0] and abs(report.bias) < 1e-30  # what the docstring's bound assumes
    assert add(model, [9, 0, 9, 0], [MAX_NUMBER, MAX_NUMBER, -MAX_NUMBER, -MAX_NUMBER]).tolist() == [
        2**53, 2**53 - 9, -(2**53) + 18, -(2**53) + 9
    ]  # fmt: skip
    assert parse_number(str(MAX_NUMBER)) == MAX_NUMBER and parse_number(str(-MAX_NUMBER)) == -MAX_NUMBER
    for beyond in (MAX_NUMBER + 1, -MAX_NUMBER - 1):
        with pytest.raises(ConfigError, match=r"within ±\(2\*\*53 - 9\)"):
            parse_number(str(beyond))


@pytest.mark.parametrize("options, param", [(dict(max_value=0), "max_value"), (dict(lr=float("inf")), "lr")])
def test_adder_options_are_config_errors_naming_the_parameter(options, param):
    with pytest.raises(ValueError, match=param):
        AdderConfig(**options)
    with pytest.raises(ConfigError) as info:
        adder_config(**options)
    assert info.value.param == param


def test_adder_save_load_round_trip(tmp_path):
    model, report = train_adder(AdderConfig(max_value=5))
    save_adder(tmp_path, model, report)
    loaded, loaded_report = load_adder(tmp_path)
    assert loaded_report == report
    assert add(loaded, [2], [3]).tolist() == [5]
    run_file(tmp_path, "adder").write_bytes(b"junk")
    with pytest.raises(RunError, match="adder-.*sha256"):
        load_adder(tmp_path)


@pytest.mark.parametrize("text", ["seven", "3.5", "nan", "1e400", "", "0x10", "inf", "--5"])
def test_number_must_be_an_integer(text):
    with pytest.raises(ConfigError):
        parse_number(text)


@pytest.mark.parametrize("text, value", [("7", 7), ("-12", -12), ("+3", 3), ("1000000", 1000000)])
def test_integers_of_any_sign_and_size_are_fine(text, value):
    assert parse_number(text) == value


@pytest.fixture()
def run_copy(tmp_path, digits_run):
    """A private copy of the session's digits run, so tests may add an adder or break files."""
    target = tmp_path / "run"
    shutil.copytree(digits_run, target)
    return target


def test_adder_eval_counts_the_classifiers_errors_and_the_adders_apart(digits_run, digits):
    """The digit accuracy is the index's own; an adder that is off by one loses every sum, and is blamed for it."""
    run, labels = Run.load(digits_run), digits.test_labels.numpy()
    predicted, _ = run.classifier().predict_embeddings(run.embedder.embed(digits.test_images))
    right = predicted == labels
    exact, _ = train_adder()
    report = evaluate_adder(run, exact, digits.test_images, labels)
    assert report["digit_accuracy"] == pytest.approx(right.mean()) and 0.3 < right.mean() < 1
    assert [r["queries"] for r in report["per_class"]] == np.bincount(labels).tolist()
    assert report["sum_accuracy"] == report["digit_accuracy"] and report["adder_errors"] == 0
    off_by_one, _ = train_adder()
    with torch.no_grad():
        off_by_one.linear.bias += 1.0
    wrong = evaluate_adder(run, off_by_one, digits.test_images, labels)
    assert wrong["digit_accuracy"] == report["digit_accuracy"] and wrong["adder_errors"] == int(right.sum())
    assert wrong["sum_accuracy"] < report["sum_accuracy"]


def run_adder(*args, cwd):
    """``adder ...`` as a command line, in process (tests/test_cli.py starts the real console scripts)."""
    return invoke(adder, *args, cwd=cwd)


def test_predict_end_to_end_on_image_files(tmp_path, run_copy, digits):
    # A digits test image, saved as a user would: black on white, larger, as PNG and JPEG.
    run = Run.load(run_copy)
    digit = digits.test_images[0].numpy()
    expected = int(run.classifier().predict(load_image_from_array(digit, tmp_path))[0][0])
    paths = forms(digit, tmp_path)
    # --no-reject: this test is about reading image files; refusing unknown images is test_enrolment's.
    first = run_adder("predict", paths["png_black_on_white"], 7, "--no-reject", "--run-dir", run_copy, cwd=tmp_path)
    assert first.returncode == 0 and first.stderr == "", first.stderr  # the answer, and nothing else
    told = run_adder(
        "predict", paths["png_black_on_white"], 7, "--no-reject", "-v", "--run-dir", run_copy, cwd=tmp_path
    )
    assert told.stdout == first.stdout and "has no adder" in told.stderr  # one trained in memory, said so...
    assert re.search(r"adder: y = 1\.000000 a \+ 1\.000000 b [+-] 0\.000000;", told.stderr), told.stderr
    assert not has_adder(run_copy)  # ...and nothing written: a prediction never writes
    saved = run_adder("train", "--run-dir", run_copy, cwd=tmp_path)
    assert saved.returncode == 0 and has_adder(run_copy), saved.stderr
    assert first.stdout.strip() == first.stdout.strip().splitlines()[0]
    assert f"digit {expected} (nearest support" in first.stdout and f"+ 7 = {expected + 7}" in first.stdout

    several = run_adder(
        "predict",
        *(paths[f] for f in ("png_white_on_black", "jpeg", "rgba_transparent", "large_offcentre")),
        "--number",
        -5,
        "--no-reject",
        "--json",
        "--verbose",
        "--run-dir",
        run_copy,
        cwd=tmp_path,
    )
    assert several.returncode == 0, several.stderr
    rows = json.loads(several.stdout)
    assert [r["digit"] for r in rows] == [expected] * 4
    assert all(r["sum"] == expected - 5 and r["number"] == -5 for r in rows)
    assert "outside the adder's trained range" in several.stderr and "has no adder" not in several.stderr


def load_image_from_array(array: np.ndarray, tmp_path) -> torch.Tensor:
    path = tmp_path / "reference.png"
    Image.fromarray(array).save(path)
    return load_image(path).unsqueeze(0)


@pytest.mark.parametrize("case", ["missing", "directory", "text", "empty", "truncated", "bomb", "blank"])
def test_predict_bad_images_are_one_line_errors(tmp_path, run_copy, case):
    path, message = bad_files(tmp_path)[case]
    result = run_adder("predict", path, 3, "--run-dir", run_copy, cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not has_adder(run_copy)  # nothing written on failure


@pytest.mark.parametrize("number", ["seven", "3.5", "nan", "1e400"])
def test_predict_bad_numbers_are_usage_errors(tmp_path, run_copy, number):
    image = tmp_path / "d.png"
    Image.fromarray(255 - (np.eye(28, dtype=np.uint8) * 255)).save(image)
    result = run_adder("predict", image, number, "--run-dir", run_copy, cwd=tmp_path)
    assert result.returncode == 2 and "integer" in result.stderr and "Traceback" not in result.stderr


def test_predict_without_a_run_or_an_index(tmp_path, run_copy):
    image = tmp_path / "d.png"
    Image.fromarray(255 - (np.eye(28, dtype=np.uint8) * 255)).save(image)
    no_run = run_adder("predict", image, 1, "--run-dir", tmp_path / "nothing", cwd=tmp_path)
    assert no_run.returncode == 1 and "embed train" in no_run.stderr
    run_file(run_copy, "index").unlink()
    no_index = run_adder("predict", image, 1, "--run-dir", run_copy, cwd=tmp_path)
    assert no_index.returncode == 1 and "index" in no_index.stderr and "Traceback" not in no_index.stderr


def test_adder_train_cli_reports_extrapolation(tmp_path, run_copy):
    result = run_adder("train", "--run-dir", run_copy, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["in_range_exact"] == 1.0 and report["extrapolation_exact"] == 1.0


def test_adder_eval_cli(tmp_path, run_copy):
    result = run_adder("eval", "--run-dir", run_copy, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sum accuracy equals digit accuracy" in result.stdout


def test_module_runs_as_script():
    out = subprocess.run([sys.executable, "-m", "tripletshot.cli.adder", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "predict" in out.stdout
