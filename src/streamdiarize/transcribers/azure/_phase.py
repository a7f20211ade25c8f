"""The phases of an Azure stream and the moves between them: a small explicit state machine.

::

    STREAMING ──cancel (retryable)──► RECONNECTING ──replayed──► STREAMING
        │                                  │
        └──────── error ──► FAILED ◄───────┘        any ──aclose()──► CLOSED

The end of the audio (``finish()``) is orthogonal to the phase: a reconnect during the finish
ends the new connection's input once its replay is sent.
"""

from __future__ import annotations

import enum

__all__ = ["ENDED", "Phase", "advance"]


class Phase(enum.Enum):
    """Where an Azure stream is."""

    STREAMING = "streaming"  # audio goes to the current connection
    RECONNECTING = "reconnecting"  # a fresh connection replaces a failed one; audio is kept
    FAILED = "failed"  # an error was reported to the sink; audio is dropped
    CLOSED = "closed"  # aclose() ran: tasks cancelled, SDK objects released


_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.STREAMING: frozenset({Phase.RECONNECTING, Phase.FAILED, Phase.CLOSED}),
    # Another retryable cancel may come while the fresh connection starts.
    Phase.RECONNECTING: frozenset(Phase),
    # A failing reconnect may report a second error (the latest is kept).
    Phase.FAILED: frozenset({Phase.FAILED, Phase.CLOSED}),
    Phase.CLOSED: frozenset(),
}

#: Phases that take no more audio.
ENDED = frozenset({Phase.FAILED, Phase.CLOSED})


def advance(current: Phase, new: Phase) -> Phase:
    """``new``, once checked to be a move the machine allows from ``current``.

    Raises:
        AssertionError: a move the machine does not allow (a bug in the stream).
    """
    if new not in _TRANSITIONS[current]:
        raise AssertionError(f"Azure stream: no move from {current.name} to {new.name}")
    return new
