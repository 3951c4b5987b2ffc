"""The pool at inference: ``embed pool`` on a real run, the classifier that uses it, the check that decides
whether it may, and the ways it must not hurt (distractors, another network's pool, bad pools)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedder.config import EvalConfig
from embedder.data.dataset import Dataset
from embedder.evaluation.episodes import evaluate_episodes
from embedder.fewshot.classifiers import NearestNeighbor, PoolRefined
from embedder.fewshot.pool import OFF, PoolPoints, Refinement, choose_refinement, summarise_pool
from embedder.runs.pool_files import ROLE
from embedder.runs.run import Run
from tests.runfiles import manifest, replace_and_resign, run_file, snapshot
from tests.test_enrolment import draw, run_cli


@pytest.fixture()
def run(tmp_path, digits_run) -> Path:
    target = tmp_path / "run"
    shutil.copytree(digits_run, target)
    return target


def pooled(run: Path) -> Path:
    ran = run_cli("embed", "pool", "rest", "--run-dir", run, cwd=run.parent)
    assert ran.returncode == 0, ran.stderr
    return run


def test_embed_pool_sets_shows_and_takes_away_the_pool(run):
    shown = run_cli("embed", "pool", "--run-dir", run, cwd=run.parent)
    assert shown.returncode == 0 and "no pool" in shown.stdout
    ran = run_cli("embed", "pool", "rest", "--run-dir", run, cwd=run.parent)
    assert ran.returncode == 0, ran.stderr
    entry = manifest(run)["run"]["pool"]
    assert entry["source"] == "rest" and entry["images"] > 0 and entry["points"] == entry["images"]  # small: whole
    assert entry["model_sha256"] == manifest(run)["files"]["model"]["sha256"]
    assert entry["decision"]["reason"].split(":")[0] in ("used", "not used")
    assert manifest(run)["run"]["index"]["method"] == "pool" and run_file(run, ROLE).exists()
    assert entry["decision"]["reason"] in run_cli("embed", "pool", "--run-dir", run, cwd=run.parent).stdout
    loaded = Run.load(run)
    assert loaded.pool is not None and isinstance(loaded.classifier(), PoolRefined)
    assert sorted(loaded.pool.anchors[0].tolist()) == loaded.trained_classes
    gone = run_cli("embed", "pool", "none", "--run-dir", run, cwd=run.parent)
    assert gone.returncode == 0, gone.stderr
    assert "pool" not in manifest(run)["run"] and ROLE not in manifest(run)["files"]
    assert manifest(run)["run"]["index"]["method"] == "nn" and not list(run.glob("pool-*"))


def test_bad_pools_are_one_line_errors_that_change_nothing(run, tmp_path):
    empty, not_images = tmp_path / "empty", tmp_path / "junk"
    empty.mkdir()
    not_images.mkdir()
    (not_images / "a.png").write_bytes(b"not a png")
    before = snapshot(run)
    for source in (empty, not_images, tmp_path / "missing"):
        ran = run_cli("embed", "pool", source, "--run-dir", run, cwd=tmp_path)
        assert ran.returncode != 0 and "Traceback" not in ran.stderr, ran.stderr
        assert len(ran.stderr.strip().splitlines()) == 1 and "Error" in ran.stderr
    none = run_cli("embed", "pool", "none", "--run-dir", run, cwd=tmp_path)
    assert none.returncode != 0 and "no pool" in none.stderr
    assert snapshot(run) == before


def test_a_folder_of_images_as_pool(run, tmp_path, digits):
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in np.flatnonzero(digits.train_labels.numpy() >= 5)[:60]:
        Image.fromarray(digits.train_images[i].numpy()).save(folder / f"{i}.png")
    ran = run_cli("embed", "pool", folder, "--run-dir", run, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert manifest(run)["run"]["pool"]["images"] == 60 and str(folder) in ran.stdout


def test_another_networks_pool_is_refused(run, tmp_path, digits_run):
    pooled(run)
    other = tmp_path / "other"
    shutil.copytree(digits_run, other)
    data = run_file(run, ROLE).read_bytes()
    replace_and_resign(other, ROLE, data)  # a pool file dropped into a run with another model's hash
    table = manifest(other)
    table["run"]["pool"] = {**manifest(run)["run"]["pool"], "model_sha256": "0" * 64}
    (other / "run.json").write_text(json.dumps(table))
    ran = run_cli("embed", "predict", draw(tmp_path / "ring.png", "ring"), "--run-dir", other, cwd=tmp_path)
    assert ran.returncode != 0 and "another network" in ran.stderr and "Traceback" not in ran.stderr


def test_a_retraining_drops_the_pool(run, digits):
    from embedder.config import TrainConfig
    from embedder.training.trainer import train

    pooled(run)
    config = TrainConfig(run_dir=str(run), dataset="digits", classes=[0, 1, 2, 3, 4], epochs=1, device="cpu")
    train(config, force=True, progress=False, log=lambda _: None, dataset=digits)
    assert ROLE not in manifest(run)["files"] and not list(run.glob("pool-*"))
    assert manifest(run)["run"]["index"]["method"] == "nn" and Run.load(run).pool is None


def test_a_pooled_training_keeps_its_pool_and_decides_with_it(tmp_path, digits):
    from embedder.config import TrainConfig
    from embedder.training.trainer import train

    config = TrainConfig(run_dir=str(tmp_path / "p"), dataset="digits", classes=[0, 1, 2, 3, 4], epochs=2,
                         unlabelled="rest", device="cpu")  # fmt: skip
    train(config, progress=False, log=lambda _: None, dataset=digits)
    loaded = Run.load(tmp_path / "p")
    assert loaded.pool is not None and loaded.method == "pool"
    assert loaded.metadata["pool"]["images"] == loaded.metadata["unlabelled"]["images"]


def test_enrol_and_forget_refine_against_the_pool(run, tmp_path):
    pooled(run)
    ring = draw(tmp_path / "ring.png", "ring")
    assert run_cli("embed", "enroll", "--label", "ring", ring, "--run-dir", run, cwd=tmp_path).returncode == 0
    loaded = Run.load(run)
    classifier = loaded.classifier()
    _, labels = classifier.decision_vectors()
    label = max(loaded.index.classes)  # a new class takes the next label
    assert (labels == label).sum() == 1  # one prototype for the one-shot class
    asked = run_cli("embed", "predict", ring, "--json", "--no-reject", "--run-dir", run, cwd=tmp_path)
    assert json.loads(asked.stdout)[0]["name"] == "ring"
    assert "pool-refined" in run_cli("embed", "predict", ring, "--no-reject", "--run-dir", run, cwd=tmp_path).stdout
    assert run_cli("embed", "forget", "ring", "--run-dir", run, cwd=tmp_path).returncode == 0
    assert label not in Run.load(run).classifier().decision_vectors()[1]


def test_eval_prints_the_pool_beside_the_nearest_support(run):
    pooled(run)
    ran = run_cli("embed", "eval", "--episodes", "5", "--json", "--run-dir", run, cwd=run.parent)
    episodes = json.loads(ran.stdout)["episodes"]
    assert episodes["method"] == "pool" and episodes["without_pool"]["method"] == "nn"
    text = run_cli("embed", "eval", "--episodes", "5", "--run-dir", run, cwd=run.parent).stdout
    assert "without the pool (nn)" in text and "its pool:" in text


def test_method_pool_without_a_pool_is_a_usage_error(run):
    ran = run_cli("embed", "eval", "--method", "pool", "--episodes", "2", "--run-dir", run, cwd=run.parent)
    assert ran.returncode == 2 and "no pool" in ran.stderr and "Traceback" not in ran.stderr


@pytest.fixture(scope="module")
def embedded(digits_run, digits: Dataset) -> tuple:
    """The digits run's train and test embeddings with their labels, embedded once for the episode tests."""
    loaded = Run.load(digits_run)
    train, test = loaded.embedder.embed(digits.train_images), loaded.embedder.embed(digits.test_images)
    return train, digits.train_labels.numpy(), test, digits.test_labels.numpy()


