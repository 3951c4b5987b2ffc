"""One scoring path: the open-set threshold is fitted on the distances ``embed predict`` computes.

For every index type, with and without a PCA (``index_dim``), what calibration scores for an impostor class is
what prediction answers once that class is forgotten (removed from the index, as ``embed forget`` does), under
the run's open-set rule.
"""

from __future__ import annotations

import shutil

import faiss
import numpy as np
import pytest

from embedder.config import PredictConfig, TrainConfig
from embedder.data.sampling import split_validation
from embedder.fewshot.openset import (
    Calibration,
    _impostors,
    evaluate_open_set,
    genuine_and_impostor,
    supports_per_class,
)
from embedder.index.build import build_support_index
from embedder.index.support_index import SupportIndex, similarity_to_distance
from embedder.runs.calibration import calibrate_index, calibration_rows
from embedder.runs.prediction import predict
from embedder.runs.run import Run
from embedder.runs.store import RunDir
from embedder.training.trainer import train

FAR = 0.2
KINDS = [(kind, dim) for kind in ("flat", "ivf", "hnsw", "ivfpq", "sq8") for dim in (None, 8)]
TRAIN = dict(dataset="digits", classes=[0, 1, 2, 3, 4], epochs=15, m_per_class=32, device="cpu")
OPTIONS = dict(embedding_dim=64, val_fraction=0.3, far=FAR)  # 64-d cut to 8: a PCA that matters


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, digits):
    run_dir = tmp_path_factory.mktemp("scoring") / "run"
    train(TrainConfig(run_dir=str(run_dir), **TRAIN, **OPTIONS), progress=False, log=lambda _: None, dataset=digits)
    return run_dir


def run_with_index(
    base_run, tmp_path, digits, kind: str, dim: int | None, method: str = "nn"
) -> tuple[RunDir, TrainConfig, int]:
    """A copy of the base run whose index is of ``kind``, calibrated as a training does."""
    run_dir = tmp_path / f"{kind}-{dim}"
    shutil.copytree(base_run, run_dir)
    loaded = Run.load(run_dir)
    config = TrainConfig(run_dir=str(run_dir), **TRAIN, **OPTIONS, index=kind, index_dim=dim, method=method)
    train_rows, val_rows = split_validation(digits.train_labels, config.classes, config.val_fraction, config.seed)
    images = digits.train_images[train_rows]
    index, rows = build_support_index(loaded.embedder, digits, config.index_rule, images, val_rows)
    calibration = calibrate_index(loaded.embedder, index, digits, config, rows, log=lambda _: None)
    metadata = {**loaded.metadata, "open_set": calibration.as_dict()}
    described = {"support_rows": rows.tolist(), "faiss": index.describe(), "method": method}
    metadata["index"] = {**metadata["index"], **described}
    store = RunDir(run_dir)
    store.commit({"index": index.to_bytes()}, run=metadata)
    return store, config, calibration.impostors


def accepted_once_forgotten(store: RunDir, label: int, images) -> int:
    """How many of ``images`` ``predict`` answers with a class once ``label`` is forgotten from the run."""
    loaded = Run.load(store.path)
    assert loaded.index.remove(label) > 0
    answers = predict(loaded, images, [str(i) for i in range(len(images))], PredictConfig(), log=lambda _: None)
    return sum(a.known for a in answers)


def calibration_images(digits, config: TrainConfig, store: RunDir):
    """The images the threshold was fitted on: the validation split less the supports, and as many of each
    class not trained on."""
    support_rows = np.asarray(store.metadata()["index"]["support_rows"], dtype=np.int64)
    held_out, others = calibration_rows(digits, config, support_rows, Run.load(store.path).index.classes)
    rows = np.concatenate([held_out, others])
    return digits.train_images[rows], digits.train_labels[rows]


@pytest.mark.parametrize(("kind", "dim"), KINDS, ids=[f"{k}-{d or 'full'}" for k, d in KINDS])
def test_predict_with_a_class_forgotten_accepts_what_calibration_scored(base_run, tmp_path, digits, kind, dim):
    """Calibration scores each impostor class with its class out of the search; ``predict`` on a run that has
    forgotten that class must accept the same images, under the run's rule, for every index type. (Whether the
    rate holds on classes absent from calibration: tests/test_openset.py.)"""
    store, config, _ = run_with_index(base_run, tmp_path, digits, kind, dim)
    calibration = Calibration.from_dict(store.metadata()["open_set"])
    loaded = Run.load(store.path)
    images, labels = calibration_images(digits, config, store)
    supports = supports_per_class(loaded.index)
    replayed = expected = 0
    for label in [c for c in loaded.index.classes if c not in config.classes]:  # the impostor classes
        rows = labels == label
        scored = _impostors(loaded.classifier(), loaded.embedder.embed(images[rows]), label)
        expected += int((scored.score(calibration, supports) < calibration.cut).sum())
        replayed += accepted_once_forgotten(store, label, images[rows])
    # hnsw: a graph searched without a class is not quite one built without it
    assert abs(replayed - expected) <= (0 if kind != "hnsw" else 2), (replayed, expected)
    assert calibration.rate is not None and calibration.impostor_classes == 5


