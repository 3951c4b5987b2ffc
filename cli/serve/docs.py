"""``/docs``: Swagger UI from files on this machine, never a CDN, so it works offline.

FastAPI's own ``/docs`` loads Swagger UI from a CDN (blank offline). The files come instead from the
``fastapi-offline`` package (in the serve extra), which ships Swagger UI's bundle; where it is not installed
there is no ``/docs``, the page has no link to it, and ``/openapi.json`` still describes the API.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

URL = "/docs"
ASSETS_URL = "/docs-assets"
FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


def swagger_ui_files() -> Path | None:
    """The folder holding Swagger UI's files, or None where ``fastapi-offline`` is not installed."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if all((folder / name).is_file() for name in FILES) else None


def install(app, folder: Path) -> None:
    """Serve Swagger UI at :data:`URL` from ``folder``; nothing it loads leaves this server."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    app.mount(ASSETS_URL, StaticFiles(directory=folder), name="docs-assets")

    @app.get(URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # Swagger UI's default asks swagger.io to check the spec
        )
