"""A sliding window over a PCM stream, addressed by absolute sample index."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["AudioBuffer"]


class AudioBuffer:
    """Holds the recent samples of a stream; the caller discards what it no longer needs.

    Positions are absolute sample indices from the start of the stream, so slices stay valid
    while old audio is dropped. Storage grows by doubling and is compacted in place on
    :meth:`discard_before`, so appends are amortised O(1) and memory follows what is kept.
    """

    def __init__(self, capacity: int = 16_000) -> None:
        self._data = np.zeros(max(1, capacity), dtype=np.int16)
        self._start = 0  # absolute index of _data[0]
        self._len = 0

    @property
    def start(self) -> int:
        """Absolute index of the oldest sample held."""
        return self._start

    @property
    def end(self) -> int:
        """Absolute index one past the newest sample (the total appended so far)."""
        return self._start + self._len

    def append(self, pcm: NDArray[np.int16]) -> None:
        """Add samples at the end."""
        needed = self._len + len(pcm)
        if needed > len(self._data):
            grown = np.zeros(max(needed, 2 * len(self._data)), dtype=np.int16)
            grown[: self._len] = self._data[: self._len]
            self._data = grown
        self._data[self._len : needed] = pcm
        self._len = needed

    def slice(self, start: int, end: int) -> NDArray[np.int16]:
        """A copy of samples ``[start, end)``, clipped to what is held."""
        lo = min(max(start, self._start), self.end) - self._start
        hi = min(max(end, self._start), self.end) - self._start
        result: NDArray[np.int16] = self._data[lo : max(lo, hi)].copy()
        return result

    def discard_before(self, position: int) -> None:
        """Forget samples before absolute index ``position``."""
        drop = min(max(position - self._start, 0), self._len)
        if drop:
            self._data[: self._len - drop] = self._data[drop : self._len]
            self._start += drop
            self._len -= drop
