"""Training: ``train_one_epoch`` and ``validation_loss``, tied into a run by ``train`` (or ``resume``).

The dataset stays on the training device as one uint8 tensor. Each step draws a balanced batch
(``ways`` classes x ``m_per_class`` images) by index on the device, makes two augmented views of
every image on the device, and takes one optimizer step on the run's objective (:mod:`embedder.losses`).
The step loop never reads a value back to the host; the epoch's mean loss is read once at its end.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from embedder.config import MAX_WAYS, NO_LABELS_NEED_A_POOL, TrainConfig, default_val_classes
from embedder.data.classes import resolve_classes, resolve_val_classes
from embedder.data.dataset import Dataset
from embedder.data.datasets import load_dataset
from embedder.data.pool import Pool, load_pool
from embedder.data.sampling import (
    BalancedBatchSampler,
    NoLabelsSampler,
    PoolSampler,
    batch_shape,
    hold_out,
    validation_split,
)
from embedder.errors import ConfigError, RunError
from embedder.index.build import check_index_training, check_shots
from embedder.losses.contrast import PoolContrastLoss, make_loss
from embedder.models.embedder import Embedder
from embedder.models.network import DEPTH_WEIGHTS, EmbeddingNet
from embedder.runs.finish import FinishedTraining, finish_run
from embedder.runs.store import RunDir, prepare_run_dir, tensors_to_bytes
from embedder.training import distributed, policies
from embedder.training.augment import PRESETS, AugmentConfig, augment_batch
from embedder.training.checkpoint import EpochProgress, TrainingState, config_from_checkpoint, finished_epoch
from embedder.training.devices import resolve_device
from embedder.training.held_out import HeldOut, held_out_line, held_out_warning, scored_epoch
from embedder.training.interrupt import Interrupted, StopRequest
from embedder.training.pseudo_labels import cluster_labels, refresh_due
from embedder.utils.formatting import percent, plural
from embedder.utils.precision import mixed_precision
from embedder.utils.progress import duration, progress_bar, progress_line

EpochHook = Callable[[int, Embedder], None]
CENTRING_POOL_IMAGES = 50_000  # pool images a pooled run is centred on, at most (a mean needs no more)


def views_loss(
    model: EmbeddingNet,
    criterion: torch.nn.Module,  # make_loss: class contrast or triplets, (embeddings, labels, ids) -> loss
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    normalization: tuple[float, float],
    augment: AugmentConfig = AugmentConfig(),
    pool: torch.Tensor | None = None,
    pool_loss: torch.nn.Module | None = None,  # PoolContrastLoss: (two views' embeddings, clusters) -> loss
    clusters: torch.Tensor | None = None,  # the pool images' pseudo-labels, if any
) -> torch.Tensor:
    """Loss on two augmented views of each uint8 image: the labelled images' objective, plus the instance
    contrast of the ``pool``'s unlabelled images, augmented and embedded with them in one pass."""
    mean, std = normalization
    n = len(images)
    batch = images if pool is None else torch.cat([images, pool])
    x = batch.unsqueeze(1).float().div_(255.0)
    views = torch.cat([augment_batch(x, generator, augment), augment_batch(x, generator, augment)])
    views = views.sub_(mean).div_(std)
    with mixed_precision(views.device):  # bf16 on CUDA (embedder.utils.precision)
        outputs = model.training_outputs(views).float()
    instance_ids = torch.arange(n, device=images.device).repeat(2)
    if pool is None:
        return criterion(outputs, labels.repeat(2), instance_ids)
    first, second = outputs[: len(batch)], outputs[len(batch) :]
    loss = pool_loss(torch.cat([first[n:], second[n:]]), clusters)
    if n:  # a run with no labelled classes learns from its pool alone
        loss = loss + criterion(torch.cat([first[:n], second[:n]]), labels.repeat(2), instance_ids)
    return loss


class TrainingStopped(Exception):
    """Raised by :func:`train_one_epoch` after the step during which a stop was requested."""


