"""Which demuxer reads which detected container: the one table a new container is added to.

``formats.detect_format`` names the :class:`~streamdiarize.formats.Container`; this maps it
to a factory, so the reassembler never lists containers itself.
"""

from __future__ import annotations

from collections.abc import Callable

from ..formats import AudioFormat, Container
from ._base import Demuxer
from .mp4 import MP4Demuxer
from .ogg import OggDemuxer
from .raw import RawDemuxer
from .wav import WavDemuxer
from .webm import WebMDemuxer

__all__ = ["DEMUXERS", "DemuxerFactory", "make_demuxer"]

#: Builds a demuxer for a detected format, holding at most ``max_buffered`` bytes.
DemuxerFactory = Callable[[AudioFormat, int], Demuxer]


def _headed(cls: type[Demuxer]) -> DemuxerFactory:
    """A container whose own header says everything: the format adds nothing."""
    return lambda _fmt, max_buffered: cls(max_buffered=max_buffered)


def _raw(fmt: AudioFormat, max_buffered: int) -> Demuxer:
    """Bare frames: the declared or detected format is all there is to go by."""
    assert fmt.sample_rate is not None, "raw frames need a decided rate"
    return RawDemuxer(
        sample_format=fmt.sample_format,
        sample_rate=fmt.sample_rate,
        channels=fmt.channels or 1,
        max_buffered=max_buffered,
    )


DEMUXERS: dict[Container, DemuxerFactory] = {
    Container.WEBM: _headed(WebMDemuxer),
    Container.OGG: _headed(OggDemuxer),
    Container.MP4: _headed(MP4Demuxer),
    Container.WAV: _headed(WavDemuxer),
    Container.RAW: _raw,
}


def make_demuxer(fmt: AudioFormat, max_buffered: int) -> Demuxer:
    """The demuxer for ``fmt``'s container."""
    return DEMUXERS[fmt.container](fmt, max_buffered)
