"""CUDA paths. No machine of this project has a GPU, so these skip here; they run where CUDA exists.

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
