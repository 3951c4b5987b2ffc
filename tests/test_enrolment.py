"""Enrol, forget, predict with ``unknown``, calibration and the eval metrics: a real run, real image files,
real faiss, and the commands as a user types them (in process; tests/test_cli.py starts the real scripts)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageDraw

from cli.adder import main as adder
from cli.embed import main as embed
from embedder.data.images import to_mnist
from embedder.fewshot.openset import Calibration, supports_per_class
from embedder.runs.calibration import recalibrate
from embedder.runs.run import Run
from tests.runfiles import Ran, invoke, manifest


def draw(path: Path, shape: str, shift: int = 0, width: int = 6) -> Path:
    """A symbol no digit looks like, drawn dark on white as a user would: ``ring`` or ``hash``."""
    image = Image.new("L", (64, 64), 255)
    pen = ImageDraw.Draw(image)
    if shape == "ring":
        pen.ellipse([10 + shift, 10, 54 + shift, 54], outline=0, width=width)
    else:  # hash: two strokes each way
        for x in (22, 42):
            pen.line([(x + shift, 6), (x + shift, 58)], fill=0, width=width)
            pen.line([(6 + shift, x), (58 + shift, x)], fill=0, width=width)
    image.save(path)
    return path


def run_cli(name: str, *args: object, cwd: Path) -> Ran:
    """``embed ...`` or ``adder ...`` as a command line, in process (real processes: tests/test_cli.py)."""
    return invoke({"embed": embed, "adder": adder}[name], *args, cwd=cwd)


@pytest.fixture()
def run(tmp_path, digits_run) -> Path:
    """A private copy of the session's digits run (trained on 0-4, one shot of each of 0-9 indexed)."""
    target = tmp_path / "run"
    shutil.copytree(digits_run, target)
    return target


