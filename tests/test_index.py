import numpy as np
import pytest

from embedder.errors import RunError, UsageError
from embedder.index import SupportIndex


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
    index = SupportIndex(2)
    index.add(unit([[1, 0]]), [0])
    query = unit([[0, 1]])
    assert index.classify(query)[0].tolist() == [0]
    index.add(unit([[0.1, 1]]), [9])
    labels, distances = index.classify(query)
    assert labels.tolist() == [9] and index.classes == [0, 9]
    assert 0 < distances[0] < 0.2


def test_prototype_uses_class_means():
    index = SupportIndex(2)
    # class 1's nearest single support is closest, but class 2's mean is closer
    index.add(unit([[1, 0.05], [1, 1], [1, -1]]), [1, 2, 2])
    query = unit([[1, -0.3]])
    assert index.classify(query, "nn")[0].tolist() == [1]
    assert index.classify(query, "prototype")[0].tolist() == [2]
    with pytest.raises(UsageError):
        index.classify(query, "knn")


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    index = SupportIndex(16)
    vectors = unit(rng.normal(size=(20, 16)))
    index.add(vectors, np.arange(20) % 4)
    path = tmp_path / "index.npz"
    index.save(path)
    loaded = SupportIndex.load(path)
    assert loaded.dim == 16 and len(loaded) == 20
    np.testing.assert_array_equal(loaded.labels, index.labels)
    queries = unit(rng.normal(size=(5, 16)))
    np.testing.assert_array_equal(loaded.search(queries, 3)[0], index.search(queries, 3)[0])
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_damaged_or_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="missing"):
        SupportIndex.load(tmp_path / "nope.npz")
    index = SupportIndex(4)
    index.add(unit(np.eye(4)), [0, 1, 2, 3])
    path = tmp_path / "index.npz"
    path.write_bytes(index.to_bytes()[:100])
    with pytest.raises(RunError, match="damaged"):
        SupportIndex.load(path)


def test_empty_index_and_bad_shapes():
    index = SupportIndex(4)
    with pytest.raises(RunError, match="empty"):
        index.classify(unit(np.eye(4)))
    with pytest.raises(ValueError):
        index.add(np.zeros((2, 3), dtype=np.float32), [0, 1])
    with pytest.raises(ValueError):
        index.add(unit(np.eye(4)), [0, 1])
