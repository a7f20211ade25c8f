"""Finding out what headerless raw frames are: float32 or int16, and at which sample rate.

ScriptProcessor and AudioWorklet pages send bare samples (``getChannelData(0)``) and often
declare nothing. Two facts about such a stream are still knowable:

* the **sample format** shows in the values (:func:`~streamdiarize.formats.guess_raw_sample_format`:
  float32 microphone samples are small finite floats, int16 samples read as float32 are not);
* the **sample rate** shows in no byte, but a live page sends audio as fast as its
  AudioContext produces it: bytes per second of *arrival time*, divided by the frame size, is
  the rate. :class:`RateEstimator` measures that slope over the first 1-2 s of the stream and
  :func:`snap_rate` rounds it to the nearest standard rate. A message is never read before its
  audio exists, but often after: the browser's callbacks jitter, and a server that is busy
  opening its session (connecting to Azure, loading a model) reads a backlog in one burst. So
  the slope is that of the lower envelope of arrival times (the messages read on time), not a
  least-squares line, which a single stall bends by a whole standard rate.

A file pushed faster than real time defeats the second measurement; then the rate must be
declared (``AudioFormat.raw(48000)``, ``mime="audio/pcm;rate=48000"``, ``?rate=48000``).

:class:`RawFormatDetector` holds the stream's first bytes until both are known and then hands
them over whole, so no audio is lost and none is re-timed. Everything here is pure: callers
pass arrival timestamps (seconds on any monotonic clock); nothing reads a clock.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._exceptions import UnsupportedFormatError
from .formats import AudioFormat, Container, SampleFormat, guess_raw_sample_format

__all__ = [
    "STANDARD_RATES",
    "RateEstimate",
    "RateEstimator",
    "RawFormatDetector",
    "is_raw_auto",
    "snap_rate",
]

logger = logging.getLogger("streamdiarize.raw")

#: The rates an AudioContext or a converting page produces, in Hz.
STANDARD_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)

#: Arrival time measured before a rate is accepted, and after which the looser tolerance
#: applies; after GIVE_UP_SECONDS a rate still not measured is an error.
MIN_SECONDS = 1.0
MAX_SECONDS = 2.0
GIVE_UP_SECONDS = 8.0
#: How far (relative) a measurement may be from a standard rate: early, and at MAX_SECONDS.
#: 44.1 and 48 kHz are 8.5 % apart, so both stay well under the half-way mark.
EARLY_TOLERANCE = 0.025
LATE_TOLERANCE = 0.04
#: A steady measurement this far from every standard rate is no jitter (a file pushed at
#: 1.5x, say): refused at MAX_SECONDS. Nearer ones are measured on until GIVE_UP_SECONDS:
#: the last message of a backlog can be late by its own length (256 ms for 4096 frames at
#: 16 kHz), which bends the envelope until on-time messages follow it in its first quarter.
FAR_OFF = 0.25
#: The newest arrival time left out to check a measurement is steady: the envelope's last
#: quarter at MIN_SECONDS, so a stall long enough to bend it is caught.
RECENT_SECONDS = MIN_SECONDS / 4
#: Arrival gaps longer than this (and than three typical gaps) restart the measurement.
GAP_SECONDS = 0.25
#: How much more or less late than an envelope point the message after it may be and still
#: corroborate it (browsers' callback jitter is about 10 ms).
CORROBORATION_SECONDS = 0.02
#: Audio a live client may have sent before the server read its first message: start-up
#: bursts, and the seconds a server spends opening its session while the page already streams.
BACKLOG_SECONDS = 5.0
#: Wall-clock seconds of digital silence held before giving up on the sample format.
SILENCE_SECONDS = 10.0
#: Non-zero float32 words after which bytes that fit neither sample format are an error.
UNDECIDED_WORDS = 16_384
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
        :data:`GAP_SECONDS` (and three typical gaps): what a stalled reader read before its
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


class RawFormatDetector:
    """Holds the first bytes of a raw stream until its sample format and rate are known.

    Feed every message with its arrival time; :meth:`feed` returns ``None`` while it needs
    more, then the complete :class:`AudioFormat` once. Afterwards :meth:`take_held` gives the
    bytes held so far, to be demuxed with that format. At end of stream call :meth:`finish`.

    Args:
        sample_format: the declared sample format, or ``None`` to tell it from the values.
        sample_rate: the declared rate, or ``None`` to infer it from arrival times.
        channels: interleaved channels per frame (declared; never inferred).
        max_held: most bytes held while deciding (the demuxer's ``max_buffered``).

    Raises (from :meth:`feed` and :meth:`finish`):
        UnsupportedFormatError: the bytes fit neither float32 nor int16, stayed digitally
            silent for :data:`SILENCE_SECONDS`, arrive faster or slower than any standard
            rate (a file pushed faster than real time), or ended before a decision. The
            message says what to declare instead.
    """

    def __init__(
        self,
        sample_format: SampleFormat | None = None,
        sample_rate: int | None = None,
        channels: int = 1,
        *,
        max_held: int,
    ) -> None:
        self._sample_format = sample_format
        self._sample_rate = sample_rate
        self._channels = channels
        self._max_held = max_held
        self._held = bytearray()
        self._rates = RateEstimator()
        self._next_guess = 0
        self.decided: AudioFormat | None = None
        #: The evidence for an inferred rate, once decided.
        self.evidence: RateEstimate | None = None

    def feed(self, data: bytes, arrival: float | None) -> AudioFormat | None:
        """Hold ``data`` (arrived at ``arrival`` s); return the format once it is known.

        ``arrival`` may be ``None`` only when the rate was declared.
        """
        if self.decided is not None:
            raise RuntimeError("feed() after the format was decided: use take_held()")
        if not data:
            return None
        if arrival is None and self._sample_rate is None:
            raise UnsupportedFormatError(
                "raw frames of undeclared rate: pass arrival times (ChunkReassembler.feed(..., "
                "arrival=time.monotonic())) or declare the rate, e.g. AudioFormat.raw(48000)"
            )
        self._held += data
        if arrival is not None:
            self._rates.observe(len(data), arrival)
            if self._sample_rate is None:
                self._check_real_time()
        if len(self._held) > self._max_held:
            raise self._too_fast() if self._sample_rate is None else self._undecided()
        return self._decide(final=False)

    def finish(self) -> AudioFormat | None:
        """End of stream: decide on what arrived (``None`` when nothing did), or raise."""
        if self.decided is not None or not self._held:
            return self.decided
        return self._decide(final=True)

    def take_held(self) -> bytes:
        """The bytes held while deciding (once; later calls return ``b""``)."""
        held, self._held = bytes(self._held), bytearray()
        return held

    # -- internals -------------------------------------------------------------------------

    def _decide(self, *, final: bool) -> AudioFormat | None:
        sample_format = self._sample_format or self._guess_format(final)
        if sample_format is None:
            return None
        self._sample_format = sample_format
        rate = self._sample_rate or self._infer_rate(sample_format, final)
        if rate is None:
            return None
        fmt = AudioFormat.raw(rate, sample_format, self._channels)
        self.decided = fmt
        how = f"declared {rate} Hz" if self._sample_rate else f"inferred: {self.evidence}"
        logger.info("raw frames: %s, rate %s", sample_format.value, how)
        return fmt

    def _guess_format(self, final: bool) -> SampleFormat | None:
        if not final and len(self._held) < self._next_guess:
            if self._rates.span >= SILENCE_SECONDS:
                raise self._undecided()
            return None
        guess = guess_raw_sample_format(bytes(self._held))
        if guess is not None:
            return guess
        self._next_guess = 2 * len(self._held)  # retry once twice the bytes have arrived
        if self._nonzero_words() >= UNDECIDED_WORDS:
            raise UnsupportedFormatError(
                f"the first {len(self._held)} bytes are neither float32 nor int16 audio; "
                "declare the format, e.g. mime='audio/pcm;rate=48000;encoding=float32'"
            )
        if final or self._rates.span >= SILENCE_SECONDS:
            raise self._undecided()
        return None

    def _infer_rate(self, sample_format: SampleFormat, final: bool) -> int | None:
        span = self._rates.span
        if span < MIN_SECONDS and not final:
            return None
        frame_bytes = sample_format.itemsize * self._channels
        estimate = self._rates.estimate(frame_bytes)
        if final and (estimate is None or estimate.seconds < MIN_SECONDS / 2):
            estimate = self._rates.estimate(frame_bytes, whole=True)
        if final and (estimate is None or estimate.seconds < MIN_SECONDS / 2):
            raise self._too_short(sample_format)
        given_up = final or span >= GIVE_UP_SECONDS
        if not final and (estimate is None or estimate.seconds < MIN_SECONDS):
            if given_up:
                raise self._unsteady(estimate)
            return None  # a backlog is being read: measure from there on
        assert estimate is not None  # for mypy: None raised or returned above
        late = final or estimate.seconds >= MAX_SECONDS
        steady = final or (estimate.corroborated and self._steady(estimate, frame_bytes))
        if steady and estimate.deviation <= (LATE_TOLERANCE if late else EARLY_TOLERANCE):
            self.evidence = estimate
            return estimate.rate
        if steady and late and (given_up or estimate.deviation > FAR_OFF):
            raise self._no_standard_rate(estimate)
        if given_up:
            raise self._unsteady(estimate)
        return None  # jitter may still settle, or a backlog still be read: measure on

    def _steady(self, estimate: RateEstimate, frame_bytes: int) -> bool:
        """Whether the span without its last :data:`RECENT_SECONDS` (if that leaves half of
        MIN_SECONDS of arrivals) measures the same rate.

        The newest message can be the first of a backlog, late by the whole stall, and the
        envelope's last point then bends towards it; the span before it has not seen the
        stall and disagrees until the backlog is read.
        """
        earlier = self._rates.estimate(frame_bytes, until=self._rates.span - RECENT_SECONDS)
        return (
            earlier is not None
            and earlier.seconds >= MIN_SECONDS / 2
            and abs(earlier.measured / estimate.measured - 1) <= LATE_TOLERANCE
        )

    def _check_real_time(self) -> None:
        """More bytes than 48 kHz float32 makes in the time seen (plus a backlog) are not live
        audio: the rate cannot be measured, and holding more would only grow."""
        most = max(STANDARD_RATES) * 4 * self._channels * (self._rates.span + BACKLOG_SECONDS)
        if self._rates.total_bytes > most * (1 + LATE_TOLERANCE):
            raise self._too_fast()

    def _nonzero_words(self) -> int:
        usable = len(self._held) // 4 * 4
        return int(np.count_nonzero(np.frombuffer(self._held[:usable], dtype="<u4")))

    _DECLARE = (
        "declare the rate: AudioFormat.raw(48000), mime='audio/pcm;rate=48000;encoding=float32' "
        "or the query string ?rate=48000&format=f32"
    )

    def _too_fast(self) -> UnsupportedFormatError:
        return UnsupportedFormatError(
            f"{self._rates.total_bytes} bytes of raw frames arrived within "
            f"{self._rates.span:.2f} s: faster than real time by more than {BACKLOG_SECONDS:.0f} "
            "s of audio (a file pushed at full speed?), so the rate cannot be measured; "
            f"{self._DECLARE}"
        )

    def _too_short(self, sample_format: SampleFormat) -> UnsupportedFormatError:
        return UnsupportedFormatError(
            f"the raw {sample_format.value} stream ended after {self._rates.span:.2f} s of "
            f"arrival time, too soon to measure its rate; {self._DECLARE}"
        )

    def _no_standard_rate(self, estimate: RateEstimate) -> UnsupportedFormatError:
        return UnsupportedFormatError(
            f"raw frames arrive at {estimate.measured:.0f} frames/s over {estimate.seconds:.2f} "
            f"s, {100 * estimate.deviation:.1f} % from the nearest standard rate "
            f"{estimate.rate} Hz: not a live microphone in real time; {self._DECLARE}"
        )

    def _unsteady(self, estimate: RateEstimate | None) -> UnsupportedFormatError:
        seen = f" (last {estimate})" if estimate is not None else ""
        return UnsupportedFormatError(
            f"raw frames arrived too irregularly over {self._rates.span:.2f} s to measure their "
            f"rate{seen}; {self._DECLARE}"
        )

    def _undecided(self) -> UnsupportedFormatError:
        what = "ambiguous" if self._nonzero_words() else "digital silence"
        return UnsupportedFormatError(
            f"cannot tell float32 from int16 raw samples: the first {len(self._held)} bytes "
            f"are {what}; declare the sample format, e.g. "
            "mime='audio/pcm;rate=48000;encoding=float32' or the query string ?format=f32"
        )


def is_raw_auto(fmt: AudioFormat) -> bool:
    """Whether ``fmt`` is raw frames whose rate is still to be found out."""
    return fmt.container is Container.RAW and fmt.sample_rate is None
