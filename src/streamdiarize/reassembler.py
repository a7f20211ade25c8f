"""``ChunkReassembler``: socket messages of any browser audio format in, 16 kHz int16 mono out.

It glues the layers together, one instance per client stream::

    bytes ─► detect_format ─► Demuxer.feed ─► Decoder.decode ─► Resampler ─► int16
             (magic / MIME)   (any split)      (PyAV / numpy)    (soxr stream)

This module picks the demuxer (``containers._registry`` maps the detected container to it);
``_decode_chain.DecodeChain`` carries each chunk through demuxer, decoder and resampler.

A MediaRecorder ``stop()``/``start()`` inside one connection (a new EBML header, a new Ogg
serial) continues the same output: the decoder is rebuilt, the resampler and the clock are not.
"""

from __future__ import annotations

from collections.abc import Callable

from ._decode_chain import EMPTY_PCM, PCM, DecodeChain
from ._exceptions import ConfigurationError, InputError, UnsupportedFormatError
from ._speech_rate import SPEECH_SAMPLE_RATE
from .containers import DEFAULT_MAX_BUFFERED, TrackInfo
from .containers._registry import make_demuxer
from .formats import (
    MAGIC_BYTES_NEEDED,
    AudioFormat,
    Container,
    SampleFormat,
    could_still_be_container,
    detect_format,
    parse_mime,
    sniff_container,
    with_raw_defaults,
)
from .raw_detection import RateEstimate, RawFormatDetector, is_raw_auto

__all__ = ["DEFAULT_MAX_FEED_SECONDS", "ChunkReassembler"]

#: Default cap on the audio one :meth:`ChunkReassembler.feed` call may decode to. A live
#: client's message holds 0.02-5 s; a hostile one can make every 2-3 bytes of Opus decode to
#: 120 ms (40 ms per byte: 1 MiB would be 11 hours, gigabytes of PCM and a minute of CPU).
DEFAULT_MAX_FEED_SECONDS = 600.0


