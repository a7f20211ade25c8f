"""WebMDemuxer against real Chromium captures, FFmpeg and mkvmerge output, and hand-built EBML.

Expected values come from elsewhere: PyAV (FFmpeg's Matroska demuxer) for packets and
timestamps, the capture README/meta.json for stream facts, and a small EBML writer below that
builds streams whose frames the test knows.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import struct
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _feeding import WritePipe, capture_dir, capture_messages, feed_in_pieces, piece_sizes
from streamdiarize import (
    CorruptStreamError,
    LimitExceededError,
    StreamDiarizeError,
    UnsupportedFormatError,
)
from streamdiarize.containers import (
    EndOfStream,
    Event,
    Packet,
    StreamRestarted,
    TrackInfo,
    WebMDemuxer,
)
from streamdiarize.containers._base import DEFAULT_MAX_BUFFERED

WEBM_CAPTURES = ["A", "B", "C"]
FIXTURES = capture_dir("A").parent.parent / "webm"

# -- a minimal, independent EBML writer ------------------------------------------------------

EBML, SEGMENT, INFO, TRACKS, CLUSTER = 0x1A45DFA3, 0x18538067, 0x1549A966, 0x1654AE6B, 0x1F43B675
TRACK_ENTRY, AUDIO, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK = 0xAE, 0xE1, 0xA3, 0xA0, 0xA1
CUES, TAGS, VOID = 0x1C53BB6B, 0x1254C367, 0xEC
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
OPUS_HEAD = b"OpusHead\x01\x02" + struct.pack("<HIhB", 312, 48000, 0, 0)


def vint(value: int, length: int | None = None) -> bytes:
    """EBML variable-size integer (shortest form unless ``length`` is given)."""
    if length is None:
        length = next(n for n in range(1, 9) if value < (1 << (7 * n)) - 1)
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def el(eid: int, payload: bytes = b"", *, unknown: bool = False, size: int | None = None) -> bytes:
    """An element; ``size`` overrides the declared size (for broken streams)."""
    declared = UNKNOWN_SIZE if unknown else vint(len(payload) if size is None else size)
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big") + declared + payload


def uint(eid: int, value: int) -> bytes:
    return el(eid, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def sint(eid: int, value: int) -> bytes:
    return el(eid, value.to_bytes(8, "big", signed=True))


def flt(eid: int, value: float, size: int = 4) -> bytes:
    return el(eid, struct.pack(">f" if size == 4 else ">d", value))


def text(eid: int, value: str) -> bytes:
    return el(eid, value.encode())


def ebml_header(doc_type: str = "webm") -> bytes:
    return el(EBML, uint(0x4286, 1) + uint(0x42F7, 1) + text(0x4282, doc_type) + uint(0x4285, 2))


def track_entry(
    number: int = 1,
    codec_id: str = "A_OPUS",
    *,
    track_type: int = 2,
    private: bytes | None = OPUS_HEAD,
    rate: float = 48000.0,
    channels: int = 2,
    bit_depth: int | None = None,
    float_size: int = 4,
    extra: bytes = b"",
) -> bytes:
    audio = flt(0xB5, rate, float_size) + uint(0x9F, channels)
    if bit_depth is not None:
        audio += uint(0x6264, bit_depth)
    body = uint(0xD7, number) + uint(0x73C5, 12345) + uint(0x83, track_type)
    body += text(0x86, codec_id) + (el(0x63A2, private) if private is not None else b"")
    return el(TRACK_ENTRY, body + extra + el(AUDIO, audio))


def block_bytes(track: int, timecode: int, payload: bytes, flags: int = 0x80) -> bytes:
    return vint(track) + struct.pack(">hB", timecode, flags) + payload


def simple_block(track: int, timecode: int, payload: bytes, flags: int = 0x80) -> bytes:
    return el(SIMPLE_BLOCK, block_bytes(track, timecode, payload, flags))


def laced(frames: list[bytes], lacing: str) -> tuple[int, bytes]:
    """(flags, payload) of a laced block holding ``frames``."""
    head = bytes([len(frames) - 1])
    if lacing == "xiph":
        for frame in frames[:-1]:
            head += b"\xff" * (len(frame) // 255) + bytes([len(frame) % 255])
        return 0x82, head + b"".join(frames)
    if lacing == "fixed":
        return 0x84, head + b"".join(frames)
    head += vint(len(frames[0]))
    for before, after in itertools.pairwise(frames[:-1]):
        delta = len(after) - len(before)
        length = next(n for n in range(1, 9) if abs(delta) < (1 << (7 * n - 1)) - 1)
        head += vint(delta + (1 << (7 * length - 1)) - 1, length)
    return 0x86, head + b"".join(frames)


def cluster(timecode: int, *children: bytes, unknown: bool = True) -> bytes:
    return el(CLUSTER, uint(0xE7, timecode) + b"".join(children), unknown=unknown)


def webm(
    *body: bytes,
    tracks: bytes | None = None,
    doc_type: str = "webm",
    scale: int = 1_000_000,
) -> bytes:
    """A whole stream: EBML header, unknown-size Segment, Info, Tracks and ``body``."""
    tracks = el(TRACKS, track_entry()) if tracks is None else tracks
    info = el(INFO, uint(0x2AD7B1, scale) + text(0x4D80, "test"))
    return ebml_header(doc_type) + el(SEGMENT, info + tracks + b"".join(body), unknown=True)


# -- helpers ---------------------------------------------------------------------------------


def packets(events: list[Event]) -> list[Packet]:
    return [e for e in events if isinstance(e, Packet)]


def demux(data: bytes, **kwargs: Any) -> list[Event]:
    demuxer = WebMDemuxer(**kwargs)
    return demuxer.feed(data) + demuxer.flush()


def fail(data: bytes, error: type[Exception], *, pieces: int = 0) -> tuple[Exception, list[Event]]:
    """Feed ``data`` (in pieces of ``pieces`` bytes, 0 = at once), flush, expect ``error``.

    Returns the error and every event delivered, including those drained after the error.
    """
    demuxer = WebMDemuxer()
    events: list[Event] = []
    step = pieces or max(1, len(data))

    def feed_all() -> None:
        for start in range(0, len(data), step):
            events.extend(demuxer.feed(data[start : start + step]))
        events.extend(demuxer.flush())

    with pytest.raises(error) as info:
        feed_all()
    events += demuxer.events_received()
    assert demuxer.failed
    return info.value, events


def pyav_packets(data: bytes) -> list[tuple[bytes, float | None, int]]:
    """FFmpeg's demux of the first audio stream: (payload, pts in s, end-trim samples)."""
    out = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            pts = None if packet.pts is None else float(packet.pts * packet.time_base)
            trim = 0
            if packet.has_sidedata("skip_samples"):
                trim = struct.unpack_from("<I", bytes(packet.get_sidedata("skip_samples")), 4)[0]
            out.append((bytes(packet), pts, trim))
    return out


