"""The endpoints. Each calls the library function its CLI command calls, and answers that command's ``--json``."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from embedder import PredictConfig, TripletshotError, __version__
from embedder.data.labels import check_label
from embedder.fewshot.openset import stored_statement
from embedder.runs import thumbnails

from .errors import ApiError, from_library
from .state import RunState
from .uploads import decode_all, read_uploads

router = APIRouter()
log = logging.getLogger("tripletshot.serve")
T = TypeVar("T")
Images = Annotated[list[UploadFile], File(description="One or more image files (PNG, JPEG, ... any size).")]


def state(request: Request) -> RunState:
    return request.app.state.run


@router.get("/health", summary="The server is up and its run loads")
def health(request: Request) -> dict[str, Any]:
    run = state(request).run()
    return {"status": "ok", "version": __version__, "vectors": len(run.index), "worker": os.getpid()}


@router.get("/run", summary="The run: dataset, trained classes, index rule, threshold")
def run_info(request: Request) -> dict[str, Any]:
    s = state(request)
    run, settings = s.run(), s.settings
    meta, open_set = run.metadata, run.metadata.get("open_set") or {}
    trained = [run.class_name(c) for c in run.trained_classes]
    index = meta.get("index", {})
    return {
        "run": str(run.path),
        "dataset": meta.get("dataset"),
        "trained_classes": trained,
        "index": {"rule": index.get("rule"), "method": index.get("method"), "faiss": index.get("faiss")},
        "vectors": len(run.index),
        "threshold": open_set.get("threshold"),
        "far": open_set.get("far"),
        "open_set": stored_statement(open_set or None),  # the held-out-class rate, as every surface states it
        "k": PredictConfig().k,
        "adds": bool(trained) and all(name.lstrip("-").isdigit() for name in trained),
        "auth": {"writes": settings.token is not None, "reads": settings.private},
        "limits": {name: getattr(settings, name) for name in ("max_bytes", "max_pixels", "max_images")},
        "version": __version__,
    }


def _pictures(s: RunState) -> dict[str, np.ndarray]:
    """Each indexed class's thumbnails by name (kept until the run changes)."""

    def make(run) -> dict[str, np.ndarray]:
        from embedder import indexed_classes

        training = s.lasting("model", _training_pictures)
        found = {}
        for c in indexed_classes(run):
            own = thumbnails.enrolled_thumbnails(run.path, c.name, c.added)
            trained = training.get(c.label) if c.origin == "training" else None
            found[c.name] = own if trained is None else np.concatenate([trained, own])
        return found

    return s.cached("thumbnails", make)


def _training_pictures(run) -> dict[int, np.ndarray]:
    try:
        return thumbnails.training_thumbnails(run, run.load_dataset())
    except (TripletshotError, OSError):  # the dataset is not on this machine: training classes show none
        return {}


@router.get("/classes", summary="The classes in the run's index (embed index --json), with thumbnail counts")
def classes(request: Request) -> list[dict[str, Any]]:
    from embedder import indexed_classes

    s = state(request)
    pictures = _pictures(s)
    return [{**c.as_dict(), "thumbnails": len(pictures.get(c.name, ()))} for c in indexed_classes(s.run())]


@router.get("/classes/{name:path}/thumbnails/{i}", summary="Thumbnail i of a class, as a PNG")
def thumbnail(request: Request, name: str, i: int) -> Response:
    pictures = _pictures(state(request)).get(name)
    if pictures is None:
        raise ApiError(404, "name", f"the run's index has no class {name!r}")
    if not 0 <= i < len(pictures):
        raise ApiError(404, "i", f"class {name!r} has {len(pictures)} thumbnail(s); there is no {i}")
    return Response(_png(pictures[i]), media_type="image/png", headers={"Cache-Control": "no-cache"})


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _predict_config(k: int | None, threshold: float | None, reject: bool) -> PredictConfig:
    try:
        return PredictConfig(k=PredictConfig.k if k is None else k, threshold=threshold, reject=reject)
    except TripletshotError as exc:
        raise from_library(exc) from None


@router.post("/predict", summary="What each image is, or unknown (embed predict --json)")
async def predict(
    request: Request,
    images: Images,
    k: Annotated[int | None, Query(description="Nearest supports shown for each image.")] = None,
    threshold: Annotated[float | None, Query(description="Distance from which an image is unknown.")] = None,
    reject: Annotated[bool, Query(description="Answer unknown beyond the threshold.")] = True,
) -> list[dict[str, Any]]:
    config = _predict_config(k, threshold, reject)
    s = state(request)
    files = await read_uploads(images, "images", s.settings)

    def work() -> bytes:  # decode, predict and encode in one trip to a thread: the hot path
        from embedder import predict as predict_images

        names, tensors = decode_all(files, "images", s.settings)
        answers = predict_images(s.run(), tensors, names, config, log=_note)
        return json.dumps([a.as_dict() for a in answers]).encode()

    return Response(await off_the_loop(work, files), media_type="application/json")


INLINE_BYTES = 64 * 1024  # one image this small is decoded and asked about on the event loop itself


async def off_the_loop(work: Callable[[], T], files: list[tuple[str, bytes]]) -> T:
    """``work()`` in a thread, except for one small image: its 2 ms beat a thread hop and the GIL hand-over
    while large uploads must not stall other requests."""
    if len(files) == 1 and len(files[0][1]) <= INLINE_BYTES:
        return work()
    return await run_in_threadpool(work)


