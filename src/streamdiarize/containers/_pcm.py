"""Uncompressed PCM shared by the WAV, raw and Matroska demuxers: names, limits, framing.

A PCM layout is named the FFmpeg way (``pcm_s16le``, ``pcm_f32le``, ``pcm_u8``, ...), which is
what :class:`~streamdiarize.containers.TrackInfo` carries. :func:`stream_frames` turns buffered
bytes into :class:`~streamdiarize.containers.Packet` events holding whole frames only, carrying
a partial frame over to the next feed, and rejects NaN/Inf float samples.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from .._exceptions import CorruptStreamError, UnsupportedFormatError
from ._events import Event, Packet
from ._reader import ByteBuffer

__all__ = [
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "PcmLayout",
    "check_audio_params",
    "pcm_codec",
    "stream_frames",
]

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32

#: Largest packet :func:`stream_frames` emits; bigger runs of frames are split.
MAX_PACKET_BYTES = 1 << 20


def pcm_codec(bits: int, *, is_float: bool, big_endian: bool = False) -> str | None:
    """The codec name of a PCM layout (``pcm_s24le``), or ``None`` if we do not decode it.

    8-bit integer PCM is unsigned (``pcm_u8``) in WAV and Matroska alike.
    """
    if is_float:
        base = {32: "pcm_f32", 64: "pcm_f64"}.get(bits)
    elif bits == 8:
        return "pcm_u8"
    else:
        base = {16: "pcm_s16", 24: "pcm_s24", 32: "pcm_s32"}.get(bits)
    if base is None:
        return None
    return base + ("be" if big_endian else "le")


def check_audio_params(sample_rate: float, channels: int, where: str) -> None:
    """Reject rates and channel counts no browser or audio file really has.

    Raises:
        CorruptStreamError: zero or negative values (a broken header).
        UnsupportedFormatError: values outside 1000-384000 Hz or 1-32 channels.
    """
    if not sample_rate > 0 or channels <= 0:  # ``not >`` also catches NaN
        raise CorruptStreamError(f"{where} declares {sample_rate} Hz and {channels} channels")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise UnsupportedFormatError(
            f"{where} declares a sample rate of {sample_rate} Hz; "
            f"supported rates are {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if channels > MAX_CHANNELS:
        raise UnsupportedFormatError(
            f"{where} declares {channels} channels; at most {MAX_CHANNELS} are supported"
        )


@dataclass(frozen=True, slots=True)
class PcmLayout:
    """Interleaved PCM frames: codec name, rate and channel count."""

    codec: str
    sample_rate: int
    channels: int

    @property
    def sample_width(self) -> int:
        """Bytes per sample, from the codec name (``pcm_s24le`` → 3)."""
        return 1 if self.codec == "pcm_u8" else int(self.codec[5:7]) // 8

    @property
    def frame_size(self) -> int:
        """Bytes per interleaved frame."""
        return self.sample_width * self.channels

    @property
    def float_dtype(self) -> np.dtype[np.floating] | None:
        """The numpy dtype of float layouts (checked for NaN/Inf), ``None`` for integers."""
        if not self.codec.startswith("pcm_f"):
            return None
        order = ">" if self.codec.endswith("be") else "<"
        return np.dtype(f"{order}f{self.sample_width}")


def _first_non_finite(data: bytes, dtype: np.dtype[np.floating]) -> int | None:
    """Index of the first NaN or infinite sample in ``data``, or ``None`` if all are finite."""
    finite = np.isfinite(np.frombuffer(data, dtype=dtype))
    return None if finite.all() else int(np.argmin(finite))


def stream_frames(
    buffer: ByteBuffer,
    layout: PcmLayout,
    emit: Callable[[Event], None],
    *,
    length: int | None = None,
    first_frame: int = 0,
) -> Generator[None, None, int]:
    """Emit buffered bytes as Packets of whole frames until ``length`` bytes (``None``: all).

    Each step emits every whole frame buffered so far (split at :data:`MAX_PACKET_BYTES`) and
    leaves a partial frame in ``buffer`` for the next feed. ``pts`` counts frames from
    ``first_frame``. Returns the stream frame index after the last frame emitted.

    Raises:
        CorruptStreamError: the stream ends inside a frame or before ``length`` bytes, or a
            float sample is NaN or infinite (the frames before it are emitted first).
    """
    frame_size = layout.frame_size
    step_limit = max(frame_size, MAX_PACKET_BYTES - MAX_PACKET_BYTES % frame_size)
    dtype = layout.float_dtype
    frame = first_frame
    left = length
    while left is None or left >= frame_size:
        available = len(buffer) if left is None else min(len(buffer), left)
        whole = min(available - available % frame_size, step_limit)
        if not whole:
            if buffer.eof:
                if left is None and not len(buffer):
                    return frame
                raise CorruptStreamError(_truncation(buffer, left, frame_size))
            yield
            continue
        data = buffer.take(whole)
        if left is not None:
            left -= whole
        if dtype is not None and (bad := _first_non_finite(data, dtype)) is not None:
            _fail_non_finite(data, dtype, layout, frame, bad, emit)
        emit(Packet(data, frame / layout.sample_rate))
        frame += whole // frame_size
    if left:  # a declared length that is not a whole number of frames: drop the stray bytes
        yield from buffer.skip(left, "partial frame")
    return frame


def _truncation(buffer: ByteBuffer, left: int | None, frame_size: int) -> str:
    """Why the stream cannot end here: inside a frame, or before the declared length."""
    at = buffer.offset + len(buffer)
    if left is None:
        return f"stream ends at offset {at} inside a frame: {len(buffer)} of {frame_size} bytes"
    return f"stream ends at offset {at} with {left - len(buffer)} bytes of audio data missing"


def _fail_non_finite(
    data: bytes,
    dtype: np.dtype[np.floating],
    layout: PcmLayout,
    frame: int,
    first_bad: int,
    emit: Callable[[Event], None],
) -> None:
    """Emit the whole frames before sample ``first_bad`` of ``data``, then raise saying where."""
    good_frames = first_bad // layout.channels
    if good_frames:
        emit(Packet(data[: good_frames * layout.frame_size], frame / layout.sample_rate))
    bad = int(np.count_nonzero(~np.isfinite(np.frombuffer(data, dtype=dtype))))
    at = frame + good_frames
    rate = layout.sample_rate
    raise CorruptStreamError(
        f"{bad} NaN or infinite {layout.codec} samples among the {len(data) // layout.frame_size}"
        f" frames from {frame / rate:.3f} s; the first is in frame {at} ({at / rate:.3f} s): "
        "is this really float audio?"
    )
