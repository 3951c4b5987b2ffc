"""Transfer screen: which design of what is learned carries to classes training never saw.

    python bench/transfer.py --domain fashion --variants triplet,supcon,... [--steps 250] [--episodes 100]
    python bench/transfer.py --domain loco --variants ...       # MNIST: train on 0,1; score 0,1,2 (3-way)
    python bench/transfer.py --domain folder:/tmp/glyphs --train-classes 0-99 --ways 20 --variants ...
    python bench/transfer.py --test mnist --variants triplet,supcon   # measuring: once per final configuration

A short loop of the project's own parts (EmbeddingNet, augment_batch, the losses, BalancedBatchSampler,
AdamW with the one-cycle schedule), not ``embed train``: it skips the run's index and calibration, so a
variant costs a few hundred steps. Selection domains only: Fashion-MNIST (train 0,1,2; 7-way 1-shot of
3-9) and MNIST leave-class-out (train 0,1; 3-way 1-shot of 0,1,2), each scored on two disjoint halves of
the *train* split (supports from one, queries from the other); MNIST 3-9 and test splits are never read.
``--test DATASET`` is for measuring finals only: train on 0,1,2 of the train split, then bench/oneshot.py's
protocol (10-way 1-shot and 5-shot, unseen 7-way 1-shot; test queries, supports drawn from the train split,
here from a seeded pool of ``--per-class`` images of each class) with the descriptor a run saves (final cl2n).
Every trained net is scored with several descriptors on the same episodes as raw pixels and HOG-like:
``final`` (the run's embedding, l2 or centred on the training classes, cl2n), ``multi`` (blocks 1-4, each
pooled to 4x4 and L2-normalised, concatenated; ``multi-f2`` with the final block weighted 2), ``b1+final``
(block 1 and the final block) and ``block1`` alone.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.baselines import hog_features, raw_pixel_features
from embedder.data.classes import parse_classes
from embedder.data.datasets import load_dataset
from embedder.data.sampling import BalancedBatchSampler
from embedder.evaluation.episodes import evaluate_episodes
from embedder.losses.contrast import ClassAndInstanceContrastLoss
from embedder.losses.triplet import InstanceAndClassTripletLoss
from embedder.models.network import EmbeddingNet
from embedder.training.augment import PRESETS, augment_batch

VARIANTS: dict[str, dict[str, Any]] = {
    "untrained": {"steps": 0},
    "triplet": {"loss": "triplet"},  # today's default: instance + 0.3 class triplets, strokes augmentation
    "triplet-objects": {"loss": "triplet", "augment": "objects"},
    "supcon": {"loss": "contrast", "instance_weight": 0.0},
    "supcon+inst": {"loss": "contrast", "instance_weight": 0.5},
    "supcon+inst1": {"loss": "contrast", "instance_weight": 1.0},
    "supcon+inst-t0.2": {"loss": "contrast", "instance_weight": 0.5, "temperature": 0.2},
    "supcon+inst-objects": {"loss": "contrast", "instance_weight": 0.5, "augment": "objects"},
    "supcon-objects": {"loss": "contrast", "instance_weight": 0.0, "augment": "objects"},
    "triplet-strokes": {"loss": "triplet"},  # today's default recipe, named for the finals
    "supcon+rot": {"loss": "contrast", "instance_weight": 0.0, "rotation": 0.5},
    "supcon+inst+rot": {"loss": "contrast", "instance_weight": 0.5, "rotation": 0.5},
    "triplet+rot": {"loss": "triplet", "rotation": 0.5},
    "supcon-objects+rot": {"loss": "contrast", "instance_weight": 0.0, "augment": "objects", "rotation": 0.5},
}
DESCRIPTORS = (
    "final l2", "final cl2n", "final ac2n", "multi l2", "multi cl2n", "multi-f2 l2", "multi-f2 cl2n",
    "b1+final cl2n", "block1 l2",
)  # fmt: skip


def criterion_for(v: dict[str, Any]) -> torch.nn.Module:
    if v.get("loss", "triplet") == "triplet":
        return InstanceAndClassTripletLoss(0.4, v.get("class_weight", 0.3))
    return ClassAndInstanceContrastLoss(v.get("temperature", 0.1), v.get("instance_weight", 0.5))


def train_net(images: torch.Tensor, labels: torch.Tensor, classes: list[int], v: dict[str, Any], args) -> EmbeddingNet:
    """``steps`` steps of two augmented views per image (plus rotated copies with a rotation head, if asked)."""
    torch.manual_seed(args.seed)
    net, criterion = EmbeddingNet(), criterion_for(v)
    rotation = torch.nn.Linear(net.embedding_dim, 4) if v.get("rotation") else None
    params = list(net.parameters()) + (list(rotation.parameters()) if rotation else [])
    steps = v.get("steps", args.steps)
    mean, std = float(images.float().mean() / 255), float(images.float().std() / 255)
    net.mean_std = (mean, std)
    if steps == 0:
        return net.eval()
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(args.seed)
    m = min(args.m, int(min((labels == c).sum() for c in classes)))
    ways = min(len(classes), max(2, args.batch // m))
    sampler = BalancedBatchSampler(labels, classes, m, ways, generator)
    augment = PRESETS[v.get("augment", "strokes")]
    net.train()
    for _ in range(steps):
        rows, y = sampler.sample()
        x = images[rows].unsqueeze(1).float() / 255
        views = torch.cat([augment_batch(x, generator, augment), augment_batch(x, generator, augment)])
        outputs = net.training_outputs((views - mean) / std)
        ids = torch.arange(len(rows)).repeat(2)
        loss = criterion(outputs, y.repeat(2), ids)
        if rotation is not None:
            k = torch.randint(0, 4, (len(rows),), generator=generator)
            turned = views[: len(rows)].clone()
            for q in (1, 2, 3):  # each quarter turn on its own images
                turned[k == q] = torch.rot90(turned[k == q], q, dims=(2, 3))
            loss = loss + v["rotation"] * F.cross_entropy(rotation(net((turned - mean) / std)), k)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return net.eval()


WEIGHTS = {"final": (0, 0, 0, 1), "multi": (1, 1, 1, 1), "multi-f2": (1, 1, 1, 2), "b1+final": (1, 0, 0, 1)}


@torch.inference_mode()
def raw_descriptors(net: EmbeddingNet, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each weighting's concatenation of L2-normalised block features (what the network's forward returns)."""
    mean, std = net.mean_std
    chunks = [
        net.block_features((images[i : i + 512].unsqueeze(1).float() / 255 - mean) / std)
        for i in range(0, len(images), 512)
    ]
    blocks = [F.normalize(torch.cat([chunk[b] for chunk in chunks]), dim=1) for b in range(len(chunks[0]))]
    out = {name: torch.cat([w * b for b, w in zip(blocks, ws, strict=True) if w], 1) for name, ws in WEIGHTS.items()}
    return {**out, "block1": blocks[0]}


