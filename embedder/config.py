"""What a training is asked to do: :class:`TrainConfig`, checked when it is made, without importing torch.

Each field carries its help text, so the CLI builds its options (defaults included) from this one table.
A ``TrainConfig`` that exists is valid: ``__post_init__`` checks every field, and the class is frozen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from embedder.data.classes import ALL, ClassList, ValClasses, check_class_list, parse_classes, parse_val_classes
from embedder.data.sources import NO_POOL, POOL_FOLDER
from embedder.data.sources import REST_POOL as REST_POOL  # re-exported: the options name what data defines
from embedder.errors import ConfigError
from embedder.index.spec import DEFAULT_CENTROIDS, INDEX_KINDS, IndexRule, IndexSpec

DEFAULT_RUN_DIR = "runs/latest"
LOSSES = ("auto", "triplet", "contrast")  # embedder.losses.make_loss; auto: embedder.training.policies.loss_for
# --unlabelled: no pool, the train split's images of every class not trained on (chosen by label), or a folder.
NO_LABELS_NEED_A_POOL = "{classes} none trains on no labels: give a pool, {unlabelled} rest or a folder"
POOL_AUGMENT = 2.0  # the default augmentation strength beside a pool, on a few classes of strokes (docs/results.md)
MAX_EPOCHS = 100_000  # a bound that no real training reaches, so that a typo is refused, not estimated in years
AUGMENTATIONS = ("auto", "strokes", "objects")  # embedder.training.augment.PRESETS; auto: OBJECT_DATASETS
OBJECT_DATASETS = ("fashion-mnist",)  # datasets of photographed things: objects augmentation under auto
DESCRIPTORS = ("final", "multi")  # embedder.models.network: the final map, or every block's (DEPTH_WEIGHTS)
STEPS_PER_CLASS = 4  # default epochs give at least this many steps per training class (and MIN_STEPS)
SMALL_CLASS = 32  # training classes this small (and more than MAX_WAYS of them) get SMALL_BATCH by default
SMALL_BATCH = (32, 8)  # classes x images per batch for many small classes
# Nearest support, nearest class mean, or prototypes refined over the run's pool (embedder.fewshot.classifiers)
METHODS = ("nn", "prototype", "pool")
MAX_WAYS = 8  # classes per batch when batch_size is not given
# Training defaults, chosen by embedder.training.policies (its table says when and why): the strict schedule, and
# the pooled one measured in 0.6 (MNIST 0,1,2 beside --unlabelled rest: 32 images a class, 8 epochs).
DEFAULT_EPOCHS = 30
DEFAULT_M_PER_CLASS = 64
POOL_EPOCHS = 8
POOL_M_PER_CLASS = 32
MIN_STEPS = 60  # a small dataset's default epochs give at least this many steps (the bundled digits' 2 x 30)
# By default a training of this many classes or more holds this share of them out (validation classes): few-shot
# practice (the Vinyals split of Omniglot); with fewer, holding any out costs more training than the score is worth.
VAL_CLASSES_FROM = 20
DEFAULT_VAL_SHARE = 0.2
# --loss auto: class contrast from this many training classes (glyphs), triplets below it on strokes (docs/results.md)
CONTRAST_FROM = 20


def _option(default: Any, help: str, **extra: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **extra})
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class TrainConfig:
    classes: ClassList = _option(
        [0, 1, 2], "Classes to train on: labels 0,1,2, a range 0-4, names (T-shirt/top,Trouser), or all."
    )
    dataset: str = _option("mnist", "The dataset to train on, or folder:PATH for a folder of class folders.")
    data_dir: str | None = _option(None, "Data root [default: $TRIPLETSHOT_DATA, else ~/.cache/tripletshot].")
    run_dir: str = _option(DEFAULT_RUN_DIR, "Where the run is saved.")
    epochs: int | None = _option(
        None,
        f"Passes over the training classes' images [default: {DEFAULT_EPOCHS}; {POOL_EPOCHS} beside an unlabelled pool "
        f"on under {CONTRAST_FROM} classes of strokes; more on a small dataset, so that training takes at least "
        f"{MIN_STEPS} steps and {STEPS_PER_CLASS} per training class].",
        type=int,
    )
    batch_size: int | None = _option(
        None,
        "Images per batch, a multiple of {m_per_class} [default: m x min(classes, 8); for more than 8 classes "
        f"of under {SMALL_CLASS} images, {SMALL_BATCH[0]} classes x {SMALL_BATCH[1]}].",
        type=int,
    )
    m_per_class: int | None = _option(
        None,
        f"Images of each class in a batch, fewer where a class has fewer [default: {DEFAULT_M_PER_CLASS}; "
        f"{POOL_M_PER_CLASS} beside an unlabelled pool on under {CONTRAST_FROM} classes of strokes].",
        type=int,
    )
    lr: float = _option(2e-3, "Peak learning rate (one-cycle schedule, AdamW).")
    weight_decay: float = _option(1e-4, "AdamW weight decay.")
    margin: float = _option(0.4, "Triplet margin.")
    class_weight: float = _option(0.3, "Weight of class triplets next to instance triplets (--loss triplet).")
    loss: str = _option(
        "auto",
        "Objective on the labelled classes: instance + class triplets with a margin (triplet), or class contrast "
        "with a temperature (SupCon; contrast), or auto: contrast beside an unlabelled pool, with the objects "
        f"augmentation or on {CONTRAST_FROM} training classes or more, triplet otherwise.",
        choices=LOSSES,
    )
    temperature: float = _option(0.1, "Temperature of the contrast losses (class, instance and the pool's).")
    instance_weight: float = _option(
        0.0, "Weight of instance contrast of two views next to class contrast (--loss contrast; 0: none)."
    )
    unlabelled: str | None = _option(
        None,
        "Unlabelled pool, trained on by instance contrast of two views: none, rest (the train split's images of "
        "the classes outside {classes} and the validation classes: their labels choose them, nothing else reads "
        f"them), or a folder of images in any nesting [default: none; for folder:PATH, PATH/{POOL_FOLDER}/ if it "
        "exists].",
        type=str,
    )
    unlabelled_weight: float = _option(1.0, "Weight of the pool's contrast next to the labelled objective.")
    unlabelled_clusters: int = _option(
        0,
        "Pseudo-labels for the pool: k-means of its embeddings into this many clusters, drawn again about eight "
        "times a training, whose class contrast joins the pool's instance contrast (0: instance contrast only).",
    )
    descriptor: str = _option(
        "final",
        "Embedding: the final map's 4x4 grid (final), or every block's pooled map, each L2-normalised (multi).",
        choices=DESCRIPTORS,
    )
    augmentation: str = _option(
        "auto",
        "Augmentation set: strokes (thickness, elastic warps: handwriting), objects (mirrors, crops), or auto "
        f"(objects for {', '.join(OBJECT_DATASETS)} and for a folder: dataset of filled shapes, as photographs are; "
        "strokes otherwise).",
        choices=AUGMENTATIONS,
    )
    augment: float | None = _option(
        None,
        "Strength of the augmentation: 0 none, 1 as designed, 2 twice as strong "
        f"[default: {POOL_AUGMENT:g} with an unlabelled pool on under {CONTRAST_FROM} classes of strokes, else 1].",
        type=float,
    )
    embedding_dim: int = _option(1024, "Embedding size: a 4x4 grid of dim/16 channels.")
    width: int = _option(32, "Channels of the first convolution (the network's width).")
    seed: int = _option(0, "Seed of the weights, batches, augmentation and support draws.")
    shots: int | None = _option(
        None,
        "Index N random train-split images of each class (1: one-shot) [default: k-means centroids of all of each "
        "class's labelled train images, unseen classes included, see --centroids].",
        type=int,
    )
    centroids: int = _option(
        DEFAULT_CENTROIDS,
        "Centroids per class in the default index: k-means of the embeddings of all the class's labelled train-split "
        "images (held-out ones aside), for unseen classes too.",
    )
    method: str = _option(
        "nn",
        "Nearest support (nn), nearest class mean (prototype), or pool: prototypes refined over the run's pool "
        "(embed pool; a pooled training's own pool makes it the run's method).",
        choices=METHODS,
    )
    device: str = _option("auto", "auto (CUDA if available), cpu, cuda or cuda:N.")
    index: str = _option("flat", "faiss index of the supports: exact (flat) or approximate.", choices=INDEX_KINDS)
    index_dim: int | None = _option(None, "Shrink embeddings to this many dimensions by PCA in the index.", type=int)
    nlist: int | None = _option(None, "Lists of an ivf/ivfpq index [default: from the training size].", type=int)
    nprobe: int = _option(8, "Lists an ivf/ivfpq search visits.")
    hnsw_m: int = _option(32, "Neighbours per node of an hnsw index.")
    ef_search: int = _option(64, "Candidates an hnsw search keeps.")
    code_size: int | None = _option(None, "Bytes per vector of an ivfpq index [default: dim/4, at most 64].", type=int)
    val_fraction: float = _option(0.1, "Share of the training classes' images held out to track the loss.")
    val_classes: ValClasses = _option(
        None,
        "Validation classes: K of {classes} held out of training, on which N-way 1-shot is scored during training "
        "(the best epoch's weights are kept), or which ones (labels, a range or names; one label as 7-7) "
        f"[default: {DEFAULT_VAL_SHARE:.0%} of {{classes}}, seeded, when there are {VAL_CLASSES_FROM} or more, "
        "else none; 0: none].",
        type=str,
    )
    far: float = _option(0.01, "Target false-accept rate of the open-set threshold, calibrated on the held-out images.")
    test_fraction: float = _option(
        0.2, "Share of each class of a folder: dataset held out as its test split, unless it has train/ and test/."
    )
    strict: bool = _option(False, "Refuse a folder: dataset holding unreadable or blank images; skip them otherwise.")
    dry_run: bool = _option(False, "One epoch of two steps: check that everything runs.")

    def __post_init__(self) -> None:
        classes = parse_classes(self.classes) if isinstance(self.classes, str) else list(self.classes)
        check_class_list(classes)
        # A folder: dataset's own unlabelled/ is a pool: checked once the dataset is loaded
        if self.unlabelled is not None:  # a path or a keyword, stripped once here
            if not str(self.unlabelled).strip():
                raise ConfigError("unlabelled", "{unlabelled} is empty: give none, rest or a folder of images")
            object.__setattr__(self, "unlabelled", str(self.unlabelled).strip())
        if not classes and self.unlabelled in (None, NO_POOL) and not self.dataset.startswith("folder:"):
            raise ConfigError("classes", NO_LABELS_NEED_A_POOL)
        if all(isinstance(c, int) for c in classes):
            classes = sorted(classes)
        object.__setattr__(self, "classes", classes)  # frozen: the sanctioned writes, of the parsed forms
        # Checked against the classes once the dataset is loaded (resolve_val_classes): the names need it.
        object.__setattr__(self, "val_classes", parse_val_classes(self.val_classes))
        if self.unlabelled_clusters < 0 or self.unlabelled_clusters == 1:
            raise ConfigError(
                "unlabelled_clusters",
                f"{{unlabelled_clusters}} must be 0 (none) or at least 2, got {self.unlabelled_clusters}",
            )
        for name in ("epochs", "m_per_class", "embedding_dim", "width", "shots", "centroids"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(name, f"{{{name}}} must be at least 1, got {getattr(self, name)}")
        if self.epochs is not None and self.epochs > MAX_EPOCHS:
            raise ConfigError("epochs", f"{{epochs}} must be at most {MAX_EPOCHS:,}, got {self.epochs}")
        for name in ("lr", "margin", "class_weight", "weight_decay", "augment", "instance_weight", "unlabelled_weight"):
            value = getattr(self, name)
            if value is None:  # augment: chosen with the pool (embedder.training.trainer)
                continue
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                kind = "positive" if name == "lr" else "non-negative"
                raise ConfigError(name, f"{{{name}}} must be a finite {kind} number, got {value}")
        if self.embedding_dim % 16:
            raise ConfigError(
                "embedding_dim",
                f"{{embedding_dim}} must be a multiple of 16 (a 4x4 grid of descriptors), got {self.embedding_dim}",
            )
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError("temperature", f"{{temperature}} must be a positive number, got {self.temperature}")
        for name, allowed in (("loss", LOSSES), ("augmentation", AUGMENTATIONS), ("descriptor", DESCRIPTORS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"{{{name}}} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.method not in METHODS:
            raise ConfigError("method", f"{{method}} must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("val_fraction", f"{{val_fraction}} must be in [0, 1), got {self.val_fraction}")
        check_far(self.far)
        if not 0 < self.test_fraction < 1:
            raise ConfigError("test_fraction", f"{{test_fraction}} must be in (0, 1), got {self.test_fraction}")
        self._check_batch()
        self.index_spec.check(self.embedding_dim)

    @property
    def index_spec(self) -> IndexSpec:
        """The support index this training builds."""
        return IndexSpec(**{f.name: getattr(self, f.name) for f in fields(IndexSpec)})

    @property
    def index_rule(self) -> IndexRule:
        """Which supports stand for each class, in what index: what embedder.index.build is given."""
        return IndexRule(self.index_spec, self.shots, self.centroids, self.seed)

    def _check_batch(self) -> None:
        # An unset m_per_class is chosen once the pool is known (embedder.training.policies): checked then.
        if self.batch_size is None or self.m_per_class is None:
            return
        if self.batch_size % self.m_per_class:
            message = f"{{batch_size}} {self.batch_size} is not a multiple of {{m_per_class}} {self.m_per_class}"
            raise ConfigError("batch_size", message)
        # "all" is counted once the dataset is loaded: the config is then made again with the labels
        most = None if self.classes == [ALL] else len(self.classes)
        if not 2 <= self.batch_size // self.m_per_class <= (most or self.batch_size):
            raise ConfigError(
                "batch_size",
                f"{{batch_size}} {self.batch_size} holds {self.batch_size // self.m_per_class} classes of "
                f"{self.m_per_class}; a batch needs 2 to {most or 'all the'} classes (one triplet needs two)",
            )


@dataclass(frozen=True)
class EvalConfig:
    """What ``embed eval`` measures besides the run's own index: N-way K-shot episodes."""

    shots: int = _option(1, "K of the episodic N-way K-shot evaluation.")
    episodes: int = _option(200, "Random support draws.")
    seed: int = _option(0, "Seed of the support draws.")
    method: str | None = _option(None, "nn, prototype or pool [default: the run's].", choices=METHODS)
    open_set: bool = _option(
        False,
        "Also leave each unseen class out of the index in turn: AUROC of known vs unknown, and accuracy at "
        "the run's threshold.",
    )

    def __post_init__(self) -> None:
        for name in ("episodes", "shots"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"{{{name}}} must be at least 1, got {getattr(self, name)}")
        if self.method is not None and self.method not in METHODS:
            raise ConfigError("method", f"{{method}} must be one of {', '.join(METHODS)}, got {self.method!r}")


