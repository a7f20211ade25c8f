"""The audio a reconnect re-sends: what no final result covers yet, bounded in seconds."""

from __future__ import annotations

import collections

import numpy as np
from numpy.typing import NDArray

from .._base import SAMPLE_RATE

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """Sent PCM kept until a final result covers it, at most ``max_seconds`` of it.

    Args:
        max_seconds: older audio is dropped past this (it could not be replayed).
    """

    def __init__(self, max_seconds: float) -> None:
        self._chunks: collections.deque[NDArray[np.int16]] = collections.deque()
        self._limit = int(max_seconds * SAMPLE_RATE)
        #: Stream sample index of the first sample kept.
        self.start = 0
        #: Samples written since the stream began.
        self.written = 0

    @property
    def start_seconds(self) -> float:
        """Stream time of the first sample kept: where a replay starts."""
        return self.start / SAMPLE_RATE

    @property
    def written_seconds(self) -> float:
        """Stream time at the end of the audio written so far."""
        return self.written / SAMPLE_RATE

    def append(self, pcm: NDArray[np.int16]) -> None:
        """Keep ``pcm``, dropping the oldest chunks past the limit."""
        self._chunks.append(pcm)
        self.written += len(pcm)
        while self.written - self.start - len(self._chunks[0]) >= self._limit:
            self.start += len(self._chunks.popleft())

    def forget_until(self, seconds: float) -> None:
        """Drop the chunks that end before ``seconds`` of stream time."""
        sample = int(seconds * SAMPLE_RATE)
        while self._chunks and self.start + len(self._chunks[0]) <= sample:
            self.start += len(self._chunks.popleft())

    def chunks(self) -> list[NDArray[np.int16]]:
        """The audio kept, oldest first (a copy of the list, not of the samples)."""
        return list(self._chunks)

    def clear(self) -> None:
        """Drop all audio kept (the stream is closing)."""
        self._chunks.clear()
