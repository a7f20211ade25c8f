"""MP4 demuxing: Safari-like fragmented files (AAC, Opus, PCM), progressive files, restarts,
and every absurd size a hostile or broken stream can declare.

Expected packets, timestamps and codec setup come from FFmpeg's MP4/MOV demuxer (PyAV container
API) run on the same bytes; synthetic boxes are built here from ISO 14496-12 field layouts.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _feeding import Edit, assert_only_typed_errors, edit_lists, feed_in_pieces, mutate, piece_sizes
from streamdiarize import (
    CorruptStreamError,
    LimitExceededError,
    StreamDiarizeError,
    UnsupportedFormatError,
)
from streamdiarize.containers import (
    EndOfStream,
    Event,
    MP4Demuxer,
    Packet,
    StreamRestarted,
    TrackInfo,
)
from streamdiarize.containers._mp4_boxes import Box, audio_config, parse_audio_specific_config

MP4_DATA = Path(__file__).parent / "data" / "mp4"
FIXTURES = sorted(p.name for p in MP4_DATA.iterdir() if p.suffix in (".mp4", ".mov"))
AAC = (MP4_DATA / "aac_frag.mp4").read_bytes()
OPUS = (MP4_DATA / "opus_frag.mp4").read_bytes()
AAC_ABS = (MP4_DATA / "aac_stereo_44k_abs_offsets.mp4").read_bytes()
FASTSTART = (MP4_DATA / "aac_faststart.mp4").read_bytes()
IPCM = (MP4_DATA / "ipcm_s16.mp4").read_bytes()


# --- helpers ---------------------------------------------------------------------------------


def box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags), *parts)


def top_level(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole box) for each top-level box, by ISO 14496-12 §4.2 headers."""
    out, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:
            size = len(data) - pos
        out.append((kind, data[pos : pos + size]))
        pos += size
    return out


def edit_box(data: bytes, path: list[bytes], edit: Callable[[bytes], bytes]) -> bytes:
    """Rewrite the body of the box at ``path`` (plain containers only), fixing parent sizes."""
    out = bytearray()
    for kind, whole in top_level(data):
        if kind == path[0]:
            body = whole[8:]
            whole = box(kind, edit(body) if len(path) == 1 else edit_box(body, path[1:], edit))
        out += whole
    return bytes(out)


def init_segment(data: bytes) -> bytes:
    return b"".join(b for kind, b in top_level(data) if kind in (b"ftyp", b"moov"))


def ffmpeg_demux(data: bytes) -> tuple[list[av.Packet], av.audio.stream.AudioStream]:
    container = av.open(io.BytesIO(data))
    stream = container.streams.audio[0]
    return [p for p in container.demux(stream) if p.size], stream


def packets_of(events: list[Event]) -> list[Packet]:
    return [e for e in events if isinstance(e, Packet)]


def demux(data: bytes, **kwargs: int) -> list[Event]:
    demuxer = MP4Demuxer(**kwargs)
    return demuxer.feed(data) + demuxer.flush()


def events_until_failure(demuxer: MP4Demuxer, data: bytes) -> tuple[list[Event], Exception]:
    events: list[Event] = []
    try:
        events += demuxer.feed(data)
        events += demuxer.flush()
    except StreamDiarizeError as exc:
        return events + demuxer.events_received(), exc
    raise AssertionError("no error")


