"""Raw interleaved sample frames, as ScriptProcessor and AudioWorklet pages send them.

Raw bytes carry no header: the sample format, rate and channel count are declared. When only
the sample format is unknown (``sample_format=None``), the bytes are held (at most
:data:`GUESS_MAX_SECONDS` of audio) until :func:`~streamdiarize.formats.guess_raw_sample_format`
can tell float32 from int16; leading digital silence decides nothing, the first real audio does.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from .._exceptions import ConfigurationError, UnsupportedFormatError
from ..formats import GUESS_MIN_NONZERO_SAMPLES, AudioFormat, SampleFormat, guess_raw_sample_format
from ._base import DEFAULT_MAX_BUFFERED, Demuxer
from ._events import Event, TrackInfo
from ._pcm import PcmLayout, stream_frames

__all__ = ["GUESS_MAX_SECONDS", "RawDemuxer"]

#: Longest audio (counted as float32) held while guessing the sample format.
GUESS_MAX_SECONDS = 10.0

_CODECS = {SampleFormat.FLOAT32: "pcm_f32le", SampleFormat.INT16: "pcm_s16le"}


class RawDemuxer(Demuxer):
    """Demuxer for bare little-endian interleaved frames (float32 or int16).

    Emits one :class:`TrackInfo` (``pcm_f32le`` or ``pcm_s16le``), then Packets of whole frames;
    a partial frame waits for the next feed. Float samples that are NaN or infinite raise
    :class:`~streamdiarize.CorruptStreamError` after the frames before them are emitted.

    Args:
        sample_format: ``SampleFormat.FLOAT32``, ``SampleFormat.INT16`` (or their values), or
            ``None`` to guess from the audio (see the module docstring).
        sample_rate: frames per second.
        channels: interleaved channels per frame.
        max_buffered: cap on buffered bytes (see :class:`Demuxer`); also bounds the guess.

    Raises:
        ConfigurationError: the rate or channel count is outside 1000-384000 Hz or 1-32.
    """

    def __init__(
        self,
        sample_format: SampleFormat | str | None,
        sample_rate: int,
        channels: int = 1,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        try:
            fmt = AudioFormat.raw(sample_rate, sample_format, channels)  # validates the values
        except ConfigurationError:
            raise
        except ValueError as exc:  # an unknown sample format name
            raise ConfigurationError(f"unknown raw sample format {sample_format!r}") from exc
        super().__init__(max_buffered=max_buffered)
        self._sample_format = fmt.sample_format
        self._sample_rate = sample_rate
        self._channels = channels
        self._guess_limit = min(max_buffered, int(GUESS_MAX_SECONDS * sample_rate * channels * 4))
        self._nonzero_bytes = 0  # counted while guessing, to know when a guess is worth trying

    @property
    def sample_format(self) -> SampleFormat | None:
        """The declared or guessed sample format; ``None`` while still guessing."""
        return self._sample_format

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data`` (any slice of the stream) and return complete events.

        While the sample format is being guessed, this also counts the non-zero bytes, so the
        guess runs only when enough real audio has arrived.

        Raises:
            CorruptStreamError: a float sample is NaN or infinite; later calls raise it again.
            UnsupportedFormatError: the format could not be guessed within the limit.
        """
        if self._sample_format is None and data:
            self._nonzero_bytes += int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8)))
        return super().feed(data)

    def _parse(self) -> Generator[None, None, None]:
        if self._sample_format is None:
            self._sample_format = yield from self._guess()
            if self._sample_format is None:
                return  # the stream ended without a byte
        codec = _CODECS[self._sample_format]
        layout = PcmLayout(codec, self._sample_rate, self._channels)
        self._emit(TrackInfo(codec, self._sample_rate, self._channels))
        yield from stream_frames(self._buffer, layout, self._emit)

    def _guess(self) -> Generator[None, None, SampleFormat | None]:
        """Hold bytes until the guess succeeds; retry each time the non-zero bytes double."""
        buf = self._buffer
        next_try = GUESS_MIN_NONZERO_SAMPLES
        while True:
            full = len(buf) >= self._guess_limit
            if self._nonzero_bytes >= next_try or full or buf.eof:
                guess = guess_raw_sample_format(buf.peek(len(buf)))
                if guess is not None:
                    return guess
                if buf.eof and not len(buf):
                    return None
                if full or buf.eof:
                    raise self._undecided(len(buf))
                next_try = 2 * self._nonzero_bytes
            yield

    def _undecided(self, held: int) -> UnsupportedFormatError:
        seconds = held / (self._sample_rate * self._channels * 4)
        what = "digital silence" if not self._nonzero_bytes else "ambiguous"
        return UnsupportedFormatError(
            f"cannot tell float32 from int16 raw samples: the first {held} bytes (at least "
            f"{seconds:.1f} s of audio) are {what}; declare the sample format, e.g. "
            f"mime='audio/pcm;rate={self._sample_rate};encoding=float32' or "
            "sample_format=SampleFormat.INT16"
        )
