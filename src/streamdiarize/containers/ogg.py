"""Incremental Ogg demuxer for Ogg Opus (Firefox MediaRecorder's ``audio/ogg;codecs=opus``).

Pages (RFC 3533) are read whole, CRC-checked and split into packets by their lacing values;
a packet continued across pages is reassembled up to ``max_packet_size``. The first Opus
logical stream is demuxed (RFC 7845); pages of any other serial are skipped. Granule
positions give each packet's ``pts`` and, on the end-of-stream page, the samples to trim
from the last packets (``Packet.discard_padding``). A beginning-of-stream page after the
first stream's headers (MediaRecorder ``stop()``/``start()``, or a chained file) yields
:class:`~streamdiarize.containers.StreamRestarted` and a new
:class:`~streamdiarize.containers.TrackInfo`.

The demuxer never resynchronises: bytes that are not an ``OggS`` page where one must start
(garbage at the start or between pages), a CRC mismatch or a missing page raise
:class:`~streamdiarize.CorruptStreamError`, and the demuxer stays failed. A stream cut
without its EOS page by a new beginning-of-stream page loses only its unfinished packet.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from .._exceptions import CorruptStreamError, LimitExceededError, UnsupportedFormatError
from ._base import DEFAULT_MAX_BUFFERED, Demuxer
from ._events import EndOfStream, Packet, StreamRestarted, TrackInfo
from ._opus_toc import OPUS_HEAD_MAGIC, OPUS_RATE, opus_packet_samples, parse_opus_head

__all__ = ["DEFAULT_MAX_PACKET_SIZE", "OggDemuxer", "ogg_crc32"]

#: Default cap on one packet reassembled from pages (a page alone holds at most 65,025 bytes).
DEFAULT_MAX_PACKET_SIZE = 1024 * 1024

_CAPTURE = b"OggS"
_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, seq, crc, nsegs
_CRC_AT = 22  # offset of the CRC field in the page header
_CONTINUED, _BOS, _EOS = 0x01, 0x02, 0x04
_OPUS_TAGS_MAGIC = b"OpusTags"
_TAGS_MIN = 16  # magic, vendor length, comment count

# Identification-header magics of Ogg codecs we can name (RFC 5334 and each codec's spec).
_AUDIO_HEADS = (
    (b"\x01vorbis", "Vorbis"),
    (b"\x7fFLAC", "FLAC"),
    (b"Speex   ", "Speex"),
    (b"PCM     ", "OggPCM"),
)

# Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first, init 0, no final XOR) is the bit-mirror of
# zlib's reflected CRC-32: feeding zlib the bit-reversed bytes with an all-ones start value
# (which undoes its init/final inversion) and bit-reversing the result gives Ogg's CRC at C
# speed; a per-byte table loop in Python runs ~100x slower.
_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc32(data: bytes) -> int:
    """Ogg's page checksum (RFC 3533 §6) of ``data``, computed with the CRC field zeroed."""
    mirrored = zlib.crc32(data.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int.from_bytes(mirrored.to_bytes(4, "little").translate(_BIT_REVERSED), "big")


def _end_trims(durations: list[int], excess: int) -> list[int]:
    """Samples to drop from each packet so that ``excess`` samples go from the end."""
    trims = [0] * len(durations)
    for i in range(len(durations) - 1, -1, -1):
        if excess <= 0:
            break
        trims[i] = min(excess, durations[i])
        excess -= trims[i]
    return trims


@dataclass(frozen=True, slots=True)
class _Page:
    flags: int
    granule: int
    serial: int
    seq: int
    lacing: bytes
    body: bytes

    def split(self) -> tuple[list[bytes], bytes | None]:
        """Packets ending on this page (the first may be a continuation) and an unfinished tail."""
        lacing = np.frombuffer(self.lacing, dtype=np.uint8)
        seg_ends = np.cumsum(lacing, dtype=np.int64)
        ends = seg_ends[lacing < 255].tolist()
        body = self.body
        packets = [body[a:b] for a, b in zip([0, *ends], ends, strict=False)]
        last = ends[-1] if ends else 0
        # A packet is unfinished when the last lacing value is 255 (libogg: even if it adds 0).
        tail = body[last:] if len(lacing) and lacing[-1] == 255 else None
        return packets, tail


@dataclass(slots=True)
class _Stream:
    """The Opus logical stream being demuxed."""

    serial: int
    pre_skip: int
    next_seq: int
    granule: int = 0  # granule position at the end of the last page that finished a packet
    tags_pending: bool = True
    ended: bool = False
    pending: list[bytes] = field(default_factory=list)
    pending_size: int = 0


class OggDemuxer(Demuxer):
    """Sans-I/O Ogg Opus demuxer: ``feed(bytes) -> list[Event]``, then ``flush()`` at the end.

    Emits :class:`TrackInfo` (codec ``"opus"``, 48 kHz, ``codec_private`` = OpusHead, whose
    pre-skip the decoder applies), one :class:`Packet` per Opus packet with ``pts`` in seconds
    after pre-skip, and :class:`EndOfStream` at the stream's EOS page.

    Args:
        max_packet_size: cap on a packet reassembled from continued pages; a larger one
            raises :class:`~streamdiarize.LimitExceededError`.
        max_buffered: cap on bytes buffered at once (see :class:`Demuxer`).
    """

    def __init__(
        self,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        self._max_packet_size = max_packet_size
        self._stream: _Stream | None = None
        self._streams_started = 0
        self._in_bos_group = False  # only BOS pages seen since the current chain link began
        self._links = 0  # chain links (groups of BOS pages) begun
        self._other_codecs: list[str] = []  # audio codecs we cannot decode in this link
        super().__init__(max_buffered=max_buffered)

    def _parse(self) -> Generator[None, None, None]:
        first = True
        while not (yield from self._buffer.at_end()):
            page = yield from self._read_page(first)
            first = False
            if page.flags & _BOS:
                self._on_bos_page(page)
            else:
                self._on_page(page)
        self._on_end()

    def _read_page(self, first: bool) -> Generator[None, None, _Page]:
        offset = self._buffer.offset
        header = yield from self._buffer.read_exact(_HEADER.size, "Ogg page header")
        capture, version, flags, granule, serial, seq, crc, nsegs = _HEADER.unpack(header)
        if capture != _CAPTURE:
            where = "the stream does not start with" if first else f"offset {offset} is not"
            raise CorruptStreamError(
                f"{where} an Ogg page (found {capture!r}, expected b'OggS'); "
                "the demuxer does not resynchronise"
            )
        if version != 0:
            raise CorruptStreamError(f"Ogg page at offset {offset} has version {version}, not 0")
        lacing = yield from self._buffer.read_exact(nsegs, "Ogg page segment table")
        body = yield from self._buffer.read_exact(sum(lacing), "Ogg page")
        actual = ogg_crc32(
            b"".join((header[:_CRC_AT], b"\0\0\0\0", header[_CRC_AT + 4 :], lacing, body))
        )
        if actual != crc:
            raise CorruptStreamError(
                f"Ogg page {seq} of stream {serial:#010x} at offset {offset} fails its CRC "
                f"(stored {crc:#010x}, computed {actual:#010x})"
            )
        return _Page(flags, granule, serial, seq, lacing, body)

    def _on_bos_page(self, page: _Page) -> None:
        if not self._in_bos_group:  # a new chain link (or the first one) begins
            self._in_bos_group = True
            self._links += 1
            self._stream = None
            self._other_codecs = []
        packets, tail = page.split()
        head = packets[0] if packets else page.body
        if not head.startswith(OPUS_HEAD_MAGIC):
            self._other_codecs += [name for magic, name in _AUDIO_HEADS if head.startswith(magic)]
            return
        if self._stream is not None:  # a second Opus stream multiplexed beside the first
            return
        if len(packets) != 1 or tail is not None or page.flags & _CONTINUED:
            raise CorruptStreamError(
                f"Ogg Opus stream {page.serial:#010x}: the first page must hold exactly the "
                f"OpusHead packet (RFC 7845 §3), found {len(packets)} packets"
            )
        opus_head = parse_opus_head(head)
        self._stream = _Stream(page.serial, opus_head.pre_skip, next_seq=(page.seq + 1) % 2**32)
        if self._streams_started:
            self._emit(StreamRestarted())
        self._streams_started += 1
        self._emit(TrackInfo("opus", OPUS_RATE, opus_head.channels, head))

    def _on_page(self, page: _Page) -> None:
        self._in_bos_group = False
        stream = self._stream
        if stream is None:
            if not self._links:
                raise CorruptStreamError(
                    f"the Ogg stream starts mid-way: its first page (page {page.seq} of stream "
                    f"{page.serial:#010x}) is not a beginning-of-stream page"
                )
            raise self._no_opus_error()
        if page.serial != stream.serial:
            return  # another logical stream multiplexed beside ours
        if stream.ended:
            raise CorruptStreamError(
                f"Ogg stream {stream.serial:#010x} has page {page.seq} after its last (EOS) page"
            )
        if page.seq != stream.next_seq:
            raise CorruptStreamError(
                f"Ogg stream {stream.serial:#010x}: page {stream.next_seq} is missing "
                f"(got page {page.seq} next)"
            )
        stream.next_seq = (page.seq + 1) % 2**32
        packets = self._assemble(stream, page)
        if stream.tags_pending and packets:
            self._check_tags(stream, packets)
            packets = []
        self._emit_audio(stream, page, packets)
        if page.flags & _EOS:
            stream.ended = True
            self._emit(EndOfStream())

    def _assemble(self, stream: _Stream, page: _Page) -> list[bytes]:
        """Join this page's segments onto the pending packet; return the packets it finishes."""
        packets, tail = page.split()
        continued = bool(page.flags & _CONTINUED)
        if continued != bool(stream.pending):
            raise CorruptStreamError(
                f"Ogg stream {stream.serial:#010x}, page {page.seq}: "
                + (
                    "continues a packet that never started"
                    if continued
                    else "starts a new packet while the previous one is unfinished"
                )
            )
        if continued and packets:
            self._check_packet_size(stream.pending_size + len(packets[0]), page)
            packets[0] = b"".join((*stream.pending, packets[0]))
            stream.pending, stream.pending_size = [], 0
        if tail is not None:
            self._check_packet_size(stream.pending_size + len(tail), page)
            stream.pending.append(tail)
            stream.pending_size += len(tail)
        return packets

    def _check_packet_size(self, size: int, page: _Page) -> None:
        if size > self._max_packet_size:
            raise LimitExceededError(
                f"Ogg stream {page.serial:#010x}, page {page.seq}: a packet continued across "
                f"pages reached {size} bytes, over max_packet_size={self._max_packet_size}"
            )

    @staticmethod
    def _check_tags(stream: _Stream, packets: list[bytes]) -> None:
        tags = packets[0]
        if len(tags) < _TAGS_MIN or not tags.startswith(_OPUS_TAGS_MAGIC):
            raise CorruptStreamError(
                f"Ogg Opus stream {stream.serial:#010x}: the second packet is not an OpusTags "
                "header (RFC 7845 §5.2)"
            )
        if len(packets) > 1:
            raise CorruptStreamError(
                f"Ogg Opus stream {stream.serial:#010x}: audio on the OpusTags page "
                "(the comment header must finish its page, RFC 7845 §3)"
            )
        stream.tags_pending = False

    def _emit_audio(self, stream: _Stream, page: _Page, packets: list[bytes]) -> None:
        """Emit a page's finished packets with pts from the granule and, at EOS, end trimming."""
        if not packets:
            return
        durations = [opus_packet_samples(p) for p in packets]
        known = [d for d in durations if d is not None]
        if len(known) < len(durations):  # a packet without a valid TOC: no start is derivable
            if page.granule >= 0:
                stream.granule = page.granule
            for data in packets:
                self._emit(Packet(data))
            return
        total = sum(known)
        # The granule counts samples (pre-skip included) up to the end of the page's last
        # finished packet; an EOS page's granule may end early (RFC 7845 §4.5): count forward.
        eos = bool(page.flags & _EOS) and page.granule >= 0
        start = stream.granule if eos or page.granule < 0 else page.granule - total
        trims = _end_trims(known, start + total - page.granule) if eos else [0] * len(known)
        stream.granule = page.granule if page.granule >= 0 else start + total
        starts = itertools.accumulate(known, initial=start)
        for data, begin, trim in zip(packets, starts, trims, strict=False):
            self._emit(Packet(data, (begin - stream.pre_skip) / OPUS_RATE, trim))

    def _no_opus_error(self) -> UnsupportedFormatError:
        if self._other_codecs:
            names = ", ".join(dict.fromkeys(self._other_codecs))
            return UnsupportedFormatError(
                f"the Ogg stream carries {names} audio; only Opus is supported "
                "(audio/ogg;codecs=opus)"
            )
        return UnsupportedFormatError("the Ogg stream holds no Opus logical stream")

    def _on_end(self) -> None:
        stream = self._stream
        if stream is None:
            if self._links:
                raise self._no_opus_error()
            return
        if stream.pending and not stream.ended:
            raise CorruptStreamError(
                f"Ogg stream {stream.serial:#010x} ends inside a packet continued across pages "
                f"({stream.pending_size} bytes of it received)"
            )
