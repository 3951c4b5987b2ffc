"""What ``resume`` needs to continue a training exactly where it stopped, and the rules for resuming.

A checkpoint is a dict of tensors and plain values (no pickled objects): the model, optimizer and
scheduler states, the device generator and CPU RNG states, how far training got (epochs done, steps
into the next one, the running loss sum), the time spent, the loss curve so far, and the options; with
validation classes, their score curve and the best-scoring epoch's weights (:class:`BestEpoch`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from embedder.config import RESUMABLE_CHANGES, IndexSpec, TrainConfig
from embedder.errors import ConfigError, RunError
from embedder.runs.store import finished_epoch  # noqa: F401  (where the run folder's rules are; resume asks it)


@dataclass
class EpochProgress:
    """Where an epoch stands: steps done, and the sum of their losses (on the device: no host sync)."""

    step: int = 0
    loss_sum: torch.Tensor | None = None


@dataclass
class BestEpoch:
    """The validation classes' score at each scored epoch, and the best-scoring epoch's weights: the run ends with
    them, so a resumed training must keep them too."""

    curve: list[dict[str, float]] = field(default_factory=list)  # {"epoch", "accuracy"}, in order
    epoch: int | None = None
    accuracy: float | None = None
    weights: dict[str, torch.Tensor] | None = None  # a CPU copy of the model's state dict at ``epoch``

    def record(self, epoch: int, accuracy: float, model: torch.nn.Module) -> bool:
        """Add the epoch's score; keep the model's weights if it is the best so far (the earliest of equals)."""
        self.curve.append({"epoch": epoch, "accuracy": accuracy})
        if self.accuracy is not None and accuracy <= self.accuracy:
            return False
        self.epoch, self.accuracy = epoch, accuracy
        self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True

    def snapshot(self) -> dict[str, Any]:
        return {"curve": list(self.curve), "epoch": self.epoch, "accuracy": self.accuracy, "weights": self.weights}

    @classmethod
    def restore(cls, stored: dict[str, Any] | None) -> BestEpoch:
        """From a checkpoint's ``best`` entry; a checkpoint from before validation classes has none."""
        if not stored:
            return cls()
        accuracy = stored["accuracy"]
        return cls(list(stored["curve"]), stored["epoch"], None if accuracy is None else float(accuracy),
                   stored["weights"])  # fmt: skip


@dataclass
class TrainingState:
    """Everything that changes while training runs."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    epoch: int = 0  # epochs completed
    progress: EpochProgress | None = None
    curve: list[dict[str, float]] | None = None
    seconds: float = 0.0
    best: BestEpoch = field(default_factory=BestEpoch)

    def snapshot(self, config: TrainConfig) -> dict[str, Any]:
        """The checkpoint dict of this state."""
        progress = self.progress or EpochProgress()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "step": progress.step,  # steps done in the next epoch
            "loss_sum": progress.loss_sum if progress.loss_sum is not None else torch.zeros(()),
            "seconds": self.seconds,
            "curve": list(self.curve or []),
            "best": self.best.snapshot(),
            "config": asdict(config),
        }

    def restore(self, checkpoint: dict[str, Any], seed: int, device: torch.device) -> str | None:
        """Put a checkpoint's state back; return a warning if it cannot continue bit-identically."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        warning = None
        try:
            self.generator.set_state(checkpoint["generator"])
        except RuntimeError:  # written on another device type: its random stream cannot continue here
            self.generator.manual_seed(seed + int(checkpoint["epoch"]) * 1_000_003 + int(checkpoint["step"]))
            warning = "the checkpoint comes from another device type: training resumes, but not bit-identically"
        torch.set_rng_state(checkpoint["torch_rng"])
        self.epoch = int(checkpoint["epoch"])
        self.progress = EpochProgress(int(checkpoint["step"]), checkpoint["loss_sum"].to(device))
        self.curve = list(checkpoint["curve"])
        self.seconds = float(checkpoint["seconds"])
        self.best = BestEpoch.restore(checkpoint.get("best"))
        return warning


# Options newer than the first checkpoints of this run format: a checkpoint without one had its default.
ADDED_LATER = {
    "far", "test_fraction", "strict", "centroids", "unlabelled_weight", "unlabelled_clusters",
    *(f.name for f in fields(IndexSpec)),
}  # fmt: skip
# ...except these, whose defaults changed when they were added or later (0.4, 0.6): a checkpoint without one
# trained so.
TRAINED_BEFORE = {
    "loss": "triplet",
    "temperature": 0.1,
    "instance_weight": 0.5,
    "descriptor": "final",
    "augmentation": "strokes",
    "val_classes": 0,  # before validation classes, every requested class was trained on
    "unlabelled": "none",  # before the pool, a folder's unlabelled/ was not one
    "augment": 1.0,  # before 0.6 the default strength was 1 everywhere
}
ADDED_LATER |= set(TRAINED_BEFORE)


def config_from_checkpoint(checkpoint: dict[str, Any], source: str, **changes: Any) -> TrainConfig:
    """The checkpoint's options, with ``changes`` applied where a resumed training may change them.

    Any other change that differs from the checkpoint is a :class:`ConfigError` naming the parameter:
    a resumed training keeps what it trains on and how.
    """
    try:
        stored = checkpoint["config"]
        saved = {f.name: stored[f.name] for f in fields(TrainConfig) if f.name in stored or f.name not in ADDED_LATER}
        saved |= {name: value for name, value in TRAINED_BEFORE.items() if name not in stored}
        config = TrainConfig(**saved)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"the checkpoint in {source} is not one this tripletshot can resume ({exc})") from None
    wanted = TrainConfig(**{**saved, **changes})
    for name in changes:
        if name not in RESUMABLE_CHANGES and not _agrees(name, wanted, config):
            raise ConfigError(
                name,
                f"{{{name}}} {getattr(wanted, name)} conflicts with the checkpoint's {getattr(config, name)}: "
                "a resumed training keeps its options (start a new run to change them)",
            )
    return TrainConfig(**{**saved, **{k: v for k, v in changes.items() if k in RESUMABLE_CHANGES}})


def _agrees(name: str, wanted: TrainConfig, stored: TrainConfig) -> bool:
    """Whether an option given to a resume says what the checkpoint holds. The checkpoint holds the labels drawn:
    ``classes`` the trained ones, ``val_classes`` those held out (0 for none); the classes and the count given
    to start it say the same."""
    held_out = list(stored.val_classes or [])
    if name == "classes":
        return wanted.classes in (stored.classes, sorted(stored.classes + held_out))
    if name == "val_classes" and isinstance(wanted.val_classes, int):
        return wanted.val_classes == len(held_out)
    if name == "val_classes":
        return wanted.val_classes == held_out
    return getattr(wanted, name) == getattr(stored, name)