def train_one_epoch(
    model: EmbeddingNet,
    criterion: torch.nn.Module,  # make_loss: class contrast or triplets, (embeddings, labels, ids) -> loss
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
    augment: AugmentConfig = AugmentConfig(),
    pool: PoolSampler | None = None,
    pool_loss: torch.nn.Module | None = None,
) -> float:
    """Run the epoch's ``steps`` optimizer steps; return the mean training loss (the epoch's one host sync).

    With a ``pool`` sampler, each step adds its batch of unlabelled images, trained on by ``pool_loss``.

    ``state`` lets an epoch start part-way (resume) and records how far it got. If ``stop()`` turns true,
    the current step completes and :class:`TrainingStopped` is raised, with ``state`` up to date.
    """
    model.train()
    state = state if state is not None else EpochProgress()
    if state.loss_sum is None:
        state.loss_sum = torch.zeros((), device=images.device)
    with progress_bar(steps, description, progress, initial=state.step, unit="step") as bar:
        while state.step < steps:
            indices, labels = sampler.sample()
            unlabelled, clusters = pool.sample() if pool is not None else (None, None)
            loss = views_loss(
                model, criterion, images[indices], labels, generator, normalization, augment, unlabelled, pool_loss,
                clusters,
            )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            state.loss_sum += loss.detach()
            state.step += 1
            bar.update()
            if stop is not None and stop():
                raise TrainingStopped
    return float(state.loss_sum / steps)


