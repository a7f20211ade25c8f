"""Ogg Opus demuxing: Firefox's real capture G, chained recordings, and every way a page breaks.

Expected values come from outside the demuxer: FFmpeg's Ogg demuxer (PyAV container API) for
packets and timestamps, FFmpeg's Opus decoder for packet durations, the granule position read
straight from the last page header, and a bit-by-bit CRC written here from RFC 3533.
"""

from __future__ import annotations

import io
import json
import struct
import time
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _feeding import (
    Edit,
    assert_only_typed_errors,
    capture_dir,
    edit_lists,
    feed_in_pieces,
    mutate,
    piece_sizes,
)
from streamdiarize import (
    CorruptStreamError,
    LimitExceededError,
    StreamDiarizeError,
    UnsupportedFormatError,
)
from streamdiarize.containers import (
    EndOfStream,
    Event,
    OggDemuxer,
    Packet,
    StreamRestarted,
    TrackInfo,
)
from streamdiarize.containers._opus_toc import opus_packet_samples
from streamdiarize.containers.ogg import ogg_crc32

OGG_DATA = Path(__file__).parent / "data" / "ogg"
G_DIR = capture_dir("G")
G = (G_DIR / "stream.bin").read_bytes()
G_SIZES: list[int] = json.loads((G_DIR / "sizes.json").read_text())
SPEECH = (OGG_DATA / "speech_mono.opus").read_bytes()  # mono, 20 ms packets
TONE = (OGG_DATA / "tone_stereo_40ms.opus").read_bytes()  # stereo, 40 ms packets, one page


# --- independent references ----------------------------------------------------------------


def reference_crc(data: bytes) -> int:
    """RFC 3533 §6 CRC-32, bit by bit: polynomial 0x04C11DB7, MSB first, init 0, no XOR out."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def split_pages(data: bytes) -> list[bytes]:
    """Cut a well-formed Ogg stream into its pages (header fields per RFC 3533 §6)."""
    pages, pos = [], 0
    while pos < len(data):
        nsegs = data[pos + 26]
        end = pos + 27 + nsegs + sum(data[pos + 27 : pos + 27 + nsegs])
        pages.append(data[pos:end])
        pos = end
    return pages


def page_granule(page: bytes) -> int:
    return int(struct.unpack_from("<q", page, 6)[0])


def ffmpeg_packets(data: bytes) -> list[av.Packet]:
    """The audio packets FFmpeg's Ogg demuxer finds (headers excluded)."""
    with av.open(io.BytesIO(data)) as container:
        return [p for p in container.demux() if p.size]


def decoded_samples(packets: list[bytes], channels: int) -> list[int]:
    """Samples each packet decodes to, by FFmpeg's Opus decoder (no trimming applied)."""
    ctx = av.CodecContext.create("opus", "r")
    ctx.sample_rate = 48000
    ctx.layout = "stereo" if channels == 2 else "mono"
    return [sum(f.samples for f in ctx.decode(av.Packet(p))) for p in packets]


# --- building pages by hand --------------------------------------------------------------


def make_page(
    packets: list[bytes],
    *,
    serial: int = 0x1234,
    seq: int = 0,
    granule: int = 0,
    flags: int = 0,
    unfinished: bool = False,
) -> bytes:
    """One Ogg page holding ``packets``; with ``unfinished`` the last one continues on."""
    lacing = bytearray()
    for i, packet in enumerate(packets):
        lacing += b"\xff" * (len(packet) // 255)
        if not (unfinished and i == len(packets) - 1):
            lacing.append(len(packet) % 255)
        elif len(packet) % 255:
            raise ValueError("an unfinished packet piece must be a multiple of 255 bytes")
    assert len(lacing) <= 255
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(lacing))
    page = header + bytes(lacing) + b"".join(packets)
    # ogg_crc32 is checked against reference_crc below; the bitwise loop is too slow for MBs.
    return page[:22] + struct.pack("<I", ogg_crc32(page)) + page[26:]


def opus_head(channels: int = 1, pre_skip: int = 312) -> bytes:
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, 48000, 0, 0)


OPUS_TAGS = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
CELT_20MS = b"\xf8"  # TOC: config 31 (CELT FB 20 ms), mono, code 0


