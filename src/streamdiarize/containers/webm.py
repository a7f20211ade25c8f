"""Incremental WebM/Matroska demuxer for MediaRecorder output (and Matroska files in general).

Chromium writes an unknown-size Segment and unknown-size Clusters, and every WebSocket message
ends a byte or two into the next element, so the parser streams element by element: it enters
the Segment, Clusters and BlockGroups, reads the small elements it needs whole (EBML header,
Info, Tracks, Timecode, the audio track's blocks) and skips everything else as it arrives,
holding none of it. A new EBML header anywhere (MediaRecorder ``stop()``/``start()``) restarts.

Timing: ``pts`` is (Cluster Timecode + block timecode) × TimecodeScale − CodecDelay, in seconds,
as the Matroska spec and FFmpeg define it. CodecDelay only shifts ``pts``; the OpusHead in
``codec_private`` is passed on unchanged, so its pre-skip stays the one authority on how many
decoded samples to drop (Chromium writes neither CodecDelay nor a pre-skip). DiscardPadding
(ns) becomes :attr:`Packet.discard_padding` in samples at 48 kHz for Opus, at the track rate
otherwise; negative values (padding at the start) are ignored, as FFmpeg does.

This module is the streaming state (open elements, the current cluster and block group); EBML
primitives are in ``_ebml``, TrackEntry parsing in ``_matroska_tracks``, lacing in
``_matroska_lacing``.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from dataclasses import dataclass

from .._exceptions import CorruptStreamError, UnsupportedFormatError
from . import _ebml as ebml
from ._base import DEFAULT_MAX_BUFFERED, Demuxer
from ._events import Packet, StreamRestarted
from ._matroska_lacing import NO_LACING, unlace
from ._matroska_tracks import Track, first_audio_track
from ._opus_toc import OPUS_RATE, opus_packet_samples

__all__ = ["WebMDemuxer"]

_MAGIC = b"\x1a\x45\xdf\xa3"
_DOC_TYPES = ("webm", "matroska")
_TIMECODE_FLAGS = struct.Struct(">hB")
#: (element, parent) pairs that may have an unknown size; 0 is the top level.
_UNKNOWN_SIZE_ALLOWED = frozenset({(ebml.SEGMENT, 0), (ebml.CLUSTER, ebml.SEGMENT)})


@dataclass(slots=True)
class _Open:
    """A master element being parsed: its ID and where it ends (``None``: unknown yet)."""

    eid: int
    end: int | None
    unknown_size: bool = False


@dataclass(slots=True)
class _BlockGroup:
    """What a BlockGroup's children said so far; its Block is emitted when the group closes."""

    block: bytes | None = None
    track_number_length: int = 0
    offset: int = 0
    duration: int | None = None
    discard_padding_ns: int = 0