def assert_matches_pyav(ours: list[Packet], data_parts: list[bytes], tick: float) -> None:
    """Same payloads as FFmpeg; pts within one tick (FFmpeg rounds to the track time base)."""
    reference = [p for part in data_parts for p in pyav_packets(part)]
    assert len(ours) == len(reference)
    assert [p.data for p in ours] == [r[0] for r in reference]
    for packet, (_, pts, trim) in zip(ours, reference, strict=True):
        if packet.pts is not None:  # None only for later Vorbis frames of laced blocks
            assert pts is not None
            assert packet.pts == pytest.approx(pts, abs=tick)
        assert packet.discard_padding == trim


@functools.cache
def capture(name: str) -> tuple[list[bytes], bytes, list[Event]]:
    """A capture's messages, joined bytes, and the events of a one-shot feed."""
    messages = capture_messages(name)
    data = b"".join(messages)
    return messages, data, demux(data)


def meta(name: str) -> dict[str, Any]:
    return json.loads((capture_dir(name) / "meta.json").read_text())  # type: ignore[no-any-return]


# -- the browser captures --------------------------------------------------------------------


@pytest.mark.parametrize("name", WEBM_CAPTURES)
def test_capture_real_messages_and_one_byte_feeds_give_identical_events(name: str) -> None:
    messages, data, one_shot = capture(name)
    as_sent = feed_in_pieces(WebMDemuxer(), data, [len(m) for m in messages])
    by_byte = feed_in_pieces(WebMDemuxer(), data, [1] * len(data))
    assert as_sent == one_shot
    assert by_byte == one_shot
    assert isinstance(one_shot[-1], EndOfStream)


@pytest.mark.parametrize("name", WEBM_CAPTURES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=piece_sizes())
def test_capture_any_split_gives_identical_events(name: str, sizes: list[int]) -> None:
    _, data, one_shot = capture(name)
    assert feed_in_pieces(WebMDemuxer(), data, sizes) == one_shot


def test_capture_a_matches_meta_and_pyav() -> None:
    _, data, events = capture("A")
    analysis = meta("A")["stream_analysis"]
    head = analysis["tracks_per_header"][0]
    assert events[0] == TrackInfo("opus", 48000, 2, bytes.fromhex(head["CodecPrivate_hex"]))
    ours = packets(events)
    assert len(ours) == analysis["simple_blocks"]
    assert [p.pts for p in ours[:4]] == pytest.approx([0.0, 0.06, 0.12, 0.18])
    np.testing.assert_allclose(np.diff([p.pts for p in ours]), 0.06)  # 60 ms Opus packets
    assert_matches_pyav(ours, [data], tick=0.001)


