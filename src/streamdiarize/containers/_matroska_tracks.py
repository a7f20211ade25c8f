"""Matroska TrackEntry elements turned into the track the WebM demuxer reads.

The Tracks element is small and read whole; this picks its first audio track, names the
codec, validates the audio parameters and undoes header-stripping compression.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .._exceptions import CorruptStreamError, UnsupportedFormatError
from . import _ebml as ebml
from ._events import TrackInfo
from ._opus_toc import OPUS_RATE, parse_opus_head
from ._pcm import PcmLayout, check_audio_params, pcm_codec

__all__ = ["Track", "TrackEntry", "first_audio_track", "make_track", "read_track_entry"]

_AUDIO_TRACK = 2
_HEADER_STRIPPING = 3  # ContentCompAlgo


@dataclass(frozen=True, slots=True)
class Track:
    """The audio track being demuxed and what its blocks need."""

    number: int
    info: TrackInfo
    codec_delay_ns: int
    default_duration_ns: int
    prefix: bytes  # stripped header bytes to put back in front of every frame
    frame_size: int  # PCM: bytes per frame, to check blocks; 0 for compressed codecs


@dataclass(slots=True)
class TrackEntry:
    """The fields of one TrackEntry, with the Matroska defaults."""

    number: int = 0
    track_type: int = 0
    codec_id: str = ""
    codec_private: bytes = b""
    codec_delay_ns: int = 0
    default_duration_ns: int = 0
    sampling_frequency: float = 8000.0
    channels: int = 1
    bit_depth: int = 0
    encodings: tuple[bytes, int] | None = None  # payload and its stream offset


def _string(payload: bytes, _eid: int) -> str:
    return ebml.string_value(payload)


def _binary(payload: bytes, _eid: int) -> bytes:
    return payload


_Reader = Callable[[bytes, int], object]
_Fields = dict[int, tuple[str, _Reader]]
#: TrackEntry children → (field of :class:`TrackEntry`, how to read the value).
_ENTRY_FIELDS: _Fields = {
    ebml.TRACK_NUMBER: ("number", ebml.uint_value),
    ebml.TRACK_TYPE: ("track_type", ebml.uint_value),
    ebml.CODEC_ID: ("codec_id", _string),
    ebml.CODEC_PRIVATE: ("codec_private", _binary),
    ebml.CODEC_DELAY: ("codec_delay_ns", ebml.uint_value),
    ebml.DEFAULT_DURATION: ("default_duration_ns", ebml.uint_value),
}
#: The same for the children of its Audio element.
_AUDIO_FIELDS: _Fields = {
    ebml.SAMPLING_FREQUENCY: ("sampling_frequency", ebml.float_value),
    ebml.CHANNELS: ("channels", ebml.uint_value),
    ebml.BIT_DEPTH: ("bit_depth", ebml.uint_value),
}


def _set_field(entry: TrackEntry, fields: _Fields, eid: int, value: bytes) -> None:
    """Store one child element's value in ``entry`` when ``fields`` names it."""
    if eid in fields:
        name, read = fields[eid]
        setattr(entry, name, read(value, eid))


def read_track_entry(payload: bytes, offset: int) -> TrackEntry:
    """The fields of one TrackEntry (and of its Audio element) we use."""
    entry = TrackEntry()
    for eid, value, at in ebml.iter_children(payload, offset):
        if eid == ebml.CONTENT_ENCODINGS:
            entry.encodings = (value, at)
        elif eid == ebml.AUDIO:
            for aid, avalue, _ in ebml.iter_children(value, at):
                _set_field(entry, _AUDIO_FIELDS, aid, avalue)
        else:
            _set_field(entry, _ENTRY_FIELDS, eid, value)
    return entry


