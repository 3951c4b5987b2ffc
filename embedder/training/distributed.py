"""Training on several processes: PyTorch DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc-per-node N -m tripletshot.cli.embed train ...`` starts one process per device; :func:`session`
joins them (NCCL on CUDA, gloo on the CPU). A single process, without ``torchrun``, is a world of one
and nothing here changes what it does. Under ``torchrun``:

- **Batches.** Every rank draws the whole balanced batch from the same seeded sampling stream and keeps
  its share (:class:`ShardedSampler`), so the union is exactly the batch one process would draw. Each
  rank augments its share from its own stream (seeded by rank).
- **Triplets across ranks.** :class:`GatheredLoss` all-gathers the embeddings, labels and instance ids
  (ids offset by rank, so they stay unique) into the order one process would have them, and computes the
  whole batch's loss on every rank. As in pytorch-metric-learning's ``DistributedLossWrapper`` (which
  takes a single label per embedding, where this loss takes a class and an instance), the other ranks'
  embeddings are constants there: each rank's gradient flows back through its own embeddings only, and
  DDP *sums* the ranks' gradients (:func:`_sum_gradients`) to the gradient of the whole batch's loss.
- **The unlabelled pool.** Every rank draws the whole pool batch from the same seeded stream and keeps its share
  (:class:`ShardedPoolSampler`); :class:`GatheredPoolLoss` all-gathers the pool's embeddings (and pseudo-labels)
  as :class:`GatheredLoss` gathers the labelled ones, so its instance contrast has the whole batch's negatives,
  whatever the number of ranks, and the summed gradients are the whole batch's.
- **Batch norm** is synchronised (:func:`synchronise_batch_norm`): in training, each batch norm normalises
  with the mean and variance of the *whole* batch, all ranks' images, and its backward pass sums over the
  ranks, so the loss and the gradients are the whole batch's in training mode too. On CUDA it is torch's
  ``SyncBatchNorm`` (which waits for the device once per batch norm per step: it drops empty ranks' statistics
  with a boolean mask, pytorch#78549). Torch's refuses CPU tensors, so on gloo it is :class:`_Synchronised`,
  whose statistics are float32 whatever the input's dtype (as ``nn.BatchNorm`` keeps its own).
  ``test_distributed.py`` checks two ranks against one process in training mode, in float32 (what the CPU
  runs) and under bf16 autocast (what CUDA runs). The running statistics are then the same on every rank;
  rank 0's are broadcast at each forward and after each epoch all the same.
- **Stopping.** :meth:`World.any` tells every rank whether any rank got SIGINT/SIGTERM, after every step,
  so all stop at the same step; rank 0 alone writes the run folder, under its lock. It is one small
  all-reduce of a CPU tensor over a gloo group of its own, so it never waits for the device's queue (before,
  it was a device tensor and ``.item()`` waited for every step's kernels). On gloo its cost is measured in
  ``docs/guide.md`` ("Training on several processes").
- **Validation classes.** Rank 0 alone scores them (:mod:`embedder.training.held_out`) while the others wait;
  :meth:`World.share` hands its score to every rank, so every rank keeps the same best epoch.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from embedder.data.sampling import BalancedBatchSampler, NoLabelsSampler, PoolSampler
from embedder.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: a world of one without ``torchrun``."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs and writes the run."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def any(self, flag: bool, device: torch.device | None = None) -> bool:
        """Whether ``flag`` is true on any rank (a collective: every rank must call it). A host-side exchange
        of one integer (``device`` is not used): no device synchronisation, whatever the backend."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_host_group())
        return bool(value.item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def share(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (a collective: every rank must call it; the others wait meanwhile).
        One float over the host group: what rank 0 alone computed, so every rank decides alike on it."""
        if not self.distributed:
            return value
        shared = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(shared, src=0, group=_host_group())
        return float(shared.item())

    def share_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (batch-norm running statistics) on every rank. DDP broadcasts them before each
        forward, so after the last step of an epoch each rank still holds its own update: validation and the
        checkpoint want rank 0's, on every rank."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def gather_states(self, generator: torch.Generator) -> torch.Tensor:
        """Every rank's ``generator`` state, stacked in rank order, on every rank (for the checkpoint)."""
        states: list[Any] = [None] * self.size
        dist.all_gather_object(states, generator.get_state().tolist())  # plain ints: no tensor storage to share
        return torch.tensor(states, dtype=torch.uint8)


_HOST_GROUPS: dict[int, Any] = {}


def _host_group() -> Any:
    """A gloo group of every rank, for small host-side exchanges; the default group itself where it is gloo."""
    if dist.get_backend() == "gloo":
        return None  # the default group
    key = id(dist.group.WORLD)  # one per process group's lifetime (a test may create several)
    if key not in _HOST_GROUPS:
        _HOST_GROUPS.clear()
        _HOST_GROUPS[key] = dist.new_group(backend="gloo")
    return _HOST_GROUPS[key]


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward pass is the all-reduce of the gradient: a batch statistic that depends on
    every rank's values sends each rank the gradient of the whole batch's loss with respect to it."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        total = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


class _Synchronised:
    """The training-mode forward of a batch norm over every rank's part of the batch, as one process would
    compute it over the whole batch: the mean and (biased) variance of all the ranks' values, in two
    all-reduces that carry the gradient back (:class:`_SumOverRanks`); the running statistics are updated
    with the whole batch's mean and unbiased variance, as ``nn.BatchNorm`` does. The statistics are float32
    and the output has the input's dtype, as ``nn.BatchNorm``'s under autocast. Outside training, or with no
    process group, it is the plain batch norm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)  # type: ignore[misc]
        all_reduce = _SumOverRanks.apply
        dims = [d for d in range(x.dim()) if d != 1]
        h = x.float()
        count = torch.tensor([h.numel() / h.shape[1]], dtype=torch.float32, device=h.device)
        sums = all_reduce(torch.cat([h.sum(dims), count]))
        n = sums[-1]
        mean = sums[:-1] / n
        shape = [1, -1] + [1] * (h.dim() - 2)
        centred = h - mean.reshape(shape)
        var = all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), momentum)
        out = centred / torch.sqrt(var + self.eps).reshape(shape)
        if self.affine:
            out = out * self.weight.float().reshape(shape) + self.bias.float().reshape(shape)
        return out.to(x.dtype)


class SynchronisedBatchNorm1d(_Synchronised, nn.BatchNorm1d):
    pass


class SynchronisedBatchNorm2d(_Synchronised, nn.BatchNorm2d):
    pass


def synchronise_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """Make every batch norm of ``model`` synchronised over the ranks, in place; returns ``model``.

    On CUDA, torch's ``SyncBatchNorm`` (it takes over the batch norms' parameters and buffers, so the optimizer
    and the state dict keep the same tensors). Elsewhere ours: each stays an ``nn.BatchNorm2d`` or ``1d``.
    """
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces the children in place; model is no batch norm
        return model
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = SynchronisedBatchNorm2d
        elif type(module) is nn.BatchNorm1d:
            module.__class__ = SynchronisedBatchNorm1d
    return model


def local_processes() -> int:
    """Training processes on this machine (``torchrun``'s ``LOCAL_WORLD_SIZE``; 1 without it): they share its
    memory."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def launched_as_main() -> bool:
    """Whether this process is rank 0 of its ``torchrun`` launch (or was not launched by ``torchrun``), before
    the process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[tuple[World, torch.device]]:
    """Join ``torchrun``'s process group for the duration; yield the world and this rank's device.

    On CUDA each rank takes the GPU of its local rank. Without ``torchrun`` (no ``WORLD_SIZE`` above 1):
    a world of one, on ``device``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield (World(dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else World()), device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield World(dist.get_rank(), dist.get_world_size()), device
    finally:
        dist.destroy_process_group()


class ShardedSampler:
    """This rank's share of the batch that ``sampler`` draws: every rank draws the same, keeps its slice."""

    def __init__(self, sampler: BalancedBatchSampler | NoLabelsSampler, world: World) -> None:
        batch = sampler.batch  # 0 for a training on a pool alone: every rank's share is empty
        if batch % world.size:
            raise ConfigError(
                "batch_size", f"{{batch_size}} {batch} does not split evenly over {world.size} training processes"
            )
        self.sampler, self.world, self.share = sampler, world, batch // world.size

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        indices, labels = self.sampler.sample()
        mine = slice(self.world.rank * self.share, (self.world.rank + 1) * self.share)
        return indices[mine], labels[mine]


class ShardedPoolSampler:
    """This rank's share of the pool batch that ``sampler`` draws from the stream every rank shares: the union of
    the shares is the batch one process would draw (less a remainder that does not split over the ranks)."""

    def __init__(self, sampler: PoolSampler, world: World) -> None:
        self.sampler, self.world = sampler, world

    @property
    def batch(self) -> int:
        """Pool images a step, all ranks together."""
        return self.sampler.batch - self.sampler.batch % self.world.size

    def sample(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        images, clusters = self.sampler.sample()
        share = len(images) // self.world.size
        mine = slice(self.world.rank * share, (self.world.rank + 1) * share)
        return images[mine], (clusters[mine] if clusters is not None else None)

    def __getattr__(self, name: str) -> Any:  # images, labels, with_clusters: the pool's own
        return getattr(self.sampler, name)


def gather_views(x: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's ``[view one; view two]`` rows of ``x`` as one process would order them: all first views
    (rank 0's, rank 1's...), then all second views. This rank's rows keep their gradient; the others' are
    constants."""
    parts = [torch.empty_like(x) for _ in range(world.size)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[world.rank] = x
    rest = x.shape[1:]
    return torch.stack([p.reshape(2, -1, *rest) for p in parts], dim=1).reshape(-1, *rest)


class GatheredLoss(nn.Module):
    """``criterion`` (called as ``criterion(embeddings, class_labels, instance_ids)`` on the two views of a
    batch) on the whole batch, gathered from every rank."""

    def __init__(self, criterion: nn.Module, world: World) -> None:
        super().__init__()
        self.criterion, self.world = criterion, world

    def forward(self, embeddings: torch.Tensor, class_labels: torch.Tensor, instance_ids: torch.Tensor) -> torch.Tensor:
        images_here = len(embeddings) // 2
        unique_ids = instance_ids + self.world.rank * images_here  # ranks hold equal shares
        return self.criterion(
            gather_views(embeddings, self.world),
            gather_views(class_labels, self.world),
            gather_views(unique_ids, self.world),
        )


class GatheredPoolLoss(nn.Module):
    """``pool_loss`` (called as ``pool_loss(two views' embeddings, clusters)``) on the whole pool batch, gathered
    from every rank: the instance contrast's negatives are every rank's images, as in one process."""

    def __init__(self, pool_loss: nn.Module, world: World) -> None:
        super().__init__()
        self.pool_loss, self.world = pool_loss, world

    def forward(self, embeddings: torch.Tensor, clusters: torch.Tensor | None = None) -> torch.Tensor:
        gathered = None
        if clusters is not None:  # one per image, in rank order (the pool loss repeats them for the two views)
            parts = [torch.empty_like(clusters) for _ in range(self.world.size)]
            dist.all_gather(parts, clusters.contiguous())
            gathered = torch.cat(parts)
        return self.pool_loss(gather_views(embeddings, self.world), gathered)


def _sum_gradients(process_group: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP's all-reduce without its division by the world size (see the module doc). DDP checks these
    annotations as objects, which is why this module does not postpone annotations."""
    future = dist.all_reduce(bucket.buffer(), group=process_group, async_op=True).get_future()
    return future.then(lambda done: done.value()[0])


class _TrainingOutputs(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.training_outputs(x)


class DistributedNet(nn.Module):
    """The training loop's view of an :class:`~embedder.models.network.EmbeddingNet` under DDP: ``training_outputs``
    runs through DDP's forward, so the backward pass sums the gradients over the ranks."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__()
        device_ids = [device.index] if device.type == "cuda" else None
        synchronise_batch_norm(model, device)  # the whole batch's statistics on every rank, as one process has them
        self.ddp = DistributedDataParallel(_TrainingOutputs(model), device_ids=device_ids)
        self.ddp.register_comm_hook(None, _sum_gradients)

    def training_outputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.ddp(x)