def test_capture_b_restart_and_pyav_on_each_part() -> None:
    messages, data, events = capture("B")
    restart_at = meta("B")["stream_analysis"]["ebml_header_offsets"][1]
    kinds = [type(e) for e in events if not isinstance(e, Packet)]
    assert kinds == [TrackInfo, StreamRestarted, TrackInfo, EndOfStream]
    split = events.index(StreamRestarted())
    first, second = packets(events[:split]), packets(events[split:])
    assert events[split + 1] == events[0]  # same OpusHead again
    assert second[0].pts == 0.0  # the new recording's clock starts over
    assert 9.9 <= (first[-1].pts or 0) < 9.9 + 0.3  # the last Cluster (<= 5 blocks): 9900 ms
    assert_matches_pyav(first, [data[:restart_at]], tick=0.001)
    assert_matches_pyav(second, [data[restart_at:]], tick=0.001)
    # The StreamRestarted comes out of the message that starts with the new EBML header.
    demuxer, seen = WebMDemuxer(), []
    for index, message in enumerate(messages):
        if StreamRestarted() in demuxer.feed(message):
            seen.append(index)
    assert seen == meta("B")["stream_analysis"]["ebml_header_message_index"][1:]


def test_capture_c_pcm_matches_pyav_decode() -> None:
    _, data, events = capture("C")
    assert events[0] == TrackInfo("pcm_f32le", 44100, 2, b"")
    ours = packets(events)
    assert {len(p.data) for p in ours} == {441 * 2 * 4}  # 10 ms stereo float32 per block
    assert_matches_pyav(ours, [data], tick=0.001)
    samples = np.frombuffer(b"".join(p.data for p in ours), "<f4").reshape(-1, 2)
    with av.open(io.BytesIO(data)) as container:
        decoded = np.concatenate([f.to_ndarray().reshape(-1, 2) for f in container.decode(audio=0)])
    np.testing.assert_array_equal(samples, decoded)
    assert len(samples) / 44100 == pytest.approx(3.8, abs=0.05)


def test_capture_a_speed_in_real_messages() -> None:
    """Demux at >= 500x real time (measured ~5000x on 2 cores) on the socket's messages."""
    messages, data, events = capture("A")
    duration = packets(events)[-1].pts + 0.06  # type: ignore[operator]
    best = float("inf")
    for _ in range(5):
        demuxer = WebMDemuxer()
        start = time.perf_counter()
        for message in messages:
            demuxer.feed(message)
        demuxer.flush()
        best = min(best, time.perf_counter() - start)
    print(f"capture A: {len(data) / best / 1e6:.1f} MB/s, {duration / best:.0f}x real time")
    assert duration / best >= 500


# -- FFmpeg (PyAV) and mkvmerge output -------------------------------------------------------


