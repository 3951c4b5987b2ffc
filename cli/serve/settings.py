"""What one server serves and how: torch-free and FastAPI-free, so ``embed serve`` checks it before importing them.

Workers are separate processes that uvicorn starts by import string, so the settings travel to them as JSON in
an environment variable (:data:`ENV`); the token rides along (the workers are this user's own processes).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass

from embedder.errors import ConfigError

ENV = "TRIPLETSHOT_SERVE_SETTINGS"
TOKEN_ENV = "TRIPLETSHOT_TOKEN"  # the bearer token, when --token-file is not given
MiB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    run_dir: str
    host: str = "127.0.0.1"
    token: str | None = None  # writes (and, with private, reads) need "Authorization: Bearer <token>"
    private: bool = False
    device: str = "auto"
    max_bytes: int = 10 * MiB  # one request's body
    max_pixels: int = 40_000_000  # one image's width x height, checked before it is decoded
    max_images: int = 32  # per request
    lock_timeout: float = 10.0  # seconds a write waits for another process's lock before a 409

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_images"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"{{{name}}} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.lock_timeout <= 3600:
            raise ConfigError("lock_timeout", f"{{lock_timeout}} must be 0 to 3600 seconds, got {self.lock_timeout}")
        if self.private and not self.token:
            raise ConfigError("private", "{private} needs a token: give {token_file} or set " + TOKEN_ENV)
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                "host",
                f"{{host}} {self.host} is reachable from other machines, so writes need a bearer token: "
                f"give {{token_file}} or set {TOKEN_ENV} (or bind 127.0.0.1)",
            )

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        return cls(**json.loads(os.environ[ENV]))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(token_file: str | None) -> str | None:
    """The bearer token from ``token_file`` (its first line), else from :data:`TOKEN_ENV`; None without either."""
    if token_file is None:
        token = os.environ.get(TOKEN_ENV) or None
        if token is not None and len(token) < 16:
            raise ConfigError("token_file", f"{TOKEN_ENV} must hold a token of at least 16 characters")
        return token
    try:
        with open(token_file, encoding="utf-8") as f:
            token = f.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("token_file", f"{{token_file}} {token_file} cannot be read: {exc}") from None
    if len(token) < 16:
        raise ConfigError("token_file", f"{{token_file}} {token_file} must hold a token of at least 16 characters")
    return token
