"""Start uvicorn on the app of :mod:`cli.serve.app`, one process or a supervisor of several.

With ``--workers`` above 1, uvicorn binds the listening socket itself and leaves its ``proto`` at 0; accepted
sockets inherit it, asyncio then skips ``TCP_NODELAY``, and every keep-alive request after the first waits
~40 ms on the client's delayed ACK (uvicorn issue #3149; measured here: ``/health`` 44 ms with 2 workers,
5 ms with 1). :class:`_Config` hands the same socket back marked as TCP, so both paths answer alike.
"""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

APP = "cli.serve.app:app_from_env"


class _Config(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
            sock.set_inheritable(True)
        return sock


def run(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the app whose settings are in the environment (:data:`cli.serve.settings.ENV`) until stopped."""
    config = _Config(APP, factory=True, host=host, port=port, workers=workers, access_log=access_log, log_level="info")
    try:
        if workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server = uvicorn.Server(config)
            server.run()
            if not server.started:  # the port was taken, or the app failed: uvicorn said why
                raise SystemExit(3)
    except KeyboardInterrupt:
        pass