def encode(
    container_format: str,
    codec: str,
    rate: int,
    channels: int,
    *,
    seekable: bool = True,
    options: dict[str, str] | None = None,
    seconds: float = 0.5,
) -> bytes:
    """A real FFmpeg encode of a tone into WebM/Matroska."""
    layout = "stereo" if channels == 2 else "mono"
    sink: Any = io.BytesIO() if seekable else WritePipe()
    with av.open(sink, "w", format=container_format, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        n = int(seconds * rate)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
        for start in range(0, n, 960):
            chunk = np.repeat(tone[start : start + 960], channels)[None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return bytes(sink.getvalue() if seekable else sink.data)


FFMPEG_CASES = {
    "opus_file": ("webm", "libopus", 48000, 2, True, None),
    "opus_pipe": ("webm", "libopus", 48000, 1, False, None),
    "opus_live": ("webm", "libopus", 48000, 2, False, {"live": "1"}),
    "f32_stereo": ("matroska", "pcm_f32le", 44100, 2, True, None),
    "s16_mono_pipe": ("matroska", "pcm_s16le", 16000, 1, False, None),
    "s24_stereo": ("matroska", "pcm_s24le", 8000, 2, True, None),
}


@functools.cache
def ffmpeg_stream(case: str) -> bytes:
    fmt, codec, rate, channels, seekable, options = FFMPEG_CASES[case]
    return encode(fmt, codec, rate, channels, seekable=seekable, options=options)


@pytest.mark.parametrize("case", list(FFMPEG_CASES))
def test_ffmpeg_output_matches_pyav(case: str) -> None:
    _, codec, rate, channels, _, _ = FFMPEG_CASES[case]
    data = ffmpeg_stream(case)
    events = demux(data)
    info = events[0]
    assert isinstance(info, TrackInfo)
    assert (info.codec, info.sample_rate, info.channels) == (
        "opus" if codec == "libopus" else codec,
        rate,
        channels,
    )
    assert_matches_pyav(packets(events), [data], tick=0.001)
    assert feed_in_pieces(WebMDemuxer(), data, [1] * len(data)) == events


def test_ffmpeg_opus_codec_delay_and_discard_padding() -> None:
    """FFmpeg writes CodecDelay = pre-skip (312) and a DiscardPadding on the last block."""
    events = demux(ffmpeg_stream("opus_file"))
    info, ours = events[0], packets(events)
    assert isinstance(info, TrackInfo)
    pre_skip = struct.unpack_from("<H", info.codec_private, 10)[0]
    assert pre_skip == 312  # the OpusHead is passed on untouched
    assert ours[0].pts == pytest.approx(-312 / 48000)  # CodecDelay shifts pts only
    padded = [p for p in ours if p.discard_padding]
    assert padded == [ours[-1]]
    # 0.5 s of audio = 24000 samples; the packets decode to pre-skip + 24000 + padding.
    total = len(ours) * 960  # 20 ms packets
    assert total - pre_skip - ours[-1].discard_padding == 24000


def test_pcm_packets_decode_like_ffmpeg() -> None:
    for case, dtype in [("f32_stereo", "<f4"), ("s16_mono_pipe", "<i2"), ("s24_stereo", "s24")]:
        data = ffmpeg_stream(case)
        raw = b"".join(p.data for p in packets(demux(data)))
        if dtype == "s24":  # FFmpeg decodes s24 to s32 with the sample in the top bytes
            triples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            ours = (triples[:, 0] << 8) | (triples[:, 1] << 16) | (triples[:, 2] << 24)
        else:
            ours = np.frombuffer(raw, dtype)
        with av.open(io.BytesIO(data)) as container:
            frames = [f.to_ndarray() for f in container.decode(audio=0)]
        reference = np.concatenate([f.T.reshape(-1) if f.shape[0] > 1 else f[0] for f in frames])
        np.testing.assert_array_equal(ours, reference, err_msg=case)


def to_unknown_size_clusters(data: bytes) -> bytes:
    """Rewrite every top-level Cluster of a stream to the unknown size, as Chromium writes."""
    segment = data.index(SEGMENT.to_bytes(4, "big"))
    pos = segment + 12  # FFmpeg writes 8-byte Segment sizes
    out = bytearray(data[:segment] + SEGMENT.to_bytes(4, "big") + UNKNOWN_SIZE)
    while pos < len(data):
        id_length = 9 - data[pos].bit_length()
        size_length = 9 - data[pos + id_length].bit_length()
        end_of_header = pos + id_length + size_length
        size = int.from_bytes(data[pos + id_length : end_of_header], "big")
        size &= (1 << (7 * size_length)) - 1
        eid = int.from_bytes(data[pos : pos + id_length], "big")
        header = data[pos : pos + id_length] + (UNKNOWN_SIZE if eid == CLUSTER else b"")
        out += header + (b"" if eid == CLUSTER else data[pos + id_length : end_of_header])
        out += data[end_of_header : end_of_header + size]
        pos = end_of_header + size
    return bytes(out)


@pytest.mark.parametrize("case", ["opus_file", "f32_stereo"])
def test_ffmpeg_output_with_unknown_size_clusters(case: str) -> None:
    original = ffmpeg_stream(case)
    rewritten = to_unknown_size_clusters(original)
    assert rewritten.count(CLUSTER.to_bytes(4, "big") + UNKNOWN_SIZE) >= 1
    assert demux(rewritten) == demux(original)
    assert_matches_pyav(packets(demux(rewritten)), [rewritten], tick=0.001)


def simple_block_lacings(data: bytes) -> set[int]:
    """Lacing bits of what look like track-1 SimpleBlocks (A3, size, 81, timecode, flags)."""
    found = set()
    for i in range(len(data) - 12):
        if data[i] == SIMPLE_BLOCK and data[i + 1]:
            at = i + 1 + 9 - data[i + 1].bit_length()
            if data[at] == 0x81:
                found.add(data[at + 3] & 0x06)
    return found


@pytest.mark.parametrize(
    ("fixture", "codec", "lacing_flag"),
    [
        ("opus_ebml_laced.mka", "opus", 0x06),
        ("opus_fixed_laced.mka", "opus", 0x04),
        ("aac_xiph_laced.mka", "aac", 0x02),
    ],
)
def test_mkvmerge_laced_files_match_pyav(fixture: str, codec: str, lacing_flag: int) -> None:
    data = (FIXTURES / fixture).read_bytes()
    events = demux(data)
    assert isinstance(events[0], TrackInfo)
    assert events[0].codec == codec
    assert lacing_flag in simple_block_lacings(data)  # the lacing the fixture is named after
    ours = packets(events)
    assert all(p.pts is not None for p in ours)
    assert_matches_pyav(ours, [data], tick=20832e-9)  # mkvmerge's TimecodeScale for 48 kHz
    assert feed_in_pieces(WebMDemuxer(), data, [1] * len(data)) == events


# -- hand-built streams: features ------------------------------------------------------------

FRAMES = [b"a" * 3, b"b" * 300, b"c" * 1, b"d" * 254, b"e" * 255, b"f" * 256, b"g" * 40]


@pytest.mark.parametrize("lacing", ["xiph", "ebml"])
def test_lacing_recovers_each_frame_with_block_duration_timing(lacing: str) -> None:
    flags, payload = laced(FRAMES, lacing)
    group = el(BLOCK_GROUP, el(BLOCK, block_bytes(1, 100, payload, flags & 0x7F)) + uint(0x9B, 70))
    events = demux(webm(cluster(1000, group)))
    ours = packets(events)
    assert [p.data for p in ours] == FRAMES
    assert [p.pts for p in ours] == pytest.approx([1.1 + i * 0.01 for i in range(len(FRAMES))])


def test_fixed_lacing_and_opus_toc_timing() -> None:
    frames = [bytes([0xFC]) + bytes([i]) * 59 for i in range(4)]  # CELT 20 ms, code 0
    flags, payload = laced(frames, "fixed")
    ours = packets(demux(webm(cluster(0, simple_block(1, 0, payload, flags)))))
    assert [p.data for p in ours] == frames
    assert [p.pts for p in ours] == pytest.approx([0.0, 0.02, 0.04, 0.06])


@pytest.mark.parametrize(
    ("count", "payload"),
    [
        (256, b"\x01" * 255 + b"x"),  # Xiph: 255 one-byte frames claimed, 1 byte of data left
        (3, b"\xff" * 40 + b"\x01"),  # Xiph: a 255-run that swallows the whole block
        (2, b"\x00" + b"abc"),  # Xiph: an empty frame
    ],
)
def test_xiph_lacing_bombs_are_rejected(count: int, payload: bytes) -> None:
    body = bytes([count - 1]) + payload
    data = webm(cluster(0, simple_block(1, 0, body, 0x82)))
    start = time.perf_counter()
    error, events = fail(data, CorruptStreamError)
    assert time.perf_counter() - start < 0.5
    assert "laced block" in str(error)
    assert packets(events) == []


@pytest.mark.parametrize(
    ("flags", "payload"),
    [
        (0x86, b"\x03" + vint(10_000) + b"x" * 50),  # EBML: first frame bigger than the block
        (0x86, b"\x02" + vint(5) + vint(0x1F, 1) + b"x" * 30),  # EBML: negative second size
        (0x84, b"\x02" + b"x" * 10),  # fixed: 10 bytes do not split into 3 frames
        (0x84, b"\xff" + b"x" * 10),  # fixed: 256 frames in 10 bytes
        (0x82, b""),  # no frame count at all
    ],
)
def test_bad_lacing_is_corrupt(flags: int, payload: bytes) -> None:
    fail(webm(cluster(0, simple_block(1, 0, payload, flags))), CorruptStreamError)


def test_block_group_discard_padding_and_codec_delay() -> None:
    delay = el(0x56AA, (6_500_000).to_bytes(4, "big"))
    tracks = el(TRACKS, track_entry(extra=delay))
    group = el(
        BLOCK_GROUP, el(BLOCK, block_bytes(1, 40, b"\xfc" + b"z" * 9)) + sint(0x75A2, 3500000)
    )
    events = demux(webm(cluster(0, simple_block(1, 20, b"\xfc" + b"y" * 9), group), tracks=tracks))
    assert events[0] == TrackInfo("opus", 48000, 2, OPUS_HEAD)
    first, second = packets(events)
    assert [first.pts, second.pts] == pytest.approx([0.0135, 0.0335])  # minus 6.5 ms delay
    assert [first.discard_padding, second.discard_padding] == [0, 168]  # 3.5 ms at 48 kHz


def test_timecode_scale_and_8_byte_sampling_frequency() -> None:
    tracks = el(
        TRACKS,
        track_entry(
            codec_id="A_PCM/INT/LIT",
            private=None,
            rate=22050.0,
            channels=1,
            bit_depth=16,
            float_size=8,
        ),
    )
    data = webm(cluster(7, simple_block(1, 3, b"\x00\x01" * 4)), tracks=tracks, scale=500_000)
    events = demux(data)
    assert events[0] == TrackInfo("pcm_s16le", 22050, 1, b"")
    assert packets(events)[0].pts == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("codec_id", "bit_depth", "expected"),
    [
        ("A_PCM/FLOAT/IEEE", 32, "pcm_f32le"),
        ("A_PCM/FLOAT/IEEE", 64, "pcm_f64le"),
        ("A_PCM/INT/LIT", 8, "pcm_u8"),
        ("A_PCM/INT/LIT", 16, "pcm_s16le"),
        ("A_PCM/INT/LIT", 24, "pcm_s24le"),
        ("A_PCM/INT/LIT", 32, "pcm_s32le"),
        ("A_PCM/INT/BIG", 16, "pcm_s16be"),
        ("A_PCM/INT/BIG", 24, "pcm_s24be"),
        ("A_PCM/INT/BIG", 32, "pcm_s32be"),
        ("A_AAC", None, "aac"),
        ("A_VORBIS", None, "vorbis"),
    ],
)
def test_codec_ids(codec_id: str, bit_depth: int | None, expected: str) -> None:
    private = b"\x12\x10" if not codec_id.startswith("A_PCM") else None
    tracks = el(TRACKS, track_entry(codec_id=codec_id, private=private, bit_depth=bit_depth))
    info = demux(webm(tracks=tracks))[0]
    assert info == TrackInfo(expected, 48000, 2, private or b"")


@pytest.mark.parametrize(
    ("codec_id", "bit_depth"), [("A_MPEG/L3", None), ("A_AC3", None), ("A_PCM/INT/LIT", 12)]
)
def test_unsupported_codec_ids_are_named(codec_id: str, bit_depth: int | None) -> None:
    tracks = el(TRACKS, track_entry(codec_id=codec_id, private=b"", bit_depth=bit_depth))
    error, _ = fail(webm(tracks=tracks), UnsupportedFormatError)
    assert codec_id in str(error)


def test_only_the_first_audio_track_is_demuxed() -> None:
    video_entry = track_entry(1, "V_VP8", track_type=1, private=None)
    tracks = el(TRACKS, video_entry + track_entry(2) + track_entry(3))
    video = simple_block(1, 0, b"V" * 5000)
    data = webm(
        cluster(0, video, simple_block(2, 0, b"\xfcA"), simple_block(3, 0, b"\xfcB"), video),
        tracks=tracks,
    )
    events = demux(data, max_buffered=4096)  # the 5 KB video blocks are skipped, not buffered
    assert [p.data for p in packets(events)] == [b"\xfcA"]


def content_encodings(algo: int, settings: bytes = b"", encoding_type: int = 0) -> bytes:
    compression = el(0x5034, uint(0x4254, algo) + el(0x4255, settings))
    return el(0x6D80, el(0x6240, uint(0x5033, encoding_type) + compression))


def test_header_stripping_is_undone() -> None:
    tracks = el(TRACKS, track_entry(extra=content_encodings(3, b"\xfc\x01")))
    data = webm(cluster(0, simple_block(1, 0, b"AB"), simple_block(1, 20, b"C")), tracks=tracks)
    assert [p.data for p in packets(demux(data))] == [b"\xfc\x01AB", b"\xfc\x01C"]


@pytest.mark.parametrize(("algo", "kind"), [(0, 0), (1, 0), (3, 1)])
def test_compression_and_encryption_are_unsupported(algo: int, kind: int) -> None:
    tracks = el(TRACKS, track_entry(extra=content_encodings(algo, b"x", kind)))
    fail(webm(tracks=tracks), UnsupportedFormatError)


def pcm_tracks(channels: int = 2) -> bytes:
    entry = track_entry(
        codec_id="A_PCM/INT/LIT", private=None, rate=8000.0, channels=channels, bit_depth=16
    )
    return el(TRACKS, entry)


def test_laced_pcm_frames_are_timed_by_their_length() -> None:
    frames = [bytes(4 * 80), bytes(4 * 40), bytes(4 * 8)]  # 10 ms, 5 ms, 1 ms of stereo s16
    flags, payload = laced(frames, "xiph")
    ours = packets(demux(webm(cluster(0, simple_block(1, 0, payload, flags)), tracks=pcm_tracks())))
    assert [p.pts for p in ours] == pytest.approx([0.0, 0.01, 0.015])


def test_pcm_block_of_partial_frames_is_corrupt() -> None:
    data = webm(cluster(0, simple_block(1, 0, bytes(4 * 10 + 2))), tracks=pcm_tracks())
    error, _ = fail(data, CorruptStreamError)
    assert "not a whole number of 4-byte frames" in str(error)


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (el(SIMPLE_BLOCK, b"\x81\x00"), "only 2 bytes"),
        (el(SIMPLE_BLOCK, b"\x00\x00\x00\x80"), "invalid track number"),
        (el(SIMPLE_BLOCK, b"\x40\x01\x00\x00"), "invalid track number"),
    ],
)
def test_malformed_blocks_are_corrupt(block: bytes, match: str) -> None:
    error, _ = fail(webm(cluster(0, block)), CorruptStreamError)
    assert match in str(error)