def first_audio_track(payload: bytes, offset: int) -> Track:
    """The first audio track of a Tracks element's payload, validated."""
    entries = [
        read_track_entry(value, at)
        for eid, value, at in ebml.iter_children(payload, offset)
        if eid == ebml.TRACK_ENTRY
    ]
    audio = [
        e
        for e in entries
        if e.track_type == _AUDIO_TRACK or (not e.track_type and e.codec_id.startswith("A_"))
    ]
    if not audio:
        found = ", ".join(e.codec_id or "?" for e in entries) or "none"
        raise UnsupportedFormatError(f"the stream has no audio track (tracks: {found})")
    return make_track(audio[0])


def _codec(entry: TrackEntry) -> str:
    """Our codec name for a Matroska CodecID (FFmpeg's choices for PCM bit depths)."""
    codec_id = entry.codec_id
    simple = {"A_OPUS": "opus", "A_VORBIS": "vorbis", "A_FLAC": "flac", "A_AAC": "aac"}
    if codec_id in simple or codec_id.startswith("A_AAC/"):
        return simple.get(codec_id, "aac")
    codec = None
    if codec_id == "A_PCM/FLOAT/IEEE":
        codec = pcm_codec(entry.bit_depth or 32, is_float=True)
    elif codec_id in ("A_PCM/INT/LIT", "A_PCM/INT/BIG"):
        codec = pcm_codec(entry.bit_depth or 16, is_float=False, big_endian=codec_id[-3:] == "BIG")
    if codec is None:
        detail = f" with BitDepth {entry.bit_depth}" if codec_id.startswith("A_PCM") else ""
        raise UnsupportedFormatError(f"Matroska audio codec {codec_id!r}{detail} is not supported")
    return codec


def make_track(entry: TrackEntry) -> Track:
    """Validate a TrackEntry and turn it into the :class:`TrackInfo` a decoder needs."""
    codec = _codec(entry)
    if entry.number == 0:
        raise CorruptStreamError(f"the {entry.codec_id} track has no TrackNumber")
    frequency = entry.sampling_frequency
    rate = round(frequency) if math.isfinite(frequency) else 0
    channels = entry.channels
    private = entry.codec_private
    if codec == "opus":  # the decoder's output, whatever the Audio element says
        rate, channels = OPUS_RATE, parse_opus_head(private).channels
    check_audio_params(rate, channels, f"the Matroska {entry.codec_id} track")
    frame_size = 0
    if codec.startswith("pcm_"):
        private = b""
        frame_size = PcmLayout(codec, rate, channels).frame_size
    return Track(
        number=entry.number,
        info=TrackInfo(codec, rate, channels, private),
        codec_delay_ns=entry.codec_delay_ns,
        default_duration_ns=entry.default_duration_ns,
        prefix=_stripped_header(entry),
        frame_size=frame_size,
    )


def _stripped_header(entry: TrackEntry) -> bytes:
    """The bytes header-stripping compression removed from every frame (the one encoding
    we undo); other compression or encryption is unsupported."""
    if entry.encodings is None:
        return b""
    prefix = b""
    for eid, encoding, at in ebml.iter_children(*entry.encodings):
        if eid != ebml.CONTENT_ENCODING:
            continue
        kind, scope, algo, settings = 0, 1, 0, b""
        for cid, value, cat in ebml.iter_children(encoding, at):
            if cid == ebml.CONTENT_ENCODING_TYPE:
                kind = ebml.uint_value(value, cid)
            elif cid == ebml.CONTENT_ENCODING_SCOPE:
                scope = ebml.uint_value(value, cid)
            elif cid == ebml.CONTENT_COMPRESSION:
                for zid, zvalue, _ in ebml.iter_children(value, cat):
                    if zid == ebml.CONTENT_COMP_ALGO:
                        algo = ebml.uint_value(zvalue, zid)
                    elif zid == ebml.CONTENT_COMP_SETTINGS:
                        settings = zvalue
        if not scope & 1:
            continue  # applies to CodecPrivate or later encodings only
        if kind != 0 or algo != _HEADER_STRIPPING:
            method = "encryption" if kind else f"compression algorithm {algo}"
            raise UnsupportedFormatError(
                f"the {entry.codec_id} track uses ContentEncoding {method}, which is not supported"
            )
        prefix = settings + prefix
    return prefix
