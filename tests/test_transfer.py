"""Issue 19's design changes: the multi-depth descriptor, the objects augmentation, the schedule rule and the
contrast objective in a real training."""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from embedder.config import TrainConfig
from embedder.errors import ConfigError
from embedder.models.network import DEPTH_WEIGHTS, FINAL_ONLY, EmbeddingNet
from embedder.training.augment import AugmentConfig, augment_batch


def test_multi_depth_features_concatenate_every_block_and_fuse_the_same():
    torch.manual_seed(0)
    model = EmbeddingNet(256, width=8, depth_weights=DEPTH_WEIGHTS["multi"]).eval()
    x = torch.randn(6, 1, 28, 28)
    with torch.inference_mode():
        features = model(x)
        fused = model.for_inference()(x)
        blocks = model.block_features(x)
    assert model.embedding_dim == 16 * (8 + 16 + 16) + 256 == features.shape[1]
    torch.testing.assert_close(fused, features, atol=1e-4, rtol=1e-4)
    start = 0
    for block in blocks:  # each block's part is that block's pooled map, L2-normalised
        part = features[:, start : start + block.shape[1]]
        torch.testing.assert_close(part, torch.nn.functional.normalize(block, dim=1))
        start += block.shape[1]


def test_a_model_saved_before_depth_weights_loads_as_final_only():
    old = EmbeddingNet(256, width=8)
    state = {k: v for k, v in old.state_dict().items() if k != "depth_weights"}  # as v0.x wrote it
    loaded = EmbeddingNet(256, width=8, depth_weights=DEPTH_WEIGHTS["multi"])
    loaded.load_state_dict(state)
    assert loaded.depth_weights.tolist() == list(FINAL_ONLY) and loaded.embedding_dim == 256
    multi = EmbeddingNet(256, width=8, depth_weights=DEPTH_WEIGHTS["multi"])
    again = EmbeddingNet(256, width=8)  # how a run is loaded: the weights come from the saved buffer
    again.load_state_dict(multi.state_dict())
    assert again.embedding_dim == multi.embedding_dim > 256


def test_objects_augmentation_mirrors_images():
    x = torch.rand(4, 1, 28, 28)
    mirror_only = AugmentConfig().scaled(0.0)
    mirror_only = AugmentConfig(**{**asdict(mirror_only), "flip_prob": 1.0})
    out = augment_batch(x, torch.Generator().manual_seed(0), mirror_only)
    torch.testing.assert_close(out, torch.flip(x, dims=[-1]), atol=1e-5, rtol=1e-5)
    unchanged = augment_batch(x, torch.Generator().manual_seed(0), AugmentConfig().scaled(0.0))
    torch.testing.assert_close(unchanged, x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("options", "param"),
    [({"loss": "hinge"}, "loss"), ({"temperature": 0.0}, "temperature"), ({"descriptor": "deep"}, "descriptor"),
     ({"augmentation": "photos"}, "augmentation"), ({"instance_weight": -1.0}, "instance_weight")],
)  # fmt: skip
def test_bad_design_options_name_the_parameter(options, param):
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**options)
    assert caught.value.param == param


def test_many_small_classes_get_more_classes_of_fewer_images_and_enough_steps():
    from embedder.training.policies import batch_rule as _batch_rule

    many_small = [16] * 100
    assert _batch_rule(many_small, TrainConfig()) == (many_small, 8, 256)
    assert _batch_rule([6000] * 3, TrainConfig()) == ([6000] * 3, 64, None)  # MNIST 0,1,2 as before
    assert _batch_rule(many_small, TrainConfig(classes="all", batch_size=128, m_per_class=16)) == (many_small, 16, 128)


def test_a_checkpoint_from_before_the_design_options_resumes_as_it_trained():
    from embedder.training.checkpoint import config_from_checkpoint

    stored = asdict(TrainConfig())
    for name in ("loss", "temperature", "instance_weight", "descriptor", "augmentation"):
        del stored[name]
    config = config_from_checkpoint({"config": stored}, "old-run")
    assert (config.loss, config.descriptor, config.augmentation) == ("triplet", "final", "strokes")