def test_repeated_tracks_element_keeps_the_first() -> None:
    other = el(TRACKS, track_entry(1, "A_VORBIS", private=b"\x02"))
    events = demux(webm(other, cluster(0, simple_block(1, 0, b"\xfc"))))
    assert [type(e) for e in events] == [TrackInfo, Packet, EndOfStream]
    assert events[0] == TrackInfo("opus", 48000, 2, OPUS_HEAD)


def test_newer_ebml_reader_version_is_unsupported() -> None:
    header = el(EBML, uint(0x42F7, 2) + text(0x4282, "webm"))
    error, _ = fail(header, UnsupportedFormatError)
    assert "reader version 2" in str(error)


def test_no_audio_track_is_unsupported() -> None:
    tracks = el(TRACKS, track_entry(1, "V_VP9", track_type=1, private=None))
    error, _ = fail(webm(tracks=tracks), UnsupportedFormatError)
    assert "V_VP9" in str(error)


def test_matroska_doctype_accepted_other_doctypes_unsupported() -> None:
    assert isinstance(demux(webm(doc_type="matroska"))[0], TrackInfo)
    error, _ = fail(webm(doc_type="mkv3d"), UnsupportedFormatError)
    assert "mkv3d" in str(error)


def test_unknown_size_cluster_ends_at_level_1_elements_and_skips_them() -> None:
    cues = el(CUES, b"\xbb" + vint(200) + b"\0" * 200)
    tags = el(TAGS, b"\x73\x73" + vint(10) + b"\0" * 10)
    void = el(VOID, b"\0" * 100)
    body = [
        cluster(0, simple_block(1, 0, b"\xfc1"), void),
        cues,
        cluster(100, el(0x4ABC, b"?" * 9), simple_block(1, 0, b"\xfc2")),  # unknown ID: a child
        tags,
        cluster(200, simple_block(1, 5, b"\xfc3"), unknown=False),
        void,
    ]
    ours = packets(demux(webm(*body)))
    assert [(p.data, p.pts) for p in ours] == [(b"\xfc1", 0.0), (b"\xfc2", 0.1), (b"\xfc3", 0.205)]


