"""Incremental RIFF/WAVE (and RF64) demuxer: the fmt chunk, then the data chunk as it arrives.

Streaming writers cannot know the data size up front and write 0 or 0xFFFFFFFF; both mean
"until the end of the stream". Other chunks (LIST, fact, cue, ...) are skipped as they arrive,
with their pad byte. A new ``RIFF``/``RF64`` header after a finished data chunk starts a new
stream (:class:`StreamRestarted`), e.g. a page that sends one WAV file per recording.
"""

from __future__ import annotations

import struct
from collections.abc import Generator

from .._exceptions import CorruptStreamError, UnsupportedFormatError
from ._base import DEFAULT_MAX_BUFFERED, Demuxer
from ._events import StreamRestarted, TrackInfo
from ._pcm import PcmLayout, check_audio_params, pcm_codec, stream_frames

__all__ = ["WavDemuxer"]

_RIFF_IDS = (b"RIFF", b"RF64")
_FMT = struct.Struct("<HHIIHH")
_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
#: The 14 bytes after the format code in a WAVE_FORMAT_EXTENSIBLE SubFormat GUID.
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_UNTIL_END = (0, 0xFFFFFFFF)
#: Names of common non-PCM format tags, for messages.
_TAG_NAMES = {
    0x0002: "MS ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0055: "MP3",
}
#: Largest fmt chunk we read (real ones are 16, 18 or 40 bytes).
_MAX_FMT_SIZE = 4096


class WavDemuxer(Demuxer):
    """Incremental demuxer for WAV (RIFF/WAVE and RF64) holding integer or float PCM.

    Emits :class:`TrackInfo` (``pcm_u8``, ``pcm_s16le``, ``pcm_s24le``, ``pcm_s32le``,
    ``pcm_f32le`` or ``pcm_f64le``) from the fmt chunk, then Packets of whole frames from the
    data chunk; a partial frame waits for the next feed.

    Args:
        max_buffered: cap on buffered bytes (see :class:`Demuxer`).
    """

    def __init__(self, *, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        super().__init__(max_buffered=max_buffered)

    def _parse(self) -> Generator[None, None, None]:
        buf = self._buffer
        if (yield from buf.at_end()):
            return  # nothing was sent: not an error
        yield from self._expect_riff(buf.offset)
        layout: PcmLayout | None = None
        data_size64: int | None = None
        has_data = False
        frame = 0  # stream frames so far, for pts across several data chunks
        while not (yield from buf.at_end()):
            offset = buf.offset
            header = yield from buf.read_exact(8, "WAV chunk header")
            chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id in _RIFF_IDS and layout is not None:
                yield from self._expect_riff(offset, header)
                self._emit(StreamRestarted())
                layout, data_size64, has_data, frame = None, None, False, 0
            elif chunk_id == b"ds64":
                body = yield from buf.read_exact(size, "ds64 chunk")
                if len(body) < 16:
                    raise CorruptStreamError(f"RF64 ds64 chunk at offset {offset} is too short")
                data_size64 = int.from_bytes(body[8:16], "little")
            elif chunk_id == b"fmt " and layout is None:
                if size > _MAX_FMT_SIZE:
                    raise CorruptStreamError(
                        f"WAV fmt chunk at offset {offset} declares {size} bytes "
                        f"(at most {_MAX_FMT_SIZE})"
                    )
                layout = _read_fmt((yield from buf.read_exact(size, "fmt chunk")), offset)
                self._emit(TrackInfo(layout.codec, layout.sample_rate, layout.channels))
                yield from self._skip_pad(size)
            elif chunk_id == b"data":
                if layout is None:
                    raise CorruptStreamError(f"WAV data chunk at offset {offset} before fmt")
                has_data = True
                length = None if size in _UNTIL_END else size
                if size == 0xFFFFFFFF and data_size64:
                    length = data_size64
                frame = yield from stream_frames(
                    buf, layout, self._emit, length=length, first_frame=frame
                )
                if length is None:
                    return
                yield from self._skip_pad(length)
            else:
                yield from buf.skip(size, f"WAV {chunk_id!r} chunk")
                yield from self._skip_pad(size)
        if not has_data:
            raise CorruptStreamError("WAV stream ends before its data chunk")

    def _expect_riff(self, offset: int, head: bytes = b"") -> Generator[None, None, None]:
        """Check a 12-byte RIFF/RF64 WAVE header, failing on the first byte that is wrong."""
        buf = self._buffer
        while True:
            got = head + buf.peek(12 - len(head))
            if not (any(r.startswith(got[:4]) for r in _RIFF_IDS) and b"WAVE".startswith(got[8:])):
                raise CorruptStreamError(
                    f"not a WAV stream at offset {offset}: {got.hex(' ')} is not a RIFF/RF64 "
                    "WAVE header"
                )
            if len(got) == 12:
                buf.discard(12 - len(head))
                return
            if buf.eof:
                raise CorruptStreamError(f"stream ends inside the WAV header at offset {offset}")
            yield

    def _skip_pad(self, size: int) -> Generator[None, None, None]:
        """Skip the pad byte after an odd-sized chunk; writers often omit it at the very end."""
        if size % 2 and not (yield from self._buffer.at_end()):
            self._buffer.discard(1)


def _read_fmt(body: bytes, offset: int) -> PcmLayout:
    """Parse a fmt chunk (WAVEFORMAT, WAVEFORMATEX or WAVE_FORMAT_EXTENSIBLE)."""
    if len(body) < _FMT.size:
        raise CorruptStreamError(f"WAV fmt chunk at offset {offset} is only {len(body)} bytes")
    tag, channels, rate, _, block_align, bits = _FMT.unpack_from(body)
    if tag == _EXTENSIBLE:
        if len(body) < 40 or body[26:40] != _GUID_TAIL:
            raise UnsupportedFormatError(
                f"WAV fmt chunk at offset {offset} is WAVE_FORMAT_EXTENSIBLE with an unknown "
                "SubFormat"
            )
        tag = int.from_bytes(body[24:26], "little")
    if tag not in (_PCM, _FLOAT):
        kind = _TAG_NAMES.get(tag, "unknown")
        raise UnsupportedFormatError(
            f"WAV format 0x{tag:04x} ({kind}) is not supported; only PCM and IEEE float are"
        )
    codec = pcm_codec(bits, is_float=tag == _FLOAT)
    if codec is None:
        kind = "float" if tag == _FLOAT else "integer"
        raise UnsupportedFormatError(f"WAV with {bits}-bit {kind} samples is not supported")
    check_audio_params(rate, channels, "the WAV fmt chunk")
    layout = PcmLayout(codec, rate, channels)
    if block_align != layout.frame_size:
        raise CorruptStreamError(
            f"WAV fmt chunk says {block_align} bytes per frame, but {channels} channels of "
            f"{bits}-bit samples take {layout.frame_size}"
        )
    return layout
