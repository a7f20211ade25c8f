"""One stream's decode chain: demuxer → decoder → resampler → int16, sans-I/O and synchronous.

:class:`~streamdiarize.ChunkReassembler` decides *which* demuxer reads the bytes; this object
walks a chunk through the rest, top to bottom: demux it into events, decode each packet,
batch the float32 audio per rate, resample it to the target rate and round it to int16.
A new stream inside the connection (:meth:`DecodeChain.start` again) rebuilds the decoder
but keeps the resampler and the clock, so a MediaRecorder restart continues the same output.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._exceptions import InputError, LimitExceededError, UnsupportedFormatError
from .codecs import Decoder, make_decoder
from .containers import Demuxer, Event, Packet, TrackInfo
from .resampling import Resampler

__all__ = ["EMPTY_PCM", "PCM", "DecodeChain"]

#: Decoded packets resampled together (bounds the float32 held at the decoder's rate).
_RESAMPLE_BATCH = 64

#: Far beyond real audio (full scale is 1.0), far below float32 overflow in the resampler.
_MAX_AMPLITUDE = np.float32(1e6)

PCM = NDArray[np.int16]
EMPTY_PCM: PCM = np.zeros(0, dtype=np.int16)
EMPTY_PCM.setflags(write=False)

Audio = NDArray[np.float32]


def _to_int16(parts: list[Audio]) -> PCM:
    """float32 in [-1, 1] to int16 the way FFmpeg does it: round(x · 32768), clipped."""
    if not parts:
        return EMPTY_PCM
    audio = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if not audio.size:
        return EMPTY_PCM
    scaled = np.rint(audio * np.float32(32768.0))
    pcm: PCM = np.clip(scaled, -32768.0, 32767.0).astype(np.int16)
    return pcm


class DecodeChain:
    """Turns the bytes of one client stream into ``target_rate`` int16 mono, chunk by chunk.

    Args:
        target_rate: output rate.
        max_feed_seconds: cap on the audio one :meth:`feed` may decode to (``None``: no cap);
            past it :class:`~streamdiarize.LimitExceededError` (a decompression bomb).
    """

    def __init__(self, target_rate: int, max_feed_seconds: float | None) -> None:
        self.target_rate = target_rate
        self._max_feed_seconds = max_feed_seconds
        self.demuxer: Demuxer | None = None
        self._decoder: Decoder | None = None
        self._resampler: Resampler | None = None
        self._pending: list[Audio] = []  # decoded, same rate, not yet resampled
        self._out: list[Audio] = []  # resampled output of the current feed() call
        self._fed_seconds = 0.0  # decoded by the current feed() call
        #: The current track, once its header has been parsed.
        self.track: TrackInfo | None = None
        #: Output samples produced so far (the stream clock, in ``target_rate`` units).
        self.samples_out = 0
        #: New streams begun inside this one (MediaRecorder restarts, recoveries).
        self.restarts = 0

    def start(self, demuxer: Demuxer) -> None:
        """Read the following bytes with ``demuxer``: a new stream, whose track brings a new
        decoder; the resampler and the clock continue."""
        self.demuxer = demuxer
        self._decoder = None

    def stop(self) -> None:
        """Forget the demuxer and decoder (a failed or finished stream); the clock continues."""
        self.demuxer = None
        self._decoder = None

    def feed(self, data: bytes, *, final: bool = False) -> PCM:
        """Demux, decode and resample ``data``; ``final`` also drains every stage.

        Raises:
            InputError: from any stage; ``error.pcm`` holds the audio decoded before it.
        """
        demuxer = self.demuxer
        assert demuxer is not None, "start() a demuxer first"
        self._pending, self._out, self._fed_seconds = [], [], 0.0
        try:
            try:
                events = demuxer.feed(data)
                if final:
                    events = events + demuxer.flush()
            except InputError:
                self._decode(demuxer.events_received())
                raise
            self._decode(events)
            if final:
                self._end_track()
                self._flush_resampler()
        except InputError as exc:
            self._flush_resampler()
            exc.pcm = self._take()
            raise
        return self._take()

    # -- the stages, in the order a chunk passes them ------------------------------------------

    def _decode(self, events: list[Event]) -> None:
        """Decode packets and switch decoders on a new track; on a fault keep what came before."""
        try:
            for event in events:
                if isinstance(event, Packet):
                    if self._decoder is None:
                        raise UnsupportedFormatError("audio packet before any track header")
                    audio = self._decoder.decode(event.data)
                    if event.discard_padding:
                        audio = audio[: max(0, len(audio) - event.discard_padding)]
                    self._queue(audio)
                elif isinstance(event, TrackInfo):
                    self._resample_pending()
                    self._end_track()
                    if self.track is not None:
                        self.restarts += 1
                    self.track = event
                    self._decoder = make_decoder(event)
        finally:  # also on a fault: the audio decoded before it is kept
            self._resample_pending()

    def _end_track(self) -> None:
        """Drain the current decoder's delayed frames before it is replaced or at the end."""
        if self._decoder is None:
            return
        tail = self._decoder.flush()
        if tail.size:
            self._queue(tail)
            self._resample_pending()
        self._decoder = None

    def _queue(self, audio: Audio) -> None:
        """Queue decoded audio for the resampler; a new decoder rate gets a new resampler."""
        assert self._decoder is not None
        rate = self._decoder.sample_rate
        if self._resampler is None or self._resampler.in_rate != rate:
            self._resample_pending()
            self._flush_resampler()
            self._resampler = Resampler(rate, self.target_rate)
        if audio.size:
            self._count_decoded(len(audio), rate)
            self._pending.append(audio)
            if len(self._pending) >= _RESAMPLE_BATCH:
                self._resample_pending()

    def _count_decoded(self, samples: int, rate: int) -> None:
        """Add to this call's decoded audio; past ``max_feed_seconds`` it is a bomb."""
        self._fed_seconds += samples / rate
        cap = self._max_feed_seconds
        if cap is not None and self._fed_seconds > cap:
            raise LimitExceededError(
                f"one chunk decodes to more than {cap:g} s of audio: a decompression bomb, "
                "or far longer chunks than a live client sends (see max_feed_seconds)"
            )

    def _resample_pending(self) -> None:
        """Resample queued same-rate audio in one soxr call (fewer calls than packets).

        Samples are clipped to ±:data:`_MAX_AMPLITUDE` first: finite but huge floats (3e38)
        would overflow the filter to inf and NaN, and NaN has no int16 value.
        """
        pending = self._pending
        if not pending or self._resampler is None:
            return
        audio = pending[0] if len(pending) == 1 else np.concatenate(pending)
        pending.clear()
        audio = np.clip(audio, -_MAX_AMPLITUDE, _MAX_AMPLITUDE)
        self._out.append(self._resampler.process(audio))

    def _flush_resampler(self) -> None:
        """Emit the resampler's delayed tail and drop it (a rate change or the end)."""
        if self._resampler is not None:
            self._out.append(self._resampler.flush())
            self._resampler = None

    def _take(self) -> PCM:
        """This call's output as int16, counted on the clock."""
        pcm = _to_int16(self._out)
        self._out = []
        self.samples_out += len(pcm)
        return pcm
