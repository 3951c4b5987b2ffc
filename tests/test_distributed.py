"""DDP on the CPU with gloo, two processes: the same loss and gradients as one process, identical weights on
both ranks after a training, and SIGTERM to a ``torchrun`` training followed by ``--resume``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from embedder.config import TrainConfig
from embedder.losses.triplet import InstanceAndClassTripletLoss
from embedder.models.network import EmbeddingNet
from embedder.runs.run import Run
from embedder.runs.store import RunDir
from embedder.training.distributed import DistributedNet, GatheredLoss, World, gather_views
from embedder.training.trainer import train

ROOT = Path(__file__).resolve().parent.parent
IMAGES = 24  # the whole batch: 3 classes x 8 images, two views each


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# The dtype each path really trains in: float32 on the CPU, bf16 autocast on CUDA (embedder.utils.precision).
# The CPU under bf16 autocast runs the CUDA path's dtype through the gloo synchronisation.
PATHS = [
    pytest.param("cpu", None, id="cpu-float32"),
    pytest.param("cpu", torch.bfloat16, id="cpu-bf16-autocast"),
    pytest.param("cuda:0", torch.bfloat16, id="cuda-bf16-autocast", marks=CUDA),
]


# bf16 keeps 8 bits of mantissa, so two ranks and one process round apart here and there. Measured on this test:
# each weight's gradient 1-5% away from one process's (in norm), against 36-58% without the synchronisation and
# 5-15% between bf16 and float32 in one process; the loss 4e-4 away, against 2.6% without it. A bias that a batch
# norm follows has no gradient (1e-7 in float32, rounding); bf16 rounds it to ~1e-3: the 2e-3 allows for it.
def near(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype | None) -> bool:
    if dtype is None:
        return torch.allclose(got, want, atol=1e-6, rtol=1e-4)
    return got.dtype == want.dtype and float((got - want).norm()) <= 0.1 * float(want.norm()) + 2e-3


def batch(device: str = "cpu") -> tuple[EmbeddingNet, torch.Tensor, torch.Tensor]:
    """A seeded model, in training mode (batch norm on the batch's statistics), and a batch ``[view one;
    view two]`` of real-sized images, the same in every process."""
    torch.manual_seed(0)
    model = EmbeddingNet(embedding_dim=64, width=8).train()
    views = torch.randn(2, IMAGES, 1, 28, 28)
    labels = torch.arange(3).repeat_interleave(IMAGES // 3)
    return model.to(device), views.to(device), labels.to(device)


def autocast(device: str, dtype: torch.dtype | None):
    """What ``views_loss`` holds around the forward pass on a device whose precision is ``dtype``."""
    return torch.autocast(torch.device(device).type, dtype) if dtype is not None else contextlib.nullcontext()


def _equivalence_worker(
    rank: int, world_size: int, rendezvous: str, out: str, plain: bool = False, device: str = "cpu", dtype=None
) -> None:
    torch.set_num_threads(1)
    if plain:  # each rank's batch norm on its own half, as DDP alone does
        import embedder.training.distributed as distributed

        distributed.synchronise_batch_norm = lambda model, *_: model
    # gloo on CUDA too: two ranks share this machine's one GPU, which NCCL refuses
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    world, share = World(rank, world_size), IMAGES // world_size
    mine = slice(rank * share, (rank + 1) * share)

    model, views, labels = batch(device)
    net, loss_fn = DistributedNet(model, torch.device(device)), GatheredLoss(InstanceAndClassTripletLoss(), world)
    with autocast(device, dtype):
        outputs = net.training_outputs(torch.cat([views[0, mine], views[1, mine]]))
    ids = torch.arange(share, device=device).repeat(2)
    loss = loss_fn(outputs.float(), labels[mine].repeat(2), ids)
    loss.backward()

    # The gather against pytorch-metric-learning's DistributedLossWrapper, on a loss both can take.
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.utils.distributed import DistributedLossWrapper

    generator = torch.Generator().manual_seed(1)
    every = F.normalize(torch.randn(2, IMAGES, 16, generator=generator), dim=2)
    every_labels = torch.randint(0, 4, (IMAGES,), generator=generator)
    local = torch.cat([every[0, mine], every[1, mine]])
    ours, theirs = local.clone().requires_grad_(), local.clone().requires_grad_()
    ours_loss = TripletMarginLoss()(gather_views(ours, world), gather_views(every_labels[mine].repeat(2), world))
    (ours_loss * world_size).backward()  # PML scales by the world size where DDP would average
    theirs_loss = DistributedLossWrapper(TripletMarginLoss())(theirs, every_labels[mine].repeat(2))
    theirs_loss.backward()
    torch.save(
        {
            "loss": loss.detach().cpu(),
            "grads": {n: p.grad.cpu() for n, p in model.named_parameters()},
            "buffers": {n: b.cpu() for n, b in model.named_buffers()},
            "pml": (ours_loss.detach() * world_size, theirs_loss.detach(), ours.grad, theirs.grad),
        },
        f"{out}/rank{rank}.pt",
    )
    dist.barrier()  # neither rank tears gloo down while the other is still in a collective (a SIGABRT, seen once)
    dist.destroy_process_group()


def one_process(device: str = "cpu", dtype=None) -> tuple[EmbeddingNet, torch.Tensor]:
    """The reference: the whole batch in one process, its loss backpropagated, in the same precision."""
    model, views, labels = batch(device)
    with autocast(device, dtype):
        outputs = model.training_outputs(torch.cat([views[0], views[1]]))
    ids = torch.arange(IMAGES, device=device).repeat(2)
    loss = InstanceAndClassTripletLoss()(outputs.float(), labels.repeat(2), ids)
    loss.backward()
    return model.cpu(), loss.detach().cpu()


@pytest.mark.parametrize(("device", "dtype"), PATHS)
def test_two_processes_with_half_a_batch_each_match_one_process_with_the_whole_batch(tmp_path, device, dtype):
    """In training mode: batch norm's statistics, loss, gradients and running statistics are the whole batch's,
    in the precision each device trains in."""
    mp.spawn(_equivalence_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path), False, device, dtype), nprocs=2)
    model, loss = one_process(device, dtype)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["loss"], loss, atol=1e-6, rtol=1e-5 if dtype is None else 5e-3)
        for name, parameter in model.named_parameters():
            assert near(got["grads"][name], parameter.grad, dtype), (name, got["grads"][name], parameter.grad)
        for name, buffer in model.named_buffers():  # float32 (num_batches_tracked an integer), bf16 or not
            torch.testing.assert_close(got["buffers"][name], buffer, atol=1e-6 if dtype is None else 1e-4, rtol=1e-5)
        ours_loss, theirs_loss, ours_grad, theirs_grad = got["pml"]
        torch.testing.assert_close(ours_loss, theirs_loss)
        torch.testing.assert_close(ours_grad, theirs_grad)
        assert ours_grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["float32", "bf16-autocast"])
def test_without_synchronised_batch_norm_the_halves_differ_from_the_whole(tmp_path, dtype):
    """What the claim was before: DDP alone gives each rank its own half's statistics, and other gradients, by far
    more than the tolerance of the test above, in either precision."""
    args = (2, str(tmp_path / "rendezvous"), str(tmp_path), True, "cpu", dtype)
    mp.spawn(_equivalence_worker, args=args, nprocs=2)
    model, loss = one_process("cpu", dtype)
    got = torch.load(tmp_path / "rank0.pt", weights_only=True)
    weights = [n for n, _ in model.named_parameters() if n.endswith("weight")]
    assert not any(near(got["grads"][n], p.grad, dtype) for n, p in model.named_parameters() if n in weights)
    assert not torch.allclose(got["loss"], loss, atol=1e-6, rtol=5e-3), (got["loss"], loss)


def _stop_flag_worker(rank: int, world_size: int, rendezvous: str, out: str) -> None:
    import time

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    world = World(rank, world_size)
    answers = [world.any(rank == 1 and i == 7) for i in range(10)]
    started = time.perf_counter()
    for _ in range(200):
        world.any(False)
    torch.save({"answers": answers, "ms": (time.perf_counter() - started) / 200 * 1e3}, f"{out}/stop{rank}.pt")
    dist.barrier()  # as above
    dist.destroy_process_group()


def test_the_stop_flag_reaches_every_rank_at_the_same_step(tmp_path):
    mp.spawn(_stop_flag_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2)
    for rank in range(2):
        got = torch.load(tmp_path / f"stop{rank}.pt", weights_only=True)
        assert got["answers"] == [i == 7 for i in range(10)]
        print(f"rank {rank}: World.any {got['ms']:.3f} ms a call on gloo")  # the figure docs/ quotes (pytest -s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _training_worker(rank: int, world_size: int, port: int, run_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size))
    config = TrainConfig(
        dataset="digits", classes=[0, 1, 2, 3, 4], epochs=3, m_per_class=16, device="cpu", run_dir=run_dir
    )

    def keep_weights(epoch: int, embedder) -> None:
        if epoch == config.epochs:
            torch.save(embedder.model.state_dict(), f"{out}/weights{rank}.pt")

    result = train(config, progress=False, log=lambda _: None, on_epoch_end=keep_weights)
    assert result.written == (rank == 0)


def test_a_two_process_training_learns_and_ends_with_the_same_weights_on_both_ranks(tmp_path):
    run_dir = tmp_path / "run"
    mp.spawn(_training_worker, args=(2, free_port(), str(run_dir), str(tmp_path)), nprocs=2)
    first, second = (torch.load(tmp_path / f"weights{r}.pt", weights_only=True) for r in range(2))
    for name in first:
        assert torch.equal(first[name], second[name]), name
    run = Run.load(run_dir)
    assert run.metadata["processes"] == 2
    curve = run.metadata["curve"]
    assert len(curve) == 3 and curve[-1]["train_loss"] < curve[0]["train_loss"]
    for name, value in run.embedder.model.state_dict().items():
        assert torch.equal(value, first[name]), name


def _val_classes_worker(rank: int, world_size: int, port: int, run_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size))
    config = TrainConfig(dataset="digits", classes="0-9", val_classes="7,8,9", epochs=3, m_per_class=16,
                         embedding_dim=64, width=8, device="cpu", run_dir=run_dir)  # fmt: skip

    def keep_weights(epoch: int, embedder) -> None:
        torch.save(embedder.model.state_dict(), f"{out}/weights{rank}-{epoch}.pt")

    train(config, progress=False, log=lambda _: None, on_epoch_end=keep_weights)


def test_a_two_process_training_scores_its_val_classes_on_rank_0_and_both_keep_the_best_epoch(tmp_path):
    """Rank 0 scores the validation classes while rank 1 waits for its score: no deadlock, and the run ends with
    the weights of the epoch rank 0 found best, which both ranks had."""
    run_dir = tmp_path / "run"
    mp.spawn(_val_classes_worker, args=(2, free_port(), str(run_dir), str(tmp_path)), nprocs=2)
    run = Run.load(run_dir)
    held_out = run.metadata["held_out"]
    assert run.metadata["val_classes"] == [7, 8, 9] and [r["epoch"] for r in held_out["curve"]] == [1, 2, 3]
    best = held_out["best_epoch"]
    for rank in range(2):
        weights = torch.load(tmp_path / f"weights{rank}-{best}.pt", weights_only=True)
        for name, value in run.embedder.model.state_dict().items():
            assert torch.equal(value, weights[name]), (rank, name)


def torchrun(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "tripletshot.cli.embed",
        *args,
    ]


def test_sigterm_to_a_two_process_training_checkpoints_and_it_resumes(tmp_path):
    run_dir = str(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    args = ["train", "--dataset", "digits", "--classes", "0-4", "--epochs", "4", "--m-per-class", "16"]
    process = subprocess.Popen(
        torchrun(*args, "--device", "cpu", "--run-dir", run_dir),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "epoch 1/4: train loss" in line:
            process.send_signal(signal.SIGTERM)  # torchrun passes it on to both workers
            break
    output = "".join(seen) + process.communicate(timeout=300)[0]
    assert process.returncode != 0, output
    assert "interrupted by SIGTERM" in output and "--resume" in output, output
    checkpoint = RunDir(run_dir).read_tensors("checkpoint")
    assert checkpoint["epoch"] >= 1 and len(checkpoint["augment_generators"]) == 2
    stopped_at = (checkpoint["epoch"], checkpoint["step"])

    resumed = subprocess.run(
        torchrun("train", "--resume", "--run-dir", run_dir), cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run_dir} at epoch {stopped_at[0] + 1} of 4, step {stopped_at[1]}" in resumed.stderr
    assert resumed.stdout.count("saved run to") == 1  # rank 0 alone reports
    assert [row["epoch"] for row in Run.load(run_dir).metadata["curve"]] == [1, 2, 3, 4]


@pytest.mark.parametrize("processes", [5])
def test_a_batch_that_does_not_split_over_the_processes_is_refused(processes):
    from embedder.data.sampling import BalancedBatchSampler
    from embedder.errors import ConfigError
    from embedder.training.distributed import ShardedSampler

    labels = torch.arange(3).repeat_interleave(10)
    sampler = BalancedBatchSampler(labels, [0, 1, 2], 8, 3, torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="batch_size 24 does not split evenly over 5"):
        ShardedSampler(sampler, World(0, processes))
    halves = [ShardedSampler(BalancedBatchSampler(labels, [0, 1, 2], 8, 3, torch.Generator().manual_seed(0)),
                             World(r, 2)).sample() for r in range(2)]  # fmt: skip
    whole = sampler.sample()
    assert torch.equal(torch.cat([h[0] for h in halves]), whole[0])
    assert torch.equal(torch.cat([h[1] for h in halves]), whole[1])


def _pool_equivalence_worker(rank: int, world_size: int, rendezvous: str, out: str) -> None:
    """The pool's contrast on two ranks with half the pool batch each, gathered as a training gathers it: with
    instance contrast alone, then with pseudo-labels."""
    from embedder.losses.contrast import PoolContrastLoss
    from embedder.training.distributed import GatheredPoolLoss

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    world, share = World(rank, world_size), IMAGES // world_size
    mine = slice(rank * share, (rank + 1) * share)
    for clustered in (False, True):
        model, views, clusters = batch()
        net = DistributedNet(model, torch.device("cpu"))
        loss_fn = GatheredPoolLoss(PoolContrastLoss(weight=0.7), world)
        outputs = net.training_outputs(torch.cat([views[0, mine], views[1, mine]]))
        loss = loss_fn(outputs, clusters[mine] if clustered else None)
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        torch.save({"loss": loss.detach(), "grads": grads}, f"{out}/pool{rank}-{clustered}.pt")
    dist.barrier()
    dist.destroy_process_group()


def test_the_pools_contrast_on_two_processes_is_one_process_contrast_on_the_whole_pool_batch(tmp_path):
    """Every rank's pool images are negatives of every other's: the loss and the summed gradients are those of
    one process with the whole pool batch (before, each rank contrasted its own half: another objective)."""
    from embedder.losses.contrast import PoolContrastLoss

    mp.spawn(_pool_equivalence_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2)
    for clustered in (False, True):
        model, views, clusters = batch()
        outputs = model.training_outputs(torch.cat([views[0], views[1]]))
        loss = PoolContrastLoss(weight=0.7)(outputs, clusters if clustered else None)
        loss.backward()
        for rank in range(2):
            got = torch.load(tmp_path / f"pool{rank}-{clustered}.pt", weights_only=True)
            torch.testing.assert_close(got["loss"], loss.detach(), atol=1e-6, rtol=1e-5)
            for name, parameter in model.named_parameters():  # float32 sums in another order: ~1e-5 of the largest
                assert torch.allclose(got["grads"][name], parameter.grad, atol=2e-5, rtol=1e-4), (clustered, name)
        halves = []  # what it was: each rank's contrast over its own half alone, another loss
        for half in (slice(0, IMAGES // 2), slice(IMAGES // 2, IMAGES)):
            model, views, clusters = batch()
            with torch.no_grad():
                own = model.training_outputs(torch.cat([views[0, half], views[1, half]]))
                halves.append(float(PoolContrastLoss(weight=0.7)(own, clusters[half] if clustered else None)))
        assert abs(sum(halves) / 2 - float(loss.detach())) > 1e-3, clustered


POOLED = {"labels-and-pool": "0,1,2", "pool-alone": "none"}


def _pooled_training_worker(rank: int, world_size: int, ports: list[int], tmp: str) -> None:
    """Two dry runs (two steps each), one after the other in the same two processes (one spawn: seconds saved)."""
    torch.set_num_threads(1)
    for (name, classes), port in zip(POOLED.items(), ports, strict=True):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                          WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size))  # fmt: skip
        config = TrainConfig(dataset="digits", classes=classes, unlabelled="rest", m_per_class=8, embedding_dim=64,
                             width=8, device="cpu", run_dir=f"{tmp}/{name}", dry_run=True)  # fmt: skip

        def keep_weights(epoch: int, embedder, name=name) -> None:
            torch.save(embedder.model.state_dict(), f"{tmp}/{name}-weights{rank}.pt")

        result = train(config, progress=False, log=lambda _: None, on_epoch_end=keep_weights)
        assert result.written == (rank == 0)


def test_two_process_trainings_with_a_pool_end_with_the_same_weights_on_both_ranks(tmp_path):
    """``--unlabelled rest`` under DDP, beside labelled classes and alone (``--classes none`` crashed: the sharded
    sampler read the empty labelled sampler's m)."""
    mp.spawn(_pooled_training_worker, args=(2, [free_port(), free_port()], str(tmp_path)), nprocs=2)
    for name in POOLED:
        first, second = (torch.load(tmp_path / f"{name}-weights{r}.pt", weights_only=True) for r in range(2))
        for key in first:
            assert torch.equal(first[key], second[key]), (name, key)
        run = Run.load(tmp_path / name)
        pool = run.metadata["unlabelled"]
        assert run.metadata["processes"] == 2 and pool["images"] > 0
        assert pool["per_step"] == (3 * 8 if name == "labels-and-pool" else 2 * 8)  # the whole step's, both ranks
        for key, value in run.embedder.model.state_dict().items():
            assert torch.equal(value, first[key]), (name, key)


def test_each_process_on_a_machine_takes_its_share_of_the_pools_memory(monkeypatch):
    from embedder.data import pool as pool_module

    monkeypatch.setattr(pool_module, "pool_capacity", lambda: 1000)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    from embedder.training.distributed import local_processes

    keep, warnings = pool_module._within_capacity(5000, seed=0, processes=local_processes())
    assert len(keep) == 125 and "shared by the 8 training processes" in warnings[0]
    assert len(pool_module._within_capacity(5000, seed=0)[0]) == 1000