class ChunkReassembler:
    """Reassembles a browser's audio messages into 16 kHz (``target_rate``) int16 mono PCM.

    Feed every message as it arrives, in order, whatever its size (empty messages are fine);
    each call returns the audio that became decodable. Formats: WebM/Matroska (Opus, PCM),
    Ogg/Opus, fragmented MP4 (AAC, Opus), WAV, and raw float32/int16 frames. Containers are
    recognised by their magic bytes. Bytes without one are raw frames: what is not declared
    about them is found out (:mod:`~streamdiarize.raw_detection`): float32 vs int16 from the
    values, the rate from how fast a live stream arrives, which needs each message's
    ``arrival`` time in :meth:`feed` (the first 1-2 s are held meanwhile, then decoded whole).

    Args:
        format: the stream's format when known; ``None`` (or :meth:`AudioFormat.auto`) to
            find it out.
        mime: what ``MediaRecorder.mimeType`` reported, or ``audio/pcm;rate=48000;
            encoding=float32`` for raw frames (``encoding`` omitted: float32 vs int16 is
            guessed from the values, see :func:`~streamdiarize.formats.guess_raw_sample_format`;
            ``rate`` omitted: measured from arrival times).
        sample_rate: frames per second of raw input, when neither ``format`` nor ``mime`` says
            (a hint: it does not stop a container from being recognised).
        sample_format: float32 or int16 for raw input, when neither ``format`` nor ``mime``
            says (a hint, like ``sample_rate``).
        channels: interleaved channels of raw input, when neither ``format`` nor ``mime`` says.
        target_rate: output rate (16000 is what speech services want).
        max_buffered: cap on bytes held for one incomplete element, so a hostile or broken
            stream cannot grow memory without bound.
        max_feed_seconds: cap on the audio one :meth:`feed` (or :meth:`flush`) may decode to;
            past it the call raises :class:`~streamdiarize.LimitExceededError` (a
            decompression bomb). ``None`` for no cap, e.g. to decode a whole file at once.

    Raises:
        ConfigurationError: a bad ``target_rate``, ``sample_rate`` or ``sample_format``.
        UnsupportedFormatError: the MIME type names nothing we decode.

    After the last message call :meth:`flush` to get the decoder's and resampler's tails.
    """

    def __init__(
        self,
        format: AudioFormat | None = None,
        *,
        mime: str | None = None,
        sample_rate: int | None = None,
        sample_format: SampleFormat | str | None = None,
        channels: int = 1,
        target_rate: int = SPEECH_SAMPLE_RATE,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        max_feed_seconds: float | None = DEFAULT_MAX_FEED_SECONDS,
    ) -> None:
        if not 1000 <= target_rate <= 384_000:
            raise ConfigurationError(f"target_rate {target_rate} is outside 1000-384000 Hz")
        if max_feed_seconds is not None and not max_feed_seconds > 0:
            raise ConfigurationError(f"max_feed_seconds must be > 0, got {max_feed_seconds}")
        try:
            hints = AudioFormat.raw(sample_rate, sample_format, channels)  # validates them
        except ValueError as exc:
            raise ConfigurationError(f"bad raw sample format or rate: {exc}") from exc
        declared = format if format is not None else (parse_mime(mime) if mime else None)
        if declared is not None:
            declared = with_raw_defaults(declared, hints)
        self._declared = declared
        self._explicit = format is not None
        self._mime = mime
        self._hints = hints
        self._raw_detector: RawFormatDetector | None = None
        self.target_rate = target_rate
        self._max_buffered = max_buffered
        self._head = bytearray()
        self._chain = DecodeChain(target_rate, max_feed_seconds)
        self._error: InputError | None = None
        self._flushed = False
        #: The detected (or declared) format, once known.
        self.format: AudioFormat | None = None
        #: How the rate of raw frames was measured, when it was (see :mod:`.raw_detection`).
        self.raw_evidence: RateEstimate | None = None
        # The three below mirror the decode chain's, copied after each call (see _decode).
        #: The current track, once its header has been parsed.
        self.track: TrackInfo | None = None
        #: Output samples produced so far (the stream clock, in ``target_rate`` units).
        self.samples_out = 0
        #: New streams begun inside this one (MediaRecorder restarts, recoveries).
        self.restarts = 0

    @property
    def duration(self) -> float:
        """Seconds of audio output so far."""
        return self.samples_out / self.target_rate

    def feed(self, chunk: bytes | bytearray | memoryview, arrival: float | None = None) -> PCM:
        """Take the next message and return the int16 mono audio it completed (may be empty).

        Args:
            chunk: the message's bytes, any size, in order.
            arrival: when the message arrived, in seconds on any monotonic clock (e.g.
                ``time.monotonic()``). Needed only to measure the rate of raw frames whose
                rate is not declared; the reassembler never reads a clock itself.

        Raises:
            UnsupportedFormatError: the stream is not a format we decode, or raw frames whose
                sample format or rate cannot be found out (see
                :class:`~streamdiarize.raw_detection.RawFormatDetector`).
            CorruptStreamError: the stream is broken; ``error.pcm`` holds the audio decoded
                from this chunk before the fault. The reassembler then stays failed, except
                that a message starting a new stream (EBML, ``OggS``, RIFF or ``ftyp`` header)
                starts over — what a client's MediaRecorder restart sends.
            LimitExceededError: (a :class:`CorruptStreamError`) the chunk decodes to more
                than ``max_feed_seconds`` of audio, or holds an element over ``max_buffered``.
        """
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"feed() takes bytes, got {type(chunk).__name__}")
        data = bytes(chunk)
        if self._error is not None or self._flushed:
            if not data:
                if self._error is not None:
                    raise type(self._error)(str(self._error))
                return EMPTY_PCM
            if not self._starts_new_stream(data):
                if self._error is not None:
                    raise type(self._error)(str(self._error))
                raise UnsupportedFormatError(
                    "bytes after flush() that do not start a new stream header"
                )
            self._begin_new_stream()
        if self._chain.demuxer is None and self._raw_detector is None:
            self._head += data
            if not self._detect():
                return EMPTY_PCM
            data, self._head = bytes(self._head), bytearray()
        if self._raw_detector is not None:
            held = self._detect_raw(lambda detector: detector.feed(data, arrival))
            if held is None:
                return EMPTY_PCM
            data = held
        return self._decode(data)

    def flush(self) -> PCM:
        """End of stream: return the audio still held by demuxer, decoder and resampler.

        Idempotent. Raises :class:`CorruptStreamError` when the stream stopped mid-element
        (``error.pcm`` holds what could still be decoded).
        """
        if self._flushed or self._error is not None:
            return EMPTY_PCM
        held = b""
        if self._chain.demuxer is None and self._raw_detector is None:
            if not self._head:
                self._flushed = True
                return EMPTY_PCM
            if not self._detect(final=True):
                raise AssertionError("unreachable: final detection decides or raises")
            held, self._head = bytes(self._head), bytearray()  # under 12 bytes in all
        if self._raw_detector is not None:
            tiny = held

            def finish(detector: RawFormatDetector) -> AudioFormat | None:
                detector.feed(tiny, 0.0)  # a fresh detector's only bytes; b"" is ignored
                return detector.finish()

            decided = self._detect_raw(finish)
            if decided is None:  # nothing arrived
                self._flushed = True
                return EMPTY_PCM
            held = decided
        self._flushed = True
        return self._decode(held, final=True)

    # -- internals -------------------------------------------------------------------------

    def _detect(self, final: bool = False) -> bool:
        """Pick the demuxer once enough head bytes arrived; False = wait for more."""
        head = bytes(self._head)
        declared = self._declared
        fixed = declared is not None and (self._explicit or declared.container is Container.RAW)
        if declared is not None and fixed and not is_raw_auto(declared):
            fmt = declared
        else:
            if self._wait_for_magic(head, final):
                return False
            if declared is not None and is_raw_auto(declared):
                fmt = self._sniffed(head) or declared  # "find out" includes containers
            else:
                fmt = self._sniffed(head) or self._undeclared(head)
        if is_raw_auto(fmt):
            self._raw_detector = RawFormatDetector(
                fmt.sample_format,
                None,
                fmt.channels or 1,
                max_held=self._max_buffered,
            )
            return True
        self.format = fmt
        self._chain.start(make_demuxer(fmt, self._max_buffered))
        return True

    @staticmethod
    def _wait_for_magic(head: bytes, final: bool) -> bool:
        return not final and len(head) < MAGIC_BYTES_NEEDED and could_still_be_container(head)

    def _sniffed(self, head: bytes) -> AudioFormat | None:
        """The container the head's magic shows (with the MIME hint's codec), if any."""
        if sniff_container(head[:MAGIC_BYTES_NEEDED]) is None:
            return None
        declared = self._declared
        hinted = declared is not None and declared.container is not Container.RAW
        return self._detect_format(head, self._mime if hinted else None)

    def _undeclared(self, head: bytes) -> AudioFormat:
        """No magic: with a container hint that is an error, without one raw frames."""
        if self._mime is not None:
            return self._detect_format(head, self._mime)  # raises, explaining the mismatch
        return with_raw_defaults(AudioFormat(Container.RAW, "pcm"), self._hints)

    def _detect_format(self, head: bytes, mime: str | None) -> AudioFormat:
        try:
            return with_raw_defaults(detect_format(head, mime), self._hints)
        except UnsupportedFormatError as exc:
            self._error = exc
            raise

    def _detect_raw(self, step: Callable[[RawFormatDetector], AudioFormat | None]) -> bytes | None:
        """Run the raw detector; once it decides, make the demuxer and return the held bytes."""
        detector = self._raw_detector
        assert detector is not None
        try:
            fmt = step(detector)
        except InputError as exc:
            self._error = exc
            raise
        if fmt is None:
            return None
        self.format = fmt
        self.raw_evidence = detector.evidence
        self._chain.start(make_demuxer(fmt, self._max_buffered))
        self._raw_detector = None
        return detector.take_held()

    def _starts_new_stream(self, data: bytes) -> bool:
        head = data[:MAGIC_BYTES_NEEDED]
        try:
            fmt = detect_format(head)
        except UnsupportedFormatError:
            return False
        return fmt.container is not Container.RAW

    def _begin_new_stream(self) -> None:
        """Start over on a new stream header after a failure or flush; the clock continues."""
        self._error = None
        self._flushed = False
        self._chain.stop()
        self._raw_detector = None
        self._head = bytearray()

    def _decode(self, data: bytes, final: bool = False) -> PCM:
        """Pass bytes down the decode chain; a fault leaves the reassembler failed."""
        chain = self._chain
        try:
            return chain.feed(data, final=final)
        except InputError as exc:
            self._error = exc
            raise
        finally:  # the chain changes these only inside feed()
            self.track, self.restarts = chain.track, chain.restarts
            self.samples_out = chain.samples_out
