"""What every request passes before a route sees it: the body-size limit, the Host and Origin checks, the token.

A page on another site can make a browser send a form to 127.0.0.1 (and DNS rebinding can give it a name
that resolves there), so a write whose ``Origin`` is not this server is refused, and a server bound to a
loopback address answers only requests addressed to a loopback name.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, body
from .settings import ServeSettings, is_loopback

WRITES = ("POST", "PUT", "PATCH", "DELETE")
READ_ONLY_POSTS = ("/predict", "/sum")  # POST, but they change nothing: reads for the token rule
OPEN = ("/health", "/")  # even a private server says it is up, and serves its page (which holds no data)


class BodyLimit:
    """Refuse a body over ``max_bytes``: by its Content-Length at once, else when the stream passes it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _refuse(send, 413, "body", f"the request is over this server's {self.max_bytes} bytes")
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # raised inside the form parser: FastAPI passes an HTTPException on
                raise ApiError(413, "body", f"the request is over this server's {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


async def _refuse(send: Send, status: int, field: str, message: str) -> None:
    import json

    data = json.dumps(body(message, field)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def check_origin(request: Request, settings: ServeSettings) -> None:
    """Refuse a request addressed to a non-loopback name on a loopback server, and a cross-site write."""
    host = request.headers.get("host", "")
    name = urlsplit(f"//{host}").hostname or ""
    if is_loopback(settings.host) and not is_loopback(name):
        raise ApiError(421, "Host", f"this server answers only at 127.0.0.1 or localhost, not {host!r}")
    origin = request.headers.get("origin")
    if request.method in WRITES and origin not in (None, "null") and urlsplit(origin).netloc != host:
        raise ApiError(403, "Origin", f"a write from {origin} to {host} is refused: use this server's own page")


def check_token(request: Request, settings: ServeSettings) -> None:
    """Writes need the bearer token when the server has one; reads too when it is private."""
    write = request.method in WRITES and request.url.path not in READ_ONLY_POSTS
    if settings.token is None or not (write or settings.private) or (request.url.path in OPEN and not write):
        return
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not token:
        what = "this request" if settings.private else "a write"
        raise ApiError(401, "Authorization", f"{what} needs the header 'Authorization: Bearer <token>'", challenge)
    if not hmac.compare_digest(token.strip().encode(), settings.token.encode()):
        raise ApiError(403, "Authorization", "the bearer token is wrong", challenge)
