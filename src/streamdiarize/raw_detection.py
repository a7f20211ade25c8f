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

import logging

import numpy as np

from ._arrival_rate import STANDARD_RATES, RateEstimate, RateEstimator, snap_rate
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
#: Audio a live client may have sent before the server read its first message: start-up
#: bursts, and the seconds a server spends opening its session while the page already streams.
BACKLOG_SECONDS = 5.0
#: Wall-clock seconds of digital silence held before giving up on the sample format.
SILENCE_SECONDS = 10.0
#: Non-zero float32 words after which bytes that fit neither sample format are an error.
UNDECIDED_WORDS = 16_384


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
