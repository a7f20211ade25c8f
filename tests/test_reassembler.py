"""ChunkReassembler end to end: real browser streams in, 16 kHz int16 mono out, like FFmpeg."""

from __future__ import annotations

import json
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamdiarize as sd
from _feeding import capture_dir, capture_messages, ncc_near_zero_lag, piece_sizes, reference_pcm

DATA = Path(__file__).parent / "data"


def _mime(letter: str) -> str:
    meta = json.loads((capture_dir(letter) / "meta.json").read_text())
    if meta.get("mimeType"):
        return str(meta["mimeType"])
    encoding = "int16" if "s16" in capture_dir(letter).name else "float32"
    return f"audio/pcm;rate={meta['sampleRate']};encoding={encoding}"


def _run(r: sd.ChunkReassembler, chunks: list[bytes], flush: bool = True) -> np.ndarray:
    parts = [r.feed(c) for c in chunks] + ([r.flush()] if flush else [])
    for p in parts:
        assert p.dtype == np.int16
        assert p.ndim == 1
    return np.concatenate(parts)


@pytest.mark.slow
@pytest.mark.parametrize("letter", list("ABCDEFG"))
def test_browser_capture_matches_ffmpegreference_pcm(letter: str) -> None:
    """Every capture mode, replayed message by message, decodes like FFmpeg's reference."""
    r = sd.ChunkReassembler(mime=_mime(letter))
    pcm = _run(r, capture_messages(letter))
    reference = reference_pcm(letter)
    assert abs(len(pcm) - len(reference)) <= 320  # ± 20 ms
    assert ncc_near_zero_lag(pcm, reference) >= 0.99
    assert r.duration == pytest.approx(len(pcm) / 16000)


def test_raw_float_vs_int16_heuristic_when_only_the_rate_is_declared() -> None:
    for letter in "DF":
        r = sd.ChunkReassembler(mime="audio/pcm;rate=44100")
        pcm = _run(r, capture_messages(letter))
        assert ncc_near_zero_lag(pcm, reference_pcm(letter)) >= 0.99


def test_restart_continues_the_clock_without_garbage() -> None:
    """B: MediaRecorder stop()/start() at 10 s sends a second EBML header mid-connection."""
    messages = capture_messages("B")
    r = sd.ChunkReassembler(mime=_mime("B"))
    outputs = [r.feed(m) for m in messages]
    outputs.append(r.flush())
    assert r.restarts == 1
    pcm = np.concatenate(outputs)
    reference = reference_pcm("B")
    assert abs(len(pcm) - len(reference)) <= 320
    assert ncc_near_zero_lag(pcm, reference) >= 0.99
    # Around the restart (message 34) the output is continuous audio: no burst, no gap of
    # garbage — the largest sample step there is like the steps elsewhere in speech.
    at = sum(len(o) for o in outputs[:34])
    window = pcm[at - 1600 : at + 1600].astype(np.int32)
    assert np.abs(np.diff(window)).max() <= np.abs(np.diff(pcm.astype(np.int32))).max()


def test_streamed_equals_whole_file_decode() -> None:
    """The chunked path equals the one-shot path (same decoder, one soxr call): 1e-4 rel. RMS."""
    messages = capture_messages("A")
    chunked = _run(sd.ChunkReassembler(mime=_mime("A")), messages).astype(np.float64)
    whole = _run(sd.ChunkReassembler(mime=_mime("A")), [b"".join(messages)]).astype(np.float64)
    assert len(chunked) == len(whole)
    assert np.sqrt(np.mean((chunked - whole) ** 2)) / np.sqrt(np.mean(whole**2)) < 1e-4


