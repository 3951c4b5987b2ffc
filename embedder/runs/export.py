"""A run as files any runtime can serve: the whole embedding path as ONNX, the support index as faiss's own file.

The ONNX graph is :class:`~embedder.models.embedder.Embedder`'s path in one piece: uint8 images ``(N, 28, 28)``
(ink bright, as :func:`~embedder.data.images.load_image` gives them) in, unit vectors ``(N, dim)`` out. It holds
the pixel normalisation, the inference copy of the network (batch norms folded into their convolutions),
the :class:`~embedder.models.embedder.Centering` mean and the L2 normalisation, so a server needs onnxruntime,
faiss and numpy, not tripletshot or torch. The index file is ``faiss.write_index``'s format (a PCA, if the
run has one, inside it). Beside it, ``.labels.json`` says everything else a server needs to answer as
``embed predict`` does (:func:`serving_rules`): which faiss id is which label and name, the method (for a
prototype run the faiss file holds the class means, one per label, in an index of the supports' kind), the
open-set threshold and its false-accept rate, how a score becomes a distance, and the
:func:`~embedder.data.images.load_image` steps that turn a user's image file into the uint8 28x28 input (the graph
starts after them).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embedder.data.images import preprocessing_steps
from embedder.models.embedder import Embedder
from embedder.runs.run import Run
from embedder.utils.files import write_bytes_atomic

FORMATS = ("onnx",)
OPSET = 17


class _ExportedEmbedder(nn.Module):
    """uint8 ``(N, 28, 28)`` to unit vectors, with every constant of the embedder folded in."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.network = embedder.model.for_inference().cpu()
        self.register_buffer("centre", embedder.centering.mean.detach().float().cpu().clone())
        self.scale, self.shift = 1.0 / (255.0 * embedder.std), embedder.mean / embedder.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.unsqueeze(1).float() * self.scale - self.shift  # == (images / 255 - mean) / std
        return F.normalize(self.network(x) - self.centre, dim=1)


def onnx_bytes(embedder: Embedder) -> bytes:
    """The ONNX model of ``embedder``: input ``images`` uint8 ``(N, 28, 28)``, output ``embeddings`` float32."""
    module = _ExportedEmbedder(embedder).eval()
    example = torch.zeros(2, 28, 28, dtype=torch.uint8)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announces its successor
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript, which is not a dependency
            input_names=["images"],
            output_names=["embeddings"],
            dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}},
            opset_version=OPSET,
        )
    return buffer.getvalue()


EXPORT_VERSION = 2  # of .labels.json: 2 added ids, method, threshold, distance, rule and preprocessing
# load_image's steps as the code that runs them describes itself (embedder.data.images), then what the graph takes.
PREPROCESSING = [*preprocessing_steps(), "stack the digits: the model's input `images`, uint8, shape (N, 28, 28)"]


def serving_rules(run: Run) -> tuple[faiss.Index, dict[str, Any]]:
    """The faiss index a server searches, and the JSON that says how to answer from it as ``embed predict``."""
    from embedder.runs.calibration import run_calibration

    method = run.metadata["index"]["method"]
    decision = run.classifier(method).decision_index()  # what embed predict searches: supports, or class means
    index, ids, labels = decision.index, decision.ids, decision.labels
    calibration = run_calibration(run)
    rules = {
        "format": "tripletshot-export",
        "version": EXPORT_VERSION,
        "method": method,
        "ids": np.asarray(ids).tolist(),  # faiss answers ids; the label of ids[i] is labels[i]
        "labels": np.asarray(labels).tolist(),
        "class_names": run.metadata.get("class_names"),  # label l is class_names[l]
        "index": run.index.describe(),  # faiss's name for it: "Flat", "PCA128,L2norm,IVF256,PQ32"...
        "threshold": None if calibration is None else calibration.threshold,  # the distance rule's; else typical
        "far": None if calibration is None else calibration.far,
        **open_set_rules(calibration, decision.labels, run.index),
        "distance": "sqrt(max(0, 2 - 2 * s)), s the inner product faiss returns for the nearest id (k=1)",
        "rule": "the label l of the nearest id; 'unknown' when thresholds is not null and distance >= thresholds[l], "
        "or, when margin_scale is not null, distance >= margin_scale x the distance to the nearest id of another label",
        "input": {"name": "images", "dtype": "uint8", "shape": ["N", 28, 28], "ink": "bright on black"},
        "preprocessing": PREPROCESSING,
    }
    return index, rules


def open_set_rules(calibration: Any, labels: np.ndarray, index: Any) -> dict[str, Any]:
    """The run's open-set rule as numbers (:mod:`embedder.fewshot.openset`): each label's distance threshold, or
    the margin rule's scale."""
    from embedder.fewshot.openset import supports_per_class

    if calibration is None:
        return {"thresholds": None, "margin_scale": None, "open_set": None}
    classes = sorted(set(np.asarray(labels).tolist()))
    margin = calibration.rule == "margin"
    cuts = None if margin else calibration.thresholds(np.asarray(classes), supports_per_class(index)).tolist()
    return {
        "thresholds": None if cuts is None else {str(c): t for c, t in zip(classes, cuts, strict=True)},
        "margin_scale": calibration.cut if margin else None,
        "open_set": calibration.statement(),
    }


def export_paths(out: str | os.PathLike) -> tuple[Path, Path, Path]:
    """Where :func:`export_run` writes: ``out``, and the index and labels beside it (``model.faiss``,
    ``model.labels.json`` for ``model.onnx``)."""
    out = Path(out)
    return out, out.with_suffix(".faiss"), out.with_suffix(".labels.json")


def export_run(run: Run, out: str | os.PathLike, format: str = "onnx") -> tuple[Path, Path, Path]:
    """Write the run's embedder as ONNX to ``out``, its support index and labels beside it; return the paths."""
    from embedder.errors import ConfigError, quote

    if format not in FORMATS:
        raise ConfigError("format", f"{{format}} must be one of {', '.join(FORMATS)}, got {quote(format)}")
    model_path, index_path, labels_path = export_paths(out)
    if not model_path.parent.is_dir():
        raise ConfigError("out", f"{{out}}: the folder {model_path.parent} does not exist")
    index, rules = serving_rules(run)
    write_bytes_atomic(model_path, onnx_bytes(run.embedder))
    write_bytes_atomic(index_path, faiss.serialize_index(index).tobytes())
    write_bytes_atomic(labels_path, json.dumps(rules, indent=1).encode())
    return model_path, index_path, labels_path
