"""Training: ``train_one_epoch``, ``evaluate``, then ``train`` ties them together into a run.

The dataset stays on the training device as one uint8 tensor. Each step draws a balanced batch
(``ways`` classes x ``m_per_class`` images) by index on the device, makes two augmented views of
every image on the device, and takes one optimizer step on the instance + class triplet loss.
The step loop never reads a value back to the host; the epoch's mean loss is read once at its end.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__
from .artifacts import tensors_to_bytes
from .augment import augment_batch
from .config import MAX_WAYS, TrainConfig  # noqa: F401  (re-exported: train(TrainConfig(...)))
from .datasets import Dataset, check_classes, load_dataset
from .devices import resolve_device
from .episodes import sample_supports
from .errors import RunError, UsageError
from .fewshot import Embedder
from .index import SupportIndex
from .interrupt import Interrupted, StopRequest
from .losses import InstanceAndClassTripletLoss
from .model import EmbeddingNet
from .rundir import RunDir, check_new_run_dir


class BalancedBatchSampler:
    """Draws ``ways`` random classes and ``m`` random images of each, entirely on the device."""

    def __init__(self, labels: torch.Tensor, classes: list[int], m: int, ways: int, generator: torch.Generator) -> None:
        device = labels.device
        rows = [torch.nonzero(labels == c).flatten() for c in classes]
        self.counts = torch.tensor([len(r) for r in rows], device=device)
        self.table = torch.zeros(len(classes), max(len(r) for r in rows), dtype=torch.long, device=device)
        for i, r in enumerate(rows):
            self.table[i, : len(r)] = r
        self.class_of_row = torch.tensor(classes, device=device)
        self.m, self.ways, self.generator = m, ways, generator

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        g, device = self.generator, self.table.device
        rows = torch.randperm(len(self.counts), generator=g, device=device)[: self.ways]
        offsets = (torch.rand(self.ways, self.m, generator=g, device=device) * self.counts[rows, None]).long()
        indices = self.table[rows[:, None], offsets].flatten()
        return indices, self.class_of_row[rows].repeat_interleave(self.m)


def _views_loss(
    model: EmbeddingNet,
    criterion: InstanceAndClassTripletLoss,
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    normalization: tuple[float, float],
) -> torch.Tensor:
    """Loss on two augmented views of each uint8 image: instance positives plus class triplets."""
    mean, std = normalization
    x = images.unsqueeze(1).float().div_(255.0)
    views = torch.cat([augment_batch(x, generator), augment_batch(x, generator)]).sub_(mean).div_(std)
    with torch.autocast(views.device.type, torch.bfloat16, enabled=views.device.type == "cuda"):
        outputs = model.training_outputs(views)
    instance_ids = torch.arange(len(images), device=images.device).repeat(2)
    return criterion(outputs.float(), labels.repeat(2), instance_ids)


@dataclass
class EpochProgress:
    """Where an epoch stands: steps done, and the sum of their losses (on the device: no host sync)."""

    step: int = 0
    loss_sum: torch.Tensor | None = None


class TrainingStopped(Exception):
    """Raised by :func:`train_one_epoch` after the step during which a stop was requested."""


def train_one_epoch(
    model: EmbeddingNet,
    criterion: InstanceAndClassTripletLoss,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    sampler: BalancedBatchSampler,
    images: torch.Tensor,
    steps: int,
    generator: torch.Generator,
    normalization: tuple[float, float],
    description: str = "",
    progress: bool = True,
    state: EpochProgress | None = None,
    stop: Callable[[], bool] | None = None,
) -> float:
    """Run the epoch's ``steps`` optimizer steps; return the mean training loss (the epoch's one host sync).

    ``state`` lets an epoch start part-way (resume) and records how far it got. If ``stop()`` turns true,
    the current step completes and :class:`TrainingStopped` is raised, with ``state`` up to date.
    """
    model.train()
    state = state if state is not None else EpochProgress()
    if state.loss_sum is None:
        state.loss_sum = torch.zeros((), device=images.device)
    # No tqdm at all without progress: even disabled, it makes a multiprocessing lock.
    bar = tqdm(total=steps, initial=state.step, desc=description, leave=False) if progress else None
    with bar or contextlib.nullcontext():
        while state.step < steps:
            indices, labels = sampler.sample()
            loss = _views_loss(model, criterion, images[indices], labels, generator, normalization)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            state.loss_sum += loss.detach()
            state.step += 1
            if bar is not None:
                bar.update()
            if stop is not None and stop():
                raise TrainingStopped
    return float(state.loss_sum / steps)


def evaluate(
    model: EmbeddingNet,
    criterion: InstanceAndClassTripletLoss,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalization: tuple[float, float],
    seed: int = 0,
    batch_size: int = 512,
) -> float:
    """Mean loss on held-out images, with augmentation drawn from a fixed seed so epochs compare."""
    if len(images) == 0:
        return float("nan")
    model.eval()
    generator = torch.Generator(images.device).manual_seed(seed)
    total = torch.zeros((), device=images.device)
    order = torch.randperm(len(images), generator=generator, device=images.device)  # mix classes
    batches = 0
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = order[start : start + batch_size]
            total += _views_loss(model, criterion, images[chunk], labels[chunk], generator, normalization)
            batches += 1
    return float(total / batches)


def split_validation(
    labels: torch.Tensor, classes: list[int], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training classes' train-split images, split into train and validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in classes:
        rows = rng.permutation(np.flatnonzero(labels.numpy() == c))
        n_val = int(round(len(rows) * fraction))
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def build_support_index(embedder: Embedder, dataset: Dataset, shots: int, seed: int) -> tuple[SupportIndex, np.ndarray]:
    """``shots`` seeded train-split examples of *every* class of the dataset, embedded and indexed."""
    labels = dataset.train_labels.numpy()
    chosen = sample_supports(labels, dataset.classes, shots, np.random.default_rng(seed))
    index = SupportIndex(embedder.dim)
    index.add(embedder.embed(dataset.train_images[chosen]), labels[chosen])
    return index, chosen


def prepare_run_dir(run_dir: Path, force: bool = False) -> bool:
    """Create ``run_dir`` for a new training; return whether its first save must start a fresh manifest.

    Refuses a file, a folder of someone else's files, and a run this version cannot read, unless ``force``.
    """
    check_new_run_dir(run_dir, force)
    store = RunDir(run_dir)
    if store.exists():
        try:
            store.manifest()
        except RunError as exc:
            if not force:
                raise UsageError(f"{exc}; pass --force to train a new run over it") from None
            return True
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create run dir {run_dir}: {exc.strerror}") from None
    return False  # taking the run's lock, next, refuses a read-only folder


@dataclass
class TrainResult:
    run_dir: Path
    metadata: dict[str, Any]


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    dataset: Dataset | None = None,
    on_epoch_end: Callable[[int, EmbeddingNet], None] | None = None,
) -> TrainResult:
    """Train an embedder on ``config.classes``, index ``config.shots`` supports of every class, save the run.

    The run dir is locked for the whole training. A checkpoint is committed after every epoch, and after
    the current step when SIGINT or SIGTERM arrives; that raises :class:`Interrupted` (exit code 130).
    ``on_epoch_end(epoch, model)``, if given, runs after each epoch's checkpoint (benchmarks use it to score
    the model as it trains; it must leave the model's weights and mode as it found them).
    """
    run_dir = Path(config.run_dir)
    store = RunDir(run_dir)
    checkpoint: dict[str, Any] = {}
    with contextlib.ExitStack() as held:
        if resume:
            if not store.exists() or not store.has("checkpoint"):
                raise RunError(f"nothing to resume: {run_dir} holds no checkpoint")
            held.enter_context(store.lock())  # before reading: no other process may write it meanwhile
            checkpoint = store.read_tensors("checkpoint")  # on the CPU; load_state_dict moves it
            try:
                saved = dict(checkpoint["config"])
                # The checkpoint's options win; only where to run and where the data lives may change.
                config = replace(
                    TrainConfig(**saved),
                    device=config.device,
                    run_dir=config.run_dir,
                    data_dir=config.data_dir or saved["data_dir"],
                )
            except (KeyError, TypeError) as exc:
                raise RunError(f"the checkpoint in {run_dir} is not one this tripletshot can resume ({exc})") from None
        config.check()
        device = resolve_device(config.device)
        if dataset is None or dataset.name != config.dataset:
            dataset = load_dataset(config.dataset, config.data_dir)
        check_classes(config.classes, dataset.classes)
        check_shots(dataset, config.shots)
        fresh = False if resume else prepare_run_dir(run_dir, force)
        held.enter_context(store.lock())  # re-entrant when resuming
        return _train_locked(config, store, checkpoint, fresh, device, dataset, progress, log, on_epoch_end)


def check_shots(dataset: Dataset, shots: int) -> None:
    """Every class must have ``shots`` train-split images to put in the index: check before training."""
    counts = np.bincount(dataset.train_labels.numpy(), minlength=max(dataset.classes) + 1)
    short = [c for c in dataset.classes if counts[c] < shots]
    if short:
        raise UsageError(f"--shots {shots} is more than class {short[0]} has training images ({counts[short[0]]})")


def _restore(
    checkpoint: dict[str, Any],
    model: EmbeddingNet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    seed: int,
    device: torch.device,
    log: Callable[[str], None],
) -> tuple[int, list[dict[str, float]], EpochProgress, float]:
    """Put a checkpoint's state back; return (epochs done, curve, progress in the next epoch, seconds)."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    try:
        generator.set_state(checkpoint["generator"])
    except RuntimeError:  # written on another device type: its random stream cannot continue here
        generator.manual_seed(seed + int(checkpoint["epoch"]) * 1_000_003 + int(checkpoint["step"]))
        log("the checkpoint comes from another device type: training resumes, but not bit-identically")
    torch.set_rng_state(checkpoint["torch_rng"])
    progress = EpochProgress(int(checkpoint["step"]), checkpoint["loss_sum"].to(device))
    return int(checkpoint["epoch"]), list(checkpoint["curve"]), progress, float(checkpoint["seconds"])


