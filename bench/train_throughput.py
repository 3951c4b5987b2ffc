"""Training throughput: the project's trainer against a textbook PyTorch loop, same work per image.

    python bench/train_throughput.py --data-dir DIR [--steps 15] [--rounds 3] [--workers 0,2] [--profile]

Both loops train the same ``EmbeddingNet`` with the same ``InstanceAndClassTripletLoss`` (two augmented
views per image, all instance triplets + batch-hard class triplets), the same AdamW, on MNIST classes
0,1,2 with batches of 3 classes x 64 images (384 views):

* **project**: ``embedder.training.trainer.train_one_epoch``: the data is one uint8 tensor on the device, batches are
  drawn by index there, the two views come from one batched ``augment_batch`` call each.
* **textbook**: torchvision's ``MNIST`` dataset whose transform returns two views per image, made per
  sample (PIL ``RandomAffine``, ``ToTensor``, ``ElasticTransform``, ``Normalize``, ``RandomErasing``), a
  ``DataLoader`` with PML's ``MPerClassSampler(m=64)``, ``.to(device)`` per batch and ``loss.item()``.

The two alternate in ``--rounds`` blocks of ``--steps`` timed steps (after warm-up steps), so a noisy shared
machine slows both alike; the table gives each one's median over the rounds. Throughput counts *source*
images (each yields two views). A second pass times each phase of a step to show where the time goes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from common import machine, sync, torchvision_mnist_root
from pytorch_metric_learning.samplers import MPerClassSampler
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import MNIST

from embedder.data.datasets import default_data_root, load_dataset
from embedder.data.sampling import BalancedBatchSampler, split_validation
from embedder.losses.triplet import InstanceAndClassTripletLoss
from embedder.models.network import EmbeddingNet
from embedder.training.augment import augment_batch
from embedder.training.devices import resolve_device
from embedder.training.trainer import train_one_epoch

CLASSES = [0, 1, 2]
M_PER_CLASS = 64
BATCH = M_PER_CLASS * len(CLASSES)


class TwoViews:
    """A per-sample transform returning two independently augmented views, stacked ``(2, 1, 28, 28)``."""

    def __init__(self, mean: float, std: float, elastic: bool = True) -> None:
        # Roughly augment.py's ranges: +-15 deg, 6% shift, 0.85-1.15 scale, ~14 deg shear, a smooth
        # elastic field (Simard's alpha 34, sigma 4), erasing with p 0.3. No stroke-thickness op exists
        # in torchvision, so the textbook views cost a little *less* than the project's.
        steps = [
            transforms.RandomAffine(degrees=15, translate=(0.06, 0.06), scale=(0.85, 1.15), shear=14),
            transforms.ToTensor(),
            transforms.ElasticTransform(alpha=34.0, sigma=4.0),
            transforms.Normalize((mean,), (std,)),
            transforms.RandomErasing(p=0.3, scale=(0.005, 0.08), value=0),
        ]
        self.transform = transforms.Compose(
            [t for t in steps if elastic or not isinstance(t, transforms.ElasticTransform)]
        )

    def __call__(self, image) -> torch.Tensor:
        return torch.stack([self.transform(image), self.transform(image)])


def fresh_model(device: torch.device, seed: int) -> tuple[EmbeddingNet, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = EmbeddingNet().to(device).train()
    return model, torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)


class Project:
    """The project's trainer: ``train_one_epoch`` on device-resident uint8 data."""

    name = "project (device tensor, batched aug)"

    def __init__(self, data, rows, normalization: tuple[float, float], device: torch.device, seed: int) -> None:
        self.device, self.normalization = device, normalization
        self.images = data.train_images[rows].to(device)
        labels = data.train_labels[rows].to(device)
        self.generator = torch.Generator(device).manual_seed(seed)
        self.sampler = BalancedBatchSampler(labels, CLASSES, M_PER_CLASS, len(CLASSES), self.generator)
        self.model, self.optimizer = fresh_model(device, seed)
        self.criterion = InstanceAndClassTripletLoss()
        self.scheduler = torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0)

    def run(self, steps: int) -> None:
        train_one_epoch(
            self.model, self.criterion, self.optimizer, self.scheduler, self.sampler, self.images, steps,
            self.generator, self.normalization, progress=False,
        )  # fmt: skip

    def phases(self, steps: int) -> dict[str, float]:
        """Seconds per step in each phase (the body of ``_views_loss`` + the update, timed piecewise)."""
        mean, std = self.normalization
        timer = PhaseTimer(self.device)
        for _ in range(steps):
            timer.start()
            indices, labels = self.sampler.sample()
            x = self.images[indices].unsqueeze(1).float().div_(255.0)
            views = torch.cat([augment_batch(x, self.generator), augment_batch(x, self.generator)])
            views = views.sub_(mean).div_(std)
            timer.lap("batch: sample + 2x batched augment")
            outputs = self.model.training_outputs(views)
            loss = self.criterion(outputs.float(), labels.repeat(2), torch.arange(BATCH, device=self.device).repeat(2))
            timer.lap("forward + loss")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            timer.lap("backward")
            self.optimizer.step()
            timer.lap("optimizer")
        return timer.per_step(steps)


