"""``embed export``: the ONNX model embeds like PyTorch, and the faiss file labels like the run's index."""

from __future__ import annotations

import json

import faiss
import numpy as np
import onnxruntime
from click.testing import CliRunner

from cli.embed import main as embed
from embedder.runs.run import Run


def test_onnx_export_embeds_like_pytorch_and_serves_with_the_faiss_file(digits_run, digits, tmp_path):
    out = tmp_path / "served" / "model.onnx"
    out.parent.mkdir()
    result = CliRunner().invoke(embed, ["export", "--format", "onnx", "--run-dir", str(digits_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = Run.load(digits_run)
    images = digits.test_images[:600]  # more than FUSE_FROM: PyTorch also takes the folded copy
    expected = run.embedder.embed(images)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (images[:1], images[:37], images):  # the batch axis is dynamic
        (got,) = session.run(None, {"images": batch.numpy()})
        np.testing.assert_allclose(got, expected[: len(batch)], atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)

    # Serving without tripletshot: the faiss file and the labels beside it.
    index = faiss.read_index(str(out.with_suffix(".faiss")))
    labels = np.array(json.loads(out.with_suffix(".labels.json").read_text())["labels"])
    _, ids = index.search(got, 1)
    predicted, _ = run.classifier().predict(images)
    assert (labels[ids[:, 0]] == predicted).all()
