"""Real training on the bundled digits: the loss falls, the run is complete, seeds reproduce."""

import json

import numpy as np
import pytest
import torch

from embedder.artifacts import load_tensors
from embedder.evaluate import evaluate_run
from embedder.run import Run
from embedder.train import TrainConfig, train


def test_run_holds_weights_metadata_and_an_index_of_every_class(digits_run, digits):
    meta = json.loads((digits_run / "run.json").read_text())
    assert meta["classes"] == [0, 1, 2, 3, 4] and meta["dataset"] == "digits"
    assert meta["dataset_classes"] == list(range(10))
    assert meta["curve"][-1]["train_loss"] < meta["curve"][0]["train_loss"]
    run = Run.load(digits_run)
    assert sorted(run.index.classes) == list(range(10)) and len(run.index) == 10
    support_rows = np.array(meta["index"]["support_rows"])
    assert digits.train_labels.numpy()[support_rows].tolist() == run.index.labels.tolist()


def test_trained_run_beats_chance_by_far_on_seen_classes(digits_run, digits):
    report = evaluate_run(Run.load(digits_run), digits, shots=1, episodes=30)
    assert report["summary"]["seen"] > 0.6  # chance is 0.1
    assert report["episodes"]["all"]["mean"] > 0.4
    assert report["episodes"]["unseen"]["ways"] == 5


def test_training_is_reproducible_on_cpu(tmp_path, digits):
    def weights(seed, name):
        config = TrainConfig(
            dataset="digits",
            classes=[0, 1],
            epochs=2,
            m_per_class=16,
            seed=seed,
            run_dir=str(tmp_path / name),
            device="cpu",
        )
        train(config, progress=False, log=lambda _: None, dataset=digits)
        return load_tensors(tmp_path / name / "model.pt")

    a, b, c = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_dry_run_trains_two_steps(tmp_path, digits):
    config = TrainConfig(dataset="digits", classes=[3, 8], dry_run=True, run_dir=str(tmp_path / "r"), device="cpu")
    result = train(config, progress=False, log=lambda _: None, dataset=digits)
    assert len(result.metadata["curve"]) == 1
    assert Run.load(tmp_path / "r").index.classes == list(range(10))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(epochs=0), "--epochs"),
        (dict(lr=float("nan")), "--lr"),
        (dict(batch_size=50, m_per_class=32), "multiple"),
        (dict(batch_size=32, m_per_class=32), "2 to 2 classes"),
        (dict(embedding_dim=100), "multiple of 16"),
        (dict(shots=0), "--shots"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, digits, options, message):
    from embedder.errors import UsageError

    config = TrainConfig(dataset="digits", classes=[0, 1], run_dir=str(tmp_path / "r"), device="cpu", **options)
    with pytest.raises(UsageError, match=message):
        train(config, progress=False, log=lambda _: None, dataset=digits)
    assert not (tmp_path / "r").exists()


def test_refuses_to_write_into_a_folder_that_is_not_a_run(tmp_path, digits):
    from embedder.errors import UsageError

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    config = TrainConfig(dataset="digits", classes=[0, 1], dry_run=True, run_dir=str(folder), device="cpu")
    with pytest.raises(UsageError, match="--force"):
        train(config, progress=False, log=lambda _: None, dataset=digits)
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]


def test_interrupted_training_resumes_to_bit_identical_weights(tmp_path, digits):
    def config(name):
        return TrainConfig(dataset="digits", classes=[0, 1, 2], epochs=4, m_per_class=16, run_dir=str(tmp_path / name),
                           device="cpu")  # fmt: skip

    train(config("straight"), progress=False, log=lambda _: None, dataset=digits)

    def interrupt_after_epoch_two(message):
        if message.startswith("epoch 2/4"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config("resumed"), progress=False, log=interrupt_after_epoch_two, dataset=digits)
    assert not (tmp_path / "resumed" / "run.json").exists()
    train(config("resumed"), resume=True, progress=False, log=lambda _: None, dataset=digits)
    a, b = load_tensors(tmp_path / "straight" / "model.pt"), load_tensors(tmp_path / "resumed" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
