"""Helpers the performance benchmarks share: the machine line, timers, MNIST for torchvision."""

from __future__ import annotations

import gzip
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

MNIST_RAW = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def machine() -> str:
    """One line naming the CPU, its cores and torch's threads, for the tables."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{model}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"
    )


def run_embedder(run_dir: str, data) -> tuple[object, str]:
    """The embedder of a finished run; of one still training, its last checkpoint's model, centred on the
    training classes as ``embed train`` centres it at the end. Returns it with a line saying which."""
    from embedder.config import TrainConfig
    from embedder.embedding import Embedder
    from embedder.model import EmbeddingNet
    from embedder.run import Run
    from embedder.store import RunDir

    store = RunDir(run_dir)
    if store.has("model"):
        return Run.load(run_dir).embedder, f"run {run_dir}"
    checkpoint = store.read_tensors("checkpoint")
    config = TrainConfig(**checkpoint["config"])
    model = EmbeddingNet(config.embedding_dim, config.width)
    model.load_state_dict(checkpoint["model"])
    pixels = data.train_images.float() / 255.0
    embedder = Embedder(model.eval(), float(pixels.mean()), float(pixels.std()))
    seen = torch.isin(data.train_labels, torch.tensor(config.classes))
    embedder.fit_centering(data.train_images[seen])
    return embedder, f"the epoch-{checkpoint['epoch']} checkpoint of {run_dir} (classes {config.classes})"


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so a wall-clock timer measures it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device | None = None) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        if device is not None:
            sync(device)
        start = time.perf_counter()
        fn()
        if device is not None:
            sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torchvision_mnist_root(data_root: Path, scratch: Path) -> Path:
    """A root torchvision's ``MNIST(root, download=False)`` accepts, built from our ``MNIST/raw`` folder.

    torchvision reads only the *uncompressed* raw files and would otherwise try to download; the data
    folder may be read-only, so the files are decompressed (or linked) into ``scratch`` instead.
    """
    raw_in, raw_out = data_root / "MNIST" / "raw", scratch / "MNIST" / "raw"
    raw_out.mkdir(parents=True, exist_ok=True)
    for stem in MNIST_RAW:
        target = raw_out / stem
        if target.exists():
            continue
        if (raw_in / stem).is_file():
            os.symlink((raw_in / stem).resolve(), target)
        else:
            with gzip.open(raw_in / f"{stem}.gz", "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return scratch