class Textbook:
    """torchvision MNIST + per-sample transforms + DataLoader(MPerClassSampler) + per-batch copies."""

    def __init__(
        self,
        root: Path,
        rows,
        normalization: tuple[float, float],
        device: torch.device,
        workers: int,
        seed: int,
        elastic: bool = True,
    ) -> None:
        self.device, self.workers = device, workers
        self.name = f"textbook (DataLoader, num_workers={workers})"
        if not elastic:
            self.name = f"textbook without ElasticTransform, less work (num_workers={workers})"
        dataset = MNIST(str(root), train=True, download=False, transform=TwoViews(*normalization, elastic=elastic))
        subset = Subset(dataset, rows.tolist())
        labels = dataset.targets[rows]
        sampler = MPerClassSampler(labels, m=M_PER_CLASS, batch_size=BATCH, length_before_new_iter=10**6)
        self.loader = DataLoader(
            subset,
            batch_size=BATCH,
            sampler=sampler,
            num_workers=workers,
            drop_last=True,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),
        )
        self.model, self.optimizer = fresh_model(device, seed)
        self.criterion = InstanceAndClassTripletLoss()
        self.batches: Iterator | None = None

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batches is None:
            self.batches = iter(self.loader)
        return next(self.batches)

    def _step(self, views: torch.Tensor, labels: torch.Tensor) -> float:
        n = len(labels)
        outputs = self.model.training_outputs(torch.cat([views[:, 0], views[:, 1]]))
        loss = self.criterion(outputs.float(), labels.repeat(2), torch.arange(n, device=self.device).repeat(2))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()  # the textbook running-loss log: a host sync every step

    def new_epoch(self) -> None:
        """Start a fresh iterator (as each epoch does), so workers cannot prefetch while the other loop runs."""
        self.batches = None

    def run(self, steps: int) -> None:
        for _ in range(steps):
            views, labels = self._next()
            self._step(views.to(self.device), labels.to(self.device))

    def phases(self, steps: int) -> dict[str, float]:
        timer = PhaseTimer(self.device)
        for _ in range(steps):
            timer.start()
            views, labels = self._next()
            timer.lap("batch: DataLoader (per-sample PIL/tensor transforms, collate)")
            views, labels = views.to(self.device), labels.to(self.device)
            timer.lap("host-to-device copy")
            n = len(labels)
            outputs = self.model.training_outputs(torch.cat([views[:, 0], views[:, 1]]))
            loss = self.criterion(outputs.float(), labels.repeat(2), torch.arange(n, device=self.device).repeat(2))
            timer.lap("forward + loss")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            timer.lap("backward")
            self.optimizer.step()
            loss.item()
            timer.lap("optimizer")
        return timer.per_step(steps)


