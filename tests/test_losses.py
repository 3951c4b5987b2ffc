"""The sync-free miners and reducer give exactly what pytorch-metric-learning's own give."""

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import BatchHardMiner

from embedder.losses.miners import HardestTripletMiner, NonZeroMeanReducer, TwoViewTripletMiner
from embedder.losses.triplet import InstanceAndClassTripletLoss


def two_view_batch(b=12, classes=3, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = F.normalize(torch.randn(2 * b, dim, generator=g), dim=1)
    ids = torch.arange(b).repeat(2)
    labels = (torch.arange(b) % classes).repeat(2)
    return emb, labels, ids


def as_set(triplets):
    return set(zip(*(t.tolist() for t in triplets), strict=True))


def test_two_view_miner_yields_every_instance_triplet():
    emb, _, ids = two_view_batch()
    ours = TwoViewTripletMiner()(emb, ids)
    assert len(ours[0]) == 24 * 22
    n = len(ids)
    expected = {(a, p, q) for a in range(n) for p in range(n) for q in range(n)
                if a != p and ids[a] == ids[p] and ids[a] != ids[q]}  # fmt: skip
    assert as_set(ours) == expected


def test_hardest_miner_matches_pml_batch_hard():
    emb, labels, _ = two_view_batch(seed=3)
    assert as_set(HardestTripletMiner()(emb, labels)) == as_set(BatchHardMiner()(emb, labels))


@pytest.mark.parametrize("margin", [0.05, 0.2, 1.0])
def test_reducer_matches_avg_non_zero(margin):
    emb, labels, ids = two_view_batch(seed=1)
    triplets = TwoViewTripletMiner()(emb, ids)
    ours = TripletMarginLoss(margin=margin, reducer=NonZeroMeanReducer())(emb, ids, triplets)
    pml = TripletMarginLoss(margin=margin)(emb, ids, triplets)
    torch.testing.assert_close(ours, pml)


def test_combined_loss_matches_pml_composition_and_has_gradients():
    emb, labels, ids = two_view_batch(seed=2)
    emb.requires_grad_(True)
    loss = InstanceAndClassTripletLoss(margin=0.2, class_weight=0.3)(emb, labels, ids)
    expected = TripletMarginLoss(margin=0.2)(emb, ids) + 0.3 * TripletMarginLoss(margin=0.2)(
        emb, labels, BatchHardMiner()(emb, labels)
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_collapsed_embeddings_cost_the_margin():
    emb = F.normalize(torch.ones(8, 4), dim=1)
    ids, labels = torch.arange(4).repeat(2), torch.tensor([0, 1, 0, 1]).repeat(2)
    loss = InstanceAndClassTripletLoss(margin=0.2, class_weight=0.3)(emb, labels, ids)
    assert loss.item() == pytest.approx(0.2 * 1.3, abs=1e-4)


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5])
def test_supcon_matrix_form_equals_pml_supcon(temperature):
    from pytorch_metric_learning.losses import SupConLoss

    from embedder.losses.contrast import supcon_loss

    emb, labels, _ = two_view_batch(seed=4)
    torch.testing.assert_close(supcon_loss(emb, labels, temperature), SupConLoss(temperature)(emb, labels))


def test_supcon_skips_anchors_without_positives_like_pml():
    from pytorch_metric_learning.losses import SupConLoss

    from embedder.losses.contrast import supcon_loss

    emb = F.normalize(torch.randn(7, 8, generator=torch.Generator().manual_seed(5)), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3])  # classes 2 and 3 have one image each
    torch.testing.assert_close(supcon_loss(emb, labels, 0.1), SupConLoss(0.1)(emb, labels))


@pytest.mark.parametrize("temperature", [0.07, 0.3])
def test_two_view_ntxent_equals_pml_ntxent(temperature):
    from pytorch_metric_learning.losses import NTXentLoss

    from embedder.losses.contrast import two_view_ntxent

    emb, _, ids = two_view_batch(seed=6)
    torch.testing.assert_close(two_view_ntxent(emb, temperature), NTXentLoss(temperature)(emb, ids))


def test_contrast_loss_has_gradients_and_weights_its_instance_term():
    from embedder.losses.contrast import ClassAndInstanceContrastLoss, supcon_loss, two_view_ntxent

    emb, labels, ids = two_view_batch(seed=7)
    emb.requires_grad_(True)
    loss = ClassAndInstanceContrastLoss(0.2, instance_weight=0.5)(emb, labels, ids)
    torch.testing.assert_close(loss, supcon_loss(emb, labels, 0.2) + 0.5 * two_view_ntxent(emb, 0.2))
    loss.backward()
    assert emb.grad.abs().sum() > 0


def test_the_losses_defaults_are_the_configs():
    """One default for the instance term: the loss built with no arguments is the one TrainConfig's defaults build."""
    from embedder.config import TrainConfig
    from embedder.losses.contrast import ClassAndInstanceContrastLoss, make_loss

    config = TrainConfig()
    assert ClassAndInstanceContrastLoss().instance_weight == config.instance_weight == 0.0
    assert make_loss("contrast").instance_weight == config.instance_weight
    assert make_loss("triplet").class_weight == config.class_weight
    # Weight 0 ("0: none", as --instance-weight's help says) is no instance term at all: class contrast alone.
    from embedder.losses.contrast import supcon_loss, two_view_ntxent

    emb, labels, ids = two_view_batch(seed=3)
    built = make_loss("contrast", temperature=config.temperature, instance_weight=config.instance_weight)
    torch.testing.assert_close(built(emb, labels, ids), supcon_loss(emb, labels, config.temperature))
    assert two_view_ntxent(emb, config.temperature) > 0.1  # so an instance term would have shown
