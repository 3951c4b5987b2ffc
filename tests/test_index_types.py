"""Every faiss index type, end to end: trained with a run, enrolled into, predicting, saved, loaded, and refused
when its file is damaged."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from embedder.config import IndexSpec, TrainConfig
from embedder.errors import ConfigError, RunError
from embedder.index import support_index as index_module
from embedder.index.support_index import SupportIndex
from embedder.runs.run import Run
from embedder.runs.store import RunDir
from embedder.training.trainer import train
from tests.runfiles import run_file

TYPES = [
    ("flat", None, "Flat"),
    ("flat", 32, "PCA32,L2norm,Flat"),
    ("ivf", None, "IVF13,Flat"),  # 540 training images: nlist = 540 // 39
    ("hnsw", None, "HNSW32,Flat"),
    ("ivfpq", 32, "PCA32,L2norm,IVF13,PQ8"),
    ("sq8", None, "SQ8"),
]


@pytest.mark.parametrize("kind, dim, faiss_name", TYPES, ids=[f"{k}-{d}" for k, d, _ in TYPES])
def test_index_type_end_to_end(tmp_path, digits, kind, dim, faiss_name):
    run_dir = tmp_path / "run"
    config = TrainConfig(
        dataset="digits", classes=[0, 1, 2, 3, 4], m_per_class=32, device="cpu", dry_run=True,
        run_dir=str(run_dir), shots=3, index=kind, index_dim=dim,
    )  # fmt: skip
    train(config, progress=False, log=lambda _: None, dataset=digits)
    run = Run.load(run_dir)
    assert run.metadata["index"]["faiss"] == faiss_name == run.index.describe()
    assert run.metadata["options"]["index"] == kind and run.index.spec == config.index_spec
    assert len(run.index) == 30 and run.index.classes == list(range(10))

    # Predict: the approximate index labels (nearly) as the exact search over the same embeddings does.
    queries = run.embedder.embed(digits.test_images[:300])
    labels, distances = run.classifier().predict_embeddings(queries)
    exact = queries @ run.index.vectors().T
    agree = (labels == run.index.labels[exact.argmax(1)]).mean()
    assert agree >= (1.0 if kind in ("flat", "hnsw") and dim is None else 0.8), agree
    assert ((distances >= 0) & (distances <= 2)).all()

    # Enrol a new class from one image, predict it, forget it again.
    run.index.add(queries[:1], [42])
    if kind == "ivfpq":  # codes learnt from a dry run's few vectors are coarse: a support 0.09 off can edge ahead
        assert 42 in run.index.search(queries[:1], 2)[0][0].tolist()
    else:
        assert run.classifier().predict_embeddings(queries[:1])[0].tolist() == [42]
    assert run.index.remove(42) == 1 and 42 not in run.index.classes and len(run.index) == 30

    # Save through the run's manifest and load it back: the same answers.
    run.index.add(queries[:1], [42])
    RunDir(run_dir).commit({"index": run.index.to_bytes()})
    loaded = Run.load(run_dir)
    assert loaded.index.spec == run.index.spec and loaded.index.labels.tolist() == run.index.labels.tolist()
    np.testing.assert_array_equal(loaded.index.search(queries, 3)[0], run.index.search(queries, 3)[0])

    # A damaged file is refused by its checksum, and damaged bytes by the reader itself.
    path = run_file(run_dir, "index")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RunError, match="damaged"):
        Run.load(run_dir)
    with pytest.raises(ValueError, match="damaged"):
        SupportIndex.from_bytes(run.index.to_bytes()[:-200])


def test_an_ivf_query_whose_probed_lists_are_empty_still_finds_its_nearest_support():
    rng = np.random.default_rng(0)
    training = rng.normal(size=(4000, 16)).astype(np.float32)
    index = SupportIndex(16, IndexSpec(index="ivf", nprobe=1))
    index.train(training)  # 101 lists and one support: nearly every probe meets an empty list
    support = training[:1] / np.linalg.norm(training[:1])
    index.add(support, [5])
    labels, scores = index.search(training[1:200], 1)
    assert (labels == 5).all()
    np.testing.assert_allclose(scores[:, 0], training[1:200] @ support[0], rtol=1e-5, atol=1e-5)


def test_too_few_vectors_to_train_and_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="needs 256 vectors to train on, got 100"):
        SupportIndex(16, IndexSpec(index="ivfpq")).add(np.ones((100, 16), np.float32), np.zeros(100))
    with pytest.raises(ConfigError, match="index_dim must be below the embedding's 1024"):
        TrainConfig(index_dim=1024)
    with pytest.raises(ConfigError, match="code_size 7 does not divide the 1024"):
        TrainConfig(index="ivfpq", code_size=7)
    with pytest.raises(ConfigError, match="nprobe must be at least 1"):
        TrainConfig(index="ivf", nprobe=0)


def test_a_given_nlist_trains_on_the_39_vectors_per_list_it_needs_beyond_the_default_cap(monkeypatch):
    monkeypatch.setattr(index_module, "MAX_TRAINING", 500)  # the 100k cap, scaled down
    vectors = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    default = SupportIndex(16, IndexSpec(index="ivf"))
    default.train(vectors)
    assert default.describe() == "IVF12,Flat"  # default_nlist of the 500-vector sample: 500 // 39
    given = SupportIndex(16, IndexSpec(index="ivf", nlist=40))  # needs 1560 > 500
    given.train(vectors)
    given.add(vectors[:50], np.arange(50))
    assert given.describe() == "IVF40,Flat"
    assert (given.search(vectors[:50], 1)[0][:, 0] == np.arange(50)).all()


def test_ivfpq_trained_on_few_vectors_says_its_codes_are_coarse(caplog):
    vectors = np.random.default_rng(0).standard_normal((600, 16)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="embedder.index.support_index"):
        SupportIndex(16, IndexSpec(index="ivf")).add(vectors, np.zeros(600))
        assert caplog.records == []
        SupportIndex(16, IndexSpec(index="ivfpq")).add(vectors, np.zeros(600))
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "ivfpq learns its codes from 600 vectors, under the 9984 faiss asks for"
    ]


def test_a_cuda_device_without_faiss_gpu_says_the_index_stays_on_the_cpu(caplog):
    pytest.importorskip("faiss")
    import faiss

    if hasattr(faiss, "StandardGpuResources"):
        pytest.skip("faiss-gpu is installed here")
    index = SupportIndex(4)
    with caplog.at_level(logging.WARNING, logger="embedder.index.support_index"):
        assert index.place("cuda:0") == "cpu"
    assert [r.getMessage() for r in caplog.records] == ["faiss index on the CPU: faiss-gpu is not installed"]
    assert index.place("cpu") == "cpu"


def test_on_a_gpu_ivfpq_asks_faiss_for_half_precision_lookup_tables(monkeypatch):
    """faiss-gpu holds ivfpq's 64-byte codes only with float16 lookup tables (faiss issue #1178). No GPU here:
    faiss's cloner is stood in for, to check what ``place`` asks of it and that searches then go through the copy."""
    import faiss

    asked = []

    def to_gpu(resources, device, index, options):
        asked.append((device, options.useFloat16))
        return faiss.clone_index(index)  # a CPU copy standing in for the GPU one

    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "GpuClonerOptions", type("Options", (), {"useFloat16": False}), raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    monkeypatch.setattr(index_module, "_RESOURCES", [])
    vectors = np.random.default_rng(0).standard_normal((400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for kind, half in (("ivfpq", True), ("flat", False)):
        index = SupportIndex(16, IndexSpec(index=kind))
        index.add(vectors, np.arange(400) % 4)
        assert index.place("cuda:1") == "cuda"
        on_gpu = index.search(vectors[:50], 3)
        assert asked[-1] == (1, half)
        assert index.place("cpu") == "cpu"
        np.testing.assert_array_equal(on_gpu[0], index.search(vectors[:50], 3)[0])


def test_a_checkpoint_from_before_the_index_options_resumes_with_the_defaults():
    from dataclasses import asdict, fields

    from embedder.training.checkpoint import config_from_checkpoint

    older = {k: v for k, v in asdict(TrainConfig()).items() if k not in {f.name for f in fields(IndexSpec)}}
    assert config_from_checkpoint({"config": older}, "old").index_spec == IndexSpec()
