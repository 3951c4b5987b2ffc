import pytest
import torch

from embedder.models.embedder import Centering, Embedder
from embedder.models.network import EmbeddingNet
from embedder.training.augment import augment_batch


@pytest.mark.parametrize("dim", [256, 1024])
def test_embeddings_have_the_requested_dim_and_unit_norm(dim):
    images = (torch.rand(5, 28, 28) * 255).to(torch.uint8)
    out = Embedder(EmbeddingNet(embedding_dim=dim), mean=0.13, std=0.3).embed(images)
    assert out.shape == (5, dim)
    torch.testing.assert_close(torch.from_numpy(out).norm(dim=1), torch.ones(5))


def test_centering_is_an_explicit_transform_fitted_on_features():
    images = (torch.rand(40, 28, 28) * 255).to(torch.uint8)
    embedder = Embedder(EmbeddingNet(embedding_dim=256), mean=0.13, std=0.3)
    plain = embedder.embed(images)
    features = embedder.features(images)
    embedder.fit_centering(images)
    torch.testing.assert_close(embedder.centering.mean, features.mean(0))
    centred = embedder.embed(images)
    assert abs(float((centred - plain).max())) > 1e-3  # it changes the embedding...
    reloaded = Centering(256)
    reloaded.load_state_dict(embedder.centering.state_dict())  # ...and is saved as a state dict of its own
    torch.testing.assert_close(reloaded(features), torch.from_numpy(centred), atol=1e-5, rtol=1e-4)


def test_shared_weights_embed_the_same_image_the_same_way():
    model = EmbeddingNet(embedding_dim=256).eval()
    x = torch.randn(1, 1, 28, 28)
    with torch.inference_mode():
        batch = model(torch.cat([x, torch.randn(3, 1, 28, 28), x]))
    torch.testing.assert_close(batch[0], batch[-1])


def test_embedding_dim_must_fill_the_grid():
    with pytest.raises(ValueError, match="multiple of 16"):
        EmbeddingNet(embedding_dim=100)


def test_augmentation_keeps_shape_range_and_is_seeded():
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    c = augment_batch(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1.0 + 1e-6
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert (a.sum(dim=(1, 2, 3)) > 0).all()  # the digit survives


def test_inference_copy_with_folded_batch_norm_embeds_the_same(digits_run):
    """``for_inference()`` (batch norm folded, ReLU after max-pool) on a trained model: same embeddings."""
    from embedder.runs.run import Run

    model = Run.load(digits_run).embedder.model
    fused = model.for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.backbone.modules())
    x = torch.randn(64, 1, 28, 28)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-4)
    assert model.training is False and fused is not model
