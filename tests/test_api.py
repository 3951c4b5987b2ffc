"""The Python API is PyTorch-shaped: scores on the module's device and differentiable, an embedder that
moves with ``.to()``, a dataset a ``DataLoader`` and PML's samplers take."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from torch.utils.data import DataLoader

from embedder.fewshot.classifiers import NearestNeighbor, Prototype
from embedder.models.embedder import Embedder
from embedder.models.network import EmbeddingNet
from embedder.runs.run import Run


def small_embedder() -> Embedder:
    torch.manual_seed(0)
    return Embedder(EmbeddingNet(embedding_dim=64, width=8).eval(), 0.1307, 0.3081)


@pytest.mark.parametrize("method", [NearestNeighbor, Prototype])
def test_forward_gives_differentiable_scores_that_agree_with_predict(method, digits):
    classifier = method(small_embedder())
    supports, labels = digits.train_images[:60], digits.train_labels[:60]
    classifier.process_support_set(supports, labels)  # easyfsl: supports first
    queries = digits.test_images[:20]
    scores = classifier(queries)  # then queries: forward
    assert scores.shape == (20, len(classifier.classes)) and scores.device == classifier.device
    assert scores.requires_grad
    scores.max(dim=1).values.sum().backward()  # a loss on the scores trains the embedder
    grads = [p.grad for p in classifier.embedder.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    with torch.no_grad():
        assert not classifier(queries).requires_grad
    labels_, _ = classifier.predict(queries)
    np.testing.assert_array_equal(np.asarray(classifier.classes)[scores.detach().argmax(1).numpy()], labels_)
    np.testing.assert_allclose(
        scores.detach().numpy(), classifier.scores(classifier.embedder.embed(queries)), atol=1e-4
    )


def test_the_embedder_device_is_its_parameters_and_to_moves_it(digits_run, digits):
    run = Run.load(digits_run)
    embedder = run.embedder
    assert embedder.device == next(embedder.parameters()).device == torch.device("cpu")
    moved = embedder.to("meta")  # a device every machine has (shapes, no data): the next call must follow it
    assert moved.device == torch.device("meta") and moved.centering.mean.device == torch.device("meta")
    assert moved.preprocess(digits.test_images[:2]).device == torch.device("meta")
    assert moved(digits.test_images[:2]).shape == (2, moved.dim)  # forward runs there, on the meta weights


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_cuda_moves_the_embedder_and_the_classifier_scores_follow(digits_run, digits):
    run = Run.load(digits_run)
    classifier = run.classifier().cuda()
    assert classifier.embedder.device.type == "cuda"
    scores = classifier(digits.test_images[:8])
    assert scores.device.type == "cuda"
    cpu = Run.load(digits_run).classifier()(digits.test_images[:8])
    np.testing.assert_allclose(scores.detach().cpu().numpy(), cpu.detach().numpy(), atol=2e-2)


def test_the_dataset_feeds_a_dataloader_through_pml_m_per_class_sampler(digits):
    sampler = MPerClassSampler(digits.get_labels(), m=4, batch_size=20, length_before_new_iter=200)
    loader = DataLoader(digits, batch_size=20, sampler=sampler)
    images, labels = next(iter(loader))
    assert images.shape == (20, 28, 28) and images.dtype == torch.uint8
    counts = np.bincount(labels.numpy())
    assert set(counts[counts > 0].tolist()) == {4}  # 5 classes x 4 each, as the sampler promises
    assert len(digits) == len(digits.train_labels) and digits.get_labels() == digits.train_labels.tolist()
    image, label = digits[3]
    assert torch.equal(image, digits.train_images[3]) and label == int(digits.train_labels[3])
    test = digits.split("test")
    assert len(test) == len(digits.test_labels) and test.get_labels() == digits.test_labels.tolist()
    assert len(list(DataLoader(test, batch_size=64))) == -(-len(test) // 64)