class WebMDemuxer(Demuxer):
    """Incremental demuxer for WebM and Matroska audio (the first audio track).

    Emits :class:`TrackInfo` (``codec`` ``"opus"``, ``"vorbis"``, ``"aac"``, ``"flac"`` or a
    ``pcm_*`` layout), then one :class:`Packet` per frame of that track; a new EBML header
    mid-stream yields :class:`StreamRestarted` and a new :class:`TrackInfo`.

    Args:
        max_buffered: cap on the bytes of one element read whole (a block, the Tracks) and so
            on buffered bytes; a larger declared size raises
            :class:`~streamdiarize.LimitExceededError` before any of it is buffered.
    """

    def __init__(self, *, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        super().__init__(max_buffered=max_buffered)
        self._stack: list[_Open] = []
        self._track: Track | None = None  # set (and announced) once the Tracks are read
        self._timecode_scale = 1_000_000
        self._cluster_time: int | None = None
        self._group = _BlockGroup()

    # -- the element loop --------------------------------------------------------------------

    def _parse(self) -> Generator[None, None, None]:
        buf = self._buffer
        stack = self._stack
        yield from self._expect_magic()
        while True:
            while stack and stack[-1].end is not None and buf.offset >= stack[-1].end:
                self._close(stack.pop())
            if (yield from buf.at_end()):
                self._check_complete()
                return
            offset = buf.offset
            eid, size = yield from self._read_header()
            if eid == ebml.EBML:
                yield from self._ebml_header(size, offset)
                continue
            while stack and stack[-1].unknown_size and eid in ebml.ENDS_UNKNOWN_SIZE[stack[-1].eid]:
                self._close(stack.pop())
            parent = stack[-1] if stack else None
            if size is None:
                context = parent.eid if parent is not None else 0
                if (eid, context) not in _UNKNOWN_SIZE_ALLOWED:
                    raise CorruptStreamError(
                        f"{ebml.name(eid)} at offset {offset} has an unknown size, which only "
                        "a Segment or a Cluster in a Segment may have"
                    )
            elif parent is not None and parent.end is not None and buf.offset + size > parent.end:
                raise CorruptStreamError(
                    f"{ebml.name(eid)} of {size} bytes at offset {offset} overruns its "
                    f"{ebml.name(parent.eid)}, which ends at offset {parent.end}"
                )
            yield from self._element(eid, size, offset, parent)

    def _element(
        self, eid: int, size: int | None, offset: int, parent: _Open | None
    ) -> Generator[None, None, None]:
        """Handle one element whose header was just read, according to its parent."""
        context = parent.eid if parent is not None else 0
        if context == ebml.CLUSTER:
            if eid == ebml.SIMPLE_BLOCK:
                yield from self._simple_block(_known(size), offset)
            elif eid == ebml.TIMECODE:
                payload = yield from self._read(_known(size), eid)
                self._cluster_time = ebml.uint_value(payload, eid)
            elif eid == ebml.BLOCK_GROUP:
                self._push(eid, _known(size), parent)
                self._group = _BlockGroup()
            else:
                yield from self._skip(eid, size, offset)
        elif context == ebml.BLOCK_GROUP:
            yield from self._block_group_child(eid, _known(size), offset)
        elif context == ebml.SEGMENT:
            if eid == ebml.CLUSTER:
                self._push(eid, size, parent)
                self._cluster_time = None
            elif eid == ebml.TRACKS:
                payload = yield from self._read(_known(size), eid)
                self._tracks(payload, self._buffer.offset - len(payload))
            elif eid == ebml.INFO:
                payload = yield from self._read(_known(size), eid)
                self._info(payload, self._buffer.offset - len(payload))
            elif eid in (ebml.SIMPLE_BLOCK, ebml.BLOCK_GROUP):
                raise CorruptStreamError(
                    f"{ebml.name(eid)} at offset {offset} is outside a Cluster"
                )
            else:
                yield from self._skip(eid, size, offset)
        elif eid == ebml.SEGMENT:  # the top level, after the EBML header
            self._push(eid, size, parent)
        elif eid in (ebml.VOID, ebml.CRC32):
            yield from self._skip(eid, size, offset)
        else:
            raise CorruptStreamError(
                f"{ebml.name(eid)} at offset {offset} where a Segment or an EBML header must be"
            )

    def _push(self, eid: int, size: int | None, parent: _Open | None) -> None:
        """Enter a master element; an unknown-size one ends at its parent's end at the latest."""
        if size is None:
            self._stack.append(_Open(eid, parent.end if parent else None, unknown_size=True))
        else:
            self._stack.append(_Open(eid, self._buffer.offset + size))

    def _close(self, element: _Open) -> None:
        if element.eid == ebml.BLOCK_GROUP:
            group = self._group
            if group.block is not None:
                self._emit_block(
                    group.block,
                    group.track_number_length,
                    group.offset,
                    group.duration,
                    group.discard_padding_ns,
                )
            self._group = _BlockGroup()
        elif element.eid == ebml.CLUSTER:
            self._cluster_time = None

    def _check_complete(self) -> None:
        """At end of input: every element with a known size must be complete."""
        for element in self._stack:
            if element.end is not None and element.end > self._buffer.offset:
                raise CorruptStreamError(
                    f"stream ends at offset {self._buffer.offset} inside a "
                    f"{ebml.name(element.eid)} that should end at offset {element.end}"
                )

    # -- reading -----------------------------------------------------------------------------

    def _expect_magic(self) -> Generator[None, None, None]:
        """Fail on the first byte that cannot begin an EBML header."""
        buf = self._buffer
        while True:
            head = buf.peek(4)
            if not _MAGIC.startswith(head):
                raise CorruptStreamError(
                    f"not a WebM/Matroska stream: it starts with {head.hex(' ')}, "
                    f"not with an EBML header ({_MAGIC.hex(' ')})"
                )
            if len(head) == 4 or buf.eof:
                return
            yield

    def _read_header(self) -> Generator[None, None, tuple[int, int | None]]:
        """Suspend until a whole element header is buffered; consume it, return (id, size)."""
        buf = self._buffer
        while True:
            header = ebml.element_header(buf.peek(12), buf.offset)
            if header is not None:
                buf.discard(header[2])
                return header[0], header[1]
            if buf.eof:
                raise CorruptStreamError(
                    f"stream ends inside an element header at offset {buf.offset}"
                )
            yield

    def _read(self, size: int, eid: int) -> Generator[None, None, bytes]:
        return self._buffer.read_exact(size, ebml.name(eid))

    def _skip(self, eid: int, size: int | None, offset: int) -> Generator[None, None, None]:
        if size is None:
            raise CorruptStreamError(f"{ebml.name(eid)} at offset {offset} has an unknown size")
        return self._buffer.skip(size, ebml.name(eid))

    # -- header elements ---------------------------------------------------------------------

    def _ebml_header(self, size: int | None, offset: int) -> Generator[None, None, None]:
        """Read an EBML header: the start of a stream, or of a new one (restart)."""
        if size is None:
            raise CorruptStreamError(f"EBML header at offset {offset} has an unknown size")
        payload = yield from self._read(size, ebml.EBML)
        doc_type, read_version, max_id, max_size = "", 1, 4, 8
        for eid, value, _ in ebml.iter_children(payload, self._buffer.offset - size):
            if eid == ebml.DOC_TYPE:
                doc_type = ebml.string_value(value)
            elif eid == ebml.EBML_READ_VERSION:
                read_version = ebml.uint_value(value, eid)
            elif eid == ebml.EBML_MAX_ID_LENGTH:
                max_id = ebml.uint_value(value, eid)
            elif eid == ebml.EBML_MAX_SIZE_LENGTH:
                max_size = ebml.uint_value(value, eid)
        if doc_type not in _DOC_TYPES:
            raise UnsupportedFormatError(
                f"EBML DocType {doc_type!r} at offset {offset} is not 'webm' or 'matroska'"
            )
        if read_version > 1 or max_id > 4 or max_size > 8:
            raise UnsupportedFormatError(
                f"EBML header at offset {offset} needs EBML reader version {read_version}, "
                f"{max_id}-byte IDs and {max_size}-byte sizes; we read version 1, 4 and 8"
            )
        if self._track is not None:
            self._emit(StreamRestarted())
        self._stack.clear()
        self._track = None
        self._timecode_scale = 1_000_000
        self._cluster_time = None
        self._group = _BlockGroup()

    def _info(self, payload: bytes, offset: int) -> None:
        for eid, value, _ in ebml.iter_children(payload, offset):
            if eid == ebml.TIMECODE_SCALE:
                scale = ebml.uint_value(value, eid)
                if scale == 0:
                    raise CorruptStreamError(f"TimecodeScale is 0 in the Info at offset {offset}")
                self._timecode_scale = scale

    def _tracks(self, payload: bytes, offset: int) -> None:
        """Pick the first audio track of the first Tracks element and announce it."""
        if self._track is not None:
            return  # a repeated Tracks element: the first one stays authoritative
        self._track = first_audio_track(payload, offset)
        self._emit(self._track.info)

    # -- blocks ------------------------------------------------------------------------------

    def _simple_block(self, size: int, offset: int) -> Generator[None, None, None]:
        track = self._audio_track(ebml.SIMPLE_BLOCK, offset)
        number, length = yield from self._peek_track_number(size, offset)
        if number != track.number:
            yield from self._buffer.skip(size, "SimpleBlock")
            return
        data = yield from self._read(size, ebml.SIMPLE_BLOCK)
        self._emit_block(data, length, offset, None, 0)

    def _block_group_child(self, eid: int, size: int, offset: int) -> Generator[None, None, None]:
        group = self._group
        if eid == ebml.BLOCK:
            track = self._audio_track(eid, offset)
            number, length = yield from self._peek_track_number(size, offset)
            if number != track.number or group.block is not None:
                yield from self._buffer.skip(size, "Block")
                return
            group.block = yield from self._read(size, eid)
            group.track_number_length = length
            group.offset = offset
        elif eid == ebml.BLOCK_DURATION:
            group.duration = ebml.uint_value((yield from self._read(size, eid)), eid)
        elif eid == ebml.DISCARD_PADDING:
            group.discard_padding_ns = ebml.signed_value((yield from self._read(size, eid)), eid)
        else:
            yield from self._skip(eid, size, offset)

    def _audio_track(self, eid: int, offset: int) -> Track:
        if self._track is None:
            raise CorruptStreamError(
                f"{ebml.name(eid)} at offset {offset} comes before the Tracks element"
            )
        return self._track

    def _peek_track_number(self, size: int, offset: int) -> Generator[None, None, tuple[int, int]]:
        """Read a block's track number without consuming it: (number, vint length)."""
        buf = self._buffer
        if size < 4:
            raise CorruptStreamError(f"block at offset {offset} is only {size} bytes long")
        yield from buf.ensure(1, "block header")
        length = 9 - buf.peek(1)[0].bit_length()
        if length > 8 or length + 3 > size:
            raise CorruptStreamError(f"block at offset {offset} has an invalid track number")
        yield from buf.ensure(length, "block header")
        return int.from_bytes(buf.peek(length), "big") & ((1 << (7 * length)) - 1), length

    def _emit_block(
        self,
        data: bytes,
        number_length: int,
        offset: int,
        duration: int | None,
        discard_padding_ns: int,
    ) -> None:
        """Emit the frames of one (Simple)Block of the audio track as Packets."""
        track = self._track
        assert track is not None
        timecode, flags = _TIMECODE_FLAGS.unpack_from(data, number_length)
        start = number_length + 3
        lacing = flags & 0x06
        frames = [data[start:]] if lacing == NO_LACING else unlace(data, start, lacing, offset)
        if track.prefix:
            frames = [track.prefix + frame for frame in frames]
        if track.frame_size:
            for frame in frames:
                if len(frame) % track.frame_size:
                    raise CorruptStreamError(
                        f"{track.info.codec} block at offset {offset} holds {len(frame)} bytes, "
                        f"not a whole number of {track.frame_size}-byte frames"
                    )
        scale = self._timecode_scale
        pts = None
        if self._cluster_time is not None:
            pts = ((self._cluster_time + timecode) * scale - track.codec_delay_ns) / 1e9
        lace_ns = duration * scale / len(frames) if duration else track.default_duration_ns
        padding = 0
        if discard_padding_ns > 0:
            padding = round(discard_padding_ns * track.info.sample_rate / 1e9)
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            if frame:
                self._emit(Packet(frame, pts, padding if i == last else 0))
            if pts is not None and i < last:
                seconds = lace_ns / 1e9 if lace_ns else _frame_seconds(track, frame)
                pts = None if seconds is None else pts + seconds


def _known(size: int | None) -> int:
    """The size of an element that cannot have an unknown size (checked by the caller)."""
    assert size is not None
    return size


def _frame_seconds(track: Track, frame: bytes) -> float | None:
    """How long one frame plays, for the timestamps of later frames in a laced block.

    Known from the bytes for PCM and from the TOC for Opus, as FFmpeg's parsers know it;
    ``None`` for other codecs.
    """
    if track.frame_size:
        return len(frame) / track.frame_size / track.info.sample_rate
    if track.info.codec == "opus":
        samples = opus_packet_samples(frame)
        return None if samples is None else samples / OPUS_RATE
    return None
