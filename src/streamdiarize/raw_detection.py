"""Finding out what headerless raw frames are: float32 or int16, and at which sample rate.

ScriptProcessor and AudioWorklet pages send bare samples (``getChannelData(0)``) and often
declare nothing. Two facts about such a stream are still knowable:

* the **sample format** shows in the values (:func:`~streamdiarize.formats.guess_raw_sample_format`:
  float32 microphone samples are small finite floats, int16 samples read as float32 are not);
* the **sample rate** shows in no byte, but a live page sends audio as fast as its
  AudioContext produces it: bytes per second of *arrival time*, divided by the frame size, is
  the rate. :class:`RateEstimator` fits that slope over the first 1-2 s of the stream and
  :func:`snap_rate` rounds it to the nearest standard rate.

A file pushed faster than real time defeats the second measurement; then the rate must be
declared (``AudioFormat.raw(48000)``, ``mime="audio/pcm;rate=48000"``, ``?rate=48000``).

:class:`RawFormatDetector` holds the stream's first bytes until both are known and then hands
them over whole, so no audio is lost and none is re-timed. Everything here is pure: callers
pass arrival timestamps (seconds on any monotonic clock); nothing reads a clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

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

#: Arrival time measured before a rate is accepted, and the most measured before giving up.
MIN_SECONDS = 1.0
MAX_SECONDS = 2.0
#: How far (relative) a measurement may be from a standard rate: early, and at MAX_SECONDS.
#: 44.1 and 48 kHz are 8.5 % apart, so both stay well under the half-way mark.
EARLY_TOLERANCE = 0.025
LATE_TOLERANCE = 0.04
#: Audio a live client may have produced before its first message (start-up bursts).
BURST_SECONDS = 0.5
#: Wall-clock seconds of digital silence held before giving up on the sample format.
SILENCE_SECONDS = 10.0
#: Non-zero float32 words after which bytes that fit neither sample format are an error.
UNDECIDED_WORDS = 16_384


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
    """

    rate: int
    measured: float
    seconds: float
    messages: int
    deviation: float

    def __str__(self) -> str:
        return (
            f"{self.rate} Hz (measured {self.measured:.0f} frames/s over {self.seconds:.2f} s "
            f"of arrival time, {self.messages} messages, {100 * self.deviation:.2f} % off)"
        )


class RateEstimator:
    """Measures bytes per second of arrival time; sans-I/O, arrival times are given.

    Record each non-empty message with :meth:`observe`, then ask :meth:`estimate` for the
    rate once the frame size is known. The slope is a least-squares fit of cumulative bytes
    against arrival time: robust to the 10 ms scheduling jitter browsers show (Chromium's
    1024-frame messages come 20, 20, 30 ms apart), which an end-to-end ratio is not.
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

    def bytes_per_second(self) -> float | None:
        """The fitted byte rate, or ``None`` before two messages at distinct times."""
        if len(self._times) < 2 or self.span <= 0:
            return None
        times = np.asarray(self._times, dtype=np.float64)
        totals = np.asarray(self._totals, dtype=np.float64)
        slope, _ = np.polyfit(times - times[0], totals, 1)
        return float(slope)

    def estimate(self, frame_bytes: int) -> RateEstimate | None:
        """The measurement in frames of ``frame_bytes``, snapped; ``None`` before two messages."""
        byte_rate = self.bytes_per_second()
        if byte_rate is None:
            return None
        measured = byte_rate / frame_bytes
        rate, deviation = snap_rate(measured)
        return RateEstimate(rate, measured, self.span, len(self._times), deviation)


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
        estimate = self._rates.estimate(sample_format.itemsize * self._channels)
        if estimate is None or span < MIN_SECONDS / 2:
            raise self._too_short(sample_format)
        late = final or span >= MAX_SECONDS
        if estimate.deviation <= (LATE_TOLERANCE if late else EARLY_TOLERANCE):
            self.evidence = estimate
            return estimate.rate
        if not late:
            return None  # jitter may still settle: measure up to MAX_SECONDS
        raise self._no_standard_rate(estimate)

    def _check_real_time(self) -> None:
        """More bytes than 48 kHz float32 makes in the time seen (plus a start-up burst) are
        not live audio: the rate cannot be measured, and holding more would only grow."""
        most = max(STANDARD_RATES) * 4 * self._channels * (self._rates.span + BURST_SECONDS)
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
            f"{self._rates.span:.2f} s: faster than real time (a file pushed at full speed?), "
            f"so the rate cannot be measured; {self._DECLARE}"
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
