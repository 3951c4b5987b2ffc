"""The FastAPI app that serves one run: :func:`create_app` (in process, tests) or :func:`app_from_env` (workers).

Each route reads the request, calls the library function the CLI calls for the same job, and answers the
CLI's ``--json`` for it: ``POST /predict`` is ``embed predict --json``, ``GET /classes`` ``embed index --json``,
``POST /classes/{name}/images`` ``embed enroll --json``, ``DELETE /classes/{name}`` ``embed forget``,
``POST /sum`` ``adder predict --json``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.formparsers import MultiPartParser

from embedder import __version__

from . import docs, errors, routes
from .guard import BodyLimit, Guard
from .settings import ServeSettings
from .state import RunState

STATIC = Path(__file__).parent / "static"
DOCS_LINK = '<footer><a href="/docs">API (OpenAPI)</a></footer>\n'  # in index.html; dropped without /docs
log = logging.getLogger("tripletshot.serve")


def create_app(
    run_dir: str | os.PathLike,
    token: str | None = None,
    private: bool = False,
    host: str = "127.0.0.1",
    **limits: Any,
) -> FastAPI:
    """The app serving the run in ``run_dir``; ``limits`` are :class:`ServeSettings` fields (max_bytes...)."""
    return build(ServeSettings(str(run_dir), host=host, token=token, private=private, **limits))


def app_from_env() -> FastAPI:
    """The app of the settings ``embed serve`` put in the environment: what each uvicorn worker builds."""
    return build(ServeSettings.from_env())


def warm_up(state: RunState) -> None:
    """Import what the routes call and load the run, here in the main thread: the first request is not slow,
    and a predict whose modules were first imported in a worker thread measured 3x slower (15 ms, not 5)."""
    import embedder.runs.enrolment  # noqa: F401
    import embedder.runs.prediction  # noqa: F401
    import tripletshot.adder.pipeline  # noqa: F401

    state.run()


def build(settings: ServeSettings) -> FastAPI:
    from PIL import Image

    from embedder.runs.store import RunDir

    RunDir(settings.run_dir).manifest()  # no run, or not a run: said once, at start, not on every request
    # Pillow's bomb guard (which load_image turns into an error) at this server's own pixel limit.
    Image.MAX_IMAGE_PIXELS = settings.max_pixels
    MultiPartParser.spool_max_size = settings.max_bytes  # uploads stay in memory: no temp file outside the run

    swagger = docs.swagger_ui_files()
    app = FastAPI(
        title="tripletshot",
        version=__version__,
        description="One run of a triplet-loss embedder: ask what an image is, enrol a class, forget one.",
        docs_url=None,  # FastAPI's own loads Swagger UI from a CDN: docs.install serves local files instead
        redoc_url=None,  # the same, for ReDoc
    )
    app.state.run = RunState(settings)
    warm_up(app.state.run)
    errors.install(app)
    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if swagger is not None:
        docs.install(app, swagger)
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    if swagger is None:
        html = html.replace(DOCS_LINK, "")

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    app.add_middleware(BodyLimit, max_bytes=settings.max_bytes)
    app.add_middleware(Guard, settings=settings)  # added last, so it runs first: a refusal reads no body
    return app
