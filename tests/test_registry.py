"""The container → demuxer registry: every detected format has a demuxer; it is the only list."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

import streamdiarize as sd
from streamdiarize.containers import (
    Demuxer,
    MP4Demuxer,
    OggDemuxer,
    RawDemuxer,
    TrackInfo,
    WavDemuxer,
    WebMDemuxer,
)
from streamdiarize.containers._registry import DEMUXERS, make_demuxer
from streamdiarize.formats import AudioFormat, Container, detect_format

#: The first bytes of each container, as detect_format() sees them.
HEADS = {
    Container.WEBM: (b"\x1a\x45\xdf\xa3" + bytes(8), WebMDemuxer),
    Container.OGG: (b"OggS" + bytes(8), OggDemuxer),
    Container.WAV: (b"RIFF\0\0\0\0WAVE", WavDemuxer),
    Container.MP4: (b"\0\0\0\x18ftypmp42", MP4Demuxer),
}


def test_every_container_maps_to_a_demuxer() -> None:
    assert set(DEMUXERS) == set(Container)
    assert set(HEADS) | {Container.RAW} == set(Container)


@pytest.mark.parametrize("container", list(HEADS))
def test_detected_container_gets_its_demuxer(container: Container) -> None:
    head, expected = HEADS[container]
    fmt = detect_format(head)
    assert fmt.container is container
    demuxer = make_demuxer(fmt, 4096)
    assert type(demuxer) is expected
    assert demuxer._buffer.max_buffered == 4096


def test_raw_frames_get_the_declared_layout() -> None:
    demuxer = make_demuxer(AudioFormat.raw(8000, "int16", 2), 4096)
    assert isinstance(demuxer, RawDemuxer)
    events = demuxer.feed(np.zeros(4, "<i2").tobytes()) + demuxer.flush()
    assert events[0] == TrackInfo("pcm_s16le", 8000, 2)


def test_adding_a_container_is_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reassembler asks the registry only: replacing one entry reroutes that format."""
    built: list[Demuxer] = []

    def spy(fmt: AudioFormat, max_buffered: int) -> Demuxer:
        built.append(WavDemuxer(max_buffered=max_buffered))
        return built[-1]

    monkeypatch.setitem(DEMUXERS, Container.WAV, spy)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.full(1600, 1000, "<i2").tobytes())
    r = sd.ChunkReassembler(target_rate=16000)
    pcm = np.concatenate([r.feed(out.getvalue()), r.flush()])
    assert len(built) == 1
    assert len(pcm) == 1600
