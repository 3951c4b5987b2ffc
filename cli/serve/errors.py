"""How the server fails: a JSON body ``{"error": message, "field": name}`` with a 4xx, never a traceback.

The library's exceptions name their parameter (:class:`~embedder.errors.ConfigError`); here they become the
request's field names and HTTP statuses, as :mod:`cli.errors` makes them flags and exit codes.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from embedder.errors import (
    ClassNotFoundError,
    ConfigError,
    EmptyIndexError,
    ImageError,
    RunError,
    RunNotFoundError,
    TripletshotError,
    UnknownImageError,
)

log = logging.getLogger("tripletshot.serve")


class ApiError(HTTPException):
    """A refusal naming the request's field (``images``, ``name``, ``Authorization``...)."""

    def __init__(self, status: int, field: str | None, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.field = field


def body(message: str, field: str | None) -> dict:
    return {"error": message, "field": field}


def from_library(exc: TripletshotError, field: str | None = None) -> ApiError:
    """The HTTP answer to one of the library's exceptions; ``field`` names the request part it came from."""
    if isinstance(exc, ConfigError):
        return ApiError(422, exc.param if field is None else field, exc.render())
    if isinstance(exc, ClassNotFoundError):
        return ApiError(404, field or "name", str(exc))
    if isinstance(exc, (ImageError, UnknownImageError)):
        return ApiError(422, field or "images", str(exc))
    if isinstance(exc, EmptyIndexError):
        return ApiError(409, None, str(exc))
    if isinstance(exc, RunError) and "read-only" in str(exc):
        return ApiError(403, None, str(exc))
    if isinstance(exc, (RunError, RunNotFoundError)):
        return ApiError(503, None, str(exc))
    return ApiError(400, field, str(exc))


def _validation_field(exc: RequestValidationError) -> tuple[str | None, str]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = loc[0] if loc else None
    return field, f"{field or 'request'}: {first.get('msg', 'invalid')}"


def install(app: FastAPI) -> None:
    """Every error the app can raise, as JSON."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        field = getattr(exc, "field", None)
        return JSONResponse(body(str(exc.detail), field), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        field, message = _validation_field(exc)
        return JSONResponse(body(message, field), 422)

    @app.exception_handler(TripletshotError)
    async def library_error(request: Request, exc: TripletshotError) -> JSONResponse:
        error = from_library(exc)
        return JSONResponse(body(str(error.detail), error.field), error.status_code)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:  # a bug of ours: logged, never sent
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(body("internal server error (logged by the server)", None), 500)