def test_synthetic_restart_mid_cluster() -> None:
    first = webm(cluster(0, simple_block(1, 0, b"\xfc1")))
    second = webm(cluster(0, simple_block(1, 0, b"\xfc2")), doc_type="matroska")
    events = demux(first + second)
    assert [type(e) for e in events] == [
        TrackInfo,
        Packet,
        StreamRestarted,
        TrackInfo,
        Packet,
        EndOfStream,
    ]


def test_large_skipped_elements_are_not_buffered() -> None:
    """A 5 MB Void and 5 MB of Tags stream through with almost nothing held."""
    big = 5 << 20
    head = webm(cluster(0, simple_block(1, 0, b"\xfc1")))
    tail = cluster(60, simple_block(1, 0, b"\xfc2"))
    demuxer, held, events = WebMDemuxer(max_buffered=1 << 20), 0, []
    chunk = b"\0" * 65536
    events += demuxer.feed(head + el(VOID, size=big)[:12])
    for part in (el(VOID, size=big)[12:], el(TAGS, size=big)):
        events += demuxer.feed(part)
        for _ in range(big // len(chunk)):
            events += demuxer.feed(chunk)
            held = max(held, demuxer.buffered)
    events += demuxer.feed(tail) + demuxer.flush()
    assert held == 0
    assert [p.data for p in packets(events)] == [b"\xfc1", b"\xfc2"]


# -- hand-built streams: errors --------------------------------------------------------------


def test_two_gigabyte_block_fails_fast_without_allocating() -> None:
    data = webm(cluster(0)) + b"\xa3" + vint(2 << 30, 8) + b"\x81\x00\x00\x80"
    tracemalloc.start()
    start = time.perf_counter()
    error, events = fail(data, LimitExceededError)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert str(2 << 30) in str(error)
    assert str(DEFAULT_MAX_BUFFERED) in str(error)
    assert elapsed < 0.1
    assert peak < 1 << 20
    assert isinstance(events[0], TrackInfo)


def test_two_gigabyte_tracks_element_fails_on_its_header() -> None:
    data = ebml_header() + el(SEGMENT, unknown=True) + el(TRACKS, size=2 << 30)
    demuxer = WebMDemuxer()
    with pytest.raises(LimitExceededError, match=f"{2 << 30} bytes.*{DEFAULT_MAX_BUFFERED}"):
        demuxer.feed(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00", "not a WebM"),
        (b"RIFF", "not a WebM"),
        (b"\x1a\x45\xdf\xa4", "not a WebM"),
        (ebml_header() + b"\x00\x81", "invalid EBML element ID"),
        (ebml_header() + b"\x05\x81", "invalid EBML element ID"),
        (ebml_header() + b"\xff\x81", "reserved"),
        (ebml_header() + b"\x18\x53\x80\x67\x00", "invalid size"),
        (ebml_header() + b"\x1f\x43\xb6\x75\x81\x00", "where a Segment"),
        (webm(simple_block(1, 0, b"x")), "outside a Cluster"),
        (webm(el(0xEC, unknown=True)), "unknown size"),
        (el(EBML, text(0x4282, "webm"), unknown=True), "unknown size"),
    ],
)
def test_broken_streams_raise_corrupt(data: bytes, match: str) -> None:
    error, _ = fail(data, CorruptStreamError)
    assert match in str(error)
    error, _ = fail(data, CorruptStreamError, pieces=1)  # and byte by byte
    assert match in str(error)


