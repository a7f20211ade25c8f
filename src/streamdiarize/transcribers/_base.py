"""The small protocol every speech backend implements (Azure, the local engine, test doubles).

A :class:`Transcriber` is configuration; :meth:`Transcriber.open` starts one
:class:`TranscriberStream` per session. The stream takes 16 kHz int16 mono PCM and reports
results to a :class:`SegmentSink`. Sink methods must be called on the event loop's thread:
backends whose work runs on other threads hand results over with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import abc
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from .._exceptions import TranscriberError
from .._speech_rate import SPEECH_SAMPLE_RATE as SAMPLE_RATE
from ..segment import Segment

__all__ = ["SAMPLE_RATE", "SegmentSink", "Transcriber", "TranscriberStream"]


class SegmentSink(Protocol):
    """Where a stream delivers results. Call only from the event loop thread."""

    def put_segment(self, segment: Segment) -> None:
        """Deliver one segment (final, or interim when interim results were asked for)."""

    def put_error(self, error: TranscriberError) -> None:
        """Report a fatal error; the stream delivers nothing after it."""


class TranscriberStream(abc.ABC):
    """One running recognition: audio in, segments out to the sink."""

    @abc.abstractmethod
    async def write(self, pcm: NDArray[np.int16]) -> None:
        """Queue 16 kHz int16 mono samples; waits when the backend is behind (backpressure)."""

    async def write_message(
        self, message: bytes | bytearray | memoryview, pcm: NDArray[np.int16]
    ) -> None:
        """Queue one client message: its bytes as sent and the audio decoded from them.

        The session decodes every message, passthrough or not, so that its limits and
        ``audio_seconds`` hold on every path; PCM backends take ``pcm``, and a passthrough
        stream (Azure ``passthrough=True``) overrides this to take ``message`` instead.
        ``message`` is empty when the audio comes from no new bytes (the flush at the end); it
        is the caller's buffer, so a stream that keeps it must copy it.
        """
        if pcm.size:
            await self.write(pcm)

    @abc.abstractmethod
    async def finish(self) -> None:
        """End of audio: return once every final segment has been delivered to the sink."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop at once and release threads, sockets and SDK objects. Idempotent."""


class Transcriber(abc.ABC):
    """A speech backend's settings; opens one stream per session."""

    @abc.abstractmethod
    async def open(self, sink: SegmentSink, *, interim_results: bool = False) -> TranscriberStream:
        """Start a recognition stream that reports to ``sink``.

        Raises:
            TranscriberError: the backend cannot start (bad credentials surface here or later
                through ``sink.put_error``).
        """