def descriptors(
    net: EmbeddingNet,
    images: torch.Tensor,
    training: torch.Tensor,
    anchors: tuple[torch.Tensor, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """``NAME l2`` (plain L2 normalisation) and ``NAME cl2n`` (centred on the training images' mean first); with
    ``anchors`` (labelled images of every class a run would index: the training images and the supports),
    ``NAME ac2n``: centred on the mean of those classes' means, so every indexed class counts once."""
    raw, centres = raw_descriptors(net, images), raw_descriptors(net, training)
    anchored = raw_descriptors(net, anchors[0]) if anchors is not None else None
    out = {}
    for name, x in raw.items():
        out[f"{name} l2"] = F.normalize(x, dim=1).numpy()
        out[f"{name} cl2n"] = F.normalize(x - centres[name].mean(0), dim=1).numpy()
        if anchored is not None:
            labels = anchors[1]
            means = torch.stack([anchored[name][torch.from_numpy(labels == c)].mean(0) for c in np.unique(labels)])
            out[f"{name} ac2n"] = F.normalize(x - means.mean(0), dim=1).numpy()
    return out


def pools(labels: np.ndarray, classes: list[int], per_class: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint support and query pools of the train split, at most ``per_class`` images of each class each."""
    rng = np.random.default_rng(seed)
    support, query = [], []
    for c in classes:
        rows = rng.permutation(np.flatnonzero(labels == c))
        half = len(rows) // 2
        support.append(rows[: min(half, per_class)])
        query.append(rows[half : half + per_class])
    return np.concatenate(support), np.concatenate(query)


def domain(name: str, args) -> tuple[Any, list[int], list[int], int]:
    """(dataset, training classes, scored classes, ways)."""
    if name == "fashion":
        data = load_dataset("fashion-mnist", args.data_dir)
        return data, [0, 1, 2], list(range(3, 10)), 7
    if name == "loco":
        data = load_dataset("mnist", args.data_dir)
        return data, [0, 1], [0, 1, 2], 3
    data = load_dataset(name, args.data_dir)
    trained = parse_classes(args.train_classes)
    return data, trained, [c for c in data.classes if c not in trained], args.ways


def test_protocol(name: str, args) -> None:
    """Finals: each variant trained on classes 0,1,2 of ``name``, scored on its test split."""
    data = load_dataset(name, args.data_dir)
    labels = data.train_labels.numpy()
    trained = np.flatnonzero(np.isin(labels, [0, 1, 2]))
    pool = np.concatenate([np.random.default_rng(2).permutation(np.flatnonzero(labels == c))[: args.per_class]
                           for c in data.classes])  # fmt: skip
    settings = [("10-way 1-shot", data.classes, 1), ("10-way 5-shot", data.classes, 5),
                ("unseen 7-way 1-shot", list(range(3, 10)), 1)]  # fmt: skip
    print(f"{name} test queries, train-split supports ({args.per_class} a class), {args.episodes} episodes, "
          f"{args.steps} steps")  # fmt: skip
    print("| variant | " + " | ".join(s[0] for s in settings) + " | train s |\n|---|---|---|---|---|")

    def row(label: str, support: np.ndarray, query: np.ndarray, seconds: str) -> None:
        cells = [evaluate_episodes(support, labels[pool], query, data.test_labels.numpy(), classes, shots,
                                   args.episodes, seed=0).mean for _, classes, shots in settings]  # fmt: skip
        print(f"| {label} | " + " | ".join(f"{100 * c:.1f}" for c in cells) + f" | {seconds} |", flush=True)

    for label, features in (("raw pixels", raw_pixel_features), ("HOG-like", hog_features)):
        row(label, features(data.train_images[pool]), features(data.test_images), "-")
    for variant in [v for v in args.variants.split(",") if v]:
        started = time.perf_counter()
        net = train_net(data.train_images[trained], data.train_labels[trained], [0, 1, 2], VARIANTS[variant], args)
        seconds = f"{time.perf_counter() - started:.0f}"
        centre = data.train_images[trained][:: max(1, len(trained) // 2000)]
        s, q = descriptors(net, data.train_images[pool], centre), descriptors(net, data.test_images, centre)
        row(f"{variant} (final cl2n)", s["final cl2n"], q["final cl2n"], seconds)
        if args.glyphs:
            print(f"|   same net on {args.glyphs}'s held-out classes, {args.ways}-way 1-shot: "
                  f"{other_domain(net, centre, args):.1f} |", flush=True)  # fmt: skip


def other_domain(net: EmbeddingNet, centre: torch.Tensor, args) -> float:
    """The net, centred on its own training images, on another domain's held-out classes (the screen's pools)."""
    data = load_dataset(args.glyphs, args.data_dir)
    trained = parse_classes(args.train_classes)
    scored = [c for c in data.classes if c not in trained]
    labels = data.train_labels.numpy()
    support, query = pools(labels, scored, args.per_class)
    raw = raw_descriptors(net, torch.cat([data.train_images[support], data.train_images[query]]))["final"]
    x = F.normalize(raw - raw_descriptors(net, centre)["final"].mean(0), dim=1).numpy()
    means = []
    for e in range(max(1, math.ceil(len(scored) / args.ways))):
        classes = list(np.random.default_rng(e).choice(scored, args.ways, False))
        r = evaluate_episodes(x[: len(support)], labels[support], x[len(support) :], labels[query], classes,
                              1, args.episodes, seed=e)  # fmt: skip
        means.append(r.mean)
    return 100 * float(np.mean(means))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", default="fashion", help="fashion, loco, or a dataset name / folder:PATH")
    parser.add_argument("--variants", default="untrained,triplet,supcon,supcon+inst")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch", type=int, default=192, help="images per batch (two views each)")
    parser.add_argument("--m", type=int, default=64, help="images of each class per batch")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=500, help="images per class in each pool")
    parser.add_argument("--train-classes", default="0-99", help="training classes of a dataset domain")
    parser.add_argument("--ways", type=int, default=20, help="N of N-way 1-shot episodes of a dataset domain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--test", help="measure finals on this dataset's test split (mnist, fashion-mnist)")
    parser.add_argument("--glyphs", help="with --test: also score the net on this dataset's held-out classes")
    args = parser.parse_args()
    if args.test:
        return test_protocol(args.test, args)
    data, trained, scored, ways = domain(args.domain, args)
    labels = data.train_labels.numpy()
    support, query = pools(labels, scored, args.per_class)
    train_rows = np.flatnonzero(np.isin(labels, trained))
    if args.domain == "loco":  # the scored classes' query pool is never trained on
        train_rows = np.setdiff1d(train_rows, query)
    images, train_labels = data.train_images[train_rows], data.train_labels[train_rows]
    ways = min(ways, len(scored))
    print(
        f"{args.domain}: train on {len(trained)} classes ({len(train_rows)} images), {args.steps} steps of "
        f"{args.batch}; {ways}-way 1-shot of {len(scored)} classes, {args.episodes} episodes, train-split pools"
    )

    def accuracy(x: np.ndarray) -> float:
        means = []
        for e in range(max(1, math.ceil(len(scored) / ways)) if ways < len(scored) else 1):
            classes = scored if ways == len(scored) else list(np.random.default_rng(e).choice(scored, ways, False))
            r = evaluate_episodes(x[: len(support)], labels[support], x[len(support) :], labels[query], classes,
                                  1, args.episodes, seed=e)  # fmt: skip
            means.append(r.mean)
        return 100 * float(np.mean(means))

    both = torch.cat([data.train_images[support], data.train_images[query]])
    pix, hog = accuracy(raw_pixel_features(both)), accuracy(hog_features(both))
    print(f"baselines on the same episodes: raw pixels {pix:.1f}, HOG-like {hog:.1f}\n")
    print("| variant | " + " | ".join(DESCRIPTORS) + " | train s |\n|---|" + "---|" * (len(DESCRIPTORS) + 1))
    for name in [v for v in args.variants.split(",") if v]:
        started = time.perf_counter()
        net = train_net(images, train_labels, trained, VARIANTS[name], args)
        seconds = time.perf_counter() - started
        sub = slice(None, None, max(1, len(images) // 2000))
        anchors = (torch.cat([images[sub], data.train_images[support]]),
                   np.concatenate([train_labels[sub].numpy(), labels[support]]))  # fmt: skip
        feats = descriptors(net, both, images[sub], anchors)
        cells = [f"{accuracy(feats[d]):.1f}" for d in DESCRIPTORS]
        print(f"| {name} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
