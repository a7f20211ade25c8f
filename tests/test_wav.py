"""WavDemuxer on files from Python's ``wave`` module and FFmpeg, and on hand-built RIFF.

Expected samples come from the writer (``wave``) or from FFmpeg's own decode (PyAV).
"""

from __future__ import annotations

import functools
import io
import struct
import wave
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _feeding import WritePipe, feed_in_pieces, piece_sizes, whole_frames_audio
from streamdiarize import CorruptStreamError, StreamDiarizeError, UnsupportedFormatError
from streamdiarize.containers import (
    EndOfStream,
    Event,
    Packet,
    StreamRestarted,
    TrackInfo,
    WavDemuxer,
)

WIDTH_CODECS = {1: "pcm_u8", 2: "pcm_s16le", 3: "pcm_s24le", 4: "pcm_s32le"}


def packets(events: list[Event]) -> list[Packet]:
    return [e for e in events if isinstance(e, Packet)]


def demux(data: bytes, sizes: list[int] | None = None) -> list[Event]:
    return feed_in_pieces(WavDemuxer(), data, sizes or [])


def wave_file(rate: int, channels: int, width: int, frames: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return out.getvalue()


def noise(frames: int, frame_size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, frames * frame_size, np.uint8).tobytes()


def assert_whole_frames(events: list[Event], frame_size: int, rate: int) -> bytes:
    """Check the event shape and timing; return the concatenated audio bytes."""
    assert isinstance(events[0], TrackInfo)
    assert isinstance(events[-1], EndOfStream)
    return whole_frames_audio(events, frame_size, rate)


# -- files from the wave module --------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "channels", "width"),
    [(8000, 1, 1), (16000, 1, 2), (22050, 2, 2), (44100, 2, 3), (48000, 1, 4), (96000, 2, 2)],
)
def test_wave_module_files_in_any_split(rate: int, channels: int, width: int) -> None:
    audio = noise(1001, channels * width)
    data = wave_file(rate, channels, width, audio)
    for sizes in ([], [1] * len(data), [3, 0, 7, 0, 0, 45, 1, 2, 1000]):
        events = demux(data, sizes)
        assert events[0] == TrackInfo(WIDTH_CODECS[width], rate, channels)
        assert assert_whole_frames(events, channels * width, rate) == audio


@settings(max_examples=40, deadline=None)
@given(sizes=piece_sizes(max_piece=700), channels=st.sampled_from([1, 2, 3]))
def test_random_splits_never_split_a_frame(sizes: list[int], channels: int) -> None:
    audio = noise(500, channels * 3, seed=channels)
    data = wave_file(44100, channels, 3, audio)
    assert assert_whole_frames(demux(data, sizes), channels * 3, 44100) == audio


# -- files from FFmpeg -----------------------------------------------------------------------


@functools.cache
def ffmpeg_wav(
    codec: str, rate: int, channels: int, seekable: bool = True, rf64: bool = False
) -> bytes:
    layout = "stereo" if channels == 2 else "mono"
    sink: Any = io.BytesIO() if seekable else WritePipe()
    options = {"rf64": "always"} if rf64 else {}
    with av.open(sink, "w", format="wav", options=options) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        n = rate // 10
        tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)
        tone[::97] = 0.999  # some full-scale peaks
        frame = av.AudioFrame.from_ndarray(
            np.repeat(tone.astype(np.float32), channels)[None, :], format="flt", layout=layout
        )
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return bytes(sink.getvalue() if seekable else sink.data)


def samples(raw: bytes, codec: str) -> np.ndarray[Any, Any]:
    """Our bytes as FFmpeg's decoder lays them out (s24 becomes s32 with the low byte 0)."""
    if codec == "pcm_s24le":
        triples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        return (triples[:, 0] << 8) | (triples[:, 1] << 16) | (triples[:, 2] << 24)
    dtype = {"pcm_u8": "u1", "pcm_s16le": "<i2", "pcm_s32le": "<i4", "pcm_f32le": "<f4"}[codec]
    return np.frombuffer(raw, dtype)


def ffmpeg_decode(data: bytes) -> np.ndarray[Any, Any]:
    with av.open(io.BytesIO(data)) as container:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])


