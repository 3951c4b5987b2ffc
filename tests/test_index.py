import numpy as np
import pytest

from embedder.errors import ConfigError, EmptyIndexError
from embedder.fewshot.classifiers import NearestNeighbor, Prototype, make_classifier
from embedder.index.support_index import SupportIndex


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_search_returns_labels_not_ids():
    index = SupportIndex(3)
    index.add(unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), [7, 3, 5])
    labels, scores = index.search(unit([[0.1, 1, 0], [0, 0.2, 1]]), k=1)
    assert labels[:, 0].tolist() == [3, 5]
    assert scores.shape == (2, 1)


def test_enrolling_a_new_class_needs_no_retraining():
    classifier = NearestNeighbor(index=SupportIndex(2))
    classifier.add_support_embeddings(unit([[1, 0]]), [0])
    query = unit([[0, 1]])
    assert classifier.predict_embeddings(query)[0].tolist() == [0]
    classifier.add_support_embeddings(unit([[0.1, 1]]), [9])
    labels, distances = classifier.predict_embeddings(query)
    assert labels.tolist() == [9] and classifier.classes == [0, 9]
    assert 0 < distances[0] < 0.2


def test_forgetting_a_class_removes_its_supports_only():
    index = SupportIndex(2)
    index.add(unit([[1, 0], [0, 1], [1, 1]]), [4, 7, 4])
    assert index.remove(4) == 2 and index.remove(5) == 0
    assert index.labels.tolist() == [7] and len(index) == 1
    np.testing.assert_allclose(index.vectors(), unit([[0, 1]]))


def test_prototype_uses_class_means():
    index = SupportIndex(2)
    # class 1's nearest single support is closest, but class 2's mean is closer
    index.add(unit([[1, 0.05], [1, 1], [1, -1]]), [1, 2, 2])
    query = unit([[1, -0.3]])
    assert make_classifier("nn", index=index).predict_embeddings(query)[0].tolist() == [1]
    assert make_classifier("prototype", index=index).predict_embeddings(query)[0].tolist() == [2]
    with pytest.raises(ConfigError, match="method"):
        make_classifier("knn", index=index)


@pytest.mark.parametrize("method", [NearestNeighbor, Prototype])
def test_scores_are_one_column_per_class_and_agree_with_predict(method):
    rng = np.random.default_rng(0)
    classifier = method(index=SupportIndex(8))
    classifier.set_support_embeddings(unit(rng.normal(size=(12, 8))), [5, 1, 3] * 4)
    queries = unit(rng.normal(size=(30, 8)))
    scores = classifier.scores(queries)
    assert scores.shape == (30, 3) and classifier.classes == [1, 3, 5]
    labels, distances = classifier.predict_embeddings(queries)
    assert labels.tolist() == [classifier.classes[i] for i in scores.argmax(1)]
    np.testing.assert_allclose(distances, np.sqrt(2 - 2 * scores.max(1)), atol=1e-5)


def test_bytes_round_trip():
    rng = np.random.default_rng(0)
    index = SupportIndex(16)
    vectors = unit(rng.normal(size=(20, 16)))
    index.add(vectors, np.arange(20) % 4)
    loaded = SupportIndex.from_bytes(index.to_bytes())
    assert loaded.dim == 16 and len(loaded) == 20
    np.testing.assert_array_equal(loaded.labels, index.labels)
    queries = unit(rng.normal(size=(5, 16)))
    np.testing.assert_array_equal(loaded.search(queries, 3)[0], index.search(queries, 3)[0])


def test_damaged_index_bytes_are_a_clear_error():
    index = SupportIndex(4)
    index.add(unit(np.eye(4)), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="my.npz is damaged"):
        SupportIndex.from_bytes(index.to_bytes()[:100], source="my.npz")


@pytest.mark.parametrize("method", ["nn", "prototype"])
def test_empty_index_and_bad_shapes(method):
    index = SupportIndex(4)
    with pytest.raises(EmptyIndexError, match="empty"):
        make_classifier(method, index=index).predict_embeddings(unit(np.eye(4)))
    with pytest.raises(ValueError):
        index.add(np.zeros((2, 3), dtype=np.float32), [0, 1])
    with pytest.raises(ValueError):
        index.add(unit(np.eye(4)), [0, 1])
