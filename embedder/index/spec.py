"""What an index is asked to be, without importing faiss or torch: :class:`IndexSpec` (which faiss index) and
:class:`IndexRule` (which supports stand for each class in it). The options of a training
(:class:`embedder.config.TrainConfig`) name these; this layer never reads a training's options.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedder.errors import ConfigError

DEFAULT_CENTROIDS = 32  # per class in a run's default index (embedder.index.supports)
INDEX_KINDS = ("flat", "ivf", "hnsw", "ivfpq", "sq8")  # faiss index types (embedder.index.support_index.SupportIndex)


@dataclass(frozen=True)
class IndexSpec:
    """Which faiss index holds the supports, and its parameters; ``None`` means chosen from the data.

    Field names are :class:`~embedder.config.TrainConfig`'s, so errors name the option. ``index_dim`` adds a PCA.
    """

    index: str = "flat"
    index_dim: int | None = None
    nlist: int | None = None
    nprobe: int = 8
    hnsw_m: int = 32
    ef_search: int = 64
    code_size: int | None = None

    def check(self, dim: int) -> None:
        """Raise :class:`ConfigError` unless this index can hold ``dim``-d embeddings."""
        if self.index not in INDEX_KINDS:
            raise ConfigError("index", f"{{index}} must be one of {', '.join(INDEX_KINDS)}, got {self.index!r}")
        for name in ("index_dim", "nlist", "nprobe", "hnsw_m", "ef_search", "code_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(name, f"{{{name}}} must be at least 1, got {value}")
        if self.index_dim is not None and self.index_dim >= dim:
            raise ConfigError("index_dim", f"{{index_dim}} must be below the embedding's {dim} dimensions")
        stored, pq = self.stored_dim(dim), self.pq_bytes(dim)
        if self.index == "ivfpq" and stored % pq:
            if self.code_size is not None:
                raise ConfigError(
                    "code_size", f"{{code_size}} {self.code_size} does not divide the {stored} dimensions"
                )
            raise ConfigError(  # only a PCA's dimension can miss the default
                "index_dim",
                f"{{index_dim}} {stored} is not a multiple of the default code size, {pq} bytes: "
                f"give a {{code_size}} that divides {stored}",
            )

    def stored_dim(self, dim: int) -> int:
        """Dimensions of the vectors the index stores: after the PCA, if any."""
        return self.index_dim or dim

    def pq_bytes(self, dim: int) -> int:
        """Bytes per vector of a product quantiser: one 8-bit code per sub-vector (4 dimensions each by default)."""
        return self.code_size or max(1, min(64, self.stored_dim(dim) // 4))


@dataclass(frozen=True)
class IndexRule:
    """Which supports a run's index holds: ``shots`` random images of each class, or (``shots`` None) up to
    ``centroids`` k-means centroids of each; ``seed`` draws either, in an index of ``spec``."""

    spec: IndexSpec = IndexSpec()
    shots: int | None = None
    centroids: int = DEFAULT_CENTROIDS
    seed: int = 0
