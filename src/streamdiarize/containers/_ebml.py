"""EBML (RFC 8794) primitives for the Matroska/WebM demuxer: IDs, vints, element headers.

Only the Matroska elements the demuxer reads or must recognise are listed. Their parents are
what ends an *unknown-size* element (RFC 8794 §6.2): a known element that is not one of its
descendants closes it, while unknown IDs and the global Void/CRC-32 elements stay inside.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .._exceptions import CorruptStreamError

__all__ = [
    "ENDS_UNKNOWN_SIZE",
    "NAMES",
    "element_header",
    "float_value",
    "iter_children",
    "name",
    "signed_value",
    "string_value",
    "uint_value",
    "vint",
]

# Root and EBML header
EBML = 0x1A45DFA3
EBML_READ_VERSION = 0x42F7
EBML_MAX_ID_LENGTH = 0x42F2
EBML_MAX_SIZE_LENGTH = 0x42F3
DOC_TYPE = 0x4282
SEGMENT = 0x18538067
# Segment children
SEEK_HEAD = 0x114D9B74
INFO = 0x1549A966
TRACKS = 0x1654AE6B
CLUSTER = 0x1F43B675
CUES = 0x1C53BB6B
ATTACHMENTS = 0x1941A469
CHAPTERS = 0x1043A770
TAGS = 0x1254C367
# Info
TIMECODE_SCALE = 0x2AD7B1
# Tracks
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_TYPE = 0x83
CODEC_ID = 0x86
CODEC_PRIVATE = 0x63A2
CODEC_DELAY = 0x56AA
DEFAULT_DURATION = 0x23E383
AUDIO = 0xE1
SAMPLING_FREQUENCY = 0xB5
CHANNELS = 0x9F
BIT_DEPTH = 0x6264
CONTENT_ENCODINGS = 0x6D80
CONTENT_ENCODING = 0x6240
CONTENT_ENCODING_SCOPE = 0x5032
CONTENT_ENCODING_TYPE = 0x5033
CONTENT_COMPRESSION = 0x5034
CONTENT_COMP_ALGO = 0x4254
CONTENT_COMP_SETTINGS = 0x4255
# Cluster
TIMECODE = 0xE7
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
BLOCK_DURATION = 0x9B
DISCARD_PADDING = 0x75A2
# Global elements, allowed anywhere
VOID = 0xEC
CRC32 = 0xBF

_ROOT = 0
#: The element tree, as the Matroska spec draws it: parent ID → {child ID: name}.
_TREE: dict[int, dict[int, str]] = {
    _ROOT: {
        EBML: "EBML header",
        SEGMENT: "Segment",
    },
    EBML: {
        EBML_READ_VERSION: "EBMLReadVersion",
        EBML_MAX_ID_LENGTH: "EBMLMaxIDLength",
        EBML_MAX_SIZE_LENGTH: "EBMLMaxSizeLength",
        DOC_TYPE: "DocType",
        0x4286: "EBMLVersion",
        0x4287: "DocTypeVersion",
        0x4285: "DocTypeReadVersion",
    },
    SEGMENT: {
        SEEK_HEAD: "SeekHead",
        INFO: "Info",
        TRACKS: "Tracks",
        CLUSTER: "Cluster",
        CUES: "Cues",
        ATTACHMENTS: "Attachments",
        CHAPTERS: "Chapters",
        TAGS: "Tags",
    },
    INFO: {
        TIMECODE_SCALE: "TimecodeScale",
        0x4489: "Duration",
        0x4D80: "MuxingApp",
        0x5741: "WritingApp",
    },
    TRACKS: {
        TRACK_ENTRY: "TrackEntry",
    },
    TRACK_ENTRY: {
        TRACK_NUMBER: "TrackNumber",
        0x73C5: "TrackUID",
        TRACK_TYPE: "TrackType",
        CODEC_ID: "CodecID",
        CODEC_PRIVATE: "CodecPrivate",
        CODEC_DELAY: "CodecDelay",
        0x56BB: "SeekPreRoll",
        DEFAULT_DURATION: "DefaultDuration",
        AUDIO: "Audio",
        0xE0: "Video",
        CONTENT_ENCODINGS: "ContentEncodings",
    },
    AUDIO: {
        SAMPLING_FREQUENCY: "SamplingFrequency",
        0x78B5: "OutputSamplingFrequency",
        CHANNELS: "Channels",
        BIT_DEPTH: "BitDepth",
    },
    CONTENT_ENCODINGS: {
        CONTENT_ENCODING: "ContentEncoding",
    },
    CONTENT_ENCODING: {
        CONTENT_ENCODING_SCOPE: "ContentEncodingScope",
        CONTENT_ENCODING_TYPE: "ContentEncodingType",
        CONTENT_COMPRESSION: "ContentCompression",
    },
    CONTENT_COMPRESSION: {
        CONTENT_COMP_ALGO: "ContentCompAlgo",
        CONTENT_COMP_SETTINGS: "ContentCompSettings",
    },
    CLUSTER: {
        TIMECODE: "Timecode",
        SIMPLE_BLOCK: "SimpleBlock",
        BLOCK_GROUP: "BlockGroup",
        0xA7: "Position",
        0xAB: "PrevSize",
        0xAF: "EncryptedBlock",
    },
    BLOCK_GROUP: {
        BLOCK: "Block",
        BLOCK_DURATION: "BlockDuration",
        DISCARD_PADDING: "DiscardPadding",
        0xFB: "ReferenceBlock",
        0x75A1: "BlockAdditions",
    },
}
#: Known element ID → (name, parent ID); ``_ROOT`` for top-level elements.
_SCHEMA: dict[int, tuple[str, int]] = {
    eid: (name, parent) for parent, children in _TREE.items() for eid, name in children.items()
}

#: Element names for messages.
NAMES: dict[int, str] = {eid: name for eid, (name, _) in _SCHEMA.items()}
NAMES[VOID] = "Void"
NAMES[CRC32] = "CRC-32"


def _ancestors(eid: int) -> set[int]:
    found = set()
    parent = _SCHEMA[eid][1]
    while parent != _ROOT:
        found.add(parent)
        parent = _SCHEMA[parent][1]
    return found


#: For each element that may have an unknown size: the known IDs that end it.
ENDS_UNKNOWN_SIZE: dict[int, frozenset[int]] = {
    master: frozenset(eid for eid in _SCHEMA if master not in _ancestors(eid))
    for master in (SEGMENT, CLUSTER)
}


def name(eid: int) -> str:
    """``"SimpleBlock"`` for known IDs, ``"element 0x1A2B"`` otherwise."""
    return NAMES.get(eid) or f"element 0x{eid:X}"


def element_header(head: bytes, offset: int) -> tuple[int, int | None, int] | None:
    """Parse an element header (ID and size vints) from the start of ``head``.

    Returns ``(id, size, header_length)`` with ``size=None`` for the all-ones "unknown size",
    or ``None`` if ``head`` is too short to hold the whole header yet.

    Raises:
        CorruptStreamError: the ID or size is not a valid vint (RFC 8794 §4, §5).
    """
    if not head:
        return None
    first = head[0]
    id_length = 9 - first.bit_length()
    if id_length > 4:
        raise CorruptStreamError(
            f"invalid EBML element ID at offset {offset}: first byte 0x{first:02x}"
        )
    if len(head) <= id_length:
        return None
    eid = int.from_bytes(head[:id_length], "big")
    bits = 7 * id_length
    value = eid & ((1 << bits) - 1)
    if value == 0 or value == (1 << bits) - 1:
        raise CorruptStreamError(f"invalid (reserved) EBML element ID 0x{eid:X} at offset {offset}")
    first = head[id_length]
    size_length = 9 - first.bit_length()
    if size_length > 8:
        raise CorruptStreamError(
            f"invalid size of {name(eid)} at offset {offset}: first size byte is 0x00"
        )
    end = id_length + size_length
    if len(head) < end:
        return None
    size = int.from_bytes(head[id_length:end], "big") & ((1 << (7 * size_length)) - 1)
    return eid, (None if size == (1 << (7 * size_length)) - 1 else size), end


def vint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """Unsigned vint at ``data[pos:]`` (a block's track number, a lace size): (value, length).

    Raises:
        CorruptStreamError: the vint is invalid or runs past the end of ``data``.
    """
    if pos >= len(data) or data[pos] == 0:
        raise CorruptStreamError(f"{what}: invalid or missing variable-size integer")
    length = 9 - data[pos].bit_length()
    if pos + length > len(data):
        raise CorruptStreamError(f"{what}: variable-size integer runs past the end")
    value = int.from_bytes(data[pos : pos + length], "big") & ((1 << (7 * length)) - 1)
    return value, length


def iter_children(data: bytes, offset: int) -> Iterator[tuple[int, bytes, int]]:
    """``(id, payload, payload_offset)`` of each child of an in-memory master's payload ``data``.

    ``offset`` is the stream offset of ``data[0]``; offsets are only used in messages.

    Raises:
        CorruptStreamError: a child's header is invalid, its size unknown, or it overruns.
    """
    pos = 0
    while pos < len(data):
        header = element_header(data[pos : pos + 12], offset + pos)
        if header is None:
            raise CorruptStreamError(f"element header at offset {offset + pos} is cut off")
        eid, size, length = header
        start = pos + length
        if size is None or start + size > len(data):
            declared = "an unknown size" if size is None else f"{size} bytes"
            raise CorruptStreamError(
                f"{name(eid)} at offset {offset + pos} declares {declared}, but its parent "
                f"has {len(data) - start} bytes left"
            )
        yield eid, data[start : start + size], offset + start
        pos = start + size


def uint_value(payload: bytes, eid: int) -> int:
    """An unsigned-integer element's value (empty means 0)."""
    if len(payload) > 8:
        raise CorruptStreamError(f"{name(eid)} is a {len(payload)}-byte integer (at most 8)")
    return int.from_bytes(payload, "big")


def signed_value(payload: bytes, eid: int) -> int:
    """A signed-integer element's value (empty means 0)."""
    if len(payload) > 8:
        raise CorruptStreamError(f"{name(eid)} is a {len(payload)}-byte integer (at most 8)")
    return int.from_bytes(payload, "big", signed=True)


def float_value(payload: bytes, eid: int) -> float:
    """A float element's value: 4- or 8-byte IEEE big-endian (empty means 0.0)."""
    if len(payload) == 4:
        return float(struct.unpack(">f", payload)[0])
    if len(payload) == 8:
        return float(struct.unpack(">d", payload)[0])
    if not payload:
        return 0.0
    raise CorruptStreamError(f"{name(eid)} is a {len(payload)}-byte float (must be 4 or 8)")


def string_value(payload: bytes) -> str:
    """An ASCII string element's value, without the zero padding EBML allows."""
    return payload.split(b"\0", 1)[0].decode("ascii", "replace")