def opus_stream(pages: list[list[bytes]], *, serial: int = 0x1234, pre_skip: int = 312) -> bytes:
    """BOS + tags pages, then one page per list of 20 ms packets; EOS on the last."""
    out = [
        make_page([opus_head(pre_skip=pre_skip)], serial=serial, flags=0x02),
        make_page([OPUS_TAGS], serial=serial, seq=1),
    ]
    granule = 0
    for i, packets in enumerate(pages):
        granule += 960 * len(packets)
        last = i == len(pages) - 1
        out.append(make_page(packets, serial=serial, seq=2 + i, granule=granule, flags=0x04 * last))
    return b"".join(out)


def packets_of(events: list[Event]) -> list[Packet]:
    return [e for e in events if isinstance(e, Packet)]


def demux(data: bytes, **kwargs: int) -> list[Event]:
    demuxer = OggDemuxer(**kwargs)
    return demuxer.feed(data) + demuxer.flush()


G_EVENTS = demux(G)


# --- CRC and Opus TOC ----------------------------------------------------------------------


@settings(max_examples=50)
@given(st.binary(max_size=600))
def test_crc_equals_the_bitwise_definition(data: bytes) -> None:
    assert ogg_crc32(data) == reference_crc(data)


def test_crc_of_every_real_firefox_page_matches_its_stored_value() -> None:
    pages = split_pages(G)
    assert len(pages) == 63
    for page in pages:
        zeroed = page[:22] + b"\0\0\0\0" + page[26:]
        assert ogg_crc32(zeroed) == struct.unpack_from("<I", page, 22)[0]


def test_crc_is_fast() -> None:
    data = bytes(range(256)) * 256  # 64 KiB, larger than any page
    start = time.perf_counter()
    for _ in range(50):
        ogg_crc32(data)
    rate = 50 * len(data) / (time.perf_counter() - start)
    assert rate > 50e6, f"{rate / 1e6:.0f} MB/s"  # a per-byte Python loop manages ~10 MB/s


@pytest.mark.parametrize(
    ("packet", "ms"),
    [
        (bytes([0 << 3]), 10),  # SILK NB 10 ms
        (bytes([3 << 3]), 60),  # SILK NB 60 ms
        (bytes([10 << 3 | 1, 0]), 80),  # SILK WB 40 ms, code 1: two frames
        (bytes([13 << 3 | 2, 1]), 40),  # Hybrid SWB 20 ms, code 2: two frames
        (bytes([16 << 3]), 2.5),  # CELT NB 2.5 ms
        (bytes([31 << 3 | 3, 6]), 120),  # CELT FB 20 ms, code 3: six frames
        (bytes([28 << 3 | 3, 0x80 | 0x40 | 3]), 7.5),  # code 3, VBR+padding flags, 3 × 2.5 ms
        (bytes([11 << 3 | 3, 2]), 120),  # SILK WB 60 ms × 2
    ],
)
def test_opus_duration_from_toc(packet: bytes, ms: float) -> None:
    assert opus_packet_samples(packet) == round(ms * 48)


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        bytes([31 << 3 | 3]),
        bytes([31 << 3 | 3, 0]),
        bytes([3 << 3 | 3, 3]),
        bytes([31 << 3 | 3, 7]),
    ],
    ids=["empty", "code3-no-count", "zero-frames", "180ms", "140ms"],
)
def test_opus_duration_of_malformed_packets_is_unknown(packet: bytes) -> None:
    assert opus_packet_samples(packet) is None


# --- capture G: Firefox MediaRecorder -----------------------------------------------------


def test_g_packets_equal_ffmpeg_demux() -> None:
    ours = packets_of(G_EVENTS)
    theirs = ffmpeg_packets(G)
    assert len(ours) == len(theirs) > 800
    assert [p.data for p in ours] == [bytes(p) for p in theirs]
    assert [p.pts for p in ours] == pytest.approx([float(p.pts * p.time_base) for p in theirs])


def test_g_track_info_is_the_opus_head_of_the_first_page() -> None:
    info = G_EVENTS[0]
    first_page = split_pages(G)[0]
    assert info == TrackInfo("opus", 48000, 1, first_page[28:])
    assert info.codec_private[:8] == b"OpusHead"
    assert struct.unpack_from("<H", info.codec_private, 10)[0] == 312  # pre-skip per README