def _note(message: str) -> None:
    log.info(message)


def _aside(s: RunState, change: Callable[[], None], what: str) -> None:
    """A change to the thumbnails, after the index's commit: a failure is logged, not answered, since the class
    itself is already enrolled or forgotten (and a stale file is never shown: it records its class's time)."""
    try:
        s.write(change)
    except (ApiError, TripletshotError, OSError) as exc:
        log.warning("%s not written: %s", what, getattr(exc, "detail", exc))


@router.post("/classes/{name:path}/images", summary="Enrol images under a class name (embed enroll --json)")
async def enrol(request: Request, name: str, images: Images) -> dict[str, Any]:
    try:
        check_label(name, "name")
    except TripletshotError as exc:
        raise from_library(exc) from None
    s = state(request)
    files = await read_uploads(images, "images", s.settings)

    def work() -> dict[str, Any]:
        from embedder import enrol as enrol_images

        _, stacked = decode_all(files, "images", s.settings)
        enrolled = s.write(lambda: enrol_images(s.run_dir, {name: stacked}, s.device))[0]
        keep = stacked.numpy()
        _aside(s, lambda: thumbnails.add_thumbnails(s.run_dir, name, enrolled.added, keep), f"thumbnails of {name!r}")
        return enrolled.as_dict()

    return await run_in_threadpool(work)


@router.delete("/classes/{name:path}", summary="Forget a class (embed forget)")
async def forget(request: Request, name: str) -> dict[str, Any]:
    s = state(request)

    def work() -> dict[str, Any]:
        from embedder import forget as forget_class

        gone = s.write(lambda: forget_class(s.run_dir, name))
        _aside(s, lambda: thumbnails.remove_thumbnails(s.run_dir, name), f"old thumbnails of {name!r}")
        return gone.as_dict()

    return await run_in_threadpool(work)


@router.post("/sum", summary="The digit in each image plus a number (adder predict --json); unknown is refused")
async def add(
    request: Request,
    image: Annotated[list[UploadFile], File(description="One or more images of a digit.")],
    number: Annotated[str, Form(description="The integer to add.")],
    reject: Annotated[bool, Query(description="Refuse an image the run calls unknown.")] = True,
) -> list[dict[str, Any]]:
    from tripletshot.adder import parse_number

    try:
        value = parse_number(number)
    except TripletshotError as exc:
        raise from_library(exc) from None
    s = state(request)
    files = await read_uploads(image, "image", s.settings)

    def work() -> list[dict[str, Any]]:
        from tripletshot.adder import adder_for, predict_sums

        names, tensors = decode_all(files, "image", s.settings)
        run = s.run()
        model, _, _ = s.lasting("adder", adder_for)  # trained in memory once if the run has none
        try:
            sums = predict_sums(run, model, tensors, names, value, reject=reject, log=_note)
        except TripletshotError as exc:
            raise from_library(exc, "image") from None
        return [p.as_dict() for p in sums]

    return await run_in_threadpool(work)


@router.get("/pool", summary="The run's pool (embed pool) and its clusters no class claims (embed report)")
def pool(request: Request) -> dict[str, Any]:
    s = state(request)

    def make(run) -> dict[str, Any]:
        from embedder.runs.unclaimed import unclaimed_clusters

        if run.pool is None:
            return {"pool": None, "reason": None, "clusters": []}
        entry = run.metadata.get("pool") or {}
        clusters = [{"images": c.images, "ids": c.ids} for c in unclaimed_clusters(run)]
        return {"pool": entry.get("description"), "reason": entry["decision"]["reason"], "clusters": clusters}

    return s.cached("pool", make)


def _pool_image(s: RunState, i: int) -> np.ndarray:
    run = s.run()
    if run.pool is None:
        raise ApiError(404, None, f"{run.path} has no pool: `embed pool rest|PATH` gives it one")
    if not 0 <= i < len(run.pool.thumbnails):
        raise ApiError(404, "i", f"the pool has images 0-{len(run.pool.thumbnails) - 1}; there is no {i}")
    return run.pool.thumbnails[i]


@router.get("/pool/images/{i}", summary="Pool image i (as the clusters name them), as a PNG")
def pool_image(request: Request, i: int) -> Response:
    return Response(_png(_pool_image(state(request), i)), media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.post("/pool/images/{i}", summary="Enrol pool image i under a class name (embed enroll --pool-image)")
async def name_pool_image(request: Request, i: int, name: Annotated[str, Form()]) -> dict[str, Any]:
    try:
        check_label(name, "name")
    except TripletshotError as exc:
        raise from_library(exc) from None
    s = state(request)

    def work() -> dict[str, Any]:
        import torch

        from embedder import enrol as enrol_images

        image = _pool_image(s, i)
        stacked = torch.from_numpy(image[None].copy())
        enrolled = s.write(lambda: enrol_images(s.run_dir, {name: stacked}, s.device))[0]
        keep = stacked.numpy()
        _aside(s, lambda: thumbnails.add_thumbnails(s.run_dir, name, enrolled.added, keep), f"thumbnails of {name!r}")
        return enrolled.as_dict()

    return await run_in_threadpool(work)