@pytest.mark.parametrize("letter", ["A", "C", "G", "F"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=piece_sizes(max_piece=9000, max_pieces=120))
def test_any_split_gives_the_same_pcm(letter: str, sizes: list[int]) -> None:
    data = b"".join(capture_messages(letter))[:300_000]  # a prefix: compare without flush()
    one_shot = _run(sd.ChunkReassembler(mime=_mime(letter)), [data], flush=False)
    chunks, pos = [], 0
    for size in sizes:
        chunks.append(data[pos : pos + size])
        pos += size
    chunks.append(data[pos:])
    split = _run(sd.ChunkReassembler(mime=_mime(letter)), chunks, flush=False)
    assert np.array_equal(split, one_shot)


def test_one_byte_feeds() -> None:
    data = b"".join(capture_messages("G"))[:40_000]
    one_shot = _run(sd.ChunkReassembler(), [data], flush=False)
    r = sd.ChunkReassembler()
    byte_by_byte = _run(r, [data[i : i + 1] for i in range(len(data))], flush=False)
    assert np.array_equal(byte_by_byte, one_shot)
    assert r.format is not None
    assert r.format.container is sd.Container.OGG


# -- files from real encoders (what browsers here cannot make) --------------------------------


def _ffmpeg_sine(path: Path, source: str, seconds: float, codec: str, *options: str) -> None:
    """Write ``seconds`` of the lavfi ``source`` to ``path`` in ``codec`` (FFmpeg as the writer)."""
    lavfi = ["-f", "lavfi", "-i", source, "-t", str(seconds)]
    subprocess.run(
        ["ffmpeg", "-v", "error", *lavfi, *options, "-c:a", codec, str(path)], check=True
    )


def _ffmpeg_decode(path: Path) -> np.ndarray:
    """Independent reference: the ffmpeg binary, 16 kHz mono s16."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(out, dtype=np.int16)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(DATA) for p in (DATA / "mp4").glob("*frag*.mp4"))
    + sorted(p.relative_to(DATA) for p in (DATA / "ogg").glob("*.opus"))
    + sorted(p.relative_to(DATA) for p in (DATA / "webm").glob("*.mka")),
    ids=str,
)
def test_encoder_files_match_ffmpeg(path: Path) -> None:
    data = (DATA / path).read_bytes()
    pcm = _run(sd.ChunkReassembler(), [data[i : i + 4000] for i in range(0, len(data), 4000)])
    reference = _ffmpeg_decode(DATA / path)
    assert abs(len(pcm) - len(reference)) <= 320
    assert ncc_near_zero_lag(pcm, reference) >= 0.99


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rate", "codec", "channels"),
    [
        (8000, "pcm_s16le", 1),
        (22050, "pcm_s24le", 2),
        (44100, "pcm_f32le", 2),
        (48000, "pcm_s16le", 1),
        (96000, "pcm_f32le", 1),
    ],
)
def test_wav_files_written_by_ffmpeg(tmp_path: Path, rate: int, codec: str, channels: int) -> None:
    path = tmp_path / "tone.wav"
    _ffmpeg_sine(path, f"sine=frequency=440:sample_rate={rate}", 1.3, codec, "-ac", str(channels))
    data = path.read_bytes()
    pcm = _run(
        sd.ChunkReassembler(mime="audio/wav"), [data[i : i + 777] for i in range(0, len(data), 777)]
    )
    reference = _ffmpeg_decode(path)
    assert abs(len(pcm) - len(reference)) <= 320
    assert ncc_near_zero_lag(pcm, reference) >= 0.99


# -- bad input --------------------------------------------------------------------------------


def test_garbage_is_a_typed_error_with_a_useful_message() -> None:
    r = sd.ChunkReassembler(mime="audio/webm")
    with pytest.raises(sd.UnsupportedFormatError, match="not a webm header"):
        r.feed(bytes(range(7, 200)))
    with pytest.raises(sd.UnsupportedFormatError):
        r.feed(b"more")  # stays failed


def test_headerless_webm_slice_names_the_likely_cause() -> None:
    """A server that drops the first MediaRecorder message gets told so."""
    messages = capture_messages("A")
    r = sd.ChunkReassembler(mime="audio/webm;codecs=opus")
    with pytest.raises(sd.UnsupportedFormatError, match="first message"):
        r.feed(messages[5])


def test_truncated_stream_returns_what_was_decodable() -> None:
    data = b"".join(capture_messages("A"))
    cut = data[: len(data) // 2 + 333]
    r = sd.ChunkReassembler()
    got = r.feed(cut)
    with pytest.raises(sd.CorruptStreamError) as info:
        r.flush()
    total = len(got) + len(info.value.pcm)
    reference = reference_pcm("A")
    # everything up to the cut is there (within one 60 ms packet and the resampler delay)
    assert total >= len(reference) // 2 - 16000 * 0.2


def test_nan_floats_keep_earlier_audio() -> None:
    good = (0.1 * np.sin(np.arange(4800) / 10)).astype("<f4")
    bad = good.copy()
    bad[100] = np.nan
    r = sd.ChunkReassembler(mime="audio/pcm;rate=48000;encoding=float32")
    first = r.feed(good.tobytes())
    with pytest.raises(sd.CorruptStreamError, match="NaN"):
        r.feed(bad.tobytes())
    assert len(first) > 1400  # 100 ms at 16 kHz minus the resampler's look-ahead
    with pytest.raises(sd.CorruptStreamError):
        r.feed(good.tobytes())


def test_unknown_codec_in_webm(tmp_path: Path) -> None:
    path = tmp_path / "mp3.mka"
    _ffmpeg_sine(path, "sine=sample_rate=16000", 0.5, "mp2")
    with pytest.raises(sd.UnsupportedFormatError, match="A_MPEG"):
        _run(sd.ChunkReassembler(), [path.read_bytes()])


def test_absurd_declared_size_fails_fast_without_allocating() -> None:
    messages = capture_messages("A")
    # A SimpleBlock (0xA3) that declares 2 GB, right after a real header and cluster start.
    evil = messages[0][:-1] + b"\xa3\x08\x80\x00\x00\x00" + b"\x81\x00\x00\x80" + bytes(1000)
    r = sd.ChunkReassembler()
    tracemalloc.start()
    try:
        with pytest.raises(sd.LimitExceededError, match="2147483648"):
            r.feed(evil)
        assert tracemalloc.get_traced_memory()[1] < 20 * 1024 * 1024
    finally:
        tracemalloc.stop()


def test_recovers_on_a_new_stream_header_after_a_fault() -> None:
    messages = capture_messages("A")
    r = sd.ChunkReassembler()
    r.feed(messages[0])
    with pytest.raises(sd.CorruptStreamError):
        r.feed(b"\x00\x00\x00\x00\x00")  # an invalid element: the stream is broken
    before = r.samples_out
    pcm = np.concatenate([r.feed(m) for m in messages] + [r.flush()])
    assert len(pcm) > 16000 * 15  # the restarted recording decodes in full
    assert r.samples_out == before + len(pcm)  # and the clock continued


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from([None, "audio/webm", "audio/ogg", "audio/mp4"]))
def test_arbitrary_bytes_raise_only_typed_errors(data: bytes, mime: str | None) -> None:
    r = sd.ChunkReassembler(mime=mime)
    try:
        r.feed(data)
        r.flush()
    except sd.StreamDiarizeError:
        pass


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_mutated_real_streams_raise_only_typed_errors(data: st.DataObject) -> None:
    letter = data.draw(st.sampled_from("ACG"))
    stream = bytearray(b"".join(capture_messages(letter))[:20_000])
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(stream) - 1))
        stream[at] ^= 1 << data.draw(st.integers(0, 7))
    r = sd.ChunkReassembler()
    try:
        r.feed(bytes(stream))
        r.flush()
    except sd.StreamDiarizeError:
        pass


# -- bounded memory over a long stream --------------------------------------------------------


@pytest.mark.slow
def test_memory_stays_bounded_over_one_hour_of_webm() -> None:
    """One hour of Chromium-style WebM/Opus (real header, 60 ms packets) in 120 ms messages."""
    header = capture_messages("A")[0][:146]
    packet = bytes.fromhex("ff 03 ff fe ff fe ff fe")  # Chromium's silent 3 × 20 ms packet

    def cluster(timecode_ms: int) -> bytes:
        blocks = b""
        for i in range(2):
            body = b"\x81" + (i * 60).to_bytes(2, "big") + b"\x80" + packet
            blocks += b"\xa3" + bytes([0x80 | len(body)]) + body
        timecode = b"\xe7\x84" + timecode_ms.to_bytes(4, "big")
        return b"\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff" + timecode + blocks

    r = sd.ChunkReassembler(mime="audio/webm;codecs=opus")
    r.feed(header)
    tracemalloc.start()
    try:
        for i in range(30_000):  # 30 000 × 120 ms = 3600 s
            r.feed(cluster(i * 120))
            if i == 1000:
                baseline = tracemalloc.get_traced_memory()[0]
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.duration == pytest.approx(3600, abs=0.2)
    assert current - baseline < 256 * 1024
    assert peak < 4 * 1024 * 1024
