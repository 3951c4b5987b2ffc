import numpy as np
import pytest

from embedder.data.sampling import sample_supports
from embedder.errors import ConfigError
from embedder.evaluation.episodes import evaluate_episodes, mean_ci95


def test_supports_are_k_per_class_and_avoid_excluded_rows():
    labels = np.repeat(np.arange(5), 20)
    exclude = np.arange(0, 100, 2)  # e.g. rows used as queries
    rng = np.random.default_rng(0)
    for _ in range(50):
        chosen = sample_supports(labels, [0, 2, 4], 3, rng, exclude=exclude)
        assert len(chosen) == 9 and len(set(chosen)) == 9
        assert not set(chosen) & set(exclude)
        assert sorted(np.bincount(labels[chosen]).tolist()) == [0, 0, 3, 3, 3]


def test_too_many_shots_is_a_usage_error():
    labels = np.array([0, 0, 1])
    with pytest.raises(ConfigError, match="fewer than shots 2"):
        sample_supports(labels, [0, 1], 2, np.random.default_rng(0))


def test_separable_features_score_one_and_random_ones_near_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    onehot = np.eye(4, dtype=np.float32)[labels] + 0.01 * rng.normal(size=(200, 4)).astype(np.float32)
    onehot /= np.linalg.norm(onehot, axis=1, keepdims=True)
    perfect = evaluate_episodes(onehot, labels, onehot, labels, [0, 1, 2, 3], shots=1, episodes=20)
    assert perfect.mean == 1.0 and perfect.ways == 4
    noise = rng.normal(size=(200, 32)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    chance = evaluate_episodes(noise, labels, noise[::-1].copy(), labels, [0, 1, 2, 3], shots=1, episodes=100)
    assert 0.15 < chance.mean < 0.35 and chance.ci95 > 0


def test_episodes_are_seeded():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.repeat(np.arange(5), 20)
    a = evaluate_episodes(x, labels, x, labels, [0, 1, 2, 3, 4], episodes=30, seed=3)
    b = evaluate_episodes(x, labels, x, labels, [0, 1, 2, 3, 4], episodes=30, seed=3)
    assert a == b


def test_mean_ci95():
    mean, half = mean_ci95(np.array([0.5, 0.7]))
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(1.96 * np.std([0.5, 0.7], ddof=1) / np.sqrt(2))
