"""Packet decoders: compressed or PCM packets in, float32 mono frames out.

Compressed codecs go through PyAV's bare ``CodecContext`` (FFmpeg's decoders, shipped in the
``av`` wheel: no GStreamer, no ffmpeg binary), the way aiortc decodes RTP Opus. PCM layouts are
a numpy ``frombuffer`` view. Every decoder downmixes to mono here (the channel mean, as
FFmpeg's ``-ac 1``) so the resampler handles one channel.

Opus could be decoded straight to mono by a mono decoder (RFC 6716 allows it, ≈ 1.4× faster),
but for SILK/hybrid stereo packets that output differs from the channel mean (measured NCC
0.96 on a stereo tone), so stereo streams are decoded in stereo and averaged.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.audio.plane import AudioPlane
from numpy.typing import NDArray

from ._exceptions import CorruptStreamError, InputError, UnsupportedFormatError
from .containers import TrackInfo
from .containers._opus_toc import OPUS_RATE, read_opus_head
from .containers._opus_toc import opus_head as default_opus_head

__all__ = ["AVDecoder", "Decoder", "OpusDecoder", "PcmDecoder", "make_decoder"]

Mono = NDArray[np.float32]
_EMPTY: Mono = np.zeros(0, dtype=np.float32)
#: numpy dtypes of FFmpeg's planar sample formats.
_SAMPLE_DTYPES = {"u8p": "u1", "s16p": "<i2", "s32p": "<i4", "fltp": "<f4", "dblp": "<f8"}


class Decoder(abc.ABC):
    """Turns a track's packets into float32 mono frames at :attr:`sample_rate`."""

    #: Frames per second of the decoded output.
    sample_rate: int

    @abc.abstractmethod
    def decode(self, packet: bytes) -> Mono:
        """Decode one packet. Raises :class:`CorruptStreamError` for undecodable data."""

    def flush(self) -> Mono:
        """Return frames the codec still holds (end of stream or before a restart)."""
        return _EMPTY


