"""RawDemuxer on the ScriptProcessor/AudioWorklet captures (D, E, F) and synthetic frames."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _feeding import (
    capture_dir,
    capture_messages,
    feed_in_pieces,
    piece_sizes,
    whole_frames_audio,
)
from streamdiarize import ConfigurationError, CorruptStreamError, UnsupportedFormatError
from streamdiarize.containers import EndOfStream, Event, Packet, RawDemuxer, TrackInfo
from streamdiarize.formats import GUESS_MIN_NONZERO_SAMPLES, SampleFormat

#: capture → the encoding the page sent (README: D and E float32, F int16)
RAW_CAPTURES = {"D": SampleFormat.FLOAT32, "E": SampleFormat.FLOAT32, "F": SampleFormat.INT16}
CODECS = {SampleFormat.FLOAT32: "pcm_f32le", SampleFormat.INT16: "pcm_s16le"}


def packets(events: list[Event]) -> list[Packet]:
    return [e for e in events if isinstance(e, Packet)]


@functools.cache
def capture(name: str) -> tuple[list[bytes], bytes, int]:
    messages = capture_messages(name)
    rate = json.loads((capture_dir(name) / "meta.json").read_text())["sampleRate"]
    return messages, b"".join(messages), rate


# -- declared formats ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RAW_CAPTURES))
def test_capture_in_real_messages_and_one_byte_pieces(name: str) -> None:
    messages, data, rate = capture(name)
    fmt = RAW_CAPTURES[name]
    events = feed_in_pieces(RawDemuxer(fmt, rate, 1), data, [len(m) for m in messages])
    assert events[0] == TrackInfo(CODECS[fmt], rate, 1)
    assert isinstance(events[-1], EndOfStream)
    assert whole_frames_audio(events, fmt.itemsize, rate) == data
    head = data[:160_000]  # the leading silence and the start of speech, byte by byte
    events = feed_in_pieces(RawDemuxer(fmt, rate, 1), head, [1] * len(head))
    assert whole_frames_audio(events, fmt.itemsize, rate) == head


@pytest.mark.parametrize("name", list(RAW_CAPTURES))
@settings(max_examples=20, deadline=None)
@given(sizes=piece_sizes(max_piece=3000))
def test_capture_in_random_pieces(name: str, sizes: list[int]) -> None:
    _, data, rate = capture(name)
    fmt = RAW_CAPTURES[name]
    events = feed_in_pieces(RawDemuxer(fmt.value, rate), data, sizes)  # by name, too
    assert whole_frames_audio(events, fmt.itemsize, rate) == data


@settings(max_examples=50, deadline=None)
@given(sizes=piece_sizes(max_piece=50), channels=st.integers(1, 6))
def test_multichannel_frames_are_never_split(sizes: list[int], channels: int) -> None:
    frames = np.arange(channels * 100, dtype="<i2").tobytes()
    events = feed_in_pieces(RawDemuxer(SampleFormat.INT16, 8000, channels), frames, sizes)
    assert whole_frames_audio(events, 2 * channels, 8000) == frames


def test_partial_frame_at_the_end_is_corrupt() -> None:
    demuxer = RawDemuxer(SampleFormat.FLOAT32, 48000, 2)
    events = demuxer.feed(np.zeros(5, "<f4").tobytes())  # 2 frames and half a frame
    with pytest.raises(CorruptStreamError, match="inside a frame"):
        demuxer.flush()
    assert whole_frames_audio(events, 8, 48000) == np.zeros(4, "<f4").tobytes()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_samples_are_corrupt_after_the_good_frames(bad: float) -> None:
    rate, channels = 16000, 2
    first = np.full(1000, 0.25, "<f4")
    second = np.full(1000, 0.5, "<f4")
    second[[803, 900, 901]] = bad  # frame 500 + 401 = 901 of the stream: 56.3 ms
    demuxer = RawDemuxer(SampleFormat.FLOAT32, rate, channels)
    delivered = demuxer.feed(first.tobytes())
    with pytest.raises(CorruptStreamError, match=r"3 NaN or infinite .*frame 901 \(0\.056 s\)"):
        demuxer.feed(second.tobytes())
    delivered += demuxer.events_received()
    assert whole_frames_audio(delivered, 8, rate) == first.tobytes() + second[:802].tobytes()
    with pytest.raises(CorruptStreamError):  # stays failed
        demuxer.feed(b"")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((SampleFormat.INT16, 0, 1), "sample rate"),
        ((SampleFormat.INT16, 16000, 0), "channel"),
        ((SampleFormat.INT16, 16000, 33), "channel"),
        (("int24", 16000, 1), "int24"),
    ],
)
def test_bad_arguments_are_configuration_errors(args: tuple[Any, int, int], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RawDemuxer(*args)


# -- guessed format --------------------------------------------------------------------------


def decision_message(name: str) -> int:
    """Index of the message whose feed returned the TrackInfo of an undeclared stream."""
    messages, _, rate = capture(name)
    demuxer = RawDemuxer(None, rate)
    for index, message in enumerate(messages):
        events = demuxer.feed(message)
        if events:
            assert isinstance(events[0], TrackInfo)
            return index
    raise AssertionError("never decided")


@pytest.mark.parametrize("name", list(RAW_CAPTURES))
def test_guess_decides_soon_after_the_leading_silence(name: str) -> None:
    messages, data, rate = capture(name)
    fmt = RAW_CAPTURES[name]
    events = feed_in_pieces(RawDemuxer(None, rate), data, [len(m) for m in messages])
    assert events[0] == TrackInfo(CODECS[fmt], rate, 1)
    assert whole_frames_audio(events, fmt.itemsize, rate) == data  # the held silence comes out too
    # It cannot decide on silence; it must decide once the heuristic has twice what it needs.
    nonzero_words = np.cumsum([np.count_nonzero(np.frombuffer(m, "<f4")) for m in messages])
    first_sound = int(np.argmax(nonzero_words > 0))
    enough = int(np.argmax(nonzero_words >= 2 * GUESS_MIN_NONZERO_SAMPLES))
    assert first_sound <= decision_message(name) <= enough


def test_guess_gives_up_after_ten_seconds_of_silence() -> None:
    demuxer = RawDemuxer(None, 8000)
    chunk = bytes(4000)  # 0.5 s of float32 (or 0.25 s of int16) silence
    held = 0
    with pytest.raises(UnsupportedFormatError, match=r"digital silence.*declare"):  # noqa: PT012
        for _ in range(100):
            assert demuxer.feed(chunk) == []
            held = max(held, demuxer.buffered)
    assert held <= 10 * 8000 * 4


def test_guess_at_the_end_of_a_short_stream() -> None:
    assert RawDemuxer(None, 8000).flush() == [EndOfStream()]
    demuxer = RawDemuxer(None, 8000)
    demuxer.feed(np.full(100, 0.1, "<f4").tobytes())  # too little to tell
    with pytest.raises(UnsupportedFormatError, match="declare the sample format"):
        demuxer.flush()


def test_int16_noise_is_guessed_as_int16() -> None:
    samples = np.random.default_rng(1).normal(0, 3000, 4000).astype("<i2")
    events = feed_in_pieces(RawDemuxer(None, 16000), samples.tobytes(), [256] * 40)
    assert events[0] == TrackInfo("pcm_s16le", 16000, 1)
    assert whole_frames_audio(events, 2, 16000) == samples.tobytes()
