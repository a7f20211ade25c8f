"""Audio handed to the Speech SDK through a pull stream, with backpressure towards asyncio.

``PushAudioInputStream.write()`` blocks the calling thread once the SDK's buffer is full (a
slow or stalled service), which on the event loop would freeze every session of the server.
Instead the SDK pulls: its reader thread calls :meth:`AudioSource.read`, which waits on a
condition for bytes; the event loop only appends (never blocks) and awaits
:meth:`AudioSource.wait_for_room` when more than ``max_buffered`` bytes are waiting, so a
slow service slows ``session.send()`` instead of growing memory.

It implements the SDK's ``PullAudioInputStreamCallback`` interface (``read``, ``close``,
``get_property``) without subclassing it, so importing this module does not load the SDK.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from typing import Any

__all__ = ["AudioSource"]


class AudioSource:
    """A thread-safe byte queue the SDK reads from; filled from the event loop.

    Args:
        loop: the event loop that writes (and is woken when room frees up).
        max_buffered: bytes that may wait for the SDK before writers are paused.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, max_buffered: int) -> None:
        self._loop = loop
        self._max_buffered = max_buffered
        self._chunks: collections.deque[memoryview] = collections.deque()
        self._buffered = 0
        self._closed = False
        self._condition = threading.Condition()
        self._room = asyncio.Event()
        self._room.set()

    @property
    def buffered(self) -> int:
        """Bytes written and not yet read by the SDK."""
        return self._buffered

    # -- event loop side -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes for the SDK; never blocks (await :meth:`wait_for_room` first)."""
        if not data:
            return
        with self._condition:
            if self._closed:
                return
            self._chunks.append(memoryview(data))
            self._buffered += len(data)
            if self._buffered >= self._max_buffered:
                self._room.clear()
            self._condition.notify()

    async def wait_for_room(self) -> None:
        """Wait until fewer than ``max_buffered`` bytes are queued (or the source closed)."""
        await self._room.wait()

    def close_input(self) -> None:
        """End of audio: the SDK reads what is queued, then end of stream. Idempotent."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._room.set()

    # -- SDK reader thread -----------------------------------------------------------------

    def read(self, buffer: memoryview) -> int:
        """Called by the SDK: fill ``buffer``; wait while nothing is queued; 0 = end of stream."""
        with self._condition:
            while not self._chunks and not self._closed:
                self._condition.wait()
            filled = 0
            while self._chunks and filled < len(buffer):
                chunk = self._chunks[0]
                n = min(len(chunk), len(buffer) - filled)
                buffer[filled : filled + n] = chunk[:n]
                filled += n
                if n == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[n:]
            self._buffered -= filled
            has_room = self._buffered < self._max_buffered
        if has_room and filled:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._room.set)
        return filled

    def close(self) -> None:
        """Called by the SDK when it is done with the stream."""
        self.close_input()

    def get_property(self, property_id: Any) -> str:
        """Called by the SDK for stream properties: none (the SDK's default answer)."""
        return ""