def test_garbage_fails_on_its_first_byte() -> None:
    with pytest.raises(CorruptStreamError, match="starts with 47"):
        WebMDemuxer().feed(b"G")


def test_block_before_tracks_is_corrupt() -> None:
    data = ebml_header() + el(SEGMENT, cluster(0, simple_block(1, 0, b"x")), unknown=True)
    error, _ = fail(data, CorruptStreamError)
    assert "before the Tracks" in str(error)


def test_element_overrunning_its_parent_is_corrupt() -> None:
    inner = simple_block(1, 0, b"\xfc" * 20)
    data = webm(el(CLUSTER, uint(0xE7, 0) + inner, size=10))
    error, _ = fail(data, CorruptStreamError)
    assert "overruns its Cluster" in str(error)


def test_truncation_mid_element_keeps_earlier_packets_and_stays_failed() -> None:
    data = webm(cluster(0, simple_block(1, 0, b"\xfc1"), simple_block(1, 60, b"\xfc" * 500)))
    demuxer = WebMDemuxer()
    events = demuxer.feed(data[:-100])
    with pytest.raises(CorruptStreamError, match="stream ends inside a SimpleBlock"):
        demuxer.flush()
    assert [p.data for p in packets(events + demuxer.events_received())] == [b"\xfc1"]
    with pytest.raises(CorruptStreamError):
        demuxer.feed(b"more")
    with pytest.raises(CorruptStreamError):
        demuxer.flush()