def test_g_end_trim_matches_the_last_granule() -> None:
    """Decoded samples minus pre-skip minus end trim must equal the EOS granule minus pre-skip."""
    packets = packets_of(G_EVENTS)
    durations = decoded_samples([p.data for p in packets], channels=1)
    pre_skip = struct.unpack_from("<H", G_EVENTS[0].codec_private, 10)[0]  # type: ignore[union-attr]
    last_page = split_pages(G)[-1]
    assert last_page[5] & 0x04  # the EOS flag
    expected = page_granule(last_page) - pre_skip
    assert expected == 855_552  # README: 17.824 s
    trims = [p.discard_padding for p in packets]
    assert sum(durations) - pre_skip - sum(trims) == expected
    assert trims[-1] > 0  # the trim is shorter than one 20 ms packet
    assert not any(trims[:-1])
    assert G_EVENTS[-1] == EndOfStream()
    assert G_EVENTS[-2] is packets[-1]
    assert sum(isinstance(e, EndOfStream) for e in G_EVENTS) == 1


def test_g_pts_are_granule_minus_pre_skip_at_packet_start() -> None:
    packets = packets_of(G_EVENTS)
    durations = decoded_samples([p.data for p in packets], channels=1)
    starts = np.concatenate(([0], np.cumsum(durations)[:-1]))
    assert [p.pts for p in packets] == pytest.approx(list((starts - 312) / 48000))


def test_g_fed_as_its_real_websocket_messages() -> None:
    assert len(G_SIZES) == 179
    assert G_SIZES.count(0) == 117
    demuxer = OggDemuxer()
    starts = np.cumsum([0, *G_SIZES[:-1]])
    per_message = [demuxer.feed(G[a : a + n]) for a, n in zip(starts, G_SIZES, strict=True)]
    assert all(events == [] for events, n in zip(per_message, G_SIZES, strict=True) if n == 0)
    # Every non-empty message is one whole page (README), so each yields its events at once.
    assert all(events for events, n in zip(per_message, G_SIZES, strict=True) if n > 0)
    assert [e for events in per_message for e in events] + demuxer.flush() == G_EVENTS


def test_g_fed_one_byte_at_a_time() -> None:
    assert feed_in_pieces(OggDemuxer(), G, [1] * len(G)) == G_EVENTS


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(piece_sizes(max_piece=9000))
def test_g_any_split_gives_the_same_events(sizes: list[int]) -> None:
    assert feed_in_pieces(OggDemuxer(), G, sizes) == G_EVENTS


def test_g_speed_as_real_messages() -> None:
    start = time.perf_counter()
    for _ in range(5):
        feed_in_pieces(OggDemuxer(), G, G_SIZES)
    elapsed = (time.perf_counter() - start) / 5
    realtime = 855_552 / 48000 / elapsed
    assert realtime > 500, f"{realtime:.0f}x real time, {len(G) / elapsed / 1e6:.1f} MB/s"


# --- chained and multiplexed streams ------------------------------------------------------


def test_two_recordings_back_to_back_restart() -> None:
    events = demux(SPEECH + TONE)
    first, second = demux(SPEECH), demux(TONE)
    assert events == [*first, StreamRestarted(), *second]
    assert [type(e) for e in events if not isinstance(e, Packet)] == [
        TrackInfo,
        EndOfStream,
        StreamRestarted,
        TrackInfo,
        EndOfStream,
    ]
    infos = [e for e in events if isinstance(e, TrackInfo)]
    assert [i.channels for i in infos] == [1, 2]
    for part, data in ((first, SPEECH), (second, TONE)):
        assert [p.data for p in packets_of(part)] == [bytes(p) for p in ffmpeg_packets(data)]


@settings(max_examples=25, deadline=None)
@given(piece_sizes(max_piece=3000))
def test_chained_stream_any_split(sizes: list[int]) -> None:
    assert feed_in_pieces(OggDemuxer(), SPEECH + TONE, sizes) == demux(SPEECH + TONE)


def test_restart_without_eos_page() -> None:
    """MediaRecorder-like: a new BOS page arrives although the old stream never ended."""
    cut = b"".join(split_pages(SPEECH)[:-1])
    events = demux(cut + TONE)
    assert StreamRestarted() in events
    restart = events.index(StreamRestarted())
    assert packets_of(events[restart:]) == packets_of(demux(TONE))
    assert len(packets_of(events[:restart])) == len(ffmpeg_packets(SPEECH)) - 1


