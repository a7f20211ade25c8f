"""Hooks into a server's sessions: what started, what bytes came in, how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["SessionInfo", "SessionObserver", "SessionOutcome"]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session that began (with a ``start`` message or, from a zero-config page, audio).

    Attributes:
        id: short random id, also sent to the client in ``ready``.
        client: ``host:port`` of the peer.
        mime: the declared format; ``None`` when the client declared none (found out from
            the bytes).
        interim: the client asked for interim results.
        origin: the page's ``Origin`` header, if any.
    """

    id: str
    client: str
    mime: str | None
    interim: bool
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """How a session ended.

    Attributes:
        close_code: the WebSocket close code sent (1006 when the client vanished).
        error: the protocol error code, or ``None`` after a clean ``stop``/``end``.
        reason: the error text, or ``""``.
        audio_seconds: decoded audio sent to the backend.
        messages: binary messages received.
        bytes: audio bytes received.
        segments: ``segment`` messages sent (final and interim).
        restarts: new streams begun inside the connection (MediaRecorder restarts).
        seconds: wall-clock length of the session.
    """

    close_code: int
    error: str | None
    reason: str
    audio_seconds: float
    messages: int
    bytes: int
    segments: int
    restarts: int
    seconds: float


class SessionObserver(Protocol):
    """Receives a server's session events on the event loop thread; must not block long."""

    def session_started(self, info: SessionInfo) -> None:
        """A client sent a valid ``start`` message, or its first audio."""

    def audio_received(self, info: SessionInfo, data: bytes) -> None:
        """One binary message, before it is decoded."""

    def session_ended(self, info: SessionInfo, outcome: SessionOutcome) -> None:
        """The session is over and its resources are released."""
