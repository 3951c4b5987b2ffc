"""``embed export``: the ONNX model embeds like PyTorch, and the faiss file labels like the run's index."""

from __future__ import annotations

import json
import shutil

import faiss
import numpy as np
import onnxruntime
import pytest
from click.testing import CliRunner

from cli.embed import main as embed
from embedder.data.images import load_image
from embedder.runs.calibration import recalibrate
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
    rules = json.loads(out.with_suffix(".labels.json").read_text())
    label_of = dict(zip(rules["ids"], rules["labels"], strict=True))  # faiss answers a support's stable id
    _, ids = index.search(got, 1)
    predicted, _ = run.classifier().predict(images)
    assert [label_of[i] for i in ids[:, 0].tolist()] == predicted.tolist()


def _image_files(tmp_path, digits) -> list:
    """Test digits (seen and unseen classes) as PNG files, and two symbols no digit looks like."""
    from PIL import Image

    from tests.test_enrolment import draw

    files = []
    for i in range(0, 360, 20):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(digits.test_images[i].numpy()).save(path)
        files.append(path)
    return [*files, draw(tmp_path / "hash.png", "hash"), draw(tmp_path / "ring.png", "ring")]


@pytest.mark.parametrize("method", ["nn", "prototype"])
def test_the_exported_bundle_alone_answers_as_embed_predict(tmp_path, digits_run, digits, method):
    run_dir = tmp_path / "run"
    shutil.copytree(digits_run, run_dir)
    manifest = json.loads((run_dir / "run.json").read_text())
    manifest["run"]["index"]["method"] = method
    (run_dir / "run.json").write_text(json.dumps(manifest))
    recalibrate(run_dir, 0.2, log=lambda _: None)  # a threshold that rejects some digits too
    files = _image_files(tmp_path, digits)
    result = CliRunner().invoke(embed, ["predict", *map(str, files), "--json", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    expected = json.loads(result.stdout)
    out = tmp_path / "model.onnx"
    exported = CliRunner().invoke(embed, ["export", "--run-dir", str(run_dir), "--out", str(out)])
    assert exported.exit_code == 0, exported.output

    # The server: onnxruntime, faiss, numpy and the rules in the JSON; load_image is the preprocessing it names.
    rules = json.loads(out.with_suffix(".labels.json").read_text())
    assert rules["method"] == method and rules["threshold"] > 0 and rules["far"] == 0.2 and rules["preprocessing"]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (embeddings,) = session.run(None, {"images": np.stack([load_image(f).numpy() for f in files])})
    index = faiss.read_index(str(out.with_suffix(".faiss")))
    scores, ids = index.search(embeddings, index.ntotal)  # every id, nearest first: the margin rule reads past one
    label_of = dict(zip(rules["ids"], rules["labels"], strict=True))
    distances = np.sqrt(np.maximum(0, 2 - 2 * scores[:, 0]))
    names = []
    for row, d in zip(range(len(ids)), distances.tolist(), strict=True):
        label = label_of[int(ids[row, 0])]
        if rules["margin_scale"] is None:
            limit = rules["thresholds"][str(label)]
        else:  # the nearest id of another label
            other = next(j for j in range(ids.shape[1]) if label_of[int(ids[row, j])] != label)
            limit = rules["margin_scale"] * float(np.sqrt(max(0.0, 2 - 2 * scores[row, other])))
        names.append("unknown" if d >= limit else rules["class_names"][label])
    assert names == [answer["name"] for answer in expected]
    np.testing.assert_allclose(distances, [answer["distance"] for answer in expected], atol=1e-4)
    assert "unknown" in names and len(set(names)) > 3  # unknowns, and several classes, were answered
