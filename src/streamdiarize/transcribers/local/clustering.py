"""Online speaker clustering: one decision per utterance, labels stable for the whole session.

Each speaker is a centroid: the normalised, duration-weighted mean of the embeddings assigned to
it. An utterance joins the most similar centroid when the cosine similarity reaches
``threshold``; otherwise it opens a new speaker, unless ``max_speakers`` are known already (then
it joins the nearest). Utterances shorter than ``min_duration`` carry too little voice for a
reliable embedding: they join the nearest known speaker, never open one, and never move a
centroid. Decisions are final: a label once given is not revised, so a live transcript never
changes who said what.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..._exceptions import ConfigurationError

__all__ = ["DEFAULT_THRESHOLD", "SpeakerClustering"]

#: Cosine similarity at which a GE2E embedding joins a speaker. Measured on espeak-ng voices
#: (see tests/test_local_clustering.py): same voice 0.81-1.0, distinct voices 0.48-0.77.
DEFAULT_THRESHOLD = 0.75


class SpeakerClustering:
    """Assigns L2-normalised embeddings to speakers ``0, 1, 2, …`` in order of appearance.

    Args:
        threshold: minimum cosine similarity to join an existing speaker, in (-1, 1).
        max_speakers: cap on distinct speakers (``None``: no cap).
        min_duration: utterances shorter than this (seconds) never open a speaker.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        max_speakers: int | None = None,
        min_duration: float = 1.0,
    ) -> None:
        if not -1.0 < threshold < 1.0:
            raise ConfigurationError(f"speaker_threshold must be in (-1, 1), got {threshold}")
        if max_speakers is not None and max_speakers < 1:
            raise ConfigurationError(f"max_speakers must be at least 1, got {max_speakers}")
        self.threshold = threshold
        self.max_speakers = max_speakers
        self.min_duration = min_duration
        self._sums: NDArray[np.float64] = np.zeros((0, 0), dtype=np.float64)

    @property
    def n_speakers(self) -> int:
        """Speakers opened so far."""
        return len(self._sums)

    @property
    def centroids(self) -> NDArray[np.float32]:
        """Unit-length centroids, one row per speaker."""
        norms = np.linalg.norm(self._sums, axis=1, keepdims=True)
        result: NDArray[np.float32] = (self._sums / np.maximum(norms, 1e-12)).astype(np.float32)
        return result

    def similarities(self, embedding: NDArray[np.float32]) -> NDArray[np.float32]:
        """Cosine similarity of ``embedding`` to each centroid."""
        result: NDArray[np.float32] = self.centroids @ _unit(embedding)
        return result

    def assign(self, embedding: NDArray[np.float32], duration: float) -> int:
        """Speaker index (0-based) for one utterance; may open a speaker or move a centroid.

        Args:
            embedding: the utterance's speaker embedding (any norm; normalised here).
            duration: seconds of speech behind the embedding; weights the centroid update.
        """
        vector = _unit(embedding).astype(np.float64)
        if not self.n_speakers:
            return self._open(vector, duration)
        sims = self.similarities(embedding)
        best = int(np.argmax(sims))
        if duration < self.min_duration:
            return best
        if sims[best] >= self.threshold:
            self._sums[best] += duration * vector
            return best
        if self.max_speakers is None or self.n_speakers < self.max_speakers:
            return self._open(vector, duration)
        return best  # at the cap: the nearest voice, without letting it pull the centroid

    def _open(self, vector: NDArray[np.float64], duration: float) -> int:
        weight = max(duration, 1e-3)
        if not self.n_speakers:
            self._sums = (weight * vector)[None, :]
        else:
            self._sums = np.vstack([self._sums, weight * vector])
        return self.n_speakers - 1


def _unit(x: NDArray[np.float32]) -> NDArray[np.float32]:
    norm = float(np.linalg.norm(x))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("a speaker embedding must be finite and non-zero")
    result: NDArray[np.float32] = (x / norm).astype(np.float32)
    return result
