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
* Once two voices are heard, pieces are re-assigned by their embeddings less the session's
  mean (k-means on the residuals): the channel and room that every voice of a call shares
  make raw cosines of different speakers high (0.3 on a telephone call, against 0.45 within
  one speaker), and taking the mean out separates them (-0.22 against 0.05). A cluster with
  under 3 s of speech whose raw similarity with another is borderline (within 0.3 of the
  threshold) joins it when their residuals agree: a stray piece with some overlap or an odd
  voice quality does not open a speaker. Whether a session has one voice or two stays the
  raw threshold's decision.
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
_PROVISIONAL_SECONDS = 3.0  # speech below which a cluster may still merge as a residual
_BORDERLINE = 0.3  # how far below the threshold a pair may be for the residuals to merge it
_REFINE_ROUNDS = 10  # k-means rounds on the session's residuals (it settles in 2-4)

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
        sums = np.concatenate(
            [vectors[seeding] * weights[seeding, None], *[a[None] for a in anchor_sums]]
        )
        seconds = np.concatenate(
            [weights[seeding], [self._anchor_seconds[k] for k in anchor_labels]]
        )
        seed_clusters, _ = _agglomerate(
            sums,
            seconds,
            self.threshold,
            self.noise_seconds,
            min_clusters=self.min_speakers,
            max_clusters=self.max_speakers,
        )
        seed_clusters, centroids = _refine_without_session_mean(
            sums,
            seconds,
            seed_clusters,
            threshold=self.threshold,
            noise_seconds=self.noise_seconds,
            min_clusters=self.min_speakers,
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


def _refine_without_session_mean(
    sums: FloatArray,
    seconds: FloatArray,
    clusters: NDArray[np.intp],
    *,
    threshold: float,
    noise_seconds: float,
    min_clusters: int,
) -> tuple[NDArray[np.intp], FloatArray]:
    """Re-assign rows among two or more clusters by their embeddings less the session's mean.

    All the speech of one session shares a channel, a room and a language, so embeddings of
    different speakers are alike in the same way: on a telephone call their cosine is about
    0.3, with 0.45 for one speaker. Once the raw clustering has heard two voices, the
    duration-weighted mean of the session stands for that common part; without it, what is
    left tells the speakers apart (the same call: 0.05 against -0.22). This runs k-means on
    those residuals, merging any two clusters whose residual centroids point the same way
    (more alike than the session's average voice). Two clusters' residual centroids are
    opposite by construction, so this cannot merge a pair: whether a session has one voice
    or two stays the raw threshold's decision.

    Returns:
        The cluster of each row (0 … k-1, in order of first row) and the unit raw centroids.
    """
    if clusters.max(initial=0) >= 1:
        units = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        residuals = units - sums.sum(axis=0) / seconds.sum()
        residuals /= np.maximum(np.linalg.norm(residuals, axis=1, keepdims=True), 1e-12)
        for _ in range(_REFINE_ROUNDS):
            k = int(clusters.max()) + 1
            centres = np.zeros((k, sums.shape[1]))
            np.add.at(centres, clusters, residuals * seconds[:, None])
            centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
            likeness = centres @ centres.T
            # Only a borderline pair with little speech on one side may merge this way.
            speech = np.bincount(clusters, weights=seconds, minlength=k)
            raw = np.zeros_like(centres)
            np.add.at(raw, clusters, sums)
            raw /= np.linalg.norm(raw, axis=1, keepdims=True)
            reliability = np.sqrt(speech / (speech + noise_seconds))
            near = (raw @ raw.T) / np.outer(reliability, reliability) >= threshold - _BORDERLINE
            likeness[~near | (np.minimum.outer(speech, speech) >= _PROVISIONAL_SECONDS)] = -np.inf
            np.fill_diagonal(likeness, -np.inf)
            if k > max(min_clusters, 2) and likeness.max() > 0.0:
                i, j = sorted(divmod(int(np.argmax(likeness)), k))
                moved = np.where(clusters == j, i, clusters)
            else:
                moved = np.argmax(residuals @ centres.T, axis=1)
                if np.array_equal(moved, clusters):
                    break
            clusters = _in_order_of_first_row(moved)
    k = int(clusters.max()) + 1
    centroids = np.zeros((k, sums.shape[1]))
    np.add.at(centroids, clusters, sums)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return clusters, centroids


def _in_order_of_first_row(clusters: NDArray[np.intp]) -> NDArray[np.intp]:
    """Renumber clusters 0 … k-1 in the order their first row appears."""
    order = {cluster: n for n, cluster in enumerate(dict.fromkeys(clusters.tolist()))}
    return np.array([order[c] for c in clusters.tolist()], dtype=np.intp)


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
