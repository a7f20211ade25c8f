"""Sans-I/O incremental demuxers: ``feed(bytes) -> list[Event]`` for any split of the stream.

One demuxer per container, all on :class:`Demuxer`: :class:`WebMDemuxer` (WebM/Matroska),
:class:`OggDemuxer`, :class:`MP4Demuxer` (fragmented MP4), :class:`WavDemuxer` (RIFF/RF64)
and :class:`RawDemuxer` (bare sample frames). They emit :class:`TrackInfo`, then
:class:`Packet` events, :class:`StreamRestarted` when a new stream begins mid-connection, and
:class:`EndOfStream`.
"""

from ._base import DEFAULT_MAX_BUFFERED, Demuxer
from ._events import EndOfStream, Event, Packet, StreamRestarted, TrackInfo
from .mp4 import MP4Demuxer  # Safari MediaRecorder (written alongside ogg.py)
from .ogg import OggDemuxer  # Firefox MediaRecorder
from .raw import RawDemuxer
from .wav import WavDemuxer
from .webm import WebMDemuxer

__all__ = [
    "DEFAULT_MAX_BUFFERED",
    "Demuxer",
    "EndOfStream",
    "Event",
    "MP4Demuxer",
    "OggDemuxer",
    "Packet",
    "RawDemuxer",
    "StreamRestarted",
    "TrackInfo",
    "WavDemuxer",
    "WebMDemuxer",
]