def test_multiplexed_streams_keep_the_first_opus_stream() -> None:
    speech, tone = split_pages(SPEECH), split_pages(TONE)
    interleaved = [speech[0], tone[0]]  # all BOS pages first (RFC 3533 grouping)
    rest_s, rest_t = speech[1:], tone[1:]
    while rest_s or rest_t:
        interleaved += rest_s[:1] + rest_t[:1]
        rest_s, rest_t = rest_s[1:], rest_t[1:]
    assert demux(b"".join(interleaved)) == demux(SPEECH)


def test_other_codecs_beside_opus_are_skipped() -> None:
    vorbis_bos = make_page([b"\x01vorbis" + bytes(22)], serial=77, flags=0x02)
    vorbis_data = make_page([b"\x05vorbis-setup"], serial=77, seq=1)
    pages = split_pages(SPEECH)
    events = demux(vorbis_bos + pages[0] + vorbis_data + b"".join(pages[1:]))
    assert events == demux(SPEECH)


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"\x01vorbis" + bytes(22), "Vorbis"),
        (b"Speex   " + bytes(72), "Speex"),
        (b"\x7fFLAC\x01\x00\x00\x01fLaC" + bytes(38), "FLAC"),
    ],
)
def test_unsupported_codecs_are_named(head: bytes, name: str) -> None:
    bos = make_page([head], flags=0x02)
    demuxer = OggDemuxer()
    assert demuxer.feed(bos) == []
    with pytest.raises(UnsupportedFormatError, match=name):
        demuxer.feed(make_page([b"more headers"], seq=1))
    only_bos = OggDemuxer()
    only_bos.feed(bos)
    with pytest.raises(UnsupportedFormatError, match=name):
        only_bos.flush()