def validation_loss(
    model: EmbeddingNet,
    criterion: torch.nn.Module,  # make_loss: class contrast or triplets, (embeddings, labels, ids) -> loss
    images: torch.Tensor,
    labels: torch.Tensor,
    normalization: tuple[float, float],
    seed: int = 0,
    batch_size: int = 512,
    augment: AugmentConfig = AugmentConfig(),
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
            total += views_loss(model, criterion, images[chunk], labels[chunk], generator, normalization, augment)
            batches += 1
    return float(total / batches)


@dataclass
class TrainResult:
    run_dir: Path
    metadata: dict[str, Any]
    written: bool = True  # False on the ranks other than 0 of a distributed training: they write nothing


def train(
    config: TrainConfig,
    *,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    dataset: Dataset | None = None,
    on_epoch_end: EpochHook | None = None,
) -> TrainResult:
    """Train an embedder on ``config.classes``, index every class (:mod:`embedder.index.build`), save the run.

    The run dir is locked for the whole training. A checkpoint is committed after every epoch, and after
    the current step when SIGINT or SIGTERM arrives; that raises :class:`Interrupted`. ``on_epoch_end(epoch,
    embedder)``, if given, runs after each epoch's checkpoint with the model as it is, uncentred (benchmarks
    score it); it must leave the model's weights and mode as it found them. Under ``torchrun``, every rank
    trains (:mod:`embedder.training.distributed`) and calls ``on_epoch_end``; rank 0 alone logs, locks and writes.
    """
    device = resolve_device(config.device)
    config, dataset, pool = _dataset_for(config, dataset, log)
    store = RunDir(config.run_dir)
    with distributed.session(device) as (world, device):
        fresh = prepare_run_dir(store.path, force, config.dry_run) if world.is_main else False
        with store.lock() if world.is_main else contextlib.nullcontext():
            return _Training(config, store, device, dataset, progress, log, fresh, world, pool).run(on_epoch_end)


def resume(
    run_dir: str | os.PathLike,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    dataset: Dataset | None = None,
    on_epoch_end: EpochHook | None = None,
    **changes: Any,
) -> TrainResult:
    """Continue the interrupted training in ``run_dir`` with the options its checkpoint holds.

    ``device`` and ``data_dir`` may change; any other option in ``changes`` must equal the checkpoint's,
    else :class:`ConfigError` names it. Under ``torchrun`` every rank reads the checkpoint (on several
    machines, the run folder must be on a filesystem they share); rank 0 alone locks and writes.
    """
    store = RunDir(run_dir)
    if not store.exists() or not store.has("checkpoint"):
        raise RunError(f"nothing to resume: {run_dir} holds no checkpoint")
    manifest = store.manifest()
    checkpoint = store.read_tensors("checkpoint", manifest)  # on the CPU; load_state_dict moves it
    config = config_from_checkpoint(checkpoint, str(run_dir), run_dir=str(run_dir), **changes)  # a bad option first
    finished = finished_epoch(checkpoint, manifest.get("run"))
    if finished is not None:  # resuming would rebuild the index and drop enrolments and a recalibration
        raise RunError(f"this run ({run_dir}) finished at epoch {finished}; nothing to resume")
    # Locked before the checkpoint counts: no other process may write it meanwhile (rank 0's lock stands for all).
    with store.lock() if distributed.launched_as_main() else contextlib.nullcontext():
        if store.manifest()["files"]["checkpoint"] != manifest["files"]["checkpoint"]:  # written meanwhile
            checkpoint = store.read_tensors("checkpoint")
            config = config_from_checkpoint(checkpoint, str(run_dir), run_dir=str(run_dir), **changes)
        config, dataset, pool = _dataset_for(config, dataset, log, drawn=True)
        with distributed.session(resolve_device(config.device)) as (world, device):
            training = _Training(config, store, device, dataset, progress, log, False, world, pool)
            training.restore(checkpoint)
            return training.run(on_epoch_end)


def _dataset_for(
    config: TrainConfig, dataset: Dataset | None, log: Callable[[str], None], drawn: bool = False
) -> tuple[TrainConfig, Dataset, Pool | None]:
    """The dataset, the config with its classes as labels (the one place class names are resolved) and its
    ``auto`` options chosen (:func:`embedder.training.policies.resolve`), and the unlabelled pool if any
    (:func:`embedder.data.pool.load_pool`).

    From here on ``classes`` are the classes trained on and ``val_classes`` the labels held out of them (0 for
    none). ``drawn``: the config is a checkpoint's, whose validation classes were already drawn.
    """
    if dataset is None or dataset.name != config.dataset:
        dataset = load_dataset(config.dataset, config.data_dir, config.test_fraction, config.strict)
    for warning in dataset.warnings:
        log(f"warning: {warning}")
    labels = resolve_classes(config.classes, dataset.class_names, dataset.classes, dataset.name)
    counts = dataset.class_counts()
    small = [c for c in labels if counts[c] < 2]
    if small:
        names = ", ".join(dataset.class_names[c] for c in small[:5]) + (", ..." if len(small) > 5 else "")
        log(f"warning: {len(small)} class(es) with under 2 training images are indexed, not trained on: {names}")
        labels = [c for c in labels if c not in small]
    held_out = _val_classes(config, labels, dataset, drawn)
    trained = [c for c in labels if c not in held_out]
    config = replace(config, classes=trained, val_classes=held_out or 0, dataset=dataset.name)
    # The one draw of the held-out rows: the trainer, the pool, the index and calibration read it; the run keeps it.
    others = [c for c in dataset.classes if c not in trained and c not in held_out]
    dataset = hold_out(dataset, trained, others, config.val_fraction, config.seed)
    check_shots(dataset, config.shots)
    check_index_training(dataset, config.index_rule, config.embedding_dim, config.classes, config.val_fraction)
    pool = load_pool(config, dataset, processes=distributed.local_processes())  # each holds a copy
    if pool is None and not config.classes:
        raise ConfigError("classes", NO_LABELS_NEED_A_POOL)
    if pool is None and config.method == "pool":
        needs = "{method} pool needs a pool: {unlabelled} rest|PATH, or `embed pool` after training"
        raise ConfigError("method", needs)
    for warning in pool.warnings if pool is not None else []:
        log(f"warning: {warning}")
    return policies.resolve(config, pool is not None, dataset), dataset, pool


def _val_classes(config: TrainConfig, labels: list[int], dataset: Dataset, drawn: bool) -> list[int]:
    """The labels held out of ``labels`` for validation: the checkpoint's when ``drawn``, else drawn or named."""
    if drawn:  # a checkpoint's: labels already, apart from the classes it trains
        missing = [c for c in config.val_classes or [] if c not in dataset.classes]
        if missing:
            raise RunError(f"the checkpoint's validation classes {missing} are not in the dataset {dataset.name!r}")
        return list(config.val_classes or [])
    wanted = default_val_classes(len(labels)) if config.val_classes is None else config.val_classes
    return resolve_val_classes(wanted, labels, dataset.class_names, config.seed)


def pixel_statistics(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of uint8 ``images`` as shares of 255: the network's input normalisation."""
    pixels = images.float() / 255.0
    return float(pixels.mean()), float(pixels.std())


def _resume_hint(run_dir: Path) -> str:
    return f"checkpointed in {run_dir}; continue with `embed train --resume --run-dir {run_dir}`"


class _Training:
    """One training of one run: set up, (restore,) run the epochs, then centre, index and commit."""

    def __init__(
        self,
        config: TrainConfig,
        store: RunDir,
        device: torch.device,
        dataset: Dataset,
        progress: bool,
        log: Callable[[str], None],
        fresh: bool,
        world: distributed.World | None = None,
        pool: Pool | None = None,
    ) -> None:
        self.config, self.store, self.device, self.dataset, self.pool = config, store, device, dataset, pool
        self.world = world or distributed.World()
        self.progress, self.fresh = progress and self.world.is_main, fresh
        self.log = log if self.world.is_main else lambda _: None
        torch.manual_seed(config.seed)
        train_rows, self.val_rows = validation_split(dataset, config.classes, config.val_fraction, config.seed)
        trained_pixels = dataset.train_images[train_rows] if len(train_rows) else self.pool.images  # no labels: pool
        self.normalization = pixel_statistics(trained_pixels)  # what it trains on, nothing unseen
        val_rows = self.val_rows
        everything = (dataset.train_images, dataset.train_labels)
        self.images, self.labels = (t[train_rows].to(device) for t in everything)
        self.val_images, self.val_labels = (t[val_rows].to(device) for t in everything)
        self.criterion = make_loss(
            config.loss, config.margin, config.class_weight, config.temperature, config.instance_weight
        )
        self.augment = PRESETS[policies.augmentation_for(config)].scaled(config.augment)
        self.ways, self.m, per_epoch = self._batches(train_rows)
        # Resolved here, where the steps are known, and saved with the options.
        self.config = config = replace(config, epochs=policies.epochs_for(config, pool is not None, per_epoch))
        self.steps = 2 if config.dry_run else per_epoch
        self.epochs = 1 if config.dry_run else config.epochs
        self.state = self._initial_state()
        self.sampler = (
            BalancedBatchSampler(self.labels, config.classes, self.m, self.ways, self.state.generator)
            if config.classes
            else NoLabelsSampler(device)
        )
        self.held_out = HeldOut(dataset, config.val_classes, config.seed) if config.val_classes else None
        # What the steps run: the model, loss and augmentation stream themselves, or their distributed forms.
        self.net, self.loss, self.augment_generator = self.state.model, self.criterion, self.state.generator
        if self.world.distributed:  # a training on a pool alone has an empty labelled batch: empty shares
            self.sampler = distributed.ShardedSampler(self.sampler, self.world)
            self.net = distributed.DistributedNet(self.state.model, device)
            self.loss = distributed.GatheredLoss(self.criterion, self.world)
            self.augment_generator = torch.Generator(device).manual_seed(
                config.seed + 1_000_003 * (self.world.rank + 1)
            )
        self.pool_sampler, self.pool_loss = self._pool_parts()
        self.pool_clusters: torch.Tensor | None = None  # the pool's pseudo-labels, once drawn
        self._centring: torch.Tensor | None = None  # _centring_images, once drawn

    def _first_line(self) -> str:
        """What trains on what: the labelled classes and their batches, and the pool if any."""
        config, names = self.config, self.dataset.class_names
        schedule = f"{plural(self.epochs, 'epoch')} x {plural(self.steps, 'step')}"
        classes = ",".join(names[c] for c in config.classes)
        labelled = (
            f"classes {classes} on {self.device}: {plural(len(self.images), 'image')} ({len(self.val_images)} held out)"
            f", {schedule} of {plural(self.ways, 'class', 'classes')} x {self.m}, "
            f"{config.loss} loss"
            if config.classes
            else f"no labels on {self.device}: {schedule}"
        )
        pool = f"; and on {self.pool.describe()}, {self.pool_sampler.batch} a step" if self.pool else ""
        return f"training on {config.dataset} {labelled}{pool}"

    def _batches(self, train_rows: Any) -> tuple[int, int, int]:
        """Classes and images of each in a labelled batch, and steps an epoch: a pass over the labelled images,
        or over the pool for a training on a pool alone (no classes; its batch: ``batch_size``, else 2 x m)."""
        config = self.config
        if not config.classes:
            batch = min(config.batch_size or 2 * config.m_per_class, len(self.pool.images))
            return 1, batch, max(1, math.ceil(len(self.pool.images) / batch))
        counts = self.dataset.class_counts(train_rows)
        ways, m = batch_shape(*policies.batch_rule([int(counts[c]) for c in config.classes], config), MAX_WAYS)
        return ways, m, max(1, math.ceil(len(train_rows) / (ways * m)))

    def _pool_parts(self) -> tuple[PoolSampler | None, torch.nn.Module | None]:
        """The unlabelled pool's batches (as many images as the labelled batch) and its loss. Under ``torchrun``,
        every rank draws the whole batch from the shared stream and keeps its share, and the loss is the whole
        batch's, gathered (:mod:`embedder.training.distributed`)."""
        if self.pool is None:
            return None, None
        images = self.pool.images.to(self.device)
        loss = PoolContrastLoss(self.config.unlabelled_weight, self.config.temperature)
        if not self.world.distributed:
            return PoolSampler(images, max(2, self.ways * self.m), self.augment_generator), loss
        batch = max(2 * self.world.size, self.ways * self.m)
        sampler = distributed.ShardedPoolSampler(PoolSampler(images, batch, self.state.generator), self.world)
        return sampler, distributed.GatheredPoolLoss(loss, self.world)

    def _initial_state(self) -> TrainingState:
        config = self.config
        model = EmbeddingNet(config.embedding_dim, config.width, depth_weights=DEPTH_WEIGHTS[config.descriptor])
        model = model.to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=self.epochs * self.steps, pct_start=0.15
        )
        generator = torch.Generator(self.device).manual_seed(config.seed)
        return TrainingState(model, optimizer, scheduler, generator, progress=EpochProgress(), curve=[])

    def restore(self, checkpoint: dict[str, Any]) -> None:
        try:
            warning = self.state.restore(checkpoint, self.config.seed, self.device)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunError(f"the checkpoint in {self.store.path} does not fit this training: {first}") from None
        if warning:
            self.log(warning)
        # A checkpoint written before it held the normalisation trained with the whole train split's pixels.
        stored = checkpoint.get("normalization")
        self.normalization = (
            (float(stored[0]), float(stored[1])) if stored is not None else pixel_statistics(self.dataset.train_images)
        )
        self._restore_augmentation(checkpoint.get("augment_generators"))
        self.pool_clusters = checkpoint.get("pool_clusters")
        self.log(
            f"resuming {self.store.path} at epoch {self.state.epoch + 1} of {self.epochs}, "
            f"step {self.state.progress.step} of {self.steps}"
        )

    def _restore_augmentation(self, states: torch.Tensor | None) -> None:
        """Each rank's augmentation stream as the checkpoint has it, if it was written by as many ranks."""
        if not self.world.distributed:
            return
        try:
            if states is None or len(states) != self.world.size:
                raise RuntimeError("written by another number of processes")
            self.augment_generator.set_state(states[self.world.rank].clone())  # set_state ignores a view's offset
        except RuntimeError:  # another world size or device type: a fresh stream per rank and position
            position = self.state.epoch * 1_000_003 + self.state.progress.step
            self.augment_generator.manual_seed(self.config.seed + 7919 * (self.world.rank + 1) + position)
            self.log("the checkpoint comes from another number of processes or device: resuming, not bit-identically")

    def save_checkpoint(self) -> None:
        self.state.seconds = time.perf_counter() - self.started
        snapshot = self.state.snapshot(self.config)
        snapshot["normalization"] = list(self.normalization)
        if self.pool_clusters is not None:
            snapshot["pool_clusters"] = self.pool_clusters.cpu()
        if self.world.distributed:  # a collective: every rank takes part, rank 0 writes
            snapshot["augment_generators"] = self.world.gather_states(self.augment_generator)
        if self.world.is_main:
            self.store.commit({"checkpoint": tensors_to_bytes(snapshot)}, fresh=self.fresh)
        self.world.barrier()  # nobody exits (on SIGTERM) or moves on while rank 0 writes
        self.fresh = False

    def embedder(self) -> Embedder:
        """The model as it is now, with the pixel normalisation; not centred."""
        return Embedder(self.state.model, *self.normalization, device=self.device)

    def run(self, on_epoch_end: EpochHook | None) -> TrainResult:
        self.log(self._first_line())
        if self.held_out is not None:
            self.log(
                f"validation classes, held out of training: {','.join(self.held_out.names)}; "
                f"{self.held_out.episodes.ways}-way 1-shot on them is scored every few epochs, and the best "
                "epoch's weights are kept"
            )
        self.started = time.perf_counter() - self.state.seconds
        try:
            with StopRequest() as stop:
                while self.state.epoch < self.epochs:
                    self._one_epoch(stop)
                    if on_epoch_end is not None:
                        on_epoch_end(self.state.epoch, self.embedder())
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread's handler
            if self.state.curve:
                self.log(f"interrupted: epoch {self.state.curve[-1]['epoch']} is {_resume_hint(self.store.path)}")
            raise
        return self._finish(time.perf_counter() - self.started)

    def _refresh_clusters(self, epoch: int) -> None:
        """New pseudo-labels for the pool at the start of an epoch that is due them (kept in the checkpoint, so a
        resumed epoch draws from the same ones)."""
        if self.pool_sampler is None or not self.config.unlabelled_clusters:
            return
        if self.state.progress.step == 0 and refresh_due(epoch, self.epochs):
            self.pool_clusters = cluster_labels(
                self.embedder(), self.pool_sampler.images, self.config.unlabelled_clusters, self.config.seed + epoch
            )
            self.pool_sampler.with_clusters(self.pool_clusters)
        elif self.pool_clusters is not None and self.pool_sampler.labels is None:  # resumed part-way
            self.pool_sampler.with_clusters(self.pool_clusters)

    def _one_epoch(self, stop: StopRequest) -> None:
        state, epoch = self.state, self.state.epoch + 1
        self._refresh_clusters(epoch)
        began, first_step = time.perf_counter(), state.progress.step
        try:
            train_loss = train_one_epoch(
                self.net, self.loss, state.optimizer, state.scheduler, self.sampler, self.images, self.steps,
                self.augment_generator, self.normalization, description=f"epoch {epoch}/{self.epochs}",
                progress=self.progress, state=state.progress, stop=lambda: self.world.any(bool(stop), self.device),
                augment=self.augment, pool=self.pool_sampler, pool_loss=self.pool_loss,
            )  # fmt: skip
            seconds_in_steps = time.perf_counter() - began
        except TrainingStopped:
            self.save_checkpoint()
            where = f"at epoch {epoch}, step {state.progress.step} of {self.steps}"
            raise Interrupted(f"interrupted by {stop.name} {where}: {_resume_hint(self.store.path)}") from None
        self.world.share_buffers(state.model)
        val_loss = validation_loss(
            state.model, self.criterion, self.val_images, self.val_labels, self.normalization, seed=self.config.seed,
            augment=self.augment,
        )  # fmt: skip
        self._score_held_out(epoch)
        seconds = time.perf_counter() - self.started
        state.curve.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "seconds": seconds})
        state.epoch, state.progress = epoch, EpochProgress()
        self.save_checkpoint()
        self._report_epoch(self.steps - first_step, seconds_in_steps, time.perf_counter() - began)
        if self.world.any(bool(stop), self.device):  # during validation or the save: the epoch is complete, saved
            raise Interrupted(f"interrupted by {stop.name} after epoch {epoch}: {_resume_hint(self.store.path)}")

    def _score_held_out(self, epoch: int) -> None:
        """N-way 1-shot on the validation classes after a scored epoch, the best epoch's weights kept. Rank 0
        scores and every rank takes its score, so all keep the same best epoch (the others wait meanwhile)."""
        if self.held_out is None or not scored_epoch(epoch, self.epochs):
            return
        # Centred on what the saved run centres on, pool included: the descriptor the run ships.
        accuracy = (
            self.held_out.score(self.embedder(), self._centring_images()) if self.world.is_main else float("nan")
        )
        self.state.best.record(epoch, self.world.share(accuracy), self.state.model)

    def _report_epoch(self, steps_done: int, step_seconds: float, epoch_seconds: float) -> None:
        """The epoch's line: losses, the held-out score if scored, source images per second of stepping, and the
        time left at this pace."""
        last, scores = self.state.curve[-1], self.state.best.curve
        now = scores[-1] if scores and scores[-1]["epoch"] == last["epoch"] else None  # scored this epoch
        scored = f", held-out 1-shot {percent(now['accuracy'])}" if now else ""
        pace = (
            f", {steps_done * self.ways * self.m / max(step_seconds, 1e-9):.0f} images/s, "
            f"{duration((self.epochs - last['epoch']) * epoch_seconds * self.steps / steps_done)} left"
            if steps_done
            else ""
        )  # resumed at the epoch's end: no step was timed
        progress_line(
            f"epoch {last['epoch']}/{self.epochs}: train loss {last['train_loss']:.4f}, "
            f"val loss {last['val_loss']:.4f}{scored}{pace}",
            self.progress,
        )

    def _centring_images(self) -> torch.Tensor:
        """What the embedding is centred on: the training classes' images, and the pool's (a seeded 50,000 of a
        larger one): the mean of all the data the run learned from, unseen classes included (docs/results.md,
        "0.6": a point or two on unseen classes)."""
        if self.pool is None:
            return self.images
        if self._centring is None:  # drawn once: the validation scores and the saved run centre on the same images
            count = min(len(self.pool.images), CENTRING_POOL_IMAGES)
            rows = torch.randperm(len(self.pool.images), generator=torch.Generator().manual_seed(self.config.seed))
            self._centring = torch.cat([self.images.cpu(), self.pool.images[rows[:count]]])
        return self._centring

    def _pool_summary(self) -> dict[str, Any] | None:
        """What run.json says of the pool: where from, how many images, their share of a step and weight."""
        if self.pool is None:
            return None
        return {
            "source": self.pool.source,
            "images": len(self.pool.images),
            "per_step": self.pool_sampler.batch,
            "weight": self.config.unlabelled_weight,
            "description": self.pool.describe(),
        }

    def _finish(self, train_seconds: float) -> TrainResult:
        """Centre on the training classes' mean feature, then index, calibrate and commit the run in one step."""
        if not self.world.is_main:
            self.world.barrier()  # rank 0 writes the run meanwhile
            return TrainResult(self.store.path, {}, written=False)
        if self.state.best.weights is not None:  # the best-scoring epoch's, on the validation classes
            self.state.model.load_state_dict(self.state.best.weights)
        embedder = self.embedder().fit_centering(self._centring_images())
        held_out = self.held_out.summary(self.state.best, self.epochs) if self.held_out is not None else None
        training = {
            "normalization": {"mean": self.normalization[0], "std": self.normalization[1]},
            "device": str(self.device),
            "processes": self.world.size,
            "steps_per_epoch": self.steps,
            "curve": self.state.curve,
            "train_seconds": train_seconds,
            "held_out": held_out,
            "unlabelled": self._pool_summary(),
        }
        done = (embedder, self.dataset, self.config, self.images, self.val_rows, training, self.pool)
        finished = FinishedTraining(*done)
        metadata = finish_run(self.store, finished, fresh=self.fresh, log=self.log)
        if held_out is not None:
            self.log(held_out_line(held_out))
            warning = held_out_warning(held_out)
            if warning:
                self.log(warning)
        self.world.barrier()
        return TrainResult(self.store.path, metadata)
