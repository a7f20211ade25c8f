"""Speaker change detection inside speech, online, from sliding-window embeddings (sans-I/O).

The turn being spoken is summarised by the mean of its window embeddings; each new window
(``window`` samples, one per ``hop``) is compared with the summary of everything before its
start. A change is declared at a window start where the distance ``1 - cos`` exceeds
``threshold`` and the window one hop later is still far (``confirm`` of the threshold) —
the second look keeps one odd window (a laugh, a cough) from cutting a turn. The change is
placed at the start of the first of the two windows unless the second is clearly farther, so
it is known ``hop + window`` samples after it happened: that is the look-ahead of the
engine's speaker turns.

Windows with too little speech (a pause, the tail of a turn) are neither compared nor added to
the summary: silence has no voice, and its embedding is far from every speaker.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["SpeakerChangeDetector"]

_MARGIN = 0.1  # of the threshold: how much farther the next window must be to move a change


class SpeakerChangeDetector:
    """Finds where the voice changes in a stream of window embeddings.

    Args:
        threshold: cosine distance between the turn so far and a window that makes a change.
        window: samples per embedding window.
        confirm: fraction of ``threshold`` the next window must still reach.
        min_speech: fraction of a window that must be speech for it to count.
    """

    def __init__(
        self, threshold: float, window: int, *, confirm: float = 0.8, min_speech: float = 0.6
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.confirm = confirm
        self.min_speech = min_speech
        self._starts: list[int] = []
        self._vectors: list[NDArray[np.float32]] = []
        self._candidate: tuple[int, float] | None = None  # (window start, distance)

    def reset(self) -> None:
        """A new turn begins: forget the previous one."""
        self._starts.clear()
        self._vectors.clear()
        self._candidate = None

    def add(self, start: int, embedding: NDArray[np.float32], speech: float) -> int | None:
        """Take the window starting at sample ``start``; return a change's sample, if any.

        Windows come in increasing ``start``. ``speech`` is the window's speech fraction.
        After a change the caller resets the detector and starts windows at the change.
        """
        if speech < self.min_speech:
            return None
        distance = self._distance(start, embedding)
        candidate = self._candidate
        if candidate is not None:
            self._candidate = None
            if distance is not None and distance >= self.confirm * self.threshold:
                # The later window wins only when clearly farther: a window still partly in
                # the old voice is nearer than one wholly in the new voice, noise is not.
                later = distance > candidate[1] + _MARGIN * self.threshold
                return start if later else candidate[0]
        if distance is not None and distance >= self.threshold:
            self._candidate = (start, distance)
        else:
            self._starts.append(start)
            self._vectors.append(embedding)
        return None

    def _distance(self, start: int, embedding: NDArray[np.float32]) -> float | None:
        """``1 - cos`` between the turn's windows that end by ``start`` and this window."""
        before = [
            v for s, v in zip(self._starts, self._vectors, strict=True) if s + self.window <= start
        ]
        if not before:
            return None
        summary = np.sum(before, axis=0)
        norm = float(np.linalg.norm(summary) * np.linalg.norm(embedding))
        if norm == 0.0:
            return None
        return 1.0 - float(summary @ embedding) / norm