def _train_locked(
    config: TrainConfig,
    store: RunDir,
    checkpoint: dict[str, Any],
    fresh: bool,
    device: torch.device,
    dataset: Dataset,
    progress: bool,
    log: Callable[[str], None],
    on_epoch_end: Callable[[int, EmbeddingNet], None] | None,
) -> TrainResult:
    run_dir = store.path
    torch.manual_seed(config.seed)
    generator = torch.Generator(device).manual_seed(config.seed)
    all_pixels = dataset.train_images.float() / 255.0
    normalization = (float(all_pixels.mean()), float(all_pixels.std()))
    train_rows, val_rows = split_validation(dataset.train_labels, config.classes, config.val_fraction, config.seed)
    images = dataset.train_images[train_rows].to(device)
    labels = dataset.train_labels[train_rows].to(device)
    val_images = dataset.train_images[val_rows].to(device)
    val_labels = dataset.train_labels[val_rows].to(device)

    model = EmbeddingNet(config.embedding_dim, config.width).to(device)
    criterion = InstanceAndClassTripletLoss(config.margin, config.class_weight)
    batch = config.ways * config.m_per_class
    steps = 2 if config.dry_run else max(1, math.ceil(len(train_rows) / batch))
    epochs = 1 if config.dry_run else config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=epochs * steps, pct_start=0.15
    )
    sampler = BalancedBatchSampler(labels, config.classes, config.m_per_class, config.ways, generator)
    curve: list[dict[str, float]] = []
    start_epoch, elapsed = 0, 0.0
    epoch_progress = EpochProgress()
    if checkpoint:
        try:
            start_epoch, curve, epoch_progress, elapsed = _restore(
                checkpoint, model, optimizer, scheduler, generator, config.seed, device, log
            )
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunError(f"the checkpoint in {run_dir} does not fit this training: {first}") from None
        log(f"resuming {run_dir} at epoch {start_epoch + 1} of {epochs}, step {epoch_progress.step} of {steps}")

    log(
        f"training on {config.dataset} classes {','.join(map(str, config.classes))} on {device}: "
        f"{len(train_rows)} images ({len(val_rows)} held out), {epochs} epochs x {steps} steps of "
        f"{config.ways} classes x {config.m_per_class}"
    )
    started = time.perf_counter() - elapsed

    def save_checkpoint(epoch: int, state: EpochProgress) -> None:
        nonlocal fresh
        snapshot = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,  # epochs completed
            "step": state.step,  # steps done in the next one
            "loss_sum": state.loss_sum if state.loss_sum is not None else torch.zeros(()),
            "seconds": time.perf_counter() - started,
            "curve": curve,
            "config": asdict(config),
        }
        store.commit({"checkpoint": tensors_to_bytes(snapshot)}, fresh=fresh)
        fresh = False

    try:
        with StopRequest() as stop:
            for epoch in range(start_epoch, epochs):
                try:
                    train_loss = train_one_epoch(
                        model, criterion, optimizer, scheduler, sampler, images, steps, generator, normalization,
                        description=f"epoch {epoch + 1}/{epochs}", progress=progress, state=epoch_progress,
                        stop=stop.__bool__,
                    )  # fmt: skip
                except TrainingStopped:
                    save_checkpoint(epoch, epoch_progress)
                    raise Interrupted(
                        f"interrupted by {stop.name} at epoch {epoch + 1}, step {epoch_progress.step} of {steps}: "
                        f"checkpointed in {run_dir}; continue with `embed train --resume --run-dir {run_dir}`"
                    ) from None
                val_loss = evaluate(model, criterion, val_images, val_labels, normalization, seed=config.seed)
                seconds = time.perf_counter() - started
                curve.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "seconds": seconds})
                epoch_progress = EpochProgress()
                save_checkpoint(epoch + 1, epoch_progress)
                log(f"epoch {epoch + 1}/{epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}")
                if stop:  # arrived during validation or the save: the epoch is complete and saved
                    raise Interrupted(
                        f"interrupted by {stop.name} after epoch {epoch + 1}: checkpointed in {run_dir}; "
                        f"continue with `embed train --resume --run-dir {run_dir}`"
                    )
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, model)
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread's handler
        if curve:
            log(
                f"interrupted: epoch {curve[-1]['epoch']} is checkpointed in {run_dir}; "
                f"continue with `embed train --resume --run-dir {run_dir}`"
            )
        raise
    train_seconds = time.perf_counter() - started

    # Centre on the training classes' mean feature (SimpleShot's CL2N), then index the supports.
    embedder = Embedder(model, *normalization, device=device)
    model.eval()
    with torch.inference_mode():
        features = torch.cat(
            [
                model.features(embedder.preprocess(images[i : i + embedder.batch_size]))
                for i in range(0, len(images), embedder.batch_size)
            ]
        )
        model.feature_mean.copy_(features.float().mean(0))
    index, support_rows = build_support_index(embedder, dataset, config.shots, config.seed)

    metadata = {
        "tripletshot_version": __version__,
        "torch_version": torch.__version__,
        "dataset": config.dataset,
        "dataset_classes": dataset.classes,
        "classes": config.classes,
        "embedding_dim": config.embedding_dim,
        "width": config.width,
        "normalization": {"mean": normalization[0], "std": normalization[1]},
        "seed": config.seed,
        "device": str(device),
        "options": asdict(config),
        "curve": curve,
        "train_seconds": train_seconds,
        "index": {"shots": config.shots, "method": config.method, "support_rows": support_rows.tolist()},
    }
    # One commit: model, index and metadata replace the previous run's together, or not at all.
    store.commit({"model": tensors_to_bytes(model.state_dict()), "index": index.to_bytes()}, run=metadata, fresh=fresh)
    return TrainResult(run_dir, metadata)
