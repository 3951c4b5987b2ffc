"""Bind the port, then run uvicorn on the app of :mod:`cli.serve.app`: one process or a supervisor of several.

:func:`bind` takes the listening socket before anything is printed, so a port in use is one line and exit 2
(:class:`~embedder.errors.ConfigError` on ``port``), not a "serving at" line followed by uvicorn's error. The
socket is made as TCP explicitly: one whose ``proto`` is 0 (what uvicorn makes for ``--workers``) hands
accepted sockets a 0 too, asyncio then skips ``TCP_NODELAY``, and every keep-alive request after the first
waits ~40 ms on the client's delayed ACK (uvicorn issue #3149; measured here: ``/health`` 44 ms with 2
workers, 5 ms with 1).
"""

from __future__ import annotations

import errno
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from embedder.errors import ConfigError

APP = f"{__package__}.app:app_from_env"  # cli.serve in the tree, tripletshot.cli.serve installed
HEAD_S = 10.0  # a connection whose request line and headers are not in by then is closed (a slow client)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket at ``host``:``port`` (0: any free port), or a :class:`ConfigError` saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait TIME_WAIT
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            message = f"{{port}} {port} on {host} is in use by another program: choose another one"
        elif exc.errno == errno.EACCES:
            message = f"{{port}} {port} needs privileges this user does not have: choose one above 1023"
        else:
            raise ConfigError("host", f"{{host}} {host} cannot be bound: {exc.strerror}") from None
        raise ConfigError("port", message) from None
    sock.set_inheritable(True)  # the workers of --workers serve it too
    return sock


try:  # uvicorn's own choice: httptools where installed (uvicorn[standard]), else h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol


class HeadTimeout(_Protocol):
    """uvicorn's HTTP protocol, closing a connection whose request head has not arrived :data:`HEAD_S` after it
    opened or after its last answer: uvicorn's own keep-alive timeout stops at the first byte of a request."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def _watch(self) -> None:
        self.loop.call_later(HEAD_S, self._close_if_no_request, self.cycle)

    def _close_if_no_request(self, cycle) -> None:
        if self.cycle is cycle and not self.transport.is_closing():  # no request's head came in since the watch
            self.transport.close()


def run(sock: socket.socket, workers: int, access_log: bool) -> None:
    """Serve the app whose settings are in the environment (:data:`cli.serve.settings.ENV`) on ``sock``."""
    config = uvicorn.Config(
        APP, factory=True, workers=workers, access_log=access_log, log_level="info", http=HeadTimeout
    )
    try:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server = uvicorn.Server(config)
            server.run(sockets=[sock])
            if not server.started:  # the app failed to build: uvicorn logged why
                raise SystemExit(3)
    except KeyboardInterrupt:
        pass