def test_contrast_and_multi_depth_train_a_run_that_labels_unseen_digits(tmp_path, digits):
    from embedder.evaluation.episodes import evaluate_episodes
    from embedder.runs.run import Run
    from embedder.training.trainer import train

    config = TrainConfig(
        dataset="digits", classes=[0, 1, 2, 3, 4], epochs=6, m_per_class=32, device="cpu", run_dir=str(tmp_path / "r"),
        loss="contrast", descriptor="multi",
    )  # fmt: skip
    meta = train(config, progress=False, log=lambda _: None, dataset=digits).metadata
    assert meta["curve"][-1]["train_loss"] < meta["curve"][0]["train_loss"]
    run = Run.load(tmp_path / "r")
    assert run.embedder.dim == run.index.dim > 1024  # the blocks' parts are saved and reloaded with the weights
    train_x, test_x = run.embedder.embed(digits.train_images), run.embedder.embed(digits.test_images)
    labels = digits.train_labels.numpy(), digits.test_labels.numpy()
    result = evaluate_episodes(train_x, labels[0], test_x, labels[1], list(range(10)), shots=1, episodes=20)
    from embedder.models.baselines import raw_pixel_features

    pixels = [raw_pixel_features(images) for images in (digits.train_images, digits.test_images)]
    baseline = evaluate_episodes(*pixels[:1], labels[0], pixels[1], labels[1], list(range(10)), shots=1, episodes=20)
    assert result.mean > baseline.mean, (result.mean, baseline.mean)  # the same episodes: learned something


def test_auto_augmentation_is_named_by_the_dataset():
    from embedder.training.policies import augmentation_for

    assert augmentation_for(TrainConfig(dataset="fashion-mnist")) == "objects"
    assert augmentation_for(TrainConfig(dataset="mnist")) == "strokes"
    assert augmentation_for(TrainConfig(dataset="fashion-mnist", augmentation="strokes")) == "strokes"


def photographs(root, per_class: int = 24):
    """A folder dataset of real photographs: crops of scikit-learn's two bundled photos (a temple, a flower)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    for name, photo in zip(("temple", "flower"), load_sample_images().images, strict=True):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            y, x = rng.integers(0, photo.shape[0] - 160), rng.integers(0, photo.shape[1] - 160)
            Image.fromarray(photo[y : y + 160, x : x + 160]).resize((64, 64)).save(root / name / f"{i}.jpg")


def strokes(root, digits, per_class: int = 24):
    """A folder dataset of strokes: the bundled digits 0-1 as dark-on-light PNGs, as a scan would be."""
    from PIL import Image

    for digit in (0, 1):
        (root / str(digit)).mkdir(parents=True)
        rows = np.flatnonzero(digits.train_labels.numpy() == digit)[:per_class]
        for i, row in enumerate(rows):
            Image.fromarray(255 - digits.train_images[row].numpy()).save(root / str(digit) / f"{i}.png")


def test_auto_augmentation_of_a_folder_is_decided_by_its_images(tmp_path, digits):
    """A folder's name says nothing: photographs (filled shapes) get the objects augmentation and class contrast,
    strokes the strokes augmentation and triplets; what was picked is saved with the run's options."""
    from embedder.data.datasets import load_dataset
    from embedder.data.ink import FILLED_FROM, filled_share
    from embedder.runs.run import read_metadata
    from embedder.training.policies import augmentation_for
    from embedder.training.trainer import train

    photographs(tmp_path / "photos")
    strokes(tmp_path / "scans", digits)
    picked = {}
    for name in ("photos", "scans"):
        dataset = load_dataset(f"folder:{tmp_path / name}")
        config = TrainConfig(dataset=dataset.name, classes="all", dry_run=True, run_dir=str(tmp_path / f"run-{name}"))
        assert augmentation_for(config) == "strokes"  # by name alone: a folder is strokes
        picked[name] = augmentation_for(config, dataset), filled_share(dataset.train_images)
        train(config, progress=False, log=lambda _: None, dataset=dataset)
        options = read_metadata(tmp_path / f"run-{name}")["options"]
        assert (options["augmentation"], options["loss"]) == (
            ("objects", "contrast") if name == "photos" else ("strokes", "triplet")
        )
    assert picked["photos"][0] == "objects" and picked["photos"][1] > 1.5 * FILLED_FROM, picked  # 0.10
    assert picked["scans"][0] == "strokes" and picked["scans"][1] < 0.75 * FILLED_FROM, picked  # 0.04
    assert filled_share(digits.train_images) < FILLED_FROM  # the registry's blurred 8x8 digits are strokes too