def test_off_is_exactly_the_nearest_support(embedded):
    sx, sy, qx, qy = embedded
    pool = summarise_pool(sx[sy >= 5])
    plain = evaluate_episodes(sx, sy, qx, qy, [5, 6, 7, 8, 9], 1, 20, 0, "nn")
    off = evaluate_episodes(sx, sy, qx, qy, [5, 6, 7, 8, 9], 1, 20, 0, "pool", options={"pool": pool, "setting": OFF})
    assert off.mean == plain.mean and NearestNeighbor is not PoolRefined


def test_the_pool_gains_where_it_holds_the_new_classes(embedded):
    """The digits run trained on 0-4; the pool holds 5-9 unlabelled: one-shot 5-9 episodes gain from it."""
    sx, sy, qx, qy = embedded
    pool = summarise_pool(sx[sy >= 5])
    options = {"pool": pool, "anchors": _anchors(sx, sy, [0, 1, 2, 3, 4]), "setting": Refinement()}
    plain = evaluate_episodes(sx, sy, qx, qy, [5, 6, 7, 8, 9], 1, 40, 0, "nn")
    refined = evaluate_episodes(sx, sy, qx, qy, [5, 6, 7, 8, 9], 1, 40, 0, "pool", options=options)
    assert refined.mean > plain.mean + 0.03