def patch(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


# --- every fixture against FFmpeg -------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_packets_and_track_equal_ffmpeg(name: str) -> None:
    data = (MP4_DATA / name).read_bytes()
    events = demux(data)
    theirs, stream = ffmpeg_demux(data)
    info = events[0]
    assert isinstance(info, TrackInfo)
    ctx = stream.codec_context
    assert info.codec == ctx.name
    assert (info.sample_rate, info.channels) == (ctx.sample_rate, ctx.channels)
    if info.codec in ("aac", "opus"):
        assert info.codec_private == ctx.extradata  # ASC, and FFmpeg's OpusHead from dOps
    ours = packets_of(events)
    assert len(ours) == len(theirs) > 0
    assert [p.data for p in ours] == [bytes(p) for p in theirs]
    assert [p.pts for p in ours] == pytest.approx([float(p.pts * p.time_base) for p in theirs])
    assert events[-1] == EndOfStream()


@pytest.mark.parametrize("name", ["aac_frag.mp4", "opus_frag.mp4", "ipcm_s16.mp4", "fl32.mov"])
def test_one_byte_pieces_give_the_same_events(name: str) -> None:
    data = (MP4_DATA / name).read_bytes()
    assert feed_in_pieces(MP4Demuxer(), data, [1] * len(data)) == demux(data)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["aac_frag.mp4", "opus_frag.mp4", "aac_faststart.mp4"]), piece_sizes(800))
def test_any_split_gives_the_same_events(name: str, sizes: list[int]) -> None:
    data = (MP4_DATA / name).read_bytes()
    assert feed_in_pieces(MP4Demuxer(), data, sizes) == demux(data)