@pytest.mark.parametrize(("kind", "dim"), [("flat", 8), ("ivfpq", None), ("hnsw", 8)])
def test_calibration_and_the_open_set_evaluation_score_as_prediction_does(base_run, tmp_path, digits, kind, dim):
    """The impostor distance of a query is the distance ``predict`` gives it once its class is forgotten."""
    store, config, _ = run_with_index(base_run, tmp_path, digits, kind, dim)
    loaded = Run.load(store.path)
    seen = np.isin(digits.test_labels.numpy(), config.classes)
    embeddings, labels = loaded.embedder.embed(digits.test_images[seen]), digits.test_labels.numpy()[seen]
    genuine, impostor = genuine_and_impostor(loaded.classifier(), embeddings, labels)
    open_set = evaluate_open_set(loaded.index, "nn", embeddings, labels, config.classes, threshold=1.0)
    for label in config.classes:
        forgotten = Run.load(store.path)
        forgotten.index.remove(label)
        _, distance = forgotten.classifier().predict_embeddings(embeddings[labels == label])
        np.testing.assert_allclose(impostor[labels[np.isin(labels, config.classes)] == label], distance, atol=1e-5)
        row = next(r for r in open_set["per_class"] if r["class"] == label)
        assert row["unknown_rejected"] == pytest.approx(float((distance >= 1.0).mean()))
    assert (genuine < impostor).mean() > 0.8  # a trained network: its own class is nearer, mostly


def prototype_similarity(index: SupportIndex, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Written out, what the search of the prototypes should give: each class's mean support (as the index holds
    them), stored as the index stores a support (projected by its PCA, encoded by its quantiser), and each query's
    inner product with that stored vector in the index's own space. Returns (classes, similarities)."""
    prototypes, classes = index.prototypes()
    stored = index.empty_copy()
    stored.add(prototypes, classes)
    inner = faiss.downcast_index(stored.index)
    if isinstance(inner, faiss.IndexPreTransform):  # PCA, then L2norm, then the index
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        for step in range(inner.chain.size()):
            queries = faiss.downcast_VectorTransform(inner.chain.at(step)).apply(queries)
        inner = faiss.downcast_index(inner.index)
    codes = np.stack([inner.reconstruct(int(i)) for i in stored.ids])  # a code decoded, in the index's space
    return classes, queries @ codes.T


@pytest.mark.parametrize(("kind", "dim"), KINDS, ids=[f"{k}-{d or 'full'}" for k, d in KINDS])
def test_the_prototype_method_decides_by_the_search_of_its_index(base_run, tmp_path, digits, kind, dim):
    """Prototype under every index type: calibration's impostor distances and ``predict`` with a class forgotten
    are the index's search of the class prototypes, in its space (a PCA's, a quantiser's), as for the supports.
    Before, Prototype compared each query with the renormalised mean of the reconstructions in the full space."""
    store, config, _ = run_with_index(base_run, tmp_path, digits, kind, dim, method="prototype")
    loaded = Run.load(store.path)
    assert type(loaded.classifier()).__name__ == "Prototype"
    seen = np.isin(digits.test_labels.numpy(), config.classes)
    embeddings, labels = loaded.embedder.embed(digits.test_images[seen]), digits.test_labels.numpy()[seen]
    classes, similarity = prototype_similarity(loaded.index, embeddings)
    _, impostor = genuine_and_impostor(loaded.classifier(), embeddings, labels)
    others = similarity.copy()
    others[classes[None, :] == labels[:, None]] = -np.inf  # each query's own class left out: its impostor
    np.testing.assert_allclose(impostor, similarity_to_distance(others.max(1)), atol=1e-4)
    forgotten = 0
    loaded.index.remove(forgotten)
    store.commit({"index": loaded.index.to_bytes()}, run=store.metadata())
    queries = digits.test_images[digits.test_labels == forgotten][:40]
    answers = predict(Run.load(store.path), queries, [str(i) for i in range(len(queries))], log=lambda _: None)
    classes, similarity = prototype_similarity(loaded.index, loaded.embedder.embed(queries))
    assert [a.nearest for a in answers] == [digits.class_names[c] for c in classes[similarity.argmax(1)]]
    np.testing.assert_allclose([a.distance for a in answers], similarity_to_distance(similarity.max(1)), atol=1e-4)


