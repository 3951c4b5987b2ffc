"""Validation classes: classes held out of training, on which N-way 1-shot is scored while it runs.

They estimate what a user cannot otherwise know: how well the run will label a class it never trained on. The
score uses the descriptor the run saves (the embedding centred on the mean feature of the training classes' images
and of a pooled run's pool images), on fixed seeded episodes
(:class:`~embedder.fewshot.fixed_episodes.FixedEpisodes`) over the validation classes' train-split images, beside
raw pixels and HOG-like features scored once on the same episodes. The trainer keeps the best epoch's weights
(:class:`~embedder.training.checkpoint.BestEpoch`), and the run ends with them; its recorded score is the best of
the scored epochs on those same episodes, so a little optimistic, and the line that reports it says so.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from embedder.data.dataset import Dataset
from embedder.fewshot.fixed_episodes import FixedEpisodes
from embedder.models.baselines import BASELINES, baseline_features
from embedder.models.embedder import Embedder
from embedder.training.checkpoint import BestEpoch
from embedder.utils.formatting import percent

SCORINGS = 10  # about this many scored epochs a training; the last epoch always is one


def scored_epoch(epoch: int, epochs: int) -> bool:
    """Whether the validation classes are scored after ``epoch`` (1-based) of ``epochs``."""
    return epoch == epochs or epoch % max(1, math.ceil(epochs / SCORINGS)) == 0


class HeldOut:
    """The validation classes' fixed episodes, their images, and the baselines' scores on them."""

    def __init__(self, dataset: Dataset, classes: list[int], seed: int) -> None:
        self.classes, self.names = list(classes), [dataset.class_names[c] for c in classes]
        self.episodes = FixedEpisodes.draw(dataset.train_labels.numpy(), self.classes, seed)
        self.images = dataset.train_images[torch.as_tensor(self.episodes.rows)]
        self.baselines = {name: self.episodes.score(f) for name, f in baseline_features(self.images).items()}

    def score(self, embedder: Embedder, centring_images: torch.Tensor) -> float:
        """N-way 1-shot accuracy of ``embedder`` centred on ``centring_images`` (the training classes' images, and
        a pooled run's pool images), as the run would save it."""
        return self.episodes.score(embedder.fit_centering(centring_images).embed(self.images))

    def summary(self, best: BestEpoch, epochs: int) -> dict[str, Any]:
        """The ``held_out`` entry of the run's training metadata."""
        return {
            "classes": self.classes,
            "class_names": self.names,
            "ways": self.episodes.ways,
            "shots": 1,
            "episodes": self.episodes.count,
            "images": len(self.episodes.rows),
            "baselines": dict(self.baselines),
            "curve": list(best.curve),
            "best_epoch": best.epoch,
            "accuracy": best.accuracy,
            "epochs": epochs,
        }


def held_out_line(summary: dict[str, Any]) -> str:
    """``held-out classes: 4-way 1-shot 81.2% (pixels 52.1%, HOG-like 52.9%), best at epoch 40 of 66 (the best of
    10 scored epochs on the same 100 episodes: optimistic by the choice)``."""
    baselines = ", ".join(f"{_short(n)} {percent(v)}" for n, v in summary["baselines"].items())
    scored = len(summary["curve"])
    choice = (
        f" (the best of {scored} scored epochs on the same {summary['episodes']} episodes: optimistic by the choice)"
        if scored > 1
        else ""
    )
    return (
        f"held-out classes: {summary['ways']}-way 1-shot {percent(summary['accuracy'])} ({baselines}), "
        f"best at epoch {summary['best_epoch']} of {summary['epochs']}{choice}"
    )


def held_out_warning(summary: dict[str, Any]) -> str | None:
    """A plain warning when the embedding does not beat every baseline on the validation classes; else None."""
    beaten_by = {n: v for n, v in summary["baselines"].items() if not summary["accuracy"] > v}
    if not beaten_by:
        return None
    names = " and ".join(f"{BASELINES[n]} ({percent(v)})" for n, v in beaten_by.items())
    return (
        f"warning: on the held-out classes the embedding ({percent(summary['accuracy'])}) does not beat {names}: "
        "it has not learned what carries over to new classes of this data (try more epochs or more classes)"
    )


def _short(name: str) -> str:
    return "pixels" if name == "pixels" else BASELINES[name]