@pytest.mark.parametrize(
    ("codec", "rate", "channels", "seekable", "rf64"),
    [
        ("pcm_s16le", 8000, 1, True, False),
        ("pcm_s16le", 16000, 2, False, False),  # streaming: sizes 0xFFFFFFFF
        ("pcm_s16le", 48000, 2, True, True),  # RF64 with a ds64 chunk
        ("pcm_s24le", 96000, 2, True, False),  # WAVE_FORMAT_EXTENSIBLE
        ("pcm_f32le", 44100, 2, True, False),  # a fact chunk
        ("pcm_f32le", 22050, 1, False, False),
        ("pcm_s32le", 32000, 2, True, False),
        ("pcm_u8", 11025, 1, True, False),
    ],
)
def test_ffmpeg_files_decode_like_ffmpeg(
    codec: str, rate: int, channels: int, seekable: bool, rf64: bool
) -> None:
    data = ffmpeg_wav(codec, rate, channels, seekable, rf64)
    events = demux(data)
    assert events[0] == TrackInfo(codec, rate, channels)
    width = int(codec[5:7]) // 8 if codec != "pcm_u8" else 1
    raw = assert_whole_frames(events, width * channels, rate)
    np.testing.assert_array_equal(samples(raw, codec), ffmpeg_decode(data))
    assert assert_whole_frames(demux(data, [1] * len(data)), width * channels, rate) == raw


# -- hand-built RIFF -------------------------------------------------------------------------


def fmt(
    channels: int = 1,
    rate: int = 16000,
    bits: int = 16,
    tag: int = 1,
    *,
    block_align: int | None = None,
    subformat: bytes | None = None,
) -> bytes:
    align = channels * bits // 8 if block_align is None else block_align
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if subformat is not None:
        body += struct.pack("<HHI", 22, bits, 3) + subformat
    return body


def riff(
    *chunks: tuple[bytes, bytes], form: bytes = b"RIFF", sizes: dict[int, int] | None = None
) -> bytes:
    """A RIFF file from (id, body) chunks with pad bytes; ``sizes`` overrides chunk sizes."""
    body = b"WAVE"
    for index, (cid, payload) in enumerate(chunks):
        size = (sizes or {}).get(index, len(payload))
        body += cid + struct.pack("<I", size) + payload + b"\0" * (len(payload) % 2)
    return form + struct.pack("<I", len(body)) + body


PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


@pytest.mark.parametrize("declared", [0, 0xFFFFFFFF])
def test_streaming_data_size_means_until_the_end(declared: int) -> None:
    audio = noise(300, 4)
    data = riff((b"fmt ", fmt(2)), (b"data", audio), sizes={1: declared})
    assert assert_whole_frames(demux(data, [5] * 300), 4, 16000) == audio


def test_odd_chunks_are_skipped_with_their_pad_byte() -> None:
    audio = noise(101, 1)  # odd-sized u8 data, then a pad byte and more chunks
    data = riff(
        (b"LIST", b"INFOISFT\x05\0\0\0abcde"),
        (b"fmt ", fmt(1, 8000, 8)),
        (b"junk", b"x" * 7),
        (b"data", audio),
        (b"LIST", b"INFO" + b"y" * 13),
    )
    events = demux(data, [1] * len(data))
    assert events[0] == TrackInfo("pcm_u8", 8000, 1)
    assert assert_whole_frames(events, 1, 8000) == audio


def test_extensible_float_and_rf64_without_pad_at_the_end() -> None:
    audio = np.linspace(-1, 1, 202).astype("<f4").tobytes()
    extensible = fmt(2, 48000, 32, 0xFFFE, subformat=b"\x03\x00" + PCM_GUID_TAIL)
    ds64 = struct.pack("<QQQI", 0, len(audio), 101, 0)
    data = riff(
        (b"ds64", ds64),
        (b"fmt ", extensible),
        (b"data", audio),
        form=b"RF64",
        sizes={2: 0xFFFFFFFF},
    )
    events = demux(data)
    assert events[0] == TrackInfo("pcm_f32le", 48000, 2)
    assert assert_whole_frames(events, 8, 48000) == audio


def test_data_chunk_with_a_stray_partial_frame_and_a_second_data_chunk() -> None:
    """A size that is not a whole number of frames: the stray bytes are dropped, not waited for."""
    first, second = noise(10, 4), noise(5, 4, seed=2)
    data = riff(
        (b"fmt ", fmt(2)), (b"data", first + b"\1\2\3"), (b"LIST", b"x" * 8), (b"data", second)
    )
    for sizes in ([], [1] * len(data)):
        events = demux(data, sizes)
        assert assert_whole_frames(events, 4, 16000) == first + second


def test_concatenated_files_restart() -> None:
    first = wave_file(16000, 1, 2, noise(10, 2))
    second = wave_file(8000, 2, 2, noise(20, 4, seed=1))
    events = demux(first + second, [1] * (len(first) + len(second)))
    kinds = [type(e) for e in events if not isinstance(e, Packet)]
    assert kinds == [TrackInfo, StreamRestarted, TrackInfo, EndOfStream]
    split = events.index(StreamRestarted())
    assert b"".join(p.data for p in packets(events[:split])) == noise(10, 2)
    assert b"".join(p.data for p in packets(events[split:])) == noise(20, 4, seed=1)
    assert packets(events[split:])[0].pts == 0.0