class PhaseTimer:
    """Accumulates wall time per named phase; synchronises CUDA at each lap so phases are honest."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.totals, self.last = device, {}, 0.0

    def start(self) -> None:
        sync(self.device)
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        self.totals[name] = self.totals.get(name, 0.0) + now - self.last
        self.last = now

    def per_step(self, steps: int) -> dict[str, float]:
        return {name: total / steps for name, total in self.totals.items()}


def timed(loop, steps: int, warmup: int, device: torch.device) -> float:
    """Source images per second over ``steps`` steps, after ``warmup`` untimed ones."""
    if hasattr(loop, "new_epoch"):
        loop.new_epoch()
    loop.run(warmup)
    sync(device)
    start = time.perf_counter()
    loop.run(steps)
    sync(device)
    return steps * BATCH / (time.perf_counter() - start)


def getitem_cost(loop: Textbook, samples: int = 200) -> float:
    """Seconds per ``dataset[i]`` (two views of one image) in the main process."""
    subset = loop.loader.dataset
    start = time.perf_counter()
    for i in range(samples):
        subset[i]
    return (time.perf_counter() - start) / samples


def profile_table(run: Callable[[int], None], steps: int, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        run(steps)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder holding MNIST/raw (default: $TRIPLETSHOT_DATA, ...)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before each block")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per loop")
    parser.add_argument("--workers", default="0,2", help="DataLoader num_workers settings to try, comma-separated")
    parser.add_argument(
        "--light-workers",
        default="2",
        help="num_workers of the extra textbook row without ElasticTransform ('' for none): how much the speed-up "
        "owes to that one slow per-sample op",
    )
    parser.add_argument("--phase-steps", type=int, default=8, help="steps of the per-phase breakdown")
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops per loop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = resolve_device(args.device)
    data = load_dataset("mnist", args.data_dir)
    rows, _ = split_validation(data.train_labels, CLASSES, 0.1, args.seed)  # the trainer's own split
    pixels = data.train_images.float() / 255.0
    normalization = (float(pixels.mean()), float(pixels.std()))
    scratch = tempfile.TemporaryDirectory(prefix="tripletshot-bench-")
    root = torchvision_mnist_root(default_data_root(args.data_dir), Path(scratch.name))

    loops = [Project(data, rows, normalization, device, args.seed)]
    loops += [Textbook(root, rows, normalization, device, int(w), args.seed) for w in args.workers.split(",")]
    if args.light_workers:
        loops.append(Textbook(root, rows, normalization, device, int(args.light_workers), args.seed, elastic=False))
    print(f"machine: {machine()}; device {device}")
    print(
        f"MNIST classes 0,1,2 ({len(rows)} train images), batch {BATCH} images = {2 * BATCH} views, "
        f"{args.rounds} alternating rounds x {args.steps} timed steps (+{args.warmup} warm-up) per loop\n",
        flush=True,
    )
    rates: dict[str, list[float]] = {loop.name: [] for loop in loops}
    for r in range(args.rounds):
        for loop in loops:
            rates[loop.name].append(timed(loop, args.steps, args.warmup, device))
            print(f"  round {r + 1}: {loop.name}: {rates[loop.name][-1]:.0f} images/s", flush=True)

    project = statistics.median(rates[loops[0].name])
    print("\n| loop | source images/s (median of rounds) | project speed-up |")
    print("|---|---|---|")
    for loop in loops:
        rate = statistics.median(rates[loop.name])
        print(f"| {loop.name} | {rate:.0f} | {project / rate:.2f}x |")

    print(f"\nwhere the time goes, ms per step of {BATCH} images ({args.phase_steps} steps each, after the rounds):\n")
    for loop in loops:
        if isinstance(loop, Textbook):
            loop.new_epoch()
            loop.run(2)  # prefetch as in steady state
        phases = loop.phases(args.phase_steps)
        total = sum(phases.values())
        cells = ", ".join(f"{name} {1000 * s:.0f} ({100 * s / total:.0f}%)" for name, s in phases.items())
        print(f"- {loop.name}: {1000 * total:.0f} ms = {cells}")
    textbook0 = next((loop for loop in loops if isinstance(loop, Textbook)), None)
    if textbook0 is not None:
        per_image = getitem_cost(textbook0)
        print(
            f"- textbook per-sample cost: {1e3 * per_image:.2f} ms per dataset[i] (uint8 -> PIL -> two transformed "
            f"views) = {per_image * BATCH * 1e3:.0f} ms per batch on one core, before collate"
        )
    if args.profile:
        for loop in loops:
            print(f"\ntorch.profiler, {loop.name}, 3 steps, top ops by self CPU time:")
            print(profile_table(loop.run, 3))
    scratch.cleanup()


if __name__ == "__main__":
    main()
