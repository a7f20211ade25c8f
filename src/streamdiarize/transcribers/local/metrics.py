"""Scoring of speaker-labelled transcripts: diarization error rate and text normalisation.

:func:`diarization_error` follows NIST md-eval: a no-score collar of ``collar`` seconds on
*each side* of every reference boundary (``collar=0.25`` is md-eval's ``-c 0.25``, and
``pyannote.metrics``' ``collar=0.5``), an optimal one-to-one mapping of hypothesis to
reference speakers (Hungarian algorithm on overlap time), and overlapping speech counted per
speaker. It is exact: times are not quantised to frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ...segment import Segment

__all__ = [
    "DiarizationErrors",
    "Turn",
    "diarization_error",
    "merge_turns",
    "normalize_text",
    "optimal_assignment",
    "turns_from_segments",
]


@dataclass(frozen=True, slots=True)
class Turn:
    """One speaker talking from ``start`` to ``end`` (seconds)."""

    speaker: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class DiarizationErrors:
    """Error durations in seconds over the scored reference speech (``total``)."""

    total: float
    missed: float
    false_alarm: float
    confusion: float

    @property
    def rate(self) -> float:
        """DER: (missed + false alarm + confusion) / total; 0 for an empty reference."""
        errors = self.missed + self.false_alarm + self.confusion
        if self.total > 0:
            return errors / self.total
        return 0.0 if errors == 0 else float("inf")


def turns_from_segments(segments: Iterable[Segment]) -> list[Turn]:
    """Final segments as turns (interim hypotheses are ignored)."""
    return [Turn(s.speaker, s.offset, s.end) for s in segments if s.final]


def normalize_text(text: str) -> str:
    """Lower case, words only (apostrophes kept, hyphens split): the text WER is computed on."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
    return " ".join(w.strip("'") for w in words if w.strip("'"))


def diarization_error(
    reference: Sequence[Turn], hypothesis: Sequence[Turn], *, collar: float = 0.25
) -> DiarizationErrors:
    """Score ``hypothesis`` against ``reference`` (md-eval conventions, see module docstring)."""
    if collar < 0:
        raise ValueError(f"collar must be >= 0, got {collar}")
    reference, hypothesis = merge_turns(reference), merge_turns(hypothesis)
    ref_speakers = sorted({t.speaker for t in reference})
    hyp_speakers = sorted({t.speaker for t in hypothesis})
    ref_bounds = np.array([b for t in reference for b in (t.start, t.end)], dtype=np.float64)
    edges = np.unique(
        np.concatenate(
            [
                ref_bounds,
                ref_bounds - collar,
                ref_bounds + collar,
                [b for t in hypothesis for b in (t.start, t.end)],
            ]
        )
    )
    if len(edges) < 2:
        return DiarizationErrors(0.0, 0.0, 0.0, 0.0)
    mids = (edges[:-1] + edges[1:]) / 2
    widths = np.diff(edges)
    if collar > 0 and len(ref_bounds):
        near = np.abs(mids[None, :] - ref_bounds[:, None]) < collar
        widths = np.where(near.any(axis=0), 0.0, widths)
    ref = _activity(reference, ref_speakers, mids)
    hyp = _activity(hypothesis, hyp_speakers, mids)
    overlap = (ref * widths) @ hyp.T  # seconds each reference speaker shares with each hypothesis
    rows, cols = optimal_assignment(overlap)
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    n_correct = (ref[rows] * hyp[cols]).sum(axis=0) if len(rows) else np.zeros_like(widths)
    return DiarizationErrors(
        total=float(widths @ n_ref),
        missed=float(widths @ np.maximum(n_ref - n_hyp, 0)),
        false_alarm=float(widths @ np.maximum(n_hyp - n_ref, 0)),
        confusion=float(widths @ (np.minimum(n_ref, n_hyp) - n_correct)),
    )


def merge_turns(turns: Iterable[Turn]) -> list[Turn]:
    """Join each speaker's overlapping or touching turns (a speaker talks or does not)."""
    merged: list[Turn] = []
    by_speaker: dict[str, list[Turn]] = {}
    for turn in turns:
        if turn.end > turn.start:
            by_speaker.setdefault(turn.speaker, []).append(turn)
    for speaker, own in sorted(by_speaker.items()):
        bounds = np.array(sorted((t.start, t.end) for t in own), dtype=np.float64)
        reach = np.maximum.accumulate(bounds[:, 1])
        opens = np.concatenate([[True], bounds[1:, 0] > reach[:-1]])
        starts = bounds[opens, 0]
        ends = reach[np.concatenate([np.nonzero(opens)[0][1:] - 1, [len(bounds) - 1]])]
        merged.extend(Turn(speaker, float(a), float(b)) for a, b in zip(starts, ends, strict=True))
    return merged


def _activity(
    turns: Sequence[Turn], speakers: list[str], mids: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``(speakers, intervals)`` 0/1 matrix: who talks at each elementary interval's middle."""
    active = np.zeros((len(speakers), len(mids)), dtype=np.float64)
    index = {s: i for i, s in enumerate(speakers)}
    for turn in turns:
        active[index[turn.speaker]] += (mids > turn.start) & (mids < turn.end)
    result: NDArray[np.float64] = np.minimum(active, 1.0)
    return result


def optimal_assignment(gain: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Rows and columns of a one-to-one matching that maximises the summed ``gain``.

    The Hungarian algorithm (shortest augmenting paths with potentials), O(n² m) for an
    ``n × m`` matrix; every row of the smaller side is matched.
    """
    gain = np.asarray(gain, dtype=np.float64)
    transposed = gain.shape[0] > gain.shape[1]
    cost = -(gain.T if transposed else gain)
    n, m = cost.shape
    if n == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    match = np.zeros(m + 1, dtype=np.intp)  # match[j] = row (1-based) assigned to column j
    way = np.zeros(m + 1, dtype=np.intp)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    cols = np.nonzero(match[1:])[0]
    rows = match[1:][cols] - 1
    order = np.argsort(rows)
    rows, cols = rows[order].astype(np.intp), cols[order].astype(np.intp)
    return (cols, rows) if transposed else (rows, cols)