MAX_DISTANCE = 2.0  # between unit vectors


@dataclass(frozen=True)
class PredictConfig:
    """How ``embed predict`` answers: how many neighbours it shows, and when it says ``unknown``."""

    k: int = _option(5, "Nearest supports shown for each image.")
    threshold: float | None = _option(
        None, "Distance from which an image is unknown [default: the run's calibrated threshold].", type=float
    )
    reject: bool = _option(True, "Answer unknown beyond the threshold; without it, always the nearest class.")

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError("k", f"{{k}} must be at least 1, got {self.k}")
        if self.threshold is not None:
            if not (math.isfinite(self.threshold) and 0 <= self.threshold <= MAX_DISTANCE):
                raise ConfigError(
                    "threshold", f"{{threshold}} is a distance between unit vectors, 0 to 2, got {self.threshold}"
                )
            if not self.reject:
                raise ConfigError("threshold", "{threshold} and {reject} contradict each other: give one or the other")


def default_val_classes(classes: int) -> int:
    """How many of ``classes`` requested classes a training holds out for validation when not told."""
    return round(DEFAULT_VAL_SHARE * classes) if classes >= VAL_CLASSES_FROM else 0


def check_far(far: float) -> None:
    """A target false-accept rate is a share strictly between 0 and 1."""
    if not (math.isfinite(far) and 0 < far < 1):
        raise ConfigError("far", f"{{far}} is a target false-accept rate, strictly between 0 and 1, got {far}")


def field_table(cls: type) -> dict[str, dict[str, Any]]:
    """Each field of a config dataclass with its default and metadata (help, choices): what the CLI builds
    its options from."""
    table = {}
    for f in fields(cls):
        default = f.default_factory() if callable(f.default_factory) else f.default
        table[f.name] = {"default": default, **f.metadata}
    return table


# What a resumed training may change: where it runs and where its files are, not what it trains.
RESUMABLE_CHANGES = ("device", "data_dir", "run_dir")
