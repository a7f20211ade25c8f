"""What a demuxer hands back from ``Demuxer.feed()``: small frozen events under one base class."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EndOfStream", "Event", "Packet", "StreamRestarted", "TrackInfo"]


class Event:
    """Base class of everything a demuxer returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TrackInfo(Event):
    """The audio track was found: everything a decoder needs to start.

    Attributes:
        codec: ``"opus"``, ``"aac"``, ``"vorbis"``, ``"flac"``, or a raw PCM layout:
            ``"pcm_f32le"``, ``"pcm_f64le"``, ``"pcm_s16le"``, ``"pcm_s24le"``,
            ``"pcm_s32le"``, ``"pcm_u8"``, ``"pcm_f32be"``, ``"pcm_s16be"``, ...
        sample_rate: frames per second the container declares (48000 for Opus).
        channels: interleaved channels per frame.
        codec_private: codec setup bytes: OpusHead for Opus, AudioSpecificConfig for AAC,
            empty for PCM.
    """

    codec: str
    sample_rate: int
    channels: int
    codec_private: bytes = b""


@dataclass(frozen=True, slots=True)
class Packet(Event):
    """One compressed packet (or a run of whole PCM frames) of the audio track.

    Attributes:
        data: the payload, exactly as the codec expects it.
        pts: presentation time of its first sample in seconds, when the container says.
        discard_padding: samples (at the codec's output rate) to drop from the end of this
            packet's decoded audio: Ogg's end-of-stream granule, Matroska's DiscardPadding.
    """

    data: bytes
    pts: float | None = None
    discard_padding: int = 0


@dataclass(frozen=True, slots=True)
class StreamRestarted(Event):
    """A new stream began inside the same byte stream (new EBML header, new Ogg BOS page).

    A :class:`TrackInfo` for the new stream follows; the decoder must be flushed and rebuilt.
    """


@dataclass(frozen=True, slots=True)
class EndOfStream(Event):
    """The container marked its end of stream (Ogg EOS page) or ``Demuxer.flush()`` was called."""
