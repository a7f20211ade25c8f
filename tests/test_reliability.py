"""Bad input the per-container tests leave out, through the whole decode path.

The demuxer tests (test_webm/ogg/mp4/wav/raw) mutate each container alone; here every mutation
goes through ``ChunkReassembler`` (sniffing, demuxing, FFmpeg decoding, resampling), and what a
hostile stream can *declare* is pushed to the extremes in every container: sample rates,
channel counts (8+ channels crashed PyAV), decompression bombs (2 bytes of Opus → 120 ms),
huge finite floats, and the slowest valid streams per byte. Only typed errors, bounded time
per byte, bounded memory.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soxr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamdiarize as sd
from _feeding import CAPTURES, capture_messages, edit_lists, mutate, piece_sizes
from streamdiarize.containers import (
    MP4Demuxer,
    OggDemuxer,
    TrackInfo,
    WavDemuxer,
    WebMDemuxer,
)
from streamdiarize.containers._mp4_boxes import audio_config
from test_mp4 import AAC, IPCM, OPUS, box, lpcm_v2, sound_entry
from test_ogg import OPUS_TAGS, make_page
from test_webm import TRACKS, cluster, el, simple_block, track_entry, webm

MAX_RATE, MAX_CHANNELS = 384_000, 32


def wav_header(channels: int, rate: int, bits: int = 16, tag: int = 1, data: int = 0) -> bytes:
    """A RIFF/WAVE header up to the data chunk's header (``data`` 0: until the end)."""
    align = (channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    return b"RIFF" + struct.pack("<I", 0) + body + struct.pack("<I", data)


def feed_all(reassembler: sd.ChunkReassembler, pieces: list[bytes]) -> np.ndarray:
    out = [reassembler.feed(p) for p in pieces]
    out.append(reassembler.flush())
    return np.concatenate(out)


# -- mutations through the whole path -------------------------------------------------------

DIALOG_WAV = (CAPTURES / "dialog.wav").read_bytes()
#: (stream, mime) pairs: a few seconds of each real container or capture.
SEEDS = {
    "webm-opus": (b"".join(capture_messages("A")[:30]), None),
    "webm-pcm": (b"".join(capture_messages("C"))[:30_000], None),
    "ogg-opus": (b"".join(capture_messages("G"))[:12_000], None),
    "mp4-aac": (AAC, None),
    "mp4-opus": (OPUS, None),
    "mp4-ipcm": (IPCM, None),
    "wav": (DIALOG_WAV[:12_000], None),
    "raw-s16": (b"".join(capture_messages("F"))[:12_000], "audio/pcm;rate=44100;encoding=int16"),
    "raw-f32": (b"".join(capture_messages("D"))[:16_000], "audio/pcm;rate=44100"),
}
EDITS = edit_lists(["flip", "insert", "cut", "ff", "duplicate"], max_blob=8, max_edits=5)


def call_time_budget(size: int) -> float:
    """Generous wall-clock bound for one call: it catches hangs and superlinear paths, not
    noise from a loaded 2-core machine (measured worst case: about 3 µs per byte)."""
    return 2.0 + 100e-6 * size


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.sampled_from(sorted(SEEDS)), EDITS, piece_sizes(max_piece=6000, max_pieces=12))
def test_mutated_streams_through_the_whole_path_raise_only_typed_errors(
    name: str, edits: list[tuple[str, int, bytes]], sizes: list[int]
) -> None:
    stream, mime = SEEDS[name]
    data = mutate(stream, edits)
    reassembler = sd.ChunkReassembler(mime=mime, max_buffered=1 << 20)
    pieces, pos = [], 0
    for size in [*sizes, len(data)]:
        pieces.append(data[pos : pos + size])
        pos += size
    samples = 0
    error: sd.StreamDiarizeError | None = None
    try:
        for piece in [*pieces, None]:
            began = time.perf_counter()
            pcm = reassembler.flush() if piece is None else reassembler.feed(piece)
            assert time.perf_counter() - began < call_time_budget(len(piece or b""))
            assert pcm.dtype == np.int16
            samples += len(pcm)
    except sd.StreamDiarizeError as exc:
        error = exc
    if error is not None:
        assert isinstance(error, sd.InputError), repr(error)
        assert str(error)  # a message a user can read
        samples += len(error.pcm)
    # No amplification beyond Opus's own (2-3 bytes can be 120 ms): 50 ms per byte at most.
    assert samples / 16000 <= 0.05 * len(data) + 1


