"""LocalTranscriber: the asyncio side (worker thread, backpressure, finish/aclose, errors).

Stream mechanics are tested with a gated stand-in engine (the engine is not what these tests
are about); the real engine runs end to end on dialog.wav.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

pytest.importorskip("faster_whisper")
psutil = pytest.importorskip("psutil")
pytestmark = pytest.mark.slow  # loads Whisper

from _feeding import dialog  # noqa: E402
from streamdiarize import (  # noqa: E402
    BackendUnavailableError,
    ServiceError,
    SessionClosedError,
    TranscriberError,
)
from streamdiarize.segment import Segment  # noqa: E402
from streamdiarize.transcribers.local import LocalTranscriber, LocalTranscriberStream  # noqa: E402

RATE = 16_000
CHUNK = 1600


class Sink:
    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.errors: list[TranscriberError] = []
        self.threads: set[int] = set()

    def put_segment(self, segment: Segment) -> None:
        self.threads.add(threading.get_ident())
        self.segments.append(segment)

    def put_error(self, error: TranscriberError) -> None:
        self.threads.add(threading.get_ident())
        self.errors.append(error)


def segment(text: str, offset: float = 0.0) -> Segment:
    return Segment("Speaker 1", "en", text, offset, 0.1)


class GatedEngine:
    """Blocks in ``feed`` until the gate opens; counts what it was given."""

    def __init__(self, *, fail_on_feed: bool = False) -> None:
        self.gate = threading.Event()
        self.fed: list[int] = []
        self.in_feed = threading.Event()
        self.fail_on_feed = fail_on_feed

    def feed(self, pcm: np.ndarray) -> list[Segment]:
        self.in_feed.set()
        assert self.gate.wait(10), "test forgot to open the gate"
        if self.fail_on_feed:
            raise RuntimeError("boom")
        self.fed.append(len(pcm))
        return [segment(f"fed {len(pcm)}")]

    def finish(self) -> list[Segment]:
        return [segment("last")]


async def wait_for(event: threading.Event) -> None:
    await asyncio.to_thread(event.wait, 5)
    assert event.is_set()


# -- end to end with the real engine -------------------------------------------------------


async def test_dialog_end_to_end() -> None:
    import jiwer

    from streamdiarize.transcribers.local.metrics import normalize_text

    pcm, utterances = dialog()
    sink = Sink()
    stream = await LocalTranscriber(max_buffered=1.0).open(sink)
    for i in range(0, len(pcm), CHUNK):
        await stream.write(pcm[i : i + CHUNK])
    await stream.finish()
    await stream.aclose()
    assert sink.errors == []
    assert sink.threads == {threading.get_ident()}  # sink methods ran on the loop thread
    finals = [s for s in sink.segments if s.final]
    assert [s.speaker for s in finals] == [f"Speaker {k}" for k in (1, 2, 3, 1, 2)]
    for s, u in zip(finals, utterances, strict=True):
        assert abs(s.offset - float(u["start_s"])) <= 0.15  # type: ignore[arg-type]
    reference = normalize_text(" ".join(str(u["text"]) for u in utterances))
    assert jiwer.wer(reference, normalize_text(" ".join(s.text for s in finals))) <= 0.5


async def test_interim_results_are_delivered_when_asked_for() -> None:
    pcm, _ = dialog()
    sink = Sink()
    stream = await LocalTranscriber().open(sink, interim_results=True)
    for i in range(0, 4 * RATE, CHUNK):
        await stream.write(pcm[i : i + CHUNK])
        await asyncio.sleep(0.01)  # let the worker keep up, as with a live client
    await stream.finish()
    await stream.aclose()
    kinds = [s.final for s in sink.segments]
    assert False in kinds
    assert kinds[-1] is True
    assert all(s.speaker == "Unknown" for s in sink.segments if not s.final)


# -- stream mechanics ----------------------------------------------------------------------


async def test_write_waits_while_the_worker_is_behind() -> None:
    engine = GatedEngine()
    sink = Sink()
    stream = await LocalTranscriberStream.start(lambda: engine, sink, max_buffered=0.5)
    chunk = np.ones(CHUNK, dtype=np.int16)
    for _ in range(5):  # 0.5 s: exactly the budget
        await asyncio.wait_for(stream.write(chunk), 1)
    blocked = asyncio.create_task(stream.write(chunk))
    await asyncio.sleep(0.2)
    assert not blocked.done()
    engine.gate.set()
    await asyncio.wait_for(blocked, 5)
    await stream.finish()
    await stream.aclose()
    assert sum(engine.fed) == 6 * CHUNK  # nothing lost, nothing duplicated
    assert len(engine.fed) < 6  # the backlog was fed in batches
    assert sink.segments[-1].text == "last"
    assert [s.text for s in sink.segments[:-1]] == [f"fed {n}" for n in engine.fed]


async def test_finish_returns_after_the_last_segment() -> None:
    engine = GatedEngine()
    engine.gate.set()
    sink = Sink()
    stream = await LocalTranscriberStream.start(lambda: engine, sink)
    await stream.write(np.ones(10, dtype=np.int16))
    await stream.finish()
    assert [s.text for s in sink.segments] == ["fed 10", "last"]
    await stream.finish()  # idempotent
    with pytest.raises(SessionClosedError):
        await stream.write(np.ones(10, dtype=np.int16))
    await stream.aclose()
    await stream.aclose()


async def test_aclose_stops_after_the_running_inference() -> None:
    engine = GatedEngine()
    sink = Sink()
    stream = await LocalTranscriberStream.start(lambda: engine, sink, max_buffered=0.2)
    await stream.write(np.ones(CHUNK, dtype=np.int16))
    await wait_for(engine.in_feed)  # the worker is busy with the first chunk
    await stream.write(np.ones(CHUNK, dtype=np.int16))  # queued
    blocked = asyncio.create_task(stream.write(np.ones(CHUNK, dtype=np.int16)))  # over budget
    await asyncio.sleep(0.05)
    assert not blocked.done()
    threading.Timer(0.2, engine.gate.set).start()
    await asyncio.wait_for(stream.aclose(), 5)
    with pytest.raises(SessionClosedError):
        await blocked
    assert sink.segments == []  # nothing is delivered after aclose()
    assert engine.fed == [CHUNK]  # the queued chunk was dropped, not processed
    assert not any(t.name == "streamdiarize-local" for t in threading.enumerate())
    await stream.finish()  # a no-op once closed


async def test_engine_failure_is_reported_once_to_the_sink() -> None:
    engine = GatedEngine(fail_on_feed=True)
    engine.gate.set()
    sink = Sink()
    stream = await LocalTranscriberStream.start(lambda: engine, sink)
    await stream.write(np.ones(CHUNK, dtype=np.int16))
    await asyncio.wait_for(stream.finish(), 5)  # returns, does not raise
    assert len(sink.errors) == 1
    error = sink.errors[0]
    assert isinstance(error, ServiceError)
    assert "boom" in str(error)
    await stream.write(np.ones(CHUNK, dtype=np.int16))  # dropped after the error
    await stream.aclose()
    assert len(sink.errors) == 1
    assert sink.segments == []


async def test_engine_that_cannot_start_fails_open() -> None:
    def factory() -> GatedEngine:
        raise BackendUnavailableError("no model here")

    with pytest.raises(BackendUnavailableError, match="no model here"):
        await LocalTranscriberStream.start(factory, Sink())
    await asyncio.sleep(0.05)
    assert not any(t.name == "streamdiarize-local" for t in threading.enumerate())


async def test_write_checks_its_input() -> None:
    engine = GatedEngine()
    engine.gate.set()
    stream = await LocalTranscriberStream.start(lambda: engine, Sink())
    with pytest.raises(TypeError, match="int16"):
        await stream.write(np.zeros(10, dtype=np.float32))
    await stream.aclose()


@pytest.mark.usefixtures("without_faster_whisper")
def test_missing_extra_is_reported_with_the_install_command() -> None:
    with pytest.raises(
        BackendUnavailableError, match=r"faster_whisper.*pip install 'streamdiarize\[local\]'"
    ):
        LocalTranscriber()


async def test_no_thread_leaks_after_many_sessions() -> None:
    pcm, _ = dialog()
    transcriber = LocalTranscriber()
    process = psutil.Process()

    async def real_session() -> None:
        stream = await transcriber.open(Sink())
        for i in range(0, 2 * RATE, CHUNK):
            await stream.write(pcm[i : i + CHUNK])
        await stream.finish()
        await stream.aclose()

    async def fake_session(k: int) -> None:
        engine = GatedEngine()
        engine.gate.set()
        stream = await LocalTranscriberStream.start(lambda: engine, Sink())
        await stream.write(np.ones(CHUNK, dtype=np.int16))
        if k % 2:
            await stream.finish()
        await stream.aclose()

    await real_session()  # loads the shared models and their thread pools
    python_threads, native_threads = threading.active_count(), await os_threads(process)
    await asyncio.gather(*(real_session() for _ in range(3)))
    await asyncio.gather(*(fake_session(k) for k in range(40)))
    assert threading.active_count() == python_threads
    assert await os_threads(process, until_at_most=native_threads) <= native_threads


async def os_threads(process: Any, *, until_at_most: int | None = None) -> int:
    """The OS thread count without threads on their way out: ``Thread.join()`` returns a moment
    before the OS thread is gone, so sample for up to 0.5 s (the fewest seen), or until the
    count is down to ``until_at_most`` (up to 5 s: a leaked thread never leaves)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (0.5 if until_at_most is None else 5.0)
    fewest = process.num_threads()
    while loop.time() < deadline and (until_at_most is None or fewest > until_at_most):
        await asyncio.sleep(0.02)
        fewest = min(fewest, process.num_threads())
    return int(fewest)
