"""``with`` and ``async with`` for services that run on their own thread: start, then stop."""

from __future__ import annotations

import abc
import asyncio

from typing_extensions import Self

__all__ = ["AsyncThreadedService", "ThreadedService"]


class ThreadedService(abc.ABC):
    """A service with blocking ``start()``/``stop()``; ``with service:`` runs both."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start serving; return once it accepts connections."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class AsyncThreadedService(ThreadedService):
    """A :class:`ThreadedService` that ``async with`` starts and stops in a worker thread.

    The service keeps its own thread even under asyncio: a caller that makes a blocking
    call on its loop (an SDK's ``.get()``) would otherwise deadlock the service.
    """

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)
