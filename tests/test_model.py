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


def test_an_image_embeds_the_same_alone_and_among_hundreds_of_others():
    """Embedding is per image: batch norm uses its running statistics (not the batch's), and the folded copy that
    ``embed`` uses from 512 images on gives what the plain model gives one image. Training mode would fail this."""
    torch.manual_seed(0)
    model = EmbeddingNet(embedding_dim=256)
    with torch.no_grad():  # running statistics that are not the identity, as after training
        model.train()(torch.randn(256, 1, 28, 28) * 0.5 + 0.2)
    embedder = Embedder(model.eval(), mean=0.13, std=0.3)
    images = (torch.rand(600, 28, 28) * 255).to(torch.uint8)
    alone = embedder.embed(images[:1])
    among = embedder.embed(images)  # 600: the batch-norm-folded inference copy
    torch.testing.assert_close(torch.from_numpy(among[:1]), torch.from_numpy(alone), atol=1e-5, rtol=1e-4)
    model.train()
    with torch.no_grad():
        in_training = model(embedder_input(images[:4]))
    assert not torch.allclose(in_training[:1], model(embedder_input(images[:1]).repeat(2, 1, 1, 1))[:1], atol=1e-3)


def embedder_input(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() / 255 - 0.13) / 0.3).unsqueeze(1)


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