# -- absurd declared rates and channel counts, every container ------------------------------

RATES = st.one_of(
    st.sampled_from([0, 1, 999, 1000, 7350, 48000, 384_000, 384_001, 10**7, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)
CHANNELS = st.one_of(st.sampled_from([0, 1, 2, 8, 32, 33, 255, 65535]), st.integers(0, 65535))
FLOAT_RATES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -48000.0, 0.0, 0.5, 1e300]),
    st.floats(allow_nan=True, allow_infinity=True),
)


def sane(info: TrackInfo) -> bool:
    return 1000 <= info.sample_rate <= MAX_RATE and 1 <= info.channels <= MAX_CHANNELS


def declared_tracks(demuxer: sd.containers.Demuxer, data: bytes) -> list[TrackInfo]:
    """TrackInfo events of ``data``; typed errors are an accepted answer (empty list)."""
    try:
        events = demuxer.feed(data) + demuxer.flush()
    except sd.StreamDiarizeError:
        events = demuxer.events_received()
    return [e for e in events if isinstance(e, TrackInfo)]


@settings(max_examples=80, deadline=None)
@given(rate=FLOAT_RATES, channels=st.integers(0, 2**32 - 1), bits=st.sampled_from([16, 32]))
def test_webm_pcm_track_parameters_are_bounded(rate: float, channels: int, bits: int) -> None:
    codec = "A_PCM/INT/LIT" if bits == 16 else "A_PCM/FLOAT/IEEE"
    tracks = el(
        TRACKS,
        track_entry(
            codec_id=codec,
            private=None,
            rate=rate,
            channels=channels,
            bit_depth=bits,
            float_size=8,
        ),
    )
    data = webm(cluster(0, simple_block(1, 0, bytes(64 * bits // 8))), tracks=tracks)
    assert all(sane(t) for t in declared_tracks(WebMDemuxer(), data))


@settings(max_examples=60, deadline=None)
@given(channels=st.integers(0, 255), family=st.sampled_from([0, 1, 255]))
def test_opus_heads_in_webm_and_ogg_declare_bounded_channels(channels: int, family: int) -> None:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 312, 48000, 0, family)
    if family:
        head += bytes([max(channels, 1), 0]) + bytes(range(channels))
    tracks = el(TRACKS, track_entry(private=head, channels=channels))
    in_webm = webm(cluster(0, simple_block(1, 0, b"\xf8")), tracks=tracks)
    in_ogg = make_page([head], flags=0x02) + make_page([OPUS_TAGS], seq=1)
    for demuxer, data in ((WebMDemuxer(), in_webm), (OggDemuxer(), in_ogg)):
        assert all(sane(t) for t in declared_tracks(demuxer, data))


@settings(max_examples=80, deadline=None)
@given(rate=RATES, channels=CHANNELS, bits=st.sampled_from([8, 16, 24, 32]))
def test_wav_fmt_parameters_are_bounded(rate: int, channels: int, bits: int) -> None:
    data = wav_header(channels, rate, bits) + bytes(256)
    assert all(sane(t) for t in declared_tracks(WavDemuxer(), data))


@settings(max_examples=120, deadline=None)
@given(
    kind=st.sampled_from([b"sowt", b"twos", b"lpcm", b"ipcm", b"fpcm"]),
    rate=RATES,
    channels=st.integers(0, 2**32 - 1),
    float_rate=FLOAT_RATES,
)
def test_mp4_sample_entries_declare_bounded_parameters(
    kind: bytes, rate: int, channels: int, float_rate: float
) -> None:
    """Regression: MP4 PCM entries let 65535 (or 2^32 - 1) channels and 1 Hz through; 1 Hz
    upsampled to 16 kHz turns every byte into 16,000 samples."""
    if kind == b"lpcm":
        entry = sound_entry(kind, 3, 16, 1, lpcm_v2(float_rate, channels, 16, 4), version=2)
    elif kind in (b"ipcm", b"fpcm"):
        bits = 32 if kind == b"fpcm" else 16
        config = box(b"srat", struct.pack(">II", 0, rate)) + box(
            b"pcmC", struct.pack(">IBB", 0, 1, bits)
        )
        entry = sound_entry(kind, channels & 0xFFFF, bits, 0, config)
    else:
        entry = sound_entry(kind, channels & 0xFFFF, 16, rate & 0xFFFF)
    try:
        info = audio_config(entry, quicktime=True).info
    except sd.StreamDiarizeError:
        return
    assert sane(info), info


@pytest.mark.parametrize(("channels", "rate"), [(65535, 16000), (2, 1), (1, 999), (40, 48000)])
def test_mp4_pcm_file_with_absurd_parameters_fails_before_decoding(
    channels: int, rate: int
) -> None:
    entry = IPCM.find(b"ipcm") + 4  # the sample entry's body
    assert struct.unpack_from(">H", IPCM, entry + 16)[0] == 1  # mono s16 in the fixture
    patched = bytearray(IPCM)
    struct.pack_into(">H", patched, entry + 16, channels)
    srat = IPCM.find(b"srat", entry)
    if srat > 0:
        struct.pack_into(">I", patched, srat + 8, rate)
    else:
        struct.pack_into(">I", patched, entry + 24, rate << 16)
    with pytest.raises(sd.UnsupportedFormatError, match=f"{channels} channels|{rate} Hz"):
        feed_all(sd.ChunkReassembler(), [bytes(patched)])
    assert not declared_tracks(MP4Demuxer(), bytes(patched))


@pytest.mark.parametrize(
    "mime",
    [
        "audio/pcm;rate=1;encoding=int16",
        "audio/pcm;rate=4294967295;encoding=int16",
        "audio/pcm;rate=48000;encoding=float32;channels=65535",
        "audio/pcm;rate=48000;encoding=float32;channels=0",
        "audio/pcm;rate=nan",
    ],
)
def test_raw_declarations_out_of_range_are_refused_up_front(mime: str) -> None:
    with pytest.raises((sd.UnsupportedFormatError, sd.ConfigurationError)):
        sd.ChunkReassembler(mime=mime)


# -- 8 and more channels: a segfault in PyAV's plane walk -----------------------------------


def ffmpeg_encode(tmp_path: Path, name: str, layout: str, *codec: str) -> Path:
    """0.6 s of eight tones in ``layout`` (one per channel), encoded by the ffmpeg binary."""
    path = tmp_path / name
    channels = int(layout.split("c")[0]) if layout.endswith("c") else 8
    tones = "".join(f"sine=f={300 + 110 * k}:d=0.6[s{k}];" for k in range(channels))
    inputs = "".join(f"[s{k}]" for k in range(channels))
    graph = f"{tones}{inputs}amerge=inputs={channels},aformat=channel_layouts={layout}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-filter_complex", graph, *codec, str(path)], check=True
    )
    return path


def ffmpeg_mono_16k(path: Path) -> np.ndarray:
    """FFmpeg's decode of every channel (interleaved f32), averaged and resampled here."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=channels,sample_rate", "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    rate, channels = (int(v) for v in probe.stdout.strip().split(","))
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    mono = np.frombuffer(raw, "<f4").reshape(-1, channels).mean(axis=1)
    return np.asarray(soxr.resample(mono, rate, 16000), dtype=np.float64)


DECODE_IN_A_CHILD = """
import sys, numpy as np, streamdiarize as sd
r = sd.ChunkReassembler()
data = open(sys.argv[1], "rb").read()
np.save(sys.argv[2], np.concatenate([r.feed(data[i : i + 999]) for i in range(0, len(data), 999)]
                                   + [r.flush()]))
"""


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")
@pytest.mark.parametrize(
    ("name", "layout", "codec"),
    [
        ("7.1.webm", "7.1", ("-c:a", "libopus", "-b:a", "256k")),
        ("7.1.ogg", "7.1", ("-c:a", "libopus", "-b:a", "256k")),
        ("7.1.mp4", "7.1", ("-c:a", "aac", "-movflags", "+frag_keyframe+empty_moov")),
        ("16c.ogg", "16c", ("-c:a", "libopus", "-mapping_family", "255", "-b:a", "512k")),
    ],
)
def test_eight_and_more_channels_decode_like_ffmpeg(
    tmp_path: Path, name: str, layout: str, codec: tuple[str, ...]
) -> None:
    """Regression: planar frames of 8+ channels segfaulted the process (the whole server)."""
    path = ffmpeg_encode(tmp_path, name, layout, *codec)
    out = tmp_path / "ours.npy"
    child = subprocess.run(
        [sys.executable, "-c", DECODE_IN_A_CHILD, str(path), str(out)], capture_output=True
    )
    assert child.returncode == 0, f"exit {child.returncode}: {child.stderr.decode()[-500:]}"
    ours = np.load(out).astype(np.float64) / 32768
    reference = ffmpeg_mono_16k(path)
    # Align within ±50 ms (AAC priming may be trimmed differently; the tones repeat every
    # 100 ms), then compare the overlap.
    best = max(range(-800, 801), key=lambda lag: _overlap_correlation(ours, reference, lag))
    assert _overlap_correlation(ours, reference, best) > 0.99
    a, b = _overlap(ours, reference, best)
    assert len(a) > 0.5 * 16000
    assert np.sqrt(np.mean(a**2)) == pytest.approx(np.sqrt(np.mean(b**2)), rel=0.05)


def _overlap(a: np.ndarray, b: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``a[i + lag]`` against ``b[i]`` where both exist."""
    a, b = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
    n = min(len(a), len(b))
    return a[:n], b[:n]


def _overlap_correlation(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    x, y = _overlap(a, b, lag)
    return float(np.corrcoef(x, y)[0, 1])


# -- decompression bombs ---------------------------------------------------------------------

#: Opus TOC 0xFB (CELT 20 ms, code 3) with a frame count of 6: 120 ms from 2 bytes.
OPUS_120MS = bytes([0xFB, 6])
WEBM_HEAD = capture_messages("A")[0][:146]  # Chromium's EBML header, Segment, Tracks
CLUSTER_HEAD = b"\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff\xe7\x81\x00"  # at 0 ms


def webm_bomb(packets: int) -> bytes:
    """One Cluster of ``packets`` SimpleBlocks, each one 120 ms packet (8 bytes per block)."""
    block = b"\xa3\x86\x81\x00\x00\x80" + OPUS_120MS
    return CLUSTER_HEAD + block * packets


def ogg_bomb(pages: int) -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 0, 48000, 0, 0)
    out = [make_page([head], flags=0x02), make_page([OPUS_TAGS], seq=1)]
    granule = 0
    for i in range(pages):
        granule += 255 * 5760
        out.append(make_page([OPUS_120MS] * 255, seq=2 + i, granule=granule))
    return b"".join(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("container", "stream"),
    [("webm", WEBM_HEAD + webm_bomb(40_000)), ("ogg", ogg_bomb(300))],
)
def test_decompression_bomb_is_refused_fast_and_small(container: str, stream: bytes) -> None:
    """Regression: 320 KB of 2-byte Opus packets decoded to 80 minutes of audio in one call
    (1.3 GB of RSS, seconds of CPU on the event loop) before any limit looked at it."""
    began = time.perf_counter()
    with pytest.raises(sd.LimitExceededError):
        sd.ChunkReassembler(max_feed_seconds=30).feed(stream)
    elapsed = time.perf_counter() - began
    reassembler = sd.ChunkReassembler(max_feed_seconds=30)
    tracemalloc.start()
    try:
        with pytest.raises(sd.LimitExceededError, match="more than 30 s of audio") as error:
            reassembler.feed(stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(stream) > 200_000  # uncapped: 4,800 s or more
    assert elapsed < 3.0  # demuxing the whole chunk (~1 µs/B), decoding only 30 s of it
    assert peak < 64 << 20
    # The audio decoded up to the cap is kept, as for any fault; the reassembler stays failed.
    assert 29 * 16000 < len(error.value.pcm) <= 31 * 16000
    with pytest.raises(sd.LimitExceededError):
        reassembler.feed(b"\x00")


def test_the_cap_is_per_chunk_not_per_stream() -> None:
    """The same 144 s of 120 ms packets in 12 s chunks decode in full under a 30 s cap."""
    body = webm_bomb(1200)
    chunks = [WEBM_HEAD] + [body[i : i + 800] for i in range(0, len(body), 800)]
    pcm = feed_all(sd.ChunkReassembler(max_feed_seconds=30), chunks)
    assert len(pcm) == pytest.approx(1200 * 0.12 * 16000, abs=16000)


def test_session_and_server_pass_the_caps_down() -> None:
    """``max_buffered``/``max_feed_seconds`` reach the reassembler from the session; the
    server's settings carry them (checked over a socket in test_hostile_clients.py)."""
    from streamdiarize.server import ServerSettings

    session = sd.TranscriptionSession(
        _NeverOpened(), mime="audio/webm", max_buffered=70_000, max_feed_seconds=7.0
    )
    reassembler = session.reassembler
    with pytest.raises(sd.LimitExceededError, match="more than 7 s"):
        reassembler.feed(WEBM_HEAD + webm_bomb(100))
    other = sd.TranscriptionSession(_NeverOpened(), mime="audio/webm", max_buffered=70_000)
    with pytest.raises(sd.LimitExceededError, match="70000 bytes"):
        # A SimpleBlock declaring 100,000 bytes: refused on its header, nothing buffered.
        other.reassembler.feed(WEBM_HEAD + CLUSTER_HEAD + b"\xa3\x21\x86\xa0\x81\x00\x00\x80")
    defaults = ServerSettings()
    assert defaults.max_message_seconds < sd.reassembler.DEFAULT_MAX_FEED_SECONDS
    assert defaults.max_buffered_bytes < sd.containers.DEFAULT_MAX_BUFFERED
    with pytest.raises(sd.ConfigurationError):
        ServerSettings(max_message_seconds=math.nan)
    with pytest.raises(sd.ConfigurationError):
        sd.ChunkReassembler(max_feed_seconds=0)


class _NeverOpened(sd.Transcriber):
    """The reassembler's caps are checked without a backend: ``open()`` is never reached."""

    async def open(self, sink: object, *, interim_results: bool = False) -> sd.TranscriberStream:
        raise AssertionError("not used")


# -- huge finite floats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mime", "make"),
    [
        (
            "audio/pcm;rate=48000;encoding=float32",
            lambda x: x.astype("<f4").tobytes(),
        ),
        (
            None,
            lambda x: wav_header(1, 48000, 64, tag=3, data=8 * len(x)) + x.astype("<f8").tobytes(),
        ),
    ],
)
def test_huge_finite_floats_saturate_instead_of_overflowing(
    mime: str | None, make: Callable[[np.ndarray], bytes]
) -> None:
    """Regression: ±3e38 overflowed the resampler to inf − inf = NaN ("invalid value
    encountered in cast" and undefined int16 samples)."""
    loud = np.repeat(np.tile([3e38, -3e38], 100), 240)  # a 100 Hz square wave, 1 s
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pcm = feed_all(sd.ChunkReassembler(mime=mime), [make(loud)])
    assert len(pcm) == pytest.approx(16000, abs=200)
    assert np.mean(np.abs(pcm.astype(np.int32)) >= 32767) > 0.9  # full-scale square wave


# -- time per byte: the slowest valid streams ------------------------------------------------

VOID = b"\xec\x80"  # an empty Void element: the smallest thing a WebM parser must step over


def slowest_streams() -> dict[str, tuple[bytes, str | None]]:
    ogg_head = make_page([b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 0, 48000, 0, 0)], flags=2)
    ogg_head += make_page([OPUS_TAGS], seq=1)
    mp4_init = AAC[: AAC.find(b"moof") - 4]
    return {
        "webm: 2-byte Voids": (WEBM_HEAD + CLUSTER_HEAD + VOID * 150_000, None),
        "ogg: empty pages": (
            ogg_head + b"".join(make_page([], seq=2 + i) for i in range(11_000)),
            None,
        ),
        "mp4: 8-byte free boxes": (mp4_init + box(b"free") * 40_000, None),
        "wav: 8-byte unknown chunks": (
            wav_header(1, 16000)[:-8] + b"junk\x00\x00\x00\x00" * 40_000,
            None,
        ),
    }


@pytest.mark.parametrize("name", sorted(slowest_streams()))
def test_time_per_byte_is_bounded_for_the_slowest_valid_streams(name: str) -> None:
    """Many tiny elements cost the most per byte; measured 0.7-3 µs/B, bounded at 30."""
    data, mime = slowest_streams()[name]
    best = math.inf
    for _ in range(2):
        reassembler = sd.ChunkReassembler(mime=mime)
        began = time.perf_counter()
        for start in range(0, len(data), 64 * 1024):
            reassembler.feed(data[start : start + 64 * 1024])
        ends_badly = name.startswith("wav")  # no data chunk came: a typed error at the end
        with pytest.raises(sd.CorruptStreamError) if ends_badly else contextlib.nullcontext():
            reassembler.flush()
        best = min(best, time.perf_counter() - began)
    assert len(data) > 250_000
    assert best / len(data) < 30e-6, f"{best / len(data) * 1e6:.1f} µs per byte"