def test_truncated_known_size_cluster_is_corrupt() -> None:
    data = webm(
        cluster(0, simple_block(1, 0, b"\xfc1"), simple_block(1, 1, b"\xfc2"), unknown=False)
    )
    cut = data[: -len(simple_block(1, 1, b"\xfc2"))]
    error, events = fail(cut, CorruptStreamError)
    assert "inside a Cluster" in str(error)
    assert [p.data for p in packets(events)] == [b"\xfc1"]


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 40_000))
def test_truncated_capture_delivers_a_prefix_of_the_packets(cut: int) -> None:
    _, data, one_shot = capture("A")
    demuxer, events = WebMDemuxer(), []
    try:
        events += demuxer.feed(data[:cut])
        events += demuxer.flush()
    except CorruptStreamError:
        events += demuxer.events_received()
    got = packets(events)
    assert got == packets(one_shot)[: len(got)]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_bit_flips_only_raise_typed_errors(data: st.DataObject) -> None:
    _, original, _ = capture(data.draw(st.sampled_from(WEBM_CAPTURES)))
    stream = bytearray(original[: data.draw(st.integers(0, 60_000))])
    for _ in range(data.draw(st.integers(1, 8))):
        if stream:
            stream[data.draw(st.integers(0, len(stream) - 1))] ^= data.draw(st.integers(1, 255))
    sizes = data.draw(piece_sizes(max_piece=8192, max_pieces=20))
    demuxer = WebMDemuxer(max_buffered=1 << 20)
    try:
        feed_in_pieces(demuxer, bytes(stream), sizes)
    except StreamDiarizeError:
        assert demuxer.failed


# -- memory ----------------------------------------------------------------------------------


def one_hour_of_clusters() -> Iterator[bytes]:
    """Chromium-like WebM: 30,000 unknown-size Clusters of two 60 ms blocks (1 hour)."""
    yield webm()
    for index in range(30_000):
        first = b"\xfc" + bytes([index % 251]) * (150 + index % 300)
        second = b"\xfc" + bytes([index % 241]) * (300 - index % 200)
        yield cluster(index * 120, simple_block(1, 0, first), simple_block(1, 60, second))


@pytest.mark.slow
def test_one_hour_stream_uses_bounded_memory() -> None:
    demuxer = WebMDemuxer()
    pending, held, count, last = b"", 0, 0, None
    tracemalloc.start()
    for clusters in one_hour_of_clusters():
        pending += clusters
        if len(pending) > 1100:  # ~120 ms messages that end one byte into the next element
            message, pending = pending[:1101], pending[1101:]
            events = demuxer.feed(message)
            held = max(held, demuxer.buffered)
            count += len(events)
            last = events[-1] if events else last
    count += len(demuxer.feed(pending)) + len(demuxer.flush()) - 1  # minus EndOfStream
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 1 + 60_000
    assert isinstance(last, Packet)
    assert last.pts == pytest.approx(3600 - 0.06 - 0.12, abs=0.13)
    assert held < 1100 + 600  # one message plus one block
    assert peak < 256 << 10
