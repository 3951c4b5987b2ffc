"""Embedding throughput: images per second embedding all 70k MNIST images, and the FLOP rate that is.

    python bench/embed_throughput.py --data-dir DIR [--run-dir RUN] [--batch-sizes 256,2048] [--rounds 3]

The model's FLOPs per image come from ``torch.utils.flop_counter.FlopCounterMode`` on one batch (it counts
convolutions and matmuls, 2 FLOPs per multiply-add; batch norm, ReLU and pooling are not counted, so the
achieved rate is a slight underestimate of the work done). The machine's practical limit is a large fp32
matmul (``--matmul-size``, default 4096) timed in the same run, alternating with the embedding rounds.
Without ``--run-dir`` an untrained ``EmbeddingNet`` is used: the speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import machine, median_seconds, sync
from torch.utils.flop_counter import FlopCounterMode

from embedder.data.datasets import load_dataset
from embedder.models.embedder import Embedder
from embedder.models.network import EmbeddingNet
from embedder.runs.run import Run
from embedder.training.devices import resolve_device


def flops_per_image(embedder: Embedder, images: torch.Tensor) -> float:
    """Forward FLOPs of the embedding model per image, counted on one batch."""
    embedder.model.eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        embedder.model(embedder.preprocess(images))
    return counter.get_total_flops() / len(images)


def matmul_gflops(size: int, device: torch.device, repeats: int = 5) -> float:
    """GFLOP/s of one ``size x size`` fp32 matmul: the practical peak of this machine's BLAS."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    seconds = median_seconds(lambda: torch.mm(a, b), repeats, device)
    return 2 * size**3 / seconds / 1e9


def embed_rate(embedder: Embedder, images: torch.Tensor, device: torch.device) -> float:
    """Images per second of ``Embedder.embed`` over ``images`` (host uint8 in, numpy float32 out)."""
    sync(device)
    start = time.perf_counter()
    embedder.embed(images)
    sync(device)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--run-dir", help="a trained run to embed with (default: an untrained EmbeddingNet)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="256,2048", help="Embedder batch sizes to compare; the first is shown")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=4096)
    args = parser.parse_args()

    device = resolve_device(args.device)
    data = load_dataset("mnist", args.data_dir)
    images = torch.cat([data.train_images, data.test_images])  # all 70k
    if args.run_dir:
        embedder = Run.load(args.run_dir, device).embedder
        source = f"run {args.run_dir}"
    else:
        torch.manual_seed(0)
        pixels = data.train_images.float() / 255.0
        embedder = Embedder(EmbeddingNet().to(device).eval(), float(pixels.mean()), float(pixels.std()), device=device)
        source = "untrained EmbeddingNet (dim 1024, width 32)"
    per_image = flops_per_image(embedder, images[:256])
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(f"machine: {machine()}; device {device}")
    print(f"model: {source}; {per_image / 1e6:.2f} MFLOP per image (FlopCounterMode, forward)\n", flush=True)

    embed_rate(embedder, images[:4096], device)  # warm-up: oneDNN picks its kernels
    rates: dict[int, list[float]] = {b: [] for b in sizes}
    peaks: list[float] = []
    for r in range(args.rounds):  # alternate, so a noisy neighbour slows both alike
        for b in sizes:
            embedder.batch_size = b
            rates[b].append(embed_rate(embedder, images, device))
        peaks.append(matmul_gflops(args.matmul_size, device))
        cells = ", ".join(f"batch {b}: {rates[b][-1]:.0f} images/s" for b in sizes)
        print(f"  round {r + 1}: {cells}; {args.matmul_size}^2 matmul {peaks[-1]:.1f} GFLOP/s", flush=True)

    peak = statistics.median(peaks)
    print(f"\n| embedding {len(images)} MNIST images | images/s | seconds | GFLOP/s | fraction of fp32 matmul |")
    print("|---|---|---|---|---|")
    for b in sizes:
        rate = statistics.median(rates[b])
        gflops = rate * per_image / 1e9
        print(
            f"| Embedder.embed, batch {b} | {rate:.0f} | {len(images) / rate:.1f} | {gflops:.1f} | "
            f"{100 * gflops / peak:.0f}% |"
        )
    print(f"| {args.matmul_size}x{args.matmul_size} fp32 matmul (torch.mm) | | | {peak:.1f} | 100% |")


if __name__ == "__main__":
    main()
