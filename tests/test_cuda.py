"""CUDA paths. The tests marked ``cuda`` skip without a GPU; the others run the CUDA path's code on the CPU in its dtype
(bf16 under autocast: ``embedder.utils.precision``).

The CPU tests run the very same code: the trainer has one path, parameterised by the device.
"""

import pytest
import torch

from embedder.data.sampling import BalancedBatchSampler
from embedder.losses.triplet import InstanceAndClassTripletLoss
from embedder.models.network import EmbeddingNet
from embedder.training.trainer import views_loss

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def one_step_setup(device):
    g = torch.Generator(device).manual_seed(0)
    images = torch.randint(0, 256, (600, 28, 28), dtype=torch.uint8, device=device)
    labels = torch.arange(3, device=device).repeat(200)
    model = EmbeddingNet(256).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sampler = BalancedBatchSampler(labels, [0, 1, 2], 16, 3, g)
    return g, images, model, opt, sampler


@cuda
def test_training_step_makes_no_host_sync():
    device = torch.device("cuda")
    g, images, model, opt, sampler = one_step_setup(device)
    criterion = InstanceAndClassTripletLoss()

    def step() -> torch.Tensor:
        indices, labels = sampler.sample()
        loss = views_loss(model, criterion, images[indices], labels, g, (0.1, 0.3))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    step()  # the first step initialises CUDA and the optimizer state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        total = step() + step() + step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total).item()


def test_the_step_runs_on_the_cpu_with_the_same_code():
    g, images, model, opt, sampler = one_step_setup(torch.device("cpu"))
    indices, labels = sampler.sample()
    assert indices.shape == (48,) and sorted(labels.bincount().tolist()) == [16, 16, 16]
    loss = views_loss(model, InstanceAndClassTripletLoss(), images[indices], labels, g, (0.1, 0.3))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_the_precision_rule_is_bf16_on_cuda_and_the_callers_elsewhere():
    from embedder.utils.precision import autocast_dtype, mixed_precision

    assert autocast_dtype(torch.device("cuda", 0)) is torch.bfloat16
    assert autocast_dtype(torch.device("cpu")) is None
    with torch.autocast("cpu", torch.bfloat16), mixed_precision(torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")  # the CPU enters nothing: an enclosing autocast stays on


def conv_output_dtypes(model: torch.nn.Module) -> list[torch.dtype]:
    seen: list[torch.dtype] = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def test_the_step_runs_on_the_cpu_in_the_cuda_dtype():
    """views_loss under a bf16 autocast on the CPU: CUDA's dtype through the same code, to a finite loss and
    float32 gradients on every parameter, and near the float32 loss."""
    g, images, model, opt, sampler = one_step_setup(torch.device("cpu"))
    seen = conv_output_dtypes(model)
    indices, labels = sampler.sample()
    batch = images[indices], labels
    state = {k: v.clone() for k, v in model.state_dict().items()}
    reference = views_loss(model, InstanceAndClassTripletLoss(), *batch, torch.Generator().manual_seed(1), (0.1, 0.3))
    assert set(seen) == {torch.float32}
    model.load_state_dict(state)
    seen.clear()
    with torch.autocast("cpu", torch.bfloat16):
        loss = views_loss(model, InstanceAndClassTripletLoss(), *batch, torch.Generator().manual_seed(1), (0.1, 0.3))
    assert set(seen) == {torch.bfloat16}  # before: views_loss switched autocast off on the CPU
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert abs(loss.item() - reference.item()) < 0.05 * reference.item()


def test_embedding_runs_on_the_cpu_in_the_cuda_dtype():
    """Embedder.embed under a bf16 autocast on the CPU, through the model and through its fused copy (FUSE_FROM
    images or more): unit vectors near the float32 ones."""
    from embedder.models.embedder import FUSE_FROM, Embedder

    torch.manual_seed(0)
    embedder = Embedder(EmbeddingNet(64, width=8), mean=0.1, std=0.3)
    images = torch.randint(0, 256, (FUSE_FROM, 28, 28), dtype=torch.uint8)
    seen = conv_output_dtypes(embedder.model)
    for batch in (images[:8], images):
        reference = embedder.embed(batch)
        with torch.autocast("cpu", torch.bfloat16):
            vectors = embedder.embed(batch)
        assert vectors.dtype == reference.dtype and abs((vectors * reference).sum(1) - 1).max() < 0.02
    assert torch.bfloat16 in seen