def test_nan_in_float_wav_is_corrupt_after_the_good_frames() -> None:
    audio = np.zeros(100, "<f4")
    audio[[61, 62, 90]] = [np.nan, np.inf, np.nan]
    data = riff((b"fmt ", fmt(2, 16000, 32, 3)), (b"data", audio.tobytes()))
    demuxer = WavDemuxer()
    with pytest.raises(CorruptStreamError, match=r"3 NaN or infinite.*frame 30 \(0.002 s\)"):
        demuxer.feed(data)
    good = packets(demuxer.events_received())
    assert b"".join(p.data for p in good) == audio[:60].tobytes()  # frames 0-29, whole


def fails(data: bytes, error: type[Exception], match: str) -> list[Event]:
    """Expect ``error`` fed at once and byte by byte; return the byte-by-byte events."""
    fails_with(data, [], error, match)
    return fails_with(data, [1] * len(data), error, match)


def fails_with(data: bytes, sizes: list[int], error: type[Exception], match: str) -> list[Event]:
    """Feed in ``sizes`` pieces and flush, expecting ``error``; return every event delivered."""
    demuxer = WavDemuxer()
    events: list[Event] = []

    def feed_all() -> None:
        events.extend(feed_in_pieces(demuxer, data, sizes, flush=False))
        events.extend(demuxer.flush())

    with pytest.raises(error, match=match):
        feed_all()
    return events + demuxer.events_received()


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"\x00", CorruptStreamError, "not a WAV"),
        (b"RIFX\0\0\0\0WAVE", CorruptStreamError, "not a WAV"),
        (b"RIFF\0\0\0\0AVI ", CorruptStreamError, "not a WAV"),
        (riff((b"data", b"\0\0")), CorruptStreamError, "before fmt"),
        (riff((b"fmt ", fmt())), CorruptStreamError, "ends before its data chunk"),
        (riff((b"fmt ", fmt(tag=6)), (b"data", b"")), UnsupportedFormatError, "A-law"),
        (riff((b"fmt ", fmt(tag=0x55))), UnsupportedFormatError, "MP3"),
        (riff((b"fmt ", fmt(bits=12))), UnsupportedFormatError, "12-bit"),
        (riff((b"fmt ", fmt(channels=0))), CorruptStreamError, "0 channels"),
        (riff((b"fmt ", fmt(channels=64))), UnsupportedFormatError, "64 channels"),
        (riff((b"fmt ", fmt(rate=500))), UnsupportedFormatError, "500 Hz"),
        (riff((b"fmt ", fmt(rate=1_000_000))), UnsupportedFormatError, "1000000 Hz"),
        (riff((b"fmt ", fmt(block_align=3))), CorruptStreamError, "3 bytes per frame"),
        (
            riff((b"fmt ", fmt(2, 16000, 16, 0xFFFE, subformat=b"\x01\x00" + b"?" * 14))),
            UnsupportedFormatError,
            "SubFormat",
        ),
        (riff((b"fmt ", b"\1\0")), CorruptStreamError, "only 2 bytes"),
        (riff((b"fmt ", b"\0" * 5000)), CorruptStreamError, "5000 bytes"),
    ],
)
def test_bad_headers(data: bytes, error: type[Exception], match: str) -> None:
    fails(data, error, match)


def test_truncated_data_keeps_the_frames_before() -> None:
    audio = noise(100, 4)
    data = riff((b"fmt ", fmt(2)), (b"data", audio))[:-41]  # the end of the data is cut off
    events = fails(data, CorruptStreamError, "41 bytes of audio data missing")
    whole = (len(audio) - 41) // 4 * 4
    assert b"".join(p.data for p in packets(events)) == audio[:whole]


def test_partial_frame_at_the_end_of_streaming_data_is_corrupt() -> None:
    data = riff((b"fmt ", fmt(2)), (b"data", noise(10, 4) + b"\1\2"), sizes={1: 0})
    events = fails(data, CorruptStreamError, "inside a frame")
    assert b"".join(p.data for p in packets(events)) == noise(10, 4)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_bit_flips_only_raise_typed_errors(data: st.DataObject) -> None:
    original = ffmpeg_wav(
        *data.draw(st.sampled_from([("pcm_s24le", 96000, 2), ("pcm_f32le", 44100, 2)]))
    )
    stream = bytearray(original[: data.draw(st.integers(0, 400))])
    for _ in range(data.draw(st.integers(1, 6))):
        if stream:
            stream[data.draw(st.integers(0, len(stream) - 1))] ^= data.draw(st.integers(1, 255))
    demuxer = WavDemuxer(max_buffered=1 << 16)
    try:
        feed_in_pieces(demuxer, bytes(stream), data.draw(piece_sizes(max_piece=64, max_pieces=10)))
    except StreamDiarizeError:
        assert demuxer.failed