def test_the_check_refuses_a_pool_of_classes_nobody_named(embedded):
    """A pool of nothing but one other class, heavily weighted, drags every prototype: the check says no."""
    sx, sy, _, _ = embedded
    rows = np.flatnonzero(sy == 8)
    pool = PoolPoints(np.repeat(sx[rows[:1]], 50, axis=0), np.full(50, 1000.0, np.float32))
    held = (sx[sy < 5], sy[sy < 5])
    decision = choose_refinement(held, (np.empty(0, np.int64), np.empty((0, sx.shape[1]))), pool, "held", 100.0,
                                 settings=(Refinement(),))  # fmt: skip
    assert decision.setting == OFF and decision.reason.startswith("not used")


def _anchors(x: np.ndarray, y: np.ndarray, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    return np.asarray(classes), (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


def test_the_report_shows_unclaimed_clusters_and_one_of_them_is_enrolled(run, tmp_path, digits):
    from embedder.evaluation.report import write_report
    from embedder.runs.unclaimed import claimed, unclaimed_clusters

    pooled(run)
    loaded = Run.load(run)
    clusters = unclaimed_clusters(loaded)
    assert clusters and sum(c.images for c in clusters) == int((~claimed(loaded)).sum())  # kept whole: 1 each
    assert [c.images for c in clusters] == sorted((c.images for c in clusters), reverse=True)
    page = write_report(loaded, digits, tmp_path / "report", EvalConfig(episodes=2)).html.read_text()
    assert "Pool: clusters no class claims" in page and f"pool image {clusters[0].ids[0]}" in page
    first = clusters[0].ids[0]
    ran = run_cli("embed", "enroll", "--label", "found", "--pool-image", first, "--run-dir", run, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    after = Run.load(run)
    assert "found" in after.metadata["class_names"]
    assert claimed(after)[first]  # the image it was named from is now claimed... by its own class
    bad = run_cli("embed", "enroll", "--label", "x", "--pool-image", 10**6, "--run-dir", run, cwd=tmp_path)
    assert bad.returncode == 2 and "pool_image" in bad.stderr.replace("-", "_") and "Traceback" not in bad.stderr
