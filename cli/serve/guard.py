"""What every request passes before anything answers it: the Host and Origin checks, the token, the body limit.

They are ASGI middleware, so they cover every path alike: the routes, ``/docs``, ``/openapi.json`` and the
static files. A page on another site can make a browser send a form to 127.0.0.1 (and DNS rebinding can give
it a name that resolves there), so a write whose ``Origin`` is not this server is refused, ``Origin: null``
(a sandboxed frame, a ``file:`` page) included, and a server bound to a loopback address answers only requests
addressed to a loopback name.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, body
from .settings import ServeSettings, is_loopback

WRITES = ("POST", "PUT", "PATCH", "DELETE")
READ_ONLY_POSTS = ("/predict", "/sum")  # POST, but they change nothing: reads for the token rule
OPEN = ("/health", "/")  # even a private server says it is up, and serves its page (which holds no data)
PAGE_ASSETS = "/static/"  # the page's own script and style: open with it
BODY_STALL_S = 10.0  # a body that sends nothing for this long is refused (a slow client holds no more)


class Guard:
    """Refuse a request by its Host, Origin or token before any route, docs page or static file sees it."""

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            try:
                check_origin(scope["method"], headers, self.settings)
                check_token(scope["method"], scope["path"], headers, self.settings)
            except ApiError as exc:
                return await _refuse(send, exc.status_code, exc.field, str(exc.detail), exc.headers)
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse a body over ``max_bytes``: by its Content-Length at once, else when the stream passes it; and one
    that stalls for :data:`BODY_STALL_S`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _refuse(send, 413, "body", f"the request is over this server's {self.max_bytes} bytes")
        seen, done = 0, False

        async def limited() -> Message:  # raised inside the form parser: FastAPI passes an HTTPException on
            nonlocal seen, done
            if done:  # the body is in: what comes next is a disconnect, however late
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), BODY_STALL_S)
            except TimeoutError:
                raise ApiError(408, "body", f"the request's body stopped arriving for {BODY_STALL_S:g} s") from None
            seen += len(message.get("body", b""))
            done = not message.get("more_body", False)
            if seen > self.max_bytes:
                raise ApiError(413, "body", f"the request is over this server's {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


async def _refuse(send: Send, status: int, field: str | None, message: str, extra: dict | None = None) -> None:
    data = json.dumps(body(message, field)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def check_origin(method: str, headers: Headers, settings: ServeSettings) -> None:
    """Refuse a request addressed to a non-loopback name on a loopback server, and a write from another origin."""
    host = headers.get("host", "")
    name = urlsplit(f"//{host}").hostname or ""
    if is_loopback(settings.host) and not is_loopback(name):
        raise ApiError(421, "Host", f"this server answers only at 127.0.0.1 or localhost, not {host!r}")
    origin = headers.get("origin")
    if method not in WRITES or origin is None:  # no Origin: not a browser's cross-site request (curl, scripts)
        return
    if origin == "null":
        raise ApiError(403, "Origin", "a write from Origin: null (a sandboxed frame, a file: page) is refused")
    if urlsplit(origin).netloc != host:
        raise ApiError(403, "Origin", f"a write from {origin} to {host} is refused: use this server's own page")


def check_token(method: str, path: str, headers: Headers, settings: ServeSettings) -> None:
    """Writes need the bearer token when the server has one; reads too when it is private (the docs and the
    OpenAPI schema included), except :data:`OPEN` and the page's assets."""
    write = method in WRITES and path not in READ_ONLY_POSTS
    open_read = path in OPEN or path.startswith(PAGE_ASSETS)
    if settings.token is None or not (write or settings.private) or (open_read and not write):
        return
    scheme, _, token = headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not token:
        what = "this request" if settings.private else "a write"
        raise ApiError(401, "Authorization", f"{what} needs the header 'Authorization: Bearer <token>'", challenge)
    if not hmac.compare_digest(token.strip().encode(), settings.token.encode()):
        raise ApiError(403, "Authorization", "the bearer token is wrong", challenge)
