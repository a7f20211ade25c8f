"""Opus facts the demuxers need without decoding: packet duration and the OpusHead header.

Ogg granule positions count 48 kHz samples, so the Ogg demuxer needs each packet's duration,
which the TOC byte gives (RFC 6716 §3.1). MP4 stores Opus setup as a big-endian ``dOps`` box
that the decoder wants as a little-endian OpusHead (RFC 7845 §5.1); both containers validate
the header with :func:`parse_opus_head`. The OpusHead layout is read here only: the decoder
(``codecs.OpusDecoder``) checks its setup bytes with :func:`read_opus_head`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._exceptions import CorruptStreamError, UnsupportedFormatError
from ._pcm import check_audio_params

__all__ = [
    "MAX_PACKET_SAMPLES",
    "OPUS_HEAD_MAGIC",
    "OPUS_RATE",
    "OpusHead",
    "opus_head",
    "opus_head_from_dops",
    "opus_packet_samples",
    "parse_opus_head",
    "read_opus_head",
]

#: Opus always decodes at (and counts granules in) 48 kHz.
OPUS_RATE = 48_000

#: RFC 6716 §3.2.5: a packet holds at most 120 ms of audio.
MAX_PACKET_SAMPLES = 5_760

OPUS_HEAD_MAGIC = b"OpusHead"

# Frame length in 48 kHz samples for each of the 32 TOC configurations (RFC 6716 §3.1, Table 2):
# SILK-only 10/20/40/60 ms (0-11), Hybrid 10/20 ms (12-15), CELT-only 2.5/5/10/20 ms (16-31).
_FRAME_SAMPLES = (480, 960, 1920, 2880) * 3 + (480, 960) * 2 + (120, 240, 480, 960) * 4

_OPUS_HEAD = struct.Struct("<8sBBHIhB")  # magic, version, channels, pre-skip, rate, gain, family


def opus_packet_samples(packet: bytes) -> int | None:
    """Samples (at 48 kHz) that one Opus packet decodes to, from its TOC byte.

    Returns ``None`` for a packet that breaks RFC 6716 §3.4 framing rules a duration depends
    on: empty, a code 3 packet without its frame-count byte or with zero frames, or more
    than 120 ms of audio. The payload itself is not checked; that is the decoder's job.
    """
    if not packet:
        return None
    toc = packet[0]
    frame = _FRAME_SAMPLES[toc >> 3]
    code = toc & 0x3
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(packet) < 2:
            return None
        count = packet[1] & 0x3F
    samples = frame * count
    if count == 0 or samples > MAX_PACKET_SAMPLES:
        return None
    return samples


@dataclass(frozen=True, slots=True)
class OpusHead:
    """The fields of an OpusHead the demuxers use (RFC 7845 §5.1).

    Attributes:
        channels: output channel count.
        pre_skip: 48 kHz samples to drop from the start of the decoded stream.
    """

    channels: int
    pre_skip: int


def opus_head(channels: int) -> bytes:
    """A minimal OpusHead (no pre-skip, mapping family 0) for a stream that sent none."""
    return _OPUS_HEAD.pack(OPUS_HEAD_MAGIC, 1, channels, 0, OPUS_RATE, 0, 0)


def read_opus_head(data: bytes) -> tuple[int, int, int]:
    """The fixed OpusHead fields every reader checks: (channels, pre-skip, mapping family).

    Raises:
        UnsupportedFormatError: a major version other than 0 (an incompatible future format).
        CorruptStreamError: not an OpusHead, truncated, or 0 channels.
    """
    if len(data) < _OPUS_HEAD.size or not data.startswith(OPUS_HEAD_MAGIC):
        raise CorruptStreamError(f"OpusHead is malformed ({len(data)} bytes)")
    _, version, channels, pre_skip, _, _, family = _OPUS_HEAD.unpack_from(data)
    if version >> 4:
        raise UnsupportedFormatError(f"OpusHead version {version} is not supported (only 0.x)")
    if channels == 0:
        raise CorruptStreamError("OpusHead declares 0 channels")
    return channels, pre_skip, family


def parse_opus_head(data: bytes) -> OpusHead:
    """Check an OpusHead packet, channel mapping included; return channels and pre-skip.

    Raises:
        UnsupportedFormatError: a major version other than 0 (an incompatible future format),
            or more channels than :data:`~streamdiarize.containers._pcm.MAX_CHANNELS`.
        CorruptStreamError: the header is truncated or its channel mapping is inconsistent.
    """
    channels, pre_skip, family = read_opus_head(data)
    check_audio_params(OPUS_RATE, channels, "the OpusHead")  # 255 channels: 255 decoders
    if family == 0:
        if channels > 2:
            raise CorruptStreamError(f"OpusHead mapping family 0 with {channels} channels")
        return OpusHead(channels, pre_skip)
    table_end = _OPUS_HEAD.size + 2 + channels
    if len(data) < table_end:
        raise CorruptStreamError(
            f"OpusHead channel mapping table is truncated ({len(data)} of {table_end} bytes)"
        )
    streams, coupled = data[_OPUS_HEAD.size], data[_OPUS_HEAD.size + 1]
    if streams == 0 or coupled > streams or streams + coupled > 255:
        raise CorruptStreamError(
            f"OpusHead declares {streams} streams of which {coupled} coupled: inconsistent"
        )
    return OpusHead(channels, pre_skip)


def opus_head_from_dops(dops: bytes) -> bytes:
    """Convert an MP4 ``dOps`` payload (big-endian, "Opus in ISOBMFF" §4.3.2) to an OpusHead.

    The fields are the same but ``dOps`` is big-endian, has version 0 and lacks the magic;
    OpusHead is little-endian with version 1. The channel mapping table is copied as is.

    Raises:
        UnsupportedFormatError: an unknown ``dOps`` version.
        CorruptStreamError: the payload is truncated or inconsistent.
    """
    if len(dops) < 11:
        raise CorruptStreamError(f"dOps box is truncated ({len(dops)} of 11 bytes)")
    version, channels, pre_skip, rate, gain, family = struct.unpack_from(">BBHIhB", dops)
    if version != 0:
        raise UnsupportedFormatError(f"dOps version {version} is not supported (only 0)")
    head = _OPUS_HEAD.pack(OPUS_HEAD_MAGIC, 1, channels, pre_skip, rate, gain, family)
    if family != 0:
        head += dops[11 : 13 + channels]
    parse_opus_head(head)
    return head
