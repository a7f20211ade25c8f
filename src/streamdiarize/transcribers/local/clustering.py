"""Session-wide speaker clustering that revisits its decisions and keeps published labels stable.

Every speaker turn (a *piece*: speech between two speaker changes or pauses) brings one
embedding and its duration. On each new piece the recent pieces are clustered again from
scratch by agglomerative clustering (centroid linkage on cosine similarity, weighted by
duration) and the clusters are mapped onto the labels already published: the mapping maximises
the speech time that keeps its label (Hungarian algorithm), and a cluster that matches no label
opens the next one. So labels do not flap when clusters are renumbered, the first turns of a
dialog are judged again once more voices are heard, and a piece's label changes only when the
evidence for it does.

* Similarity is judged for the amount of speech behind it. An embedding of a short piece is a
  noisy estimate of its speaker's voice: two 1 s pieces of one speaker have a cosine of about
  0.5, two 4 s pieces about 0.85. So the cosine of two clusters' centroids is divided by the
  similarity one voice would reach with that much speech, ``ρ(D₁) ρ(D₂)`` with
  ``ρ(D) = sqrt(D / (D + noise_seconds))`` (``D``: seconds of speech in the cluster), before it
  is compared with ``threshold``. Short pieces then join the voice they are closest to instead
  of founding speakers of their own, and long clusters still need a close match.
* Pieces shorter than ``min_duration`` (back-channels such as "yeah") carry too little voice to
  found a speaker: they take the nearest cluster when they arrive, and keep that label.
* ``min_speakers`` / ``max_speakers`` bound the number of clusters (merging stops at the
  minimum; past the maximum it goes on below the threshold).
* Only the last ``horizon`` pieces are clustered and may be revised; older pieces are folded
  into one anchor per label that still votes, so a speaker who returns after a long time keeps
  the label, and memory and time per piece stay bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..._exceptions import ConfigurationError
from .metrics import optimal_assignment

__all__ = ["DEFAULT_THRESHOLD", "Assignment", "SpeakerClustering", "voice_similarity"]

#: Duration-normalised cosine similarity of two clusters above which they are one speaker.
DEFAULT_THRESHOLD = 0.6
#: Seconds of speech at which an embedding's expected cosine with its speaker's voice is 1/√2.
DEFAULT_NOISE_SECONDS = 0.7

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Assignment:
    """The outcome of adding one piece.

    Attributes:
        piece: the new piece's id (0, 1, 2, … in the order pieces were added).
        label: its speaker label (0-based).
        revised: earlier pieces whose label changed, ``{piece id: new label}``.
    """

    piece: int
    label: int
    revised: dict[int, int] = field(default_factory=dict)


class SpeakerClustering:
    """Labels pieces ``0, 1, 2, …`` by speaker, revising recent ones as evidence grows.

    Args:
        threshold: duration-normalised centroid similarity at which two clusters merge, in
            (-1, 1).
        min_speakers: at least this many speakers once there are as many long pieces.
        max_speakers: at most this many speakers (``None``: no cap).
        min_duration: pieces shorter than this (seconds) never found a speaker.
        horizon: how many recent pieces are re-clustered and may be revised.
        noise_seconds: speech (seconds) at which an embedding is half signal, half noise;
            0 compares raw cosines.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        min_duration: float = 1.0,
        horizon: int = 200,
        noise_seconds: float = DEFAULT_NOISE_SECONDS,
    ) -> None:
        if not -1.0 < threshold < 1.0:
            raise ConfigurationError(f"speaker_threshold must be in (-1, 1), got {threshold}")
        if max_speakers is not None and max_speakers < 1:
            raise ConfigurationError(f"max_speakers must be at least 1, got {max_speakers}")
        if min_speakers is not None and min_speakers < 1:
            raise ConfigurationError(f"min_speakers must be at least 1, got {min_speakers}")
        if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
            raise ConfigurationError(
                f"min_speakers ({min_speakers}) must not exceed max_speakers ({max_speakers})"
            )
        if horizon < 2:
            raise ConfigurationError(f"the clustering horizon must be at least 2, got {horizon}")
        self.threshold = threshold
        self.min_speakers = min_speakers or 1
        self.max_speakers = max_speakers
        self.min_duration = min_duration
        self.horizon = horizon
        self.noise_seconds = noise_seconds
        self._vectors: list[FloatArray] = []  # unit embeddings of the recent pieces
        self._weights: list[float] = []
        self._labels: list[int] = []
        self._first = 0  # id of the oldest recent piece
        self._anchors: dict[int, FloatArray] = {}  # label -> weighted sum of folded pieces
        self._anchor_seconds: dict[int, float] = {}  # label -> seconds of folded speech
        self._n_labels = 0

    @property
    def n_speakers(self) -> int:
        """Labels opened so far."""
        return self._n_labels

    @property
    def labels(self) -> dict[int, int]:
        """Current label of each piece that may still be revised, ``{piece id: label}``."""
        return {self._first + i: label for i, label in enumerate(self._labels)}

    def add(self, embedding: NDArray[np.floating], duration: float) -> Assignment:
        """Add one piece (any-norm embedding, seconds of speech) and re-cluster.

        Raises:
            ValueError: the embedding is not finite or is zero (it carries no voice).
        """
        vector = _unit(np.asarray(embedding, dtype=np.float64))
        self._vectors.append(vector)
        self._weights.append(max(float(duration), 1e-3))
        self._labels.append(-1)
        piece = self._first + len(self._vectors) - 1
        revised = self._relabel()
        label = self._labels[-1]
        revised.pop(piece, None)
        if len(self._vectors) > self.horizon:
            self._fold_oldest()
        return Assignment(piece, label, revised)

    def _relabel(self) -> dict[int, int]:
        """Cluster the recent pieces again and map clusters onto published labels."""
        vectors = np.stack(self._vectors)
        weights = np.asarray(self._weights)
        anchor_labels = sorted(self._anchors)
        long = weights >= self.min_duration
        seeding = long if long.any() else np.ones_like(long)  # only short pieces yet: they seed
        n_seeds = int(seeding.sum())
        anchor_sums = [self._anchors[k] for k in anchor_labels]
        seed_clusters, centroids = _agglomerate(
            np.concatenate(
                [vectors[seeding] * weights[seeding, None], *[a[None] for a in anchor_sums]]
            ),
            np.concatenate([weights[seeding], [self._anchor_seconds[k] for k in anchor_labels]]),
            self.threshold,
            self.noise_seconds,
            min_clusters=self.min_speakers,
            max_clusters=self.max_speakers,
        )
        clusters = np.argmax(vectors @ centroids.T, axis=1)
        clusters[seeding] = seed_clusters[:n_seeds]
        anchor_gain = [float(np.linalg.norm(a)) for a in anchor_sums]
        mapping = self._map(
            clusters[long],
            weights[long],
            np.asarray(self._labels)[long],
            list(zip(seed_clusters[n_seeds:].tolist(), anchor_labels, anchor_gain, strict=True)),
            len(centroids),
        )
        revised: dict[int, int] = {}
        for i, cluster in enumerate(clusters.tolist()):
            label = mapping[cluster]
            if self._labels[i] < 0:
                self._labels[i] = label
            elif long[i] and self._labels[i] != label:
                revised[self._first + i] = self._labels[i] = label
        return revised

    def _map(
        self,
        clusters: NDArray[np.intp],
        weights: FloatArray,
        labels: NDArray[np.intp],
        anchors: list[tuple[int, int, float]],
        n_clusters: int,
    ) -> list[int]:
        """Label of each cluster: keep as much published speech on its label as possible.

        ``clusters``/``weights``/``labels`` describe the long recent pieces (label -1: not
        published yet); ``anchors`` are ``(cluster, label, weight)`` of the folded pieces.
        """
        gain = np.zeros((n_clusters, max(self._n_labels, 1)))
        known = labels >= 0
        # A hair more for older pieces: on a tie the label stays with the speech that had it
        # first (so "Speaker 1" remains whoever spoke first).
        seniority = 1.0 + 1e-6 * np.arange(len(labels), 0, -1)
        np.add.at(gain, (clusters[known], labels[known]), (weights * seniority)[known])
        for cluster, label, weight in anchors:
            gain[cluster, label] += weight
        mapping = [-1] * n_clusters
        for row, col in zip(*optimal_assignment(gain), strict=True):
            if gain[row, col] > 0:
                mapping[int(row)] = int(col)
        # Clusters without a label take fresh ones in order (the first piece is Speaker 1).
        for cluster in range(n_clusters):
            if mapping[cluster] < 0:
                mapping[cluster] = self._n_labels
                self._n_labels += 1
        return mapping

    def _fold_oldest(self) -> None:
        """Freeze the oldest recent piece into its label's anchor."""
        vector, weight, label = self._vectors.pop(0), self._weights.pop(0), self._labels.pop(0)
        self._first += 1
        self._anchors[label] = self._anchors.get(label, 0.0) + weight * vector
        self._anchor_seconds[label] = self._anchor_seconds.get(label, 0.0) + weight