@contextmanager
def _map_av_errors(codec: str) -> Iterator[None]:
    """Translate PyAV/FFmpeg errors into :class:`CorruptStreamError` at the boundary."""
    try:
        yield
    except InputError:
        raise
    except (av.FFmpegError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CorruptStreamError(f"undecodable {codec} packet: {reason}") from exc


def _to_float32(samples: np.ndarray) -> NDArray[np.float32]:
    """Samples of any PCM dtype to float32 in [-1, 1] (integers scaled by 2^(bits-1))."""
    out: NDArray[np.float32]
    if samples.dtype.kind == "f":
        out = samples.astype(np.float32, copy=False)
    elif samples.dtype.kind == "u":
        half = np.float32((int(np.iinfo(samples.dtype).max) + 1) / 2)
        out = (samples.astype(np.float32) - half) / half
    else:
        out = samples.astype(np.float32) * np.float32(1.0 / -float(np.iinfo(samples.dtype).min))
    return out


def _downmix(planes: Sequence[NDArray[np.float32]] | NDArray[np.float32]) -> Mono:
    """Average channel planes (a ``[channel, frame]`` array or a list) to one float32 channel."""
    mono: Mono
    if len(planes) == 1:
        mono = planes[0]
    elif len(planes) == 2:  # the common case: an add beats a strided reduction ≈ 3×
        mono = (planes[0] + planes[1]) * np.float32(0.5)
    else:
        mono = np.mean(planes, axis=0, dtype=np.float32)
    return mono


class AVDecoder(Decoder):
    """Any FFmpeg audio decoder through PyAV, fed bare packets.

    Args:
        codec: FFmpeg decoder name (``"opus"``, ``"aac"``, ``"vorbis"``, ``"flac"``).
        sample_rate: the rate the container declares (FFmpeg may report the real one later).
        extradata: codec setup bytes (OpusHead, AudioSpecificConfig, Vorbis headers).
    """

    def __init__(self, codec: str, sample_rate: int, extradata: bytes = b"") -> None:
        self._name = codec
        try:
            context = av.CodecContext.create(codec, "r")
        except (av.FFmpegError, ValueError) as exc:
            raise UnsupportedFormatError(f"no {codec} decoder in this PyAV build") from exc
        if not isinstance(context, AudioCodecContext):
            raise UnsupportedFormatError(f"{codec} is not an audio codec")
        self._context = context
        if extradata:
            self._context.extradata = extradata
        self.sample_rate = sample_rate

    def _collect(self, frames: list[av.AudioFrame]) -> Mono:
        if not frames:
            return _EMPTY
        self.sample_rate = frames[0].sample_rate or self.sample_rate
        parts = [_downmix(self._planes(frame)) for frame in frames]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @staticmethod
    def _planes(frame: av.AudioFrame) -> list[NDArray[np.float32]]:
        """The frame's channels as float32 arrays (the sum of two needs no stacked copy).

        Planar frames are read plane by plane up to the channel count: PyAV's
        ``frame.planes`` (and so ``to_ndarray()``) walks FFmpeg's ``extended_data`` until a
        NULL pointer, which is not there for 8 or more channels, and reads a wild pointer
        (a segfault on any 7.1 Opus or AAC stream with PyAV 18).
        """
        channels = len(frame.layout.channels)
        if frame.format.is_packed:
            return list(_to_float32(frame.to_ndarray().reshape(-1, channels).T))
        dtype = np.dtype(_SAMPLE_DTYPES[frame.format.name])
        planes = [
            _to_float32(
                np.frombuffer(memoryview(AudioPlane(frame, i)), dtype=dtype, count=frame.samples)
            )
            for i in range(channels)
        ]
        if channels == 1 and planes[0].base is not None:
            planes[0] = planes[0].copy()  # not a view of the frame's buffer
        return planes

    def decode(self, packet: bytes) -> Mono:
        if not packet:
            return _EMPTY  # FFmpeg reads an empty packet as "drain": it would end the decoder
        with _map_av_errors(self._name):
            return self._collect(self._context.decode(av.Packet(packet)))

    def flush(self) -> Mono:
        with _map_av_errors(self._name):
            return self._collect(self._context.decode(None))


class OpusDecoder(AVDecoder):
    """Opus through FFmpeg's native decoder (measured ≈ 1.7× faster than libopus here).

    The OpusHead pre-skip is applied by FFmpeg itself, once.
    """

    def __init__(self, opus_head: bytes, channels: int) -> None:
        head = opus_head or default_opus_head(channels)
        read_opus_head(head)  # the layout lives in one place: containers._opus_toc
        super().__init__("opus", OPUS_RATE, head)


class PcmDecoder(Decoder):
    """Interleaved PCM frames (Matroska ``A_PCM``, WAV, raw) to float32 mono, by numpy view.

    Raises :class:`CorruptStreamError` on NaN or infinite float samples: they would poison the
    resampler's filter state and every later output sample.
    """

    _DTYPES: ClassVar[dict[str, str]] = {
        "pcm_f32le": "<f4",
        "pcm_f64le": "<f8",
        "pcm_f32be": ">f4",
        "pcm_f64be": ">f8",
        "pcm_s16le": "<i2",
        "pcm_s16be": ">i2",
        "pcm_s32le": "<i4",
        "pcm_s32be": ">i4",
        "pcm_u8": "u1",
    }

    def __init__(self, codec: str, sample_rate: int, channels: int) -> None:
        self._codec = codec
        self._channels = channels
        self.sample_rate = sample_rate
        if codec in ("pcm_s24le", "pcm_s24be"):
            self._dtype = np.dtype("u1")
            self._frame_bytes = 3 * channels
        elif codec in self._DTYPES:
            self._dtype = np.dtype(self._DTYPES[codec])
            self._frame_bytes = self._dtype.itemsize * channels
        else:
            raise UnsupportedFormatError(f"PCM layout {codec!r} is not supported")

    def _samples(self, packet: bytes) -> NDArray[np.float32]:
        if self._codec in ("pcm_s24le", "pcm_s24be"):
            triples = np.frombuffer(packet, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            if self._codec == "pcm_s24be":
                triples = triples[:, ::-1]
            value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
            value = np.where(value >= 1 << 23, value - (1 << 24), value)
            return np.asarray(value * np.float32(1 / (1 << 23)), dtype=np.float32)
        raw = np.frombuffer(packet, dtype=self._dtype)
        if self._dtype.kind == "f":
            samples = raw.astype(np.float32)
            bad = ~np.isfinite(samples)
            if bad.any():
                first = int(np.argmax(bad))
                raise CorruptStreamError(
                    f"{int(bad.sum())} NaN/infinite float samples in a packet of "
                    f"{raw.size} (first at sample {first}); the client sent invalid audio"
                )
            return samples
        return _to_float32(raw)

    def decode(self, packet: bytes) -> Mono:
        if len(packet) % self._frame_bytes:
            raise CorruptStreamError(
                f"PCM packet of {len(packet)} bytes is not a whole number of "
                f"{self._frame_bytes}-byte frames"
            )
        samples = self._samples(packet)
        if self._channels == 1:
            return samples
        return _downmix(samples.reshape(-1, self._channels).T)


def make_decoder(track: TrackInfo) -> Decoder:
    """The decoder for a demuxed track.

    Raises:
        UnsupportedFormatError: no decoder for ``track.codec``.
    """
    if track.codec == "opus":
        return OpusDecoder(track.codec_private, track.channels)
    if track.codec.startswith("pcm_"):
        return PcmDecoder(track.codec, track.sample_rate, track.channels)
    if track.codec in ("aac", "vorbis", "flac", "mp3"):
        return AVDecoder(track.codec, track.sample_rate, track.codec_private)
    raise UnsupportedFormatError(f"codec {track.codec!r} is not supported")