def test_a_restricted_search_is_a_search_of_the_index_without_the_others():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.arange(400) % 8
    for kind in ("flat", "ivf", "sq8"):
        from embedder.config import IndexSpec

        index = SupportIndex(16, IndexSpec(index=kind, nlist=4, nprobe=4))
        index.add(vectors, labels)
        smaller = SupportIndex.from_bytes(index.to_bytes())
        smaller.remove(3)
        queries = vectors[:50]
        expected = smaller.search(queries, 3)
        found = index.search(queries, 3, classes=[c for c in range(8) if c != 3])
        np.testing.assert_array_equal(found[0], expected[0])
        np.testing.assert_allclose(found[1], expected[1], atol=1e-6)


def test_a_distance_at_the_threshold_is_unknown_everywhere(base_run, digits, monkeypatch):
    """Known means strictly below the threshold: in predict, in calibration, and in the report's figure."""
    from embedder.evaluation import figures, report
    from embedder.evaluation.figures import Classes
    from embedder.fewshot.openset import class_weighted_cut

    loaded = Run.load(base_run)
    images = digits.test_images[:10]
    _, distances = loaded.classifier().predict_embeddings(loaded.embedder.embed(images))
    at = float(distances[0])
    answers = predict(loaded, images, list("abcdefghij"), PredictConfig(threshold=at), log=lambda _: None)
    assert not answers[0].known and answers[0].name == "unknown"
    assert all(a.known == (a.distance < at) for a in answers)

    impostor = np.array([0.2, 0.4, 0.4, 0.6, 0.8])
    assert class_weighted_cut([impostor], 0.2) == 0.4  # 0.2 only is below: the 0.4s are not

    seen: dict[str, float] = {}

    def capture(genuine, impostor, query_seen, threshold, classes):
        seen["accepted"] = float(np.mean(impostor <= threshold))  # the figure's own rule
        seen["expected"] = float(np.mean(impostor < float(loaded.metadata["open_set"]["threshold"])))
        return b""

    monkeypatch.setattr(figures, "open_set", capture)
    embeddings, truth = loaded.embedder.embed(digits.test_images), digits.test_labels.numpy()
    _, impostors = genuine_and_impostor(loaded.classifier(), embeddings, truth)
    threshold = float(np.sort(impostors)[len(impostors) // 5])  # exactly one impostor's distance
    loaded.metadata["open_set"]["threshold"] = threshold
    report._open_set(loaded, embeddings, truth, threshold, Classes(digits.classes, [], loaded.trained_classes))
    assert seen["accepted"] == seen["expected"] == float(np.mean(impostors < threshold))


def test_the_validation_episodes_are_drawn_and_scored_as_embed_eval_draws_and_scores():
    """FixedEpisodes (the validation classes' score during training) draws each episode's supports with
    ``sample_supports`` and labels its queries by the index's search, the calls ``evaluate_episodes`` makes; for
    one shot the prototype method, searched through its own index, agrees query for query."""
    from embedder.fewshot.classifiers import make_classifier
    from embedder.fewshot.fixed_episodes import FixedEpisodes

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 60)
    features = rng.normal(size=(6, 16))[labels] + 1.5 * rng.normal(size=(len(labels), 16))
    features = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)
    episodes = FixedEpisodes.draw(labels, [5, 0, 1, 2, 3, 4], seed=3, episodes=30, pool=20)
    pooled, rows = labels[episodes.rows], features[episodes.rows]
    accuracies = []
    for supports, queries, truth in zip(episodes.supports, episodes.queries, episodes.truth, strict=True):
        assert np.all(np.diff(pooled[supports]) > 0) and not np.isin(queries, supports).any()
        assert np.array_equal(pooled[supports][truth], pooled[queries])
        assert len(queries) == 20 * episodes.ways - episodes.ways  # every other pooled image of those classes
        prototype = make_classifier("prototype", index=SupportIndex(16))
        prototype.set_support_embeddings(rows[supports], np.arange(episodes.ways))
        accuracies.append(np.mean(prototype.predict_embeddings(rows[queries])[0] == truth))
    score = episodes.score(rows)
    assert score == pytest.approx(float(np.mean(accuracies)), abs=1e-12) and 0.3 < score < 1.0
