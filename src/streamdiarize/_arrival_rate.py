"""How fast a live stream's messages arrive: its sample rate, from arrival times alone.

A live page sends audio as fast as its AudioContext makes it, so bytes per second of arrival
time, divided by the frame size, is the rate; :func:`snap_rate` rounds it to a standard one.
Messages are often read late (browser jitter, a server busy opening its session), never
early, so :class:`RateEstimator` measures the lower envelope of the arrival times. Pure: the
caller passes arrival times; nothing reads a clock. Used by
:mod:`streamdiarize.raw_detection`, which re-exports the public names.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["STANDARD_RATES", "RateEstimate", "RateEstimator", "snap_rate"]

#: The rates an AudioContext or a converting page produces, in Hz.
STANDARD_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
#: Arrival gaps longer than this (and than three typical gaps) restart the measurement.
GAP_SECONDS = 0.25
#: How much more or less late than an envelope point the message after it may be and still
#: corroborate it (browsers' callback jitter is about 10 ms).
CORROBORATION_SECONDS = 0.02
#: Most refinements of the envelope's two points (they settle in two or three).
_ENVELOPE_REFINEMENTS = 8


def snap_rate(measured: float) -> tuple[int, float]:
    """The standard rate nearest to ``measured`` frames per second, and the relative deviation."""
    rates = np.array(STANDARD_RATES, dtype=np.float64)
    deviation = np.abs(measured / rates - 1.0)
    best = int(np.argmin(deviation))
    return STANDARD_RATES[best], float(deviation[best])


@dataclass(frozen=True, slots=True)
class RateEstimate:
    """A rate decision and the evidence behind it (logged, and kept for callers).

    Attributes:
        rate: the standard rate chosen, in Hz.
        measured: frames per second of arrival time (least-squares slope).
        seconds: arrival time the measurement spans.
        messages: non-empty messages measured.
        deviation: relative distance between ``measured`` and ``rate``.
        corroborated: whether the quarters of both points the measurement rests on hold a
            message that, like the one after it, is as punctual as that point (so the point
            is no backlog's last message); a live decision needs it.
    """

    rate: int
    measured: float
    seconds: float
    messages: int
    deviation: float
    corroborated: bool = True

    def __str__(self) -> str:
        return (
            f"{self.rate} Hz (measured {self.measured:.0f} frames/s over {self.seconds:.2f} s "
            f"of arrival time, {self.messages} messages, {100 * self.deviation:.2f} % off)"
        )


class RateEstimator:
    """Measures bytes per second of arrival time; sans-I/O, arrival times are given.

    Record each non-empty message with :meth:`observe`, then ask :meth:`estimate` for the
    rate once the frame size is known. A message's audio ends ``total / rate`` seconds after
    the stream began, and it cannot arrive earlier; it arrives later by the browser's jitter
    (Chromium's 1024-frame messages come 20, 20, 30 ms apart) or by a stall in whoever reads
    the socket, after which a backlog lands at once. Lateness is thus never negative, and the
    rate is the slope through the least late message of the first and of the last quarter of
    the span: the lower envelope, found in a few refinements (clock-skew estimation over
    one-way delays does the same). Where a least-squares line through a 0.7 s stall halves the
    rate, this stays within the jitter over the span. A measurement starts after the last long
    gap in arrivals and says whether its two points are corroborated (see :meth:`estimate`).
    """

    def __init__(self) -> None:
        self._times: list[float] = []
        self._totals: list[int] = []
        self._total = 0

    @property
    def span(self) -> float:
        """Seconds between the first and the last observed message."""
        return self._times[-1] - self._times[0] if self._times else 0.0

    @property
    def total_bytes(self) -> int:
        """Bytes observed so far."""
        return self._total

    def observe(self, nbytes: int, arrival: float) -> None:
        """Record a message of ``nbytes`` that arrived at ``arrival`` seconds."""
        if nbytes <= 0:
            return
        if self._times and arrival < self._times[-1]:
            raise ValueError(f"arrival times go backwards: {arrival} after {self._times[-1]}")
        self._total += nbytes
        self._times.append(arrival)
        self._totals.append(self._total)

    def bytes_per_second(self, until: float | None = None) -> float | None:
        """The byte rate of the arrival times' lower envelope (over the messages of the first
        ``until`` seconds, when given, and since their last long gap); ``None`` before two
        messages at distinct times."""
        estimate = self.estimate(1, until)
        return None if estimate is None else estimate.measured

    def estimate(
        self, frame_bytes: int, until: float | None = None, *, whole: bool = False
    ) -> RateEstimate | None:
        """The measurement in frames of ``frame_bytes``, snapped; ``None`` before two messages.

        It spans the messages since the last gap in arrivals longer than
        0.25 s (and three typical gaps): what a stalled reader read before its
        stall says nothing about when the backlog after it was sent. ``whole``: the whole
        span, gaps and all (at the end of a stream, when nothing better will come).
        """
        count = self._count(until)
        origin = 0 if whole else self._origin(count)
        if count - origin < 2 or self._times[count - 1] <= self._times[origin]:
            return None
        times = np.asarray(self._times[origin:count], dtype=np.float64)
        totals = np.asarray(self._totals[origin:count], dtype=np.float64)
        byte_rate, corroborated = _envelope_slope(times - times[0], totals)
        measured = byte_rate / frame_bytes
        rate, deviation = snap_rate(measured)
        seconds = float(times[-1] - times[0])
        return RateEstimate(rate, measured, seconds, count - origin, deviation, corroborated)

    def _count(self, until: float | None) -> int:
        """How many messages arrived within ``until`` seconds of the first (all: ``None``)."""
        if until is None or not self._times:
            return len(self._times)
        return bisect.bisect_right(self._times, self._times[0] + until)

    def _origin(self, count: int) -> int:
        """The first of the first ``count`` messages after their last long gap."""
        if count < 3:
            return 0
        gaps = np.diff(np.asarray(self._times[:count], dtype=np.float64))
        longest = max(GAP_SECONDS, 3 * float(np.median(gaps)))
        after = np.flatnonzero(gaps > longest)
        return int(after[-1]) + 1 if after.size else 0


def _punctual_pair(
    lateness: NDArray[np.float64],
    successor: NDArray[np.intp],
    quarter: NDArray[np.intp],
    least: float,
) -> bool:
    """Whether a message of ``quarter`` and the next one at least CORROBORATION_SECONDS after
    it are both within CORROBORATION_SECONDS of the ``least`` lateness."""
    has_successor = quarter[successor[quarter] < len(lateness)]
    near = np.abs(lateness - least) <= CORROBORATION_SECONDS
    return bool(np.any(near[has_successor] & near[successor[has_successor]]))


def _envelope_slope(times: NDArray[np.float64], totals: NDArray[np.float64]) -> tuple[float, bool]:
    """Bytes per second through the least late message of the span's first and last quarter,
    and whether each is corroborated: its quarter holds a message that, like the first message
    at least :data:`CORROBORATION_SECONDS` after it (so not of the same burst), is as late,
    give or take that much.

    ``times`` start at 0 and end above it. Lateness is judged against the slope found so far,
    starting from the end-to-end ratio; the two points settle in two or three refinements. A
    lone least-late message may be the last of a backlog, late by up to its own length; in a
    steady stream the next one is as punctual, where after a backlog's last message the next
    is early by the time that message waited.
    """
    head = np.flatnonzero(times <= times[-1] / 4)
    tail = np.flatnonzero(times >= 3 * times[-1] / 4)
    slope = (totals[-1] - totals[0]) / times[-1]
    chosen = (-1, -1)
    for _ in range(_ENVELOPE_REFINEMENTS):
        lateness = times - totals / slope
        first = int(head[np.argmin(lateness[head])])
        last = int(tail[np.argmin(lateness[tail])])
        if (first, last) == chosen or times[last] <= times[first]:
            break
        chosen = (first, last)
        slope = (totals[last] - totals[first]) / (times[last] - times[first])
    lateness = times - totals / slope
    successor = np.searchsorted(times, times + CORROBORATION_SECONDS)
    corroborated = all(
        _punctual_pair(lateness, successor, quarter, lateness[point])
        for quarter, point in ((head, first), (tail, last))
    )
    return float(slope), corroborated