def test_enrol_predict_more_shots_and_forget_through_the_cli(tmp_path, run):
    ring, other_ring = draw(tmp_path / "ring.png", "ring"), draw(tmp_path / "ring2.png", "ring", shift=3, width=9)
    enrolled = run_cli("embed", "enroll", "--label", "ring", ring, "--run-dir", run, cwd=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr
    assert f"enrolled 1 image(s) as ring (label 10, a new class) in {run}" in enrolled.stdout

    predicted = run_cli("embed", "predict", other_ring, "--k", "3", "--json", "--run-dir", run, cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    answer = json.loads(predicted.stdout)[0]
    assert answer["name"] == "ring" and answer["label"] == 10 and answer["distance"] < answer["threshold"]
    assert [n["name"] for n in answer["neighbours"]][0] == "ring" and len(answer["neighbours"]) == 3
    assert 0.9 < answer["confidence"] <= 1

    more = run_cli("embed", "enroll", "--label", "ring", other_ring, "--run-dir", run, cwd=tmp_path)
    assert "as ring (label 10, now 2 shots)" in more.stdout, more.stderr
    listing = json.loads(run_cli("embed", "index", "--json", "--run-dir", run, cwd=tmp_path).stdout)
    rows = {row["name"]: row for row in listing}
    assert rows["ring"]["shots"] == 2 and rows["ring"]["origin"] == "enrolled" and rows["ring"]["added"]
    assert rows["0"]["origin"] == "training" and rows["0"]["shots"] >= 1 and len(rows) == 11  # centroids

    forgot = run_cli("embed", "forget", "ring", "--run-dir", run, cwd=tmp_path)
    assert "forgot ring (label 10, 2 shot(s), enrolled)" in forgot.stdout, forgot.stderr
    after = run_cli("embed", "predict", other_ring, "--no-reject", "--json", "--run-dir", run, cwd=tmp_path)
    assert json.loads(after.stdout)[0]["name"] != "ring"
    loaded = Run.load(run)
    assert 10 not in loaded.index.labels and loaded.class_name(10) == "ring"  # the label stays reserved


def test_enrol_a_folder_of_classes_skipping_a_corrupt_file(tmp_path, run):
    symbols = tmp_path / "symbols"
    (symbols / "ring").mkdir(parents=True)
    (symbols / "Greek" / "hash").mkdir(parents=True)
    draw(symbols / "ring" / "a.png", "ring")
    draw(symbols / "ring" / "b.png", "ring", shift=2, width=8)
    draw(symbols / "Greek" / "hash" / "a.png", "hash")
    (symbols / "ring" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = CliRunner().invoke(embed, ["enroll", "--folder", str(symbols), "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable or blank image(s)" in result.stderr and "broken.png" in result.stderr
    shots = {c["name"]: c["shots"] for c in manifest(run)["run"]["index"]["classes"]}
    assert shots["ring"] == 2 and shots["Greek/hash"] == 1


def test_unknown_beyond_the_threshold_and_the_overrides(tmp_path, run, digits):
    hash_image = draw(tmp_path / "hash.png", "hash")
    # The training 3 nearest the index's class-3 centroids once read back from a file (which re-centres
    # it, MNIST-style): as known as an image gets.
    support, loaded = tmp_path / "support.png", Run.load(run)
    threes = digits.train_images[digits.train_labels == 3]
    as_read = torch.stack([to_mnist(image.numpy() / 255.0) for image in threes])
    similarity = loaded.embedder.embed(as_read) @ loaded.index.vectors()[loaded.index.labels == 3].T
    Image.fromarray(threes[similarity.max(axis=1).argmax()].numpy()).save(support)
    runner = CliRunner()

    def predict(*options: str) -> list[dict]:
        result = runner.invoke(
            embed, ["predict", str(hash_image), str(support), "--json", "--run-dir", str(run), *options]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    unknown, known = predict()
    # each answer's threshold is its nearest class's, under the run's rule (embedder.fewshot.openset)
    calibration = Calibration.from_dict(manifest(run)["run"]["open_set"])
    assert unknown["name"] == "unknown" and unknown["label"] is None and unknown["distance"] >= unknown["threshold"]
    assert unknown["nearest"] != "unknown" and known["name"] == "3" and known["distance"] < known["threshold"]
    if calibration.rule != "margin":  # the margin rule's depends on the second-nearest class too
        loaded = Run.load(run)
        expected = calibration.thresholds(np.array([int(unknown["nearest"]), 3]), supports_per_class(loaded.index))
        np.testing.assert_allclose([unknown["threshold"], known["threshold"]], expected, rtol=1e-6)
    forced, _ = predict("--no-reject")
    assert forced["name"] == unknown["nearest"] and forced["threshold"] is None
    lenient, _ = predict("--threshold", "2")
    assert lenient["name"] == unknown["nearest"]
    text = runner.invoke(embed, ["predict", str(hash_image), "--run-dir", str(run)]).stdout
    assert re.match(r"\S+hash\.png: unknown \(nearest \S+ at \d\.\d\d, threshold \d\.\d\d\); nearest supports: ", text)


def test_the_adder_refuses_an_unknown_image(tmp_path, run):
    hash_image = draw(tmp_path / "hash.png", "hash")
    assert run_cli("adder", "train", "--run-dir", run, cwd=tmp_path).returncode == 0
    refused = run_cli("adder", "predict", hash_image, "7", "--run-dir", run, cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert re.fullmatch(
        r"Error: \S+hash\.png: no digit this run knows \(nearest \d\.\d\d, threshold \d\.\d\d\)\n", refused.stderr
    )
    forced = run_cli("adder", "predict", hash_image, "7", "--no-reject", "--run-dir", run, cwd=tmp_path)
    assert forced.returncode == 0 and re.search(r"digit (\d) \(nearest support [\d.]+ away\) \+ 7 = ", forced.stdout)


# The rate on classes absent from calibration: tests/test_openset.py.


def test_training_calibrates_what_calibrate_reproduces(run, digits_run):
    stored = manifest(digits_run)["run"]["open_set"]
    assert stored["far"] == 0.01 and stored["impostor_classes"] == 5 and 0 < stored["threshold"] < 2
    again = recalibrate(run, 0.01, log=lambda _: None)  # the same held-out images against the same index
    assert again.threshold == pytest.approx(stored["threshold"], abs=1e-5) and again.rule == stored["rule"]
    assert again.rate == pytest.approx(stored["rate"], abs=1e-9)


def test_more_neighbours_than_the_index_holds_says_so(tmp_path, digits_run):
    ring = draw(tmp_path / "ring.png", "ring")
    supports = len(Run.load(digits_run).index)
    argv = ["predict", str(ring), "--k", "1000000000000", "--json", "--run-dir", str(digits_run)]
    result = CliRunner().invoke(embed, argv)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)[0]["neighbours"]) == supports
    assert result.stderr == (
        f"note: asked for the 1,000,000,000,000 nearest supports, but the run's index holds {supports}: all are shown\n"
    )
    exact = CliRunner().invoke(embed, [*argv[:2], "--k", str(supports), *argv[4:]])
    assert exact.exit_code == 0 and exact.stderr == ""


def test_a_run_without_a_threshold_says_so_and_answers_the_nearest_class(tmp_path, run):
    table = manifest(run)
    del table["run"]["open_set"]  # as a run trained before calibration
    (run / "run.json").write_text(json.dumps(table))
    hash_image = draw(tmp_path / "hash.png", "hash")
    result = CliRunner().invoke(embed, ["predict", str(hash_image), "--json", "--run-dir", str(run)])
    assert result.exit_code == 0 and "has no open-set threshold" in result.stderr
    answer = json.loads(result.stdout)[0]
    assert answer["name"] != "unknown" and answer["threshold"] is None and answer["confidence"] is None
    calibrated = CliRunner().invoke(embed, ["calibrate", "--far", "0.05", "--run-dir", str(run)])
    assert calibrated.exit_code == 0 and "threshold" in calibrated.stdout
    assert manifest(run)["run"]["open_set"]["far"] == 0.05


def test_eval_reports_the_accuracy_calculator_and_the_open_set(run):
    result = CliRunner().invoke(embed, ["eval", "--open-set", "--json", "--episodes", "2", "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    metrics = report["accuracy_calculator"]
    assert set(metrics) == {"seen", "unseen", "all"}
    for group in metrics.values():
        assert set(group) == {"precision_at_1", "mean_average_precision_at_r", "NMI", "AMI"}
        assert all(0 <= v <= 1 for v in group.values())
    assert metrics["seen"]["precision_at_1"] > 0.8  # chance is 0.2
    open_set = report["open_set"]
    assert open_set["left_out"] == [5, 6, 7, 8, 9] and len(open_set["per_class"]) == 5
    assert open_set["mean"]["auroc"] > 0.6  # chance is 0.5
    assert 0 <= open_set["mean"]["known_accuracy"] <= open_set["mean"]["closed_set_accuracy"]
    text = CliRunner().invoke(embed, ["eval", "--open-set", "--episodes", "2", "--run-dir", str(run)]).stdout
    assert "AccuracyCalculator" in text and "AUROC known vs unknown" in text


def test_chunked_accuracy_calculator_equals_pml_in_one_call(run, digits, monkeypatch):
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    import embedder.evaluation.pml_metrics as pml_metrics

    loaded = Run.load(run)
    query, reference = loaded.embedder.embed(digits.test_images), loaded.embedder.embed(digits.train_images)
    labels = (digits.test_labels.numpy(), digits.train_labels.numpy())
    monkeypatch.setattr(pml_metrics, "CHUNK", 97)
    ours = pml_metrics.accuracy_calculator(query, labels[0], reference, labels[1])
    theirs = AccuracyCalculator(
        include=pml_metrics.METRICS, k="max_bin_count", device=__import__("torch").device("cpu")
    )
    direct = theirs.get_accuracy(query, labels[0], reference, labels[1])
    assert ours == pytest.approx({k: float(v) for k, v in direct.items()}, abs=1e-6)


def test_the_clustering_metrics_print_no_faiss_warning_a_user_cannot_act_on(digits_run, digits, capfd):
    """30 test images a class, as a user's folder has: under the 39 a cluster faiss asks for (and warns about)."""
    import embedder.evaluation.pml_metrics as pml_metrics

    labels = digits.test_labels.numpy()
    rows = np.concatenate([np.flatnonzero(labels == c)[:30] for c in range(10)])
    embeddings, labels = Run.load(digits_run).embedder.embed(digits.test_images[rows]), labels[rows]
    capfd.readouterr()
    metrics = pml_metrics.accuracy_calculator(embeddings, labels, embeddings, labels)
    assert 0 < metrics["NMI"] <= 1
    assert "WARNING" not in capfd.readouterr().err  # faiss writes to fd 2 from C++


def test_index_vectors_stay_numpy_after_pml_patches_faiss():
    import pytorch_metric_learning.utils.inference  # noqa: F401  (imports faiss.contrib.torch_utils)

    from embedder.index.support_index import SupportIndex

    index = SupportIndex(4)
    index.add(np.eye(3, 4, dtype=np.float32), [0, 1, 2])
    assert isinstance(index.vectors(), np.ndarray) and index.remove(1) == 1
    assert index.labels.tolist() == [0, 2] and index.vectors().tolist() == np.eye(3, 4)[[0, 2]].tolist()
