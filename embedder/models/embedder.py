"""From uint8 images to the unit vectors that go into the faiss index.

An :class:`Embedder` is the whole inference path, in order: scale the pixels and normalise them with
the training set's mean and std, run the :class:`~embedder.models.network.EmbeddingNet`, subtract the
:class:`Centering` mean, and L2-normalise. Centring on the training classes' mean feature is
SimpleShot's CL2N: it helps nearest-neighbour retrieval. It is an explicit transform, fitted after
training, saved in the run beside the weights, and reusable on its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embedder.models.network import EmbeddingNet
from embedder.utils.precision import mixed_precision
from embedder.utils.progress import progress_bar

FUSE_FROM = 512  # images; below this the fused inference copy costs more than it saves


class Centering(nn.Module):
    """``normalize(features - mean)``; with a zero mean (not fitted), plain L2 normalisation."""

    def __init__(self, dim: int, mean: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim) if mean is None else mean.detach().float().cpu().clone())

    @classmethod
    def fit(cls, features: torch.Tensor) -> Centering:
        """The centring of these raw features ``(N, dim)``: their mean."""
        return cls(features.shape[1], features.float().mean(0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.float() - self.mean, dim=1)


class Embedder(nn.Module):
    """A trained network with its pixel normalisation and feature centring: images in, unit vectors out."""

    def __init__(
        self,
        model: EmbeddingNet,
        mean: float,
        std: float,
        centering: Centering | None = None,
        device: torch.device | str = "cpu",
        batch_size: int = 256,  # 1.9-2.5x faster than 2048 on the CPU (bench/embed_throughput.py)
    ) -> None:
        super().__init__()
        self.model = model.to(torch.device(device))
        self.centering = (centering or Centering(model.embedding_dim)).to(self.device)
        self.mean, self.std, self.batch_size = float(mean), float(std), batch_size

    @property
    def device(self) -> torch.device:
        """Where the weights are: ``.to()``, ``.cuda()`` and ``.cpu()`` move the embedder, as any module."""
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        return self.model.embedding_dim

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 28, 28)`` or ``(N, 1, 28, 28)`` (ink bright) to normalised float on the device."""
        if images.dim() == 3:
            images = images.unsqueeze(1)
        return (images.to(self.device, non_blocking=True).float() / 255.0 - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Unit embeddings of one batch of uint8 images, on the device (autograd as the caller has it)."""
        return self.centering(self.model(self.preprocess(images)))

    def _batches(self, images: torch.Tensor, network: nn.Module, progress: bool = False) -> torch.Tensor:
        chunks = []
        with (
            torch.inference_mode(),
            mixed_precision(self.device),
            progress_bar(len(images), "embedding", progress, unit="img") as bar,
        ):
            for start in range(0, len(images), self.batch_size):
                chunks.append(network(self.preprocess(images[start : start + self.batch_size])).float())
                bar.update(len(chunks[-1]))
        return torch.cat(chunks) if chunks else torch.empty(0, self.dim, device=self.device)

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """The model in eval mode for the duration, then back in the mode the caller had it in."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Raw network features ``(N, dim)`` on the device, batched, without autograd: what centring is fitted on.
        Batch norm uses its running statistics; the model's mode is left as it was."""
        with self._evaluating():
            return self._batches(images, self.model)

    def fit_centering(self, images: torch.Tensor) -> Embedder:
        """Centre on the mean feature of these images (the training classes'), from now on; returns self."""
        self.centering = Centering.fit(self.features(images)).to(self.device)
        return self

    def embed(self, images: torch.Tensor, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 embeddings ``(N, dim)`` of uint8 images, batched, without autograd.

        ``progress``: a bar over the images where stderr is a terminal (:mod:`embedder.utils.progress`).
        """
        # Many images: a copy with batch norm folded in, made per call so it sees the current weights.
        # It costs ~40 ms, so a few images (``adder predict``) go through the model as it is.
        with self._evaluating():
            network = self.model.for_inference() if len(images) >= FUSE_FROM else self.model
            with torch.inference_mode():
                return self.centering(self._batches(images, network, progress)).cpu().numpy()  # one host copy
