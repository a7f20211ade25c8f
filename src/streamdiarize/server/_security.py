"""Who may open a session: the ``Origin`` check and the bearer token, as pure functions."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from .protocol import TOKEN_SUBPROTOCOL_PREFIX

__all__ = ["origin_allowed", "presented_token", "token_matches"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin, or ``None`` when it is not a web origin."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or _DEFAULT_PORTS[parts.scheme]


def _host_key(host: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{host.strip().lower()}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname, port or _DEFAULT_PORTS[scheme]


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a WebSocket handshake with this ``Origin`` may proceed.

    Browsers always send ``Origin`` on WebSocket handshakes, so checking it stops other web
    sites from using the server through a visitor's browser (cross-site WebSocket hijacking).
    Clients that are not browsers send none and pass: they can claim any origin anyway, which
    is what the optional token is for.

    Args:
        origin: the ``Origin`` header, if any.
        host: the ``Host`` header: a page from the same host and port is same-origin.
        allowed: extra origins (``https://example.com``); ``"*"`` allows every origin.
    """
    if origin is None or "*" in allowed:
        return True
    key = _origin_key(origin)
    if key is None:  # "null" (sandboxed frames, file: pages) or garbage
        return False
    if any(_origin_key(a) == key for a in allowed):
        return True
    scheme, hostname, port = key
    return host is not None and _host_key(host, scheme) == (hostname, port)


def presented_token(subprotocols: Iterable[str], authorization: str | None) -> str | None:
    """The token a client presented: a ``streamdiarize.token.<token>`` subprotocol (what a
    page can send) or an ``Authorization: Bearer <token>`` header (other clients)."""
    for offered in subprotocols:
        if offered.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return offered[len(TOKEN_SUBPROTOCOL_PREFIX) :]
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of the presented token with the expected one."""
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))