def _agglomerate(
    sums: FloatArray,
    seconds: FloatArray,
    threshold: float,
    noise_seconds: float,
    *,
    min_clusters: int,
    max_clusters: int | None,
) -> tuple[NDArray[np.intp], FloatArray]:
    """Centroid-linkage clustering of weighted unit vectors (rows of ``sums``).

    Merges the two clusters whose duration-normalised centroid similarity is highest while it is
    at least ``threshold`` (or while there are more than ``max_clusters``), never below
    ``min_clusters``. One row of the similarity matrix is recomputed per merge: O(n² d) in all.

    Returns:
        The cluster of each row (0 … k-1, in order of first row) and the unit centroids.
    """
    n = len(sums)
    owner = np.arange(n)
    sums = sums.copy()
    seconds = np.asarray(seconds, dtype=np.float64).copy()
    alive = np.ones(n, dtype=bool)
    centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    reliability = np.sqrt(seconds / (seconds + noise_seconds))
    similarity = (centroids @ centroids.T) / np.outer(reliability, reliability)
    np.fill_diagonal(similarity, -np.inf)
    count = n
    while count > min_clusters:
        flat = int(np.argmax(similarity))
        i, j = divmod(flat, n)
        if similarity[i, j] < threshold and (max_clusters is None or count <= max_clusters):
            break
        i, j = min(i, j), max(i, j)
        sums[i] += sums[j]
        seconds[i] += seconds[j]
        owner[owner == j] = i
        alive[j] = False
        similarity[j, :] = similarity[:, j] = -np.inf
        centroids[i] = sums[i] / np.linalg.norm(sums[i])
        reliability[i] = np.sqrt(seconds[i] / (seconds[i] + noise_seconds))
        row = (centroids @ centroids[i]) / (reliability * reliability[i])
        row[~alive] = -np.inf
        row[i] = -np.inf
        similarity[i, :] = similarity[:, i] = row
        count -= 1
    roots, clusters = np.unique(owner, return_inverse=True)
    return clusters.astype(np.intp), centroids[roots]


def voice_similarity(
    a: NDArray[np.floating],
    b: NDArray[np.floating],
    seconds_a: float,
    seconds_b: float,
    noise_seconds: float = DEFAULT_NOISE_SECONDS,
) -> float:
    """Cosine of two unit embeddings, normalised for the seconds of speech behind each."""
    reliability = np.sqrt(
        seconds_a / (seconds_a + noise_seconds) * seconds_b / (seconds_b + noise_seconds)
    )
    return float(np.dot(a, b) / reliability)


def _unit(x: FloatArray) -> FloatArray:
    norm = float(np.linalg.norm(x))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("a speaker embedding must be finite and non-zero")
    return x / norm