def test_real_ogg_flac_is_refused_by_name() -> None:
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as container:
        stream = container.add_stream("flac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 4096), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(UnsupportedFormatError, match="FLAC"):
        demux(buf.getvalue())


# --- granules, continued packets, limits --------------------------------------------------


def test_first_page_is_also_the_eos_page() -> None:
    """RFC 7845 §4.5: a short stream trims the end; the trim may span several packets."""
    packets = [CELT_20MS + bytes([i]) * 10 for i in range(3)]
    data = b"".join(
        [
            make_page([opus_head()], flags=0x02),
            make_page([OPUS_TAGS], seq=1),
            make_page(packets, seq=2, granule=312 + 1000, flags=0x04),
        ]
    )
    out = packets_of(demux(data))
    assert [p.data for p in out] == packets
    trims = [p.discard_padding for p in out]
    assert sum(trims) == 3 * 960 - (312 + 1000)
    assert trims == [0, 3 * 960 - 1312 - 960, 960]  # the last packet is dropped entirely
    assert [p.pts for p in out] == pytest.approx([-312 / 48000, 648 / 48000, 1608 / 48000])


def test_stream_starting_at_a_later_granule_keeps_its_offset() -> None:
    packets = [CELT_20MS + b"\x01" * 5] * 4
    data = b"".join(
        [
            make_page([opus_head(pre_skip=0)], flags=0x02),
            make_page([OPUS_TAGS], seq=1),
            make_page(packets, seq=2, granule=48000 + 4 * 960),
        ]
    )
    assert packets_of(demux(data))[0].pts == pytest.approx(1.0)


def test_packet_continued_across_pages_is_reassembled() -> None:
    big = CELT_20MS + bytes(range(256)) * 300  # 76,801 bytes: more than one page holds
    head, tail = big[: 255 * 254], big[255 * 254 :]  # 254 lacing values + 1 for the first
    data = b"".join(
        [
            make_page([opus_head()], flags=0x02),
            make_page([OPUS_TAGS], seq=1),
            make_page([CELT_20MS + b"\x00", head], seq=2, granule=-1, unfinished=True),
            make_page([tail, CELT_20MS + b"\x02"], seq=3, granule=3 * 960, flags=0x01 | 0x04),
        ]
    )
    out = packets_of(demux(data))
    assert [p.data for p in out] == [CELT_20MS + b"\x00", big, CELT_20MS + b"\x02"]
    assert feed_in_pieces(OggDemuxer(), data, [1] * len(data)) == demux(data)


def test_huge_continued_packet_hits_the_cap_after_earlier_packets() -> None:
    piece = b"\x07" * (255 * 255)
    pages = [
        make_page([opus_head()], flags=0x02),
        make_page([OPUS_TAGS], seq=1),
        make_page([CELT_20MS + b"ok"], seq=2, granule=960),
    ]
    pages += [
        make_page([piece], seq=3 + i, granule=-1, flags=0x01 * (i > 0), unfinished=True)
        for i in range(20)  # 1.3 MB, over the 1 MiB default
    ]
    demuxer = OggDemuxer()
    events = [e for page in pages[:10] for e in demuxer.feed(page)]
    with pytest.raises(LimitExceededError, match="max_packet_size"):
        demuxer.feed(b"".join(pages[10:]))
    assert packets_of(events + demuxer.events_received()) == [
        Packet(CELT_20MS + b"ok", -312 / 48000)
    ]
    with pytest.raises(LimitExceededError):
        demuxer.feed(b"")
    small = OggDemuxer(max_packet_size=100_000)
    with pytest.raises(LimitExceededError, match="100000"):
        small.feed(b"".join(pages[:5]))


# --- corrupt input ---------------------------------------------------------------------------


def _events_before_failure(data: bytes, sizes: list[int]) -> tuple[list[Event], Exception]:
    demuxer = OggDemuxer()
    events: list[Event] = []
    pos = 0
    try:
        for n in [*sizes, len(data)]:
            events += demuxer.feed(data[pos : pos + n])
            pos += n
        events += demuxer.flush()
    except StreamDiarizeError as exc:
        return events + demuxer.events_received(), exc
    raise AssertionError("no error")


def test_crc_mismatch_fails_with_earlier_packets_kept() -> None:
    pages = split_pages(G)
    bad = bytearray(pages[10])
    bad[200] ^= 0x01
    data = b"".join(pages[:10]) + bytes(bad) + b"".join(pages[11:])
    events, exc = _events_before_failure(data, G_SIZES)
    assert isinstance(exc, CorruptStreamError)
    assert "CRC" in str(exc)
    good = packets_of(demux(b"".join(pages[:10])))
    assert packets_of(events) == good
    assert len(good) > 100
    demuxer = OggDemuxer()
    with pytest.raises(CorruptStreamError):
        demuxer.feed(data)
    with pytest.raises(CorruptStreamError, match="CRC"):  # stays failed
        demuxer.feed(b"OggS")
    with pytest.raises(CorruptStreamError):
        demuxer.flush()


def test_truncated_page_fails_at_flush() -> None:
    demuxer = OggDemuxer()
    events = demuxer.feed(G[:-100])
    assert packets_of(events) == packets_of(G_EVENTS)[: len(packets_of(events))]
    with pytest.raises(CorruptStreamError, match="stream ends inside"):
        demuxer.flush()


def test_stream_ending_inside_a_continued_packet_fails_at_flush() -> None:
    data = b"".join(
        [
            make_page([opus_head()], flags=0x02),
            make_page([OPUS_TAGS], seq=1),
            make_page([b"\x01" * 255], seq=2, granule=-1, unfinished=True),
        ]
    )
    demuxer = OggDemuxer()
    demuxer.feed(data)
    with pytest.raises(CorruptStreamError, match="continued"):
        demuxer.flush()


@pytest.mark.parametrize("garbage", [b"\x00", b"garbage!" * 5, b"OggT" + bytes(40)])
def test_garbage_before_the_first_page(garbage: bytes) -> None:
    with pytest.raises(CorruptStreamError, match="does not start with an Ogg page"):
        demux(garbage + G)


def test_garbage_between_pages_names_its_offset() -> None:
    pages = split_pages(G)
    offset = len(pages[0]) + len(pages[1])
    data = pages[0] + pages[1] + b"\r\n" + b"".join(pages[2:])
    events, exc = _events_before_failure(data, [])
    assert isinstance(exc, CorruptStreamError)
    assert f"offset {offset}" in str(exc)
    assert events[0] == G_EVENTS[0]


def test_missing_page_is_reported() -> None:
    pages = split_pages(G)
    with pytest.raises(CorruptStreamError, match="page 5 is missing"):
        demux(b"".join(pages[:5] + pages[6:]))


def test_stream_starting_mid_way_is_refused() -> None:
    with pytest.raises(CorruptStreamError, match="starts mid-way"):
        demux(b"".join(split_pages(G)[3:]))


def test_page_after_eos_is_refused() -> None:
    last = split_pages(G)[-1]
    with pytest.raises(CorruptStreamError, match="after its last"):
        demux(G + last)


def test_empty_input_is_just_the_end() -> None:
    demuxer = OggDemuxer()
    assert demuxer.feed(b"") == []
    assert demuxer.flush() == [EndOfStream()]
    assert demuxer.flush() == []


def test_bad_opus_head_and_tags() -> None:
    bad_head = make_page([b"OpusHead\x01\x00" + bytes(9)], flags=0x02)  # 0 channels
    with pytest.raises(CorruptStreamError, match="0 channels"):
        demux(bad_head)
    future = make_page([b"OpusHead\x10\x01" + bytes(9)], flags=0x02)
    with pytest.raises(UnsupportedFormatError, match="version 16"):
        demux(future)
    no_tags = make_page([opus_head()], flags=0x02) + make_page([CELT_20MS * 20], seq=1, granule=960)
    with pytest.raises(CorruptStreamError, match="OpusTags"):
        demux(no_tags)


# --- mutation fuzzing ------------------------------------------------------------------------

_G_SHORT = b"".join(split_pages(G)[:8])  # headers and six audio pages: CRC-valid mutations


@settings(max_examples=300, deadline=None)
@given(edit_lists(["flip", "insert", "delete"]), piece_sizes(max_piece=5000, max_pieces=20))
def test_mutated_streams_raise_only_typed_errors(edits: list[Edit], sizes: list[int]) -> None:
    assert_only_typed_errors(OggDemuxer(), mutate(G, edits), sizes)


def test_page_with_an_unparsable_packet_has_no_pts() -> None:
    """A 0-byte packet has no TOC, so no packet start on that page can be derived."""
    data = b"".join(
        [
            make_page([opus_head()], flags=0x02),
            make_page([OPUS_TAGS], seq=1),
            make_page([CELT_20MS + b"a", b"", CELT_20MS + b"b"], seq=2, granule=2 * 960),
            make_page([CELT_20MS + b"c"], seq=3, granule=3 * 960),
        ]
    )
    out = packets_of(demux(data))
    assert [p.pts for p in out] == [None, None, None, pytest.approx((2 * 960 - 312) / 48000)]


def test_no_opus_among_unknown_streams() -> None:
    theora = make_page([b"\x80theora" + bytes(34)], flags=0x02)
    with pytest.raises(UnsupportedFormatError, match="no Opus logical stream"):
        demux(theora + make_page([b"\x81theora"], seq=1))


def test_page_version_must_be_zero() -> None:
    page = bytearray(split_pages(G)[0])
    page[4] = 1
    with pytest.raises(CorruptStreamError, match="version 1"):
        demux(bytes(page))


@pytest.mark.parametrize(
    ("head", "match"),
    [
        (opus_head(channels=3), "family 0 with 3 channels"),
        (b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 0, 48000, 0, 1) + b"\x01", "truncated"),
        (
            b"OpusHead" + struct.pack("<BBHIhBBB", 1, 2, 0, 48000, 0, 1, 1, 2) + b"\0\1",
            "inconsistent",
        ),
        (b"OpusHead\x01", "malformed"),
    ],
)
def test_bad_channel_mappings(head: bytes, match: str) -> None:
    with pytest.raises(CorruptStreamError, match=match):
        demux(make_page([head], flags=0x02))


