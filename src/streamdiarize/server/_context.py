"""What every connection of one app shares: the engine, the settings and the session slots."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from ._engines import Engine
from ._observer import SessionObserver
from ._settings import ServerSettings
from .protocol import ErrorCode, ProtocolError

__all__ = ["ServerContext", "SessionSlots"]


class SessionSlots:
    """Counts running sessions and refuses one past the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.contextmanager
    def acquire(self) -> Iterator[None]:
        """Hold a slot for the ``with`` block.

        Raises:
            ProtocolError: ``busy`` when every slot is taken.
        """
        if self.active >= self.limit:
            raise ProtocolError(
                ErrorCode.BUSY,
                f"the server runs its maximum of {self.limit} sessions; try again later",
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


@dataclass(frozen=True, slots=True)
class ServerContext:
    """What every connection of one app shares."""

    engine: Engine
    settings: ServerSettings
    slots: SessionSlots
    observer: SessionObserver | None = None
