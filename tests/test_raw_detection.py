"""Raw frames with nothing declared: float32 vs int16 from the values, the rate from arrival times.

The captures D, E (float32) and F (int16) are Chromium's ScriptProcessor and AudioWorklet
messages at 44.1 kHz. They are replayed with arrival times: D's as recorded at the server, and
for every capture a live client's (each message when its audio is complete, plus jitter). With
nothing declared, the reassembler must decode exactly what it decodes with the format declared
(so no held audio is lost or re-timed), which matches FFmpeg's reference decode.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import streamdiarize as sd
from _feeding import capture_dir, capture_messages, dialog, ncc_near_zero_lag, reference_pcm
from streamdiarize.raw_detection import (
    BACKLOG_SECONDS,
    MAX_SECONDS,
    STANDARD_RATES,
    RateEstimator,
    RawFormatDetector,
    snap_rate,
)
from streamdiarize.transcribers import SegmentSink, Transcriber, TranscriberStream

RAW = {"D": sd.SampleFormat.FLOAT32, "E": sd.SampleFormat.FLOAT32, "F": sd.SampleFormat.INT16}
RATE = 44_100

Feed = list[tuple[bytes, float]]


def live_arrivals(
    sizes: list[int], bytes_per_second: float, rng: np.random.Generator, jitter: float = 0.012
) -> NDArray[np.float64]:
    """When a live client's messages arrive: once their audio is complete, late by up to
    ``jitter`` seconds (never out of order)."""
    ends = np.cumsum(sizes) / bytes_per_second
    late = ends + rng.uniform(0, jitter, len(sizes))
    return np.maximum.accumulate(late)


def replay(
    r: sd.ChunkReassembler, feed: Feed, *, flush: bool = True
) -> tuple[NDArray[np.int16], int | None]:
    """Decode ``feed``; also return how many messages passed before the first audio came out."""
    parts: list[NDArray[np.int16]] = []
    first_audio: int | None = None
    for index, (message, arrival) in enumerate(feed):
        pcm = r.feed(message, arrival)
        if pcm.size and first_audio is None:
            first_audio = index
        parts.append(pcm)
    if flush:
        parts.append(r.flush())
    return np.concatenate(parts), first_audio


def declared(letter: str) -> NDArray[np.int16]:
    return replay(sd.ChunkReassembler(sd.AudioFormat.raw(RATE, RAW[letter])), capture_feed(letter))[
        0
    ]


def capture_feed(letter: str, seed: int = 0) -> Feed:
    messages = capture_messages(letter)
    rate_bytes = RATE * RAW[letter].itemsize
    arrivals = live_arrivals([len(m) for m in messages], rate_bytes, np.random.default_rng(seed))
    return list(zip(messages, arrivals.tolist(), strict=True))


def recorded_feed(letter: str) -> Feed:
    meta = json.loads((capture_dir(letter) / "meta.json").read_text())
    arrivals = [ms / 1000 for ms in meta["per_message_arrival_ms"]]
    return list(zip(capture_messages(letter), arrivals, strict=True))


class Recorder(Transcriber):
    """A backend that keeps the PCM it is given, after ``opening_seconds`` of connecting."""

    def __init__(self, opening_seconds: float = 0.0) -> None:
        self.opening_seconds = opening_seconds
        self.received: list[NDArray[np.int16]] = []

    async def open(self, sink: SegmentSink, *, interim_results: bool = False) -> TranscriberStream:
        await asyncio.sleep(self.opening_seconds)
        return _RecordingStream(self.received)


class _RecordingStream(TranscriberStream):
    def __init__(self, received: list[NDArray[np.int16]]) -> None:
        self._received = received

    async def write(self, pcm: NDArray[np.int16]) -> None:
        self._received.append(pcm)

    async def finish(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def encoded(audio: NDArray[np.float32], fmt: sd.SampleFormat) -> bytes:
    """``audio`` as a page sends it in ``fmt``: float32 as is, int16 scaled and clipped."""
    if fmt is sd.SampleFormat.FLOAT32:
        return audio.astype("<f4").tobytes()
    return np.clip(np.rint(audio * 32767), -32768, 32767).astype("<i2").tobytes()


@pytest.mark.parametrize("letter", list(RAW))
def test_undeclared_capture_decodes_like_the_declared_one_and_ffmpeg(
    letter: str, caplog: pytest.LogCaptureFixture
) -> None:
    feed = recorded_feed(letter) if letter == "D" else capture_feed(letter)
    r = sd.ChunkReassembler()
    with caplog.at_level(logging.INFO, logger="streamdiarize.raw"):
        pcm, first_audio = replay(r, feed)
    assert r.format == sd.AudioFormat.raw(RATE, RAW[letter])
    assert np.array_equal(pcm, declared(letter)), "held audio is neither lost nor re-timed"
    reference = reference_pcm(letter)
    assert abs(len(pcm) - len(reference)) <= 160
    assert ncc_near_zero_lag(pcm, reference) >= 0.99
    # The decision and its evidence are logged; it took 1-1.2 s of arrival time.
    assert r.raw_evidence is not None
    assert r.raw_evidence.deviation < 0.01
    assert 1.0 <= r.raw_evidence.seconds <= 1.2
    assert first_audio is not None
    assert feed[first_audio][1] - feed[0][1] <= 1.2
    assert f"raw frames: {RAW[letter].value}, rate inferred: 44100 Hz (measured" in caplog.text
    print(f"{letter}: {r.raw_evidence}")  # shown with -rP


def test_a_session_measures_with_its_injected_clock() -> None:
    """``TranscriptionSession(clock=...)``: the clock a test injects is the one measured."""
    feed = recorded_feed("D")
    times = iter(arrival for _, arrival in feed)
    recorder = Recorder()

    async def main() -> None:
        async with sd.TranscriptionSession(recorder, clock=lambda: next(times)) as session:
            for message, _ in feed:
                await session.send(message)
            assert session.reassembler.format == sd.AudioFormat.raw(RATE, "float32")

    asyncio.run(main())
    assert np.array_equal(np.concatenate(recorder.received), declared("D"))


@cache
def dialog_at(rate: int) -> NDArray[np.float32]:
    """The first 2.5 s of speech of the dialog (from 0.45 s) at ``rate``, as float32."""
    pcm, _ = dialog()
    audio = pcm[int(0.45 * 16000) : int(2.95 * 16000)].astype(np.float32) / 32768
    return sd.resample(audio, 16_000, rate)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.sampled_from(STANDARD_RATES),
    fmt=st.sampled_from(list(sd.SampleFormat)),
    frames=st.sampled_from([128, 256, 512, 1024, 2048, 4096]),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=12),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_standard_rate_and_format_in_any_split(
    rate: int, fmt: sd.SampleFormat, frames: int, cuts: list[int], seed: int
) -> None:
    """The dialog at every standard rate, in messages of a page's buffer size, cut anywhere
    (mid-sample too), arriving in real time with jitter: format and rate are found."""
    audio = dialog_at(rate)
    data = encoded(audio, fmt)
    step = frames * fmt.itemsize
    edges = sorted({*range(0, len(data), step), *(c % len(data) for c in cuts), len(data)})
    messages = [data[a:b] for a, b in itertools.pairwise(edges)]
    arrivals = live_arrivals(
        [len(m) for m in messages], rate * fmt.itemsize, np.random.default_rng(seed)
    )
    r = sd.ChunkReassembler()
    pcm, _ = replay(r, list(zip(messages, arrivals.tolist(), strict=True)))
    assert r.format == sd.AudioFormat.raw(rate, fmt)
    assert len(pcm) == pytest.approx(2.5 * 16000, abs=40)


def stalled(arrivals: NDArray[np.float64], stalls: list[tuple[float, float]]) -> list[float]:
    """The arrival times a reader sees that stops reading at ``start`` for ``seconds``, for
    each ``(start, seconds)``: what arrived meanwhile is read in one burst at its end
    (overlapping stalls are one longer stall)."""
    seen = arrivals.copy()
    for start, seconds in sorted(stalls):
        seen[(seen >= start) & (seen < start + seconds)] = start + seconds
    return np.maximum.accumulate(seen).tolist()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.sampled_from(STANDARD_RATES),
    fmt=st.sampled_from(list(sd.SampleFormat)),
    frames=st.sampled_from([128, 512, 1024, 4096]),
    backlog=st.floats(0.0, 4.0),
    stalls=st.lists(st.tuples(st.floats(0.0, 3.0), st.floats(0.02, 1.0)), max_size=2),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_reader_that_stalls_still_measures_the_right_rate(
    rate: int,
    fmt: sd.SampleFormat,
    frames: int,
    backlog: float,
    stalls: list[tuple[float, float]],
    seed: int,
) -> None:
    """A server opens its session after the first message (connecting to Azure, loading a
    model: up to 4 s) and may stall again in the next 3 s; meanwhile the page streams on and
    each backlog is read in one burst. The rate is still measured right, and every held byte
    decoded. (Messages longer than 4096 frames at 16 kHz are left out: two 512 ms messages
    must fit a quarter of the span to corroborate a measurement, which may outlast the 10 s.)"""
    assume(frames / rate <= 0.26)
    audio = np.tile(dialog_at(rate), 4)  # 10 s: the stalls end with 4 s still to come
    data = encoded(audio, fmt)
    step = frames * fmt.itemsize
    messages = [data[i : i + step] for i in range(0, len(data), step)]
    arrivals = live_arrivals(
        [len(m) for m in messages], rate * fmt.itemsize, np.random.default_rng(seed)
    )
    seen = stalled(arrivals, [(0.0, backlog)] + [(backlog + a, b) for a, b in stalls])
    r = sd.ChunkReassembler()
    pcm, _ = replay(r, list(zip(messages, seen, strict=True)))
    assert r.format == sd.AudioFormat.raw(rate, fmt)
    assert r.raw_evidence is not None
    assert r.raw_evidence.deviation <= 0.04
    assert len(pcm) == pytest.approx(10 * 16000, abs=40)


def test_a_server_that_opens_its_session_after_the_first_message() -> None:
    """The usual handler over a real socket: ``recv()`` the first message, open the session
    (here 1.5 s, as connecting to the service or loading a model takes), then send the rest.
    The page streamed in real time meanwhile: 1.5 s of backlog lands at once, and the rate is
    still 44.1 kHz, with no sample lost."""
    import time

    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve

    messages = capture_messages("D")[:160]  # 3.7 s
    slow_to_open = Recorder(opening_seconds=1.5)
    formats: list[sd.AudioFormat | None] = []
    closed = asyncio.Event()

    async def handler(websocket: ServerConnection) -> None:
        first = await websocket.recv(decode=False)
        async with sd.TranscriptionSession(slow_to_open) as session:
            await session.send(first)
            async for message in websocket:
                assert isinstance(message, bytes)
                await session.send(message)
            await session.close()
            formats.append(session.reassembler.format)
            closed.set()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}", max_size=None) as client:
                began = time.monotonic()
                for index, message in enumerate(messages):
                    await asyncio.sleep(max(0.0, began + index * 1024 / RATE - time.monotonic()))
                    await client.send(message)
            await asyncio.wait_for(closed.wait(), 10)

    asyncio.run(main())
    assert formats == [sd.AudioFormat.raw(RATE, "float32")]
    whole = replay(
        sd.ChunkReassembler(sd.AudioFormat.raw(RATE, "float32")), [(m, 0.0) for m in messages]
    )
    assert np.array_equal(np.concatenate(slow_to_open.received), whole[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    letter=st.sampled_from(list(RAW)),
    start=st.integers(0, 40),
    cuts=st.lists(st.integers(0, 1 << 21), max_size=20),
)
def test_captures_are_never_misread_from_any_start_and_split(
    letter: str, start: int, cuts: list[int]
) -> None:
    """Joining the capture from any message on (a stream may start mid-speech), re-split at
    random bytes: float32 is never read as int16, nor the reverse."""
    data = b"".join(capture_messages(letter)[start:])[: RATE * 4 * 2]
    edges = sorted({0, *(c % len(data) for c in cuts), *range(0, len(data), 4096), len(data)})
    messages = [data[a:b] for a, b in itertools.pairwise(edges)]
    arrivals = live_arrivals(
        [len(m) for m in messages], RATE * RAW[letter].itemsize, np.random.default_rng(start)
    )
    detector = RawFormatDetector(max_held=1 << 24)
    decided = None
    for message, arrival in zip(messages, arrivals.tolist(), strict=True):
        decided = detector.feed(message, arrival)
        if decided is not None:
            break
    decided = decided or detector.finish()
    assert decided == sd.AudioFormat.raw(RATE, RAW[letter])


# -- when it cannot tell: typed errors, never a hang or unbounded holding -----------------------


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=200_000),
    piece=st.integers(64, 8192),
    seconds_per_piece=st.floats(0.0, 0.05),
)
def test_garbage_is_a_typed_error_or_audio_never_a_hang(
    data: bytes, piece: int, seconds_per_piece: float
) -> None:
    r = sd.ChunkReassembler()
    try:
        for index in range(0, len(data), piece):
            r.feed(data[index : index + piece], index // piece * seconds_per_piece)
        r.flush()
    except sd.InputError:
        pass


def test_random_bytes_fit_neither_format() -> None:
    noise = np.random.default_rng(7).bytes(1 << 20)
    detector = RawFormatDetector(max_held=1 << 24)
    with pytest.raises(sd.UnsupportedFormatError, match="neither float32 nor int16"):  # noqa: PT012
        for i in range(256):
            detector.feed(noise[i * 4096 : (i + 1) * 4096], i * 4096 / (44100 * 4))
    assert i * 4096 <= 70_000, "decided on the first 64 KB of non-zero data"


def test_a_file_pushed_at_full_speed_is_refused_with_what_to_do() -> None:
    messages = capture_messages("D")
    r = sd.ChunkReassembler()
    with pytest.raises(sd.UnsupportedFormatError, match=r"faster than real time.*\?rate=48000"):  # noqa: PT012
        for i, message in enumerate(messages):
            r.feed(message, 0.001 * i)
    # Refused once 5 s of 48 kHz float32 (a session's opening backlog) is exceeded, before the
    # capture's 318 messages are all held.
    assert i * 4096 <= (BACKLOG_SECONDS + 0.001 * i) * 48_000 * 4 * 1.05
    assert i < len(messages) - 1


def test_a_file_pushed_at_twice_real_time_has_no_standard_rate() -> None:
    messages = capture_messages("D")
    arrivals = live_arrivals([len(m) for m in messages], 2 * RATE * 4, np.random.default_rng(1))
    r = sd.ChunkReassembler()
    with pytest.raises(sd.UnsupportedFormatError, match=r"faster than real time|standard rate"):  # noqa: PT012
        for message, arrival in zip(messages, arrivals.tolist(), strict=True):
            r.feed(message, arrival)
    with pytest.raises(sd.UnsupportedFormatError):
        r.feed(messages[-1], 100.0)  # stays failed


def test_truncated_stream_ends_with_a_typed_error() -> None:
    feed = capture_feed("D")
    r = sd.ChunkReassembler()
    for message, arrival in feed[30:42]:  # 0.28 s of speech: too soon to measure a rate
        assert r.feed(message, arrival).size == 0
    with pytest.raises(sd.UnsupportedFormatError, match="too soon to measure"):
        r.flush()
    cut = sd.ChunkReassembler()  # decided, then cut mid-sample: the audio before is kept
    pcm, _ = replay(cut, [*feed[:99], (feed[99][0][:-3], feed[99][1])], flush=False)
    with pytest.raises(sd.CorruptStreamError) as error:
        cut.flush()
    decoded = len(pcm) + len(error.value.pcm)
    assert decoded == pytest.approx((100 * 1024 - 1) / RATE * 16000, abs=2)  # whole frames


def test_short_stream_is_decided_at_the_end() -> None:
    """A stream of 0.5-1 s decides at flush() with the looser tolerance."""
    feed = capture_feed("D")[:40]  # 0.93 s
    r = sd.ChunkReassembler()
    pcm, _ = replay(r, feed)
    assert r.format == sd.AudioFormat.raw(RATE, "float32")
    assert len(pcm) == pytest.approx(40 * 1024 / RATE * 16000, abs=40)


def test_digital_silence_gives_up_after_ten_seconds() -> None:
    r = sd.ChunkReassembler()
    with pytest.raises(sd.UnsupportedFormatError, match="digital silence"):  # noqa: PT012
        for i in range(1000):
            r.feed(bytes(4096), i * 4096 / (44100 * 4))
    assert 10.0 <= i * 4096 / (44100 * 4) <= 10.1


def test_without_arrival_times_the_rate_must_be_declared() -> None:
    with pytest.raises(sd.UnsupportedFormatError, match=r"arrival=time\.monotonic"):
        sd.ChunkReassembler().feed(capture_messages("D")[30])
    declared_rate = sd.ChunkReassembler(sample_rate=RATE)  # the format is still guessed
    pcm, _ = replay(declared_rate, [(m, 0.0) for m in capture_messages("F")])
    assert declared_rate.track is not None
    assert declared_rate.track.codec == "pcm_s16le"
    assert ncc_near_zero_lag(pcm, reference_pcm("F")) >= 0.99


def test_hints_do_not_stop_containers_from_being_recognised() -> None:
    """``sample_rate``/``sample_format`` (e.g. from ``?rate=``) only apply to raw frames."""
    r = sd.ChunkReassembler(sample_rate=48_000, sample_format="float32")
    pcm, _ = replay(r, [(m, 0.0) for m in capture_messages("A")])
    assert r.format is not None
    assert r.format.container is sd.Container.WEBM
    assert ncc_near_zero_lag(pcm, reference_pcm("A")) >= 0.98
    auto = sd.ChunkReassembler(sd.AudioFormat.auto())
    replay(auto, [(m, 0.0) for m in capture_messages("G")])
    assert auto.format is not None
    assert auto.format.container is sd.Container.OGG


# -- the pieces -------------------------------------------------------------------------------


def test_snap_rate() -> None:
    assert snap_rate(44_117.0) == (44_100, pytest.approx(17 / 44_100))
    assert snap_rate(47_000.0)[0] == 48_000
    assert snap_rate(11_500.0)[0] == 11_025
    assert snap_rate(96_000.0) == (48_000, pytest.approx(1.0))


def test_estimator_fits_the_slope_through_browser_jitter() -> None:
    """Chromium's 1024-frame messages come 20, 20, 30 ms apart; the fit is within 0.5 %."""
    estimator = RateEstimator()
    for message, arrival in recorded_feed("D")[:45]:
        estimator.observe(len(message), arrival)
    estimate = estimator.estimate(4)
    assert estimate is not None
    assert estimate.rate == RATE
    assert estimate.deviation < 0.005
    with pytest.raises(ValueError, match="backwards"):
        estimator.observe(10, 0.0)
    assert MAX_SECONDS <= 2.0