def resign(data: bytes) -> bytes:
    """Recompute the CRC of every page still framed by its (possibly mutated) header."""
    out, pos = bytearray(data), 0
    while (pos := out.find(b"OggS", pos)) >= 0 and pos + 27 <= len(out):
        nsegs = out[pos + 26]
        end = pos + 27 + nsegs + sum(out[pos + 27 : pos + 27 + nsegs])
        if end > len(out):
            break
        out[pos + 22 : pos + 26] = bytes(4)
        out[pos + 22 : pos + 26] = struct.pack("<I", ogg_crc32(bytes(out[pos:end])))
        pos = end
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([_G_SHORT, SPEECH + TONE]),
    st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), min_size=1, max_size=3),
    piece_sizes(max_piece=3000, max_pieces=10),
)
def test_mutations_with_valid_crcs_raise_only_typed_errors(
    data: bytes, edits: list[tuple[int, int]], sizes: list[int]
) -> None:
    """Mutate headers, lacing and payloads behind valid CRCs to reach the packet logic."""
    pages = split_pages(data)
    mutated = bytearray(data)
    for where, value in edits:
        page_start = sum(len(p) for p in pages[: where % len(pages)])
        mutated[page_start + (where >> 8) % 60] = value  # header, lacing or first payload bytes
    assert_only_typed_errors(OggDemuxer(), resign(bytes(mutated)), sizes)