def test_safari_like_timeslice_messages_yield_each_fragment_at_once() -> None:
    """First message: ftyp + moov + first fragment; then one moof + mdat per message."""
    boxes = top_level(AAC)
    kinds = [k for k, _ in boxes]
    assert kinds[:2] == [b"ftyp", b"moov"]
    assert kinds[2:] == [b"moof", b"mdat"] * ((len(kinds) - 2) // 2)
    messages = [b"".join(b for _, b in boxes[:4])]
    messages += [boxes[i][1] + boxes[i + 1][1] for i in range(4, len(boxes), 2)]
    demuxer = MP4Demuxer()
    per_message = [demuxer.feed(m) for m in messages]
    assert all(packets_of(events) for events in per_message)
    assert [e for events in per_message for e in events] + demuxer.flush() == demux(AAC)


def test_mdat_samples_stream_out_before_the_mdat_is_complete() -> None:
    boxes = top_level(AAC)
    head = b"".join(b for _, b in boxes[:3])  # ftyp, moov, first moof
    mdat = boxes[3][1]
    theirs, _ = ffmpeg_demux(AAC)
    demuxer = MP4Demuxer()
    got = packets_of(demuxer.feed(head + mdat[: 8 + len(bytes(theirs[0])) + len(bytes(theirs[1]))]))
    assert [p.data for p in got] == [bytes(p) for p in theirs[:2]]


def test_a_large_mdat_is_never_buffered_whole() -> None:
    """Samples behind 3 MB of another track's data, with a 64 KiB buffer cap."""
    init = init_segment(AAC)
    ours = [bytes([0x21, i]) * 50 for i in range(3)]
    junk = 3 * 1024 * 1024
    traf_other = box(
        b"traf",
        full_box(b"tfhd", 0, 0x20000, struct.pack(">I", 2)),
        full_box(b"trun", 0, 0x201, struct.pack(">IiI", 1, 0, junk)),
    )

    def moof(data_offset: int) -> bytes:
        traf = box(
            b"traf",
            full_box(b"tfhd", 0, 0x20000, struct.pack(">I", 1)),
            full_box(b"tfdt", 1, 0, struct.pack(">Q", 0)),
            full_box(
                b"trun",
                0,
                0x301,
                struct.pack(">Ii", 3, data_offset),
                *(struct.pack(">II", 1024, len(s)) for s in ours),
            ),
        )
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", 1)), traf_other, traf)

    size = len(moof(0))
    fragment = moof(size + 8 + junk) + box(b"mdat", bytes(junk), *ours)
    demuxer = MP4Demuxer(max_buffered=64 * 1024)
    events = feed_in_pieces(demuxer, init + fragment, [len(init)] + [60_000] * 60)
    assert [p.data for p in packets_of(events)] == ours
    assert [p.pts for p in packets_of(events)] == pytest.approx([0, 1024 / 48000, 2048 / 48000])


# --- restarts --------------------------------------------------------------------------------


def test_new_init_segment_restarts_the_stream() -> None:
    events = demux(AAC + OPUS)
    first, second = demux(AAC), demux(OPUS)
    assert events == [*first[:-1], StreamRestarted(), *second]
    infos = [e for e in events if isinstance(e, TrackInfo)]
    assert [i.codec for i in infos] == ["aac", "opus"]


def test_restart_into_absolute_offsets_counts_from_the_new_ftyp() -> None:
    events = demux(AAC + AAC_ABS)
    restart = events.index(StreamRestarted())
    theirs, _ = ffmpeg_demux(AAC_ABS)
    assert [p.data for p in packets_of(events[restart:])] == [bytes(p) for p in theirs]
    assert events[restart + 1] == demux(AAC_ABS)[0]


@settings(max_examples=20, deadline=None)
@given(piece_sizes(1500))
def test_restart_any_split(sizes: list[int]) -> None:
    assert feed_in_pieces(MP4Demuxer(), AAC + OPUS + AAC_ABS, sizes) == demux(AAC + OPUS + AAC_ABS)


# --- layouts ---------------------------------------------------------------------------------


def test_mdat_before_moov_is_refused_clearly() -> None:
    boxes = dict(top_level(FASTSTART))
    moov_last = boxes[b"ftyp"] + boxes[b"mdat"] + boxes[b"moov"]
    with pytest.raises(UnsupportedFormatError, match="before the movie header"):
        demux(moov_last)


def test_moof_before_moov_is_corrupt() -> None:
    boxes = top_level(AAC)
    with pytest.raises(CorruptStreamError, match="init segment is missing"):
        demux(boxes[0][1] + b"".join(b for _, b in boxes[2:]))


def test_64_bit_box_sizes() -> None:
    """Every top-level box rewritten with size 1 + largesize; trun offsets moved to match."""
    out = bytearray()
    for kind, whole in top_level(AAC):
        body = whole[8:]
        if kind == b"moof":  # the mdat payload now starts 8 bytes later, and so does the moof
            at = body.find(b"trun") + 4  # version/flags, sample count, data offset
            offset = struct.unpack_from(">i", body, at + 8)[0]
            body = patch(body, at + 8, struct.pack(">i", offset + 16))
        out += struct.pack(">I4sQ", 1, kind, 16 + len(body)) + body
    assert packets_of(demux(bytes(out))) == packets_of(demux(AAC))


def test_mdat_of_size_zero_runs_to_the_end() -> None:
    boxes = top_level(AAC)
    last = boxes[-1][1]
    data = b"".join(b for _, b in boxes[:-1]) + b"\0\0\0\0" + last[4:]
    assert demux(data) == demux(AAC)


def test_fragments_without_tfdt_continue_the_timeline() -> None:
    init = init_segment(AAC)
    samples = [bytes([0x21, i]) * 20 for i in range(4)]

    def fragment(pair: list[bytes]) -> bytes:
        trun = full_box(
            b"trun",
            0,
            0x301,
            struct.pack(">Ii", 2, 0),
            *(struct.pack(">II", 1024, 40) for _ in pair),
        )
        traf = box(b"traf", full_box(b"tfhd", 0, 0x20000, struct.pack(">I", 1)), trun)
        moof = box(b"moof", traf)
        moof = patch(moof, moof.find(b"trun") + 12, struct.pack(">i", len(moof) + 8))
        return moof + box(b"mdat", *pair)

    events = demux(init + fragment(samples[:2]) + fragment(samples[2:]))
    assert [p.data for p in packets_of(events)] == samples
    assert [p.pts for p in packets_of(events)] == pytest.approx(
        [i * 1024 / 48000 for i in range(4)]
    )


def test_traf_data_follows_the_previous_traf_without_base_offsets() -> None:
    """ISO 14496-12 §8.8.7: no base offset flags → data continues where the last traf's ended."""
    init = init_segment(AAC)
    other = [b"video-frame-1", b"video-frame-2!"]
    ours = [b"\x21\x10" * 7, b"\x21\x20" * 9]
    traf_other = box(
        b"traf",
        full_box(b"tfhd", 0, 0, struct.pack(">I", 9)),
        full_box(
            b"trun", 0, 0x201, struct.pack(">Ii", 2, 0), *(struct.pack(">I", len(s)) for s in other)
        ),
    )
    traf_ours = box(
        b"traf",
        full_box(b"tfhd", 0, 0x08, struct.pack(">II", 1, 1024)),  # default duration
        full_box(b"tfdt", 0, 0, struct.pack(">I", 48000)),
        full_box(
            b"trun", 0, 0x200, struct.pack(">I", 2), *(struct.pack(">I", len(s)) for s in ours)
        ),
    )
    moof = box(b"moof", traf_other, traf_ours)
    at = moof.find(b"trun") + 12
    moof = patch(moof, at, struct.pack(">i", len(moof) + 8))
    events = demux(init + moof + box(b"mdat", *other, *ours))
    assert [p.data for p in packets_of(events)] == ours
    assert [p.pts for p in packets_of(events)] == pytest.approx([1.0, 1 + 1024 / 48000])


def test_edit_list_shifts_pts() -> None:
    """An empty edit (delay) then a media edit skipping AAC priming, as ISO 14496-12 §8.6.6."""
    elst = full_box(
        b"elst",
        0,
        0,
        struct.pack(">I", 2),
        struct.pack(">IiI", 500, -1, 0x10000),  # 500 ms of nothing (movie timescale 1000)
        struct.pack(">IiI", 0, 1024, 0x10000),  # then media from sample time 1024
    )
    mvhd_timescale = struct.unpack_from(">I", AAC, AAC.find(b"mvhd") + 16)[0]
    assert mvhd_timescale == 1000
    data = edit_box(AAC, [b"moov", b"trak"], lambda body: body + box(b"edts", elst))
    shifted = [p.pts for p in packets_of(demux(data))]
    plain = [p.pts for p in packets_of(demux(AAC))]
    assert shifted == pytest.approx([t + 0.5 - 1024 / 48000 for t in plain])
    theirs, _ = ffmpeg_demux(data)
    assert shifted == pytest.approx([float(p.pts * p.time_base) for p in theirs])


def test_compact_sample_sizes_stz2() -> None:
    """stsz rewritten as a 16-bit stz2 (padded with 'free' so chunk offsets stay valid)."""

    def to_stz2(stbl: bytes) -> bytes:
        out = b""
        for kind, whole in top_level(stbl):
            if kind == b"stsz":
                constant, count = struct.unpack_from(">II", whole, 12)
                assert constant == 0
                sizes = np.frombuffer(whole, ">u4", count, 20).astype(">u2").tobytes()
                stz2 = full_box(b"stz2", 0, 0, b"\0\0\0\x10", struct.pack(">I", count), sizes)
                whole = stz2 + box(b"free", bytes(len(whole) - len(stz2) - 8))
            out += whole
        return out

    data = edit_box(FASTSTART, [b"moov", b"trak", b"mdia", b"minf", b"stbl"], to_stz2)
    assert len(data) == len(FASTSTART)
    assert b"stz2" in data
    assert demux(data) == demux(FASTSTART)


def test_samples_of_one_moof_in_two_mdats() -> None:
    init = init_segment(AAC)
    first, second = [b"\x21\x01" * 30], [b"\x21\x02" * 40, b"\x21\x03" * 10]

    def trun(samples: list[bytes]) -> bytes:
        sizes = (struct.pack(">I", len(s)) for s in samples)
        return full_box(b"trun", 0, 0x201, struct.pack(">Ii", len(samples), 0), *sizes)

    traf = box(
        b"traf",
        full_box(b"tfhd", 0, 0x20008, struct.pack(">II", 1, 1024)),
        trun(first),
        trun(second),
    )
    moof = box(b"moof", traf)
    mdat1, mdat2 = box(b"mdat", *first), box(b"mdat", *second)
    at = moof.find(b"trun") + 12
    moof = patch(moof, at, struct.pack(">i", len(moof) + 8))
    at = moof.find(b"trun", at) + 12
    moof = patch(moof, at, struct.pack(">i", len(moof) + len(mdat1) + 8))
    skipped = struct.pack(">I4s", 0, b"free") + b"trailing junk to the end"
    events = demux(init + moof + mdat1 + mdat2 + skipped)
    assert [p.data for p in packets_of(events)] == first + second


def test_pcm_runs_are_cut_into_whole_frames() -> None:
    theirs, _ = ffmpeg_demux(IPCM)
    events = demux(IPCM, pcm_packet_size=1001)
    ours = packets_of(events)
    assert len(ours) > 3
    assert all(len(p.data) <= 1001 and len(p.data) % 2 == 0 for p in ours)  # s16 mono frames
    assert b"".join(p.data for p in ours) == b"".join(bytes(p) for p in theirs)
    frames_before = np.cumsum([0] + [len(p.data) // 2 for p in ours[:-1]])
    assert [p.pts for p in ours] == pytest.approx(list(frames_before / 8000))


# --- sizes and counts a hostile stream can declare ------------------------------------------


def _first_trun(data: bytes) -> int:
    return data.find(b"trun") + 4  # start of the trun body: version/flags, then sample count


def test_trun_claiming_four_billion_samples_fails_fast() -> None:
    at = _first_trun(AAC) + 4
    data = patch(AAC, at, b"\xff\xff\xff\xff")
    start = time.perf_counter()
    with pytest.raises(LimitExceededError, match="4294967295 samples"):
        demux(data)
    with pytest.raises(CorruptStreamError, match="claims 4294967295 samples but holds"):
        demux(data, max_samples=1 << 40)
    assert time.perf_counter() - start < 0.5


def test_trun_of_default_sized_samples_is_capped() -> None:
    """A trun with no per-sample fields costs nothing to declare: the cap must still hold."""
    init = init_segment(AAC)
    trun = full_box(b"trun", 0, 0x001, struct.pack(">Ii", 0xFFFFFFFF, 0))
    moof = box(
        b"moof", box(b"traf", full_box(b"tfhd", 0, 0x20010, struct.pack(">II", 1, 100)), trun)
    )
    with pytest.raises(LimitExceededError, match="max_samples"):
        demux(init + moof)


def test_huge_moov_is_refused_before_it_is_buffered() -> None:
    ftyp = top_level(AAC)[0][1]
    demuxer = MP4Demuxer()
    with pytest.raises(LimitExceededError, match="max_box_size"):
        demuxer.feed(ftyp + struct.pack(">I4s", 0x7FFFFFF0, b"moov"))


@pytest.mark.parametrize(
    ("header", "error", "match"),
    [
        (struct.pack(">I4sQ", 1, b"moov", 1 << 63), CorruptStreamError, "64-bit size"),
        (struct.pack(">I4s", 5, b"moov"), CorruptStreamError, "size 5"),
        (struct.pack(">I4s", 0, b"moov"), UnsupportedFormatError, "end of the stream"),
        (struct.pack(">I4s", 100, b"\x00\x01\x02\x03"), CorruptStreamError, "four-character"),
        (b"garbage!" + bytes(8), LimitExceededError, "max_box_size"),  # type "age!"
    ],
)
def test_bad_box_headers(header: bytes, error: type[Exception], match: str) -> None:
    ftyp = top_level(AAC)[0][1]
    with pytest.raises(error, match=match):
        demux(ftyp + header + bytes(64))


def test_garbage_before_the_stream() -> None:
    with pytest.raises(CorruptStreamError, match="offset 0"):
        demux(b"\x00\x01\x02\x03\x04\x05\x06\x07" + AAC)


def test_child_box_overflowing_its_parent() -> None:
    at = AAC.find(b"trak") - 4
    size = struct.unpack_from(">I", AAC, at)[0]
    with pytest.raises(CorruptStreamError, match="does not fit"):
        demux(patch(AAC, at, struct.pack(">I", size + 10_000)))


def test_nesting_depth_is_bounded() -> None:
    nested = b""
    for _ in range(40):
        nested = box(b"deep", nested)

    def walk(b: Box) -> None:
        for child in b.children():
            walk(child)

    with pytest.raises(LimitExceededError, match="nested deeper"):
        walk(Box.root(b"root", nested))


def test_sample_larger_than_the_cap() -> None:
    with pytest.raises(LimitExceededError, match="max_sample_size"):
        demux(AAC, max_sample_size=100)


def test_truncated_mid_mdat_fails_at_flush_keeping_earlier_packets() -> None:
    demuxer = MP4Demuxer()
    events, exc = events_until_failure(demuxer, AAC[: len(AAC) - 150])
    assert isinstance(exc, CorruptStreamError)
    full = packets_of(demux(AAC))
    got = packets_of(events)
    assert 0 < len(got) < len(full)
    assert got == full[: len(got)]
    with pytest.raises(CorruptStreamError):
        demuxer.feed(b"more")


def test_truncated_after_a_moof_fails_at_flush() -> None:
    boxes = top_level(AAC)
    demuxer = MP4Demuxer()
    demuxer.feed(b"".join(b for _, b in boxes[:5]))  # ... first mdat, second moof
    with pytest.raises(CorruptStreamError, match="ends before the media data"):
        demuxer.flush()


def test_sample_running_past_its_mdat() -> None:
    boxes = top_level(AAC)
    mdat = boxes[3][1]
    short = struct.pack(">I", len(mdat) - 5) + mdat[4:-5]
    with pytest.raises(CorruptStreamError, match="past the end of its mdat"):
        demux(b"".join(b for _, b in boxes[:3]) + short)


# --- codecs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "error", "match"),
    [
        (b"mp4a", b"ac-3", UnsupportedFormatError, "'ac-3'"),
        (b"mp4a", b"enca", UnsupportedFormatError, "encrypted"),
        (b"mp4a", b"alac", UnsupportedFormatError, "'alac'"),
        (b"esds", b"xxxx", CorruptStreamError, "esds"),
    ],
)
def test_unsupported_or_broken_sample_entries(
    old: bytes, new: bytes, error: type[Exception], match: str
) -> None:
    at = AAC.find(old)
    with pytest.raises(error, match=match):
        demux(patch(AAC, at, new))


def test_mp3_in_mp4_is_named() -> None:
    # esds: version/flags, tag 3 + 4-byte size, ES_ID, flags, tag 4 + 4-byte size, then the OTI.
    oti = AAC.find(b"esds") + 4 + 4 + 5 + 3 + 5
    assert AAC[oti] == 0x40
    with pytest.raises(UnsupportedFormatError, match="MP3"):
        demux(patch(AAC, oti, b"\x6b"))


def asc(*fields: tuple[int, int]) -> bytes:
    """An AudioSpecificConfig from (bit width, value) fields, zero-padded to whole bytes."""
    value, width = 0, 0
    for bits, v in fields:
        value, width = value << bits | v, width + bits
    pad = -width % 8
    return (value << pad).to_bytes((width + pad) // 8, "big")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (asc((5, 2), (4, 3), (4, 1), (3, 0)), (48000, 1)),  # AAC-LC 48 kHz mono
        (asc((5, 2), (4, 4), (4, 2), (3, 0)), (44100, 2)),
        (asc((5, 2), (4, 15), (24, 37800), (4, 2), (3, 0)), (37800, 2)),  # explicit rate
        (asc((5, 5), (4, 6), (4, 2), (4, 3), (5, 2), (3, 0)), (48000, 2)),  # HE-AAC explicit
        (asc((5, 29), (4, 6), (4, 1), (4, 3), (5, 2), (3, 0)), (48000, 2)),  # HE-AACv2 (PS)
        (asc((5, 31), (6, 10), (4, 3), (4, 1)), (48000, 1)),  # escaped type 42 (USAC)
        (asc((5, 2), (4, 3), (4, 7), (3, 0)), (48000, 8)),  # 7.1
    ],
)
def test_audio_specific_config(config: bytes, expected: tuple[int, int]) -> None:
    assert parse_audio_specific_config(config) == expected


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (asc((5, 2), (4, 13), (4, 1)), CorruptStreamError),  # reserved rate index
        (b"\x11", CorruptStreamError),  # truncated
        (asc((5, 31), (6, 2), (4, 3), (4, 1)), UnsupportedFormatError),  # type 34: MP3
    ],
)
def test_bad_audio_specific_config(config: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_audio_specific_config(config)


def sound_entry(
    kind: bytes, channels: int, bits: int, rate: int, extra: bytes = b"", *, version: int = 0
) -> Box:
    body = (
        bytes(6)
        + struct.pack(">HHH4s", 1, version, 0, b"test")
        + struct.pack(">HHHHI", channels, bits, 0, 0, rate << 16)
        + extra
    )
    return Box(kind, body, 0, len(body))


def lpcm_v2(rate: float, channels: int, bits: int, flags: int) -> bytes:
    return struct.pack(">IdIIIIII", 72, rate, channels, 0x7F000000, bits, flags, 0, 1)


@pytest.mark.parametrize(
    ("entry", "codec", "rate", "channels"),
    [
        (
            sound_entry(b"lpcm", 3, 16, 1, lpcm_v2(96000.0, 2, 32, 1 | 2), version=2),
            "pcm_f32be",
            96000,
            2,
        ),
        (
            sound_entry(b"lpcm", 3, 16, 1, lpcm_v2(48000.0, 1, 24, 4), version=2),
            "pcm_s24le",
            48000,
            1,
        ),
        (sound_entry(b"twos", 2, 16, 44100), "pcm_s16be", 44100, 2),
        (sound_entry(b"twos", 1, 8, 8000), "pcm_s8", 8000, 1),
        (sound_entry(b"sowt", 1, 16, 16000), "pcm_s16le", 16000, 1),
        (
            sound_entry(
                b"ipcm",
                2,
                16,
                0,
                box(b"srat", struct.pack(">II", 0, 192000))
                + box(b"pcmC", struct.pack(">IBB", 0, 0, 24)),
            ),
            "pcm_s24be",
            192000,
            2,
        ),
    ],
)
def test_pcm_sample_entries(entry: Box, codec: str, rate: int, channels: int) -> None:
    info = audio_config(entry, quicktime=True).info
    assert (info.codec, info.sample_rate, info.channels) == (codec, rate, channels)


def test_dops_with_a_mapping_table_becomes_a_little_endian_opus_head() -> None:
    dops = struct.pack(">BBHIhBBB", 0, 3, 312, 44100, -256, 1, 2, 1) + bytes([0, 2, 1])
    entry = sound_entry(b"Opus", 3, 16, 48000, box(b"dOps", dops))
    info = audio_config(entry, quicktime=False).info
    assert info.codec == "opus"
    assert info.channels == 3
    head = info.codec_private
    assert head[:9] == b"OpusHead\x01"
    assert struct.unpack_from("<BHIhBBB", head, 9) == (3, 312, 44100, -256, 1, 2, 1)
    assert head[21:] == bytes([0, 2, 1])


# --- mutation fuzzing ------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([AAC[:3000], OPUS[:3000], AAC_ABS[:2500], FASTSTART[:2500], IPCM[:2000]]),
    edit_lists(["flip", "insert", "delete", "ff"]),
    piece_sizes(max_piece=1000, max_pieces=10),
)
def test_mutated_streams_raise_only_typed_errors(
    data: bytes, edits: list[Edit], sizes: list[int]
) -> None:
    assert_only_typed_errors(MP4Demuxer(), mutate(data, edits), sizes)


def test_speed() -> None:
    """1.2 s of AAC in 100 ms fragments, Safari's worst case, must demux far above real time."""
    start = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        demux(AAC)
    elapsed = (time.perf_counter() - start) / rounds
    assert 1.2 / elapsed > 200, f"{1.2 / elapsed:.0f}x real time"
