"""``ServerSettings``: the demo server's limits and access rules, safe by default."""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["ServerSettings", "loopback_hosts"]

_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,256}")
_ORIGIN = re.compile(r"(https?)://[^/?#\s]+")

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Limits and access rules of one server; every limit is on by default.

    Args:
        max_message_bytes: largest WebSocket message accepted (a MediaRecorder slice of
            100 ms is 2-40 KB; raw float32 at 48 kHz is 19 KB per 100 ms).
        max_message_seconds: most audio one message may decode to (2 bytes of Opus can
            decode to 120 ms: a decompression bomb ends the session with ``bad_audio``).
        max_buffered_bytes: most bytes a session's demuxer holds for one incomplete
            element (a declared 2 GB block is refused before it is buffered).
        max_session_seconds: longest session, in wall-clock time and in audio time (a client
            sending faster than real time reaches it sooner).
        max_sessions: concurrent sessions; one more is told ``busy``.
        start_timeout: seconds a new connection has to send its first message (``start``
            or audio).
        idle_timeout: seconds without any message before a session is ended.
        close_timeout: seconds to wait for the backend's last results after ``stop``.
        allowed_origins: origins (``https://example.com``) whose pages may connect besides
            the server's own; ``("*",)`` allows any page.
        allowed_hosts: accepted ``Host`` header names (DNS rebinding defence); ``None``
            derives them from the bind address: loopback names for a loopback bind, else any.
        print_segments: print every final segment on standard output (``streamdiarize
            serve`` does unless ``--quiet``), like the print statements a server starts with.
        token: when set, clients must present it (see :mod:`streamdiarize.server.protocol`).
            16-256 characters from ``A-Z a-z 0-9 . _ ~ -`` so that it fits a subprotocol.

    Raises:
        ConfigurationError: a limit that is not positive, a malformed origin or token.
    """

    max_message_bytes: int = 1 << 20
    max_message_seconds: float = 60.0
    max_buffered_bytes: int = 4 << 20
    max_session_seconds: float = 3600.0
    max_sessions: int = 16
    start_timeout: float = 10.0
    idle_timeout: float = 30.0
    close_timeout: float = 15.0
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] | None = None
    print_segments: bool = False
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_message_bytes < 1024:
            raise ConfigurationError(
                f"max_message_bytes must be at least 1024, got {self.max_message_bytes}"
            )
        if self.max_buffered_bytes < 64 * 1024:
            raise ConfigurationError(
                f"max_buffered_bytes must be at least 65536, got {self.max_buffered_bytes}"
            )
        if self.max_sessions < 1:
            raise ConfigurationError(f"max_sessions must be at least 1, got {self.max_sessions}")
        for name in (
            "max_message_seconds",
            "max_session_seconds",
            "start_timeout",
            "idle_timeout",
            "close_timeout",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{name} must be a positive number, got {value}")
        for origin in self.allowed_origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ConfigurationError(
                    f"allowed origin {origin!r} is not scheme://host[:port], e.g. "
                    "https://example.com"
                )
        if self.token is not None and not _TOKEN.fullmatch(self.token):
            raise ConfigurationError(
                "the token must be 16-256 characters from A-Z a-z 0-9 . _ ~ - "
                "(it travels in the Sec-WebSocket-Protocol header)"
            )

    def limits(self) -> dict[str, Any]:
        """The limits a client may want to know (sent in the ``ready`` message)."""
        return {
            "max_message_bytes": self.max_message_bytes,
            "max_session_seconds": self.max_session_seconds,
            "idle_timeout": self.idle_timeout,
        }

    def hosts_for(self, bind_host: str) -> tuple[str, ...]:
        """The ``Host`` names to accept when listening on ``bind_host``."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        return loopback_hosts() if _is_loopback(bind_host) else ("*",)


def loopback_hosts() -> tuple[str, ...]:
    """``Host`` names that reach a server bound to a loopback address."""
    return _LOOPBACK_NAMES


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
