"""``TranscriptionSession``: the framework-agnostic async API a WebSocket handler uses.

One session per client connection::

    async with TranscriptionSession(transcriber, mime=mime) as session:
        # task 1: socket -> session             # task 2: session -> client
        await session.send(message)              async for segment in session: ...

Audio flows ``send() -> ChunkReassembler -> TranscriberStream``; results flow back through a
:class:`~streamdiarize.transcribers.SegmentSink` into an in-loop queue that ``async for``
drains. Backpressure sits on the input side: when the consumer falls ``max_pending_segments``
behind, ``send()`` waits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from types import TracebackType

from typing_extensions import Self

from ._exceptions import (
    InputError,
    ServiceError,
    SessionClosedError,
    StreamDiarizeError,
    TranscriberError,
)
from .containers import DEFAULT_MAX_BUFFERED
from .formats import AudioFormat, SampleFormat
from .reassembler import DEFAULT_MAX_FEED_SECONDS, ChunkReassembler
from .segment import Segment
from .transcribers import SAMPLE_RATE, Transcriber, TranscriberStream

__all__ = ["TranscriptionSession"]

#: Chunks larger than this are decoded in a worker thread so the event loop stays responsive.
LARGE_CHUNK_BYTES = 64 * 1024


class _End:
    """Queue marker: no more segments."""


_END = _End()


class _ResultQueue:
    """Segments waiting for the consumer, in order; an interim is replaced by the next result.

    Lives on the event loop thread only (backends hop here with ``call_soon_threadsafe``).
    """

    def __init__(self) -> None:
        self._items: collections.deque[Segment | TranscriberError | _End] = collections.deque()
        self._changed = asyncio.Event()
        self.closed = False
        #: The backend's error, once one was reported.
        self.error: TranscriberError | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put_segment(self, segment: Segment) -> None:
        if self.closed:
            return
        if self._items and isinstance(last := self._items[-1], Segment) and not last.final:
            self._items.pop()  # a newer hypothesis or the final text supersedes it
        self._items.append(segment)
        self._changed.set()

    def put_error(self, error: TranscriberError) -> None:
        if not self.closed:
            self._items.append(error)
            self.error = error
            self.closed = True
            self._changed.set()

    def put_end(self) -> None:
        if not self.closed:
            self._items.append(_END)
            self.closed = True
            self._changed.set()

    async def get(self) -> Segment | TranscriberError | _End:
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        item = self._items[0]
        if not isinstance(item, (_End, TranscriberError)):
            self._items.popleft()  # the end marker and errors stay: iteration ends for good
        self._changed.set()
        return item

    async def wait_below(self, limit: int) -> None:
        while len(self._items) >= limit and not self.closed:
            self._changed.clear()
            await self._changed.wait()


class TranscriptionSession:
    """Streams one client's audio to a transcriber and yields its segments.

    Args:
        transcriber: the backend; ``None``: Azure when ``SPEECH_KEY`` and a location
            (``SPEECH_REGION``, ``_ENDPOINT`` or ``_HOST``) are set, else the local engine.
        format: the client's audio format when known (see :class:`AudioFormat`); with neither
            ``format`` nor ``mime`` it is found out from the bytes, raw frames included.
        mime: the client's ``MediaRecorder.mimeType`` or ``audio/pcm;rate=...`` string.
        sample_rate: rate of raw frames when neither ``format`` nor ``mime`` gives it;
            otherwise it is measured from arrival times over the first 1-2 s.
        sample_format: float32 or int16 for raw frames when neither ``format`` nor ``mime``
            gives it; otherwise it is told from the values.
        channels: channels of raw frames when neither ``format`` nor ``mime`` gives it.
        clock: where :meth:`send` reads each message's arrival time (seconds); injectable
            so that tests can replay a recorded timing.
        interim_results: also yield interim hypotheses (``Segment.final is False``).
        max_pending_segments: how many undelivered segments make ``send()`` wait.
        max_buffered: cap on bytes the demuxer holds for one incomplete element.
        max_feed_seconds: cap on the audio one :meth:`send` may decode to (a decompression
            bomb raises :class:`~streamdiarize.LimitExceededError`); ``None``: no cap.
        close_timeout: seconds ``close()`` waits for the backend's last results.

    Use ``async with`` (or ``await session.start()`` / ``await session.close()``). Send each
    socket message with :meth:`send`; iterate the session (usually in another task) for
    :class:`Segment` objects. Iteration ends after :meth:`close` has drained the backend, or
    raises the backend's :class:`TranscriberError` after every segment produced before it.
    """

    def __init__(
        self,
        transcriber: Transcriber | None = None,
        *,
        format: AudioFormat | None = None,
        mime: str | None = None,
        sample_rate: int | None = None,
        sample_format: SampleFormat | str | None = None,
        channels: int = 1,
        clock: Callable[[], float] = time.monotonic,
        interim_results: bool = False,
        max_pending_segments: int = 256,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        max_feed_seconds: float | None = DEFAULT_MAX_FEED_SECONDS,
        close_timeout: float = 30.0,
    ) -> None:
        if transcriber is None:
            from .transcribers import default_transcriber

            transcriber = default_transcriber()
        self.transcriber = transcriber
        self.interim_results = interim_results
        self.max_pending_segments = max(1, max_pending_segments)
        self.close_timeout = close_timeout
        self._clock = clock
        self._reassembler = ChunkReassembler(
            format,
            mime=mime,
            sample_rate=sample_rate,
            sample_format=sample_format,
            channels=channels,
            target_rate=SAMPLE_RATE,
            max_buffered=max_buffered,
            max_feed_seconds=max_feed_seconds,
        )
        self._results: _ResultQueue | None = None
        self._stream: TranscriberStream | None = None
        self._send_lock: asyncio.Lock | None = None
        self._closing = False
        self._closed = False
        self._start_lock: asyncio.Lock | None = None
        self._closed_event = asyncio.Event()

    @property
    def reassembler(self) -> ChunkReassembler:
        """The session's :class:`ChunkReassembler` (its ``format``, ``duration``, ``restarts``)."""
        return self._reassembler

    @property
    def audio_seconds(self) -> float:
        """Seconds of decoded audio sent to the backend so far."""
        return self._reassembler.duration

    @property
    def pending_segments(self) -> int:
        """Segments produced and not yet consumed (``send()`` waits at ``max_pending_segments``)."""
        return 0 if self._results is None else len(self._results)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` finished."""
        return self._closed

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()

    async def start(self) -> None:
        """Open the backend stream (``send()`` does it on first use too). Idempotent.

        Raises:
            TranscriberError: the backend could not start.
        """
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
            self._send_lock = asyncio.Lock()
            self._results = _ResultQueue()
        async with self._start_lock:
            if self._stream is None:
                if self._closing:
                    raise SessionClosedError("the session is closed")
                assert self._results is not None
                self._stream = await self.transcriber.open(
                    self._results, interim_results=self.interim_results
                )

    async def send(self, chunk: bytes | bytearray | memoryview) -> None:
        """Decode one socket message and pass its audio to the backend.

        Waits while the consumer is ``max_pending_segments`` behind or the backend is busy.

        Raises:
            SessionClosedError: after :meth:`close`.
            InputError: the bytes are not decodable audio. Audio decoded before the fault is
                still transcribed; later messages raise again unless they start a new stream.
            TranscriberError: the backend failed (the same error ends iteration).
        """
        if self._closing:
            raise SessionClosedError("send() after close(): the session is closed")
        arrival = self._clock()  # before any wait: when the bytes reached us
        await self.start()
        assert self._results is not None
        assert self._send_lock is not None
        self._raise_backend_error()
        await self._results.wait_below(self.max_pending_segments)
        self._raise_backend_error()
        async with self._send_lock:
            if self._stream is None:  # close() or abort() ran while this send() waited
                raise SessionClosedError("the session was closed while send() waited")
            try:
                if len(chunk) > LARGE_CHUNK_BYTES:
                    pcm = await asyncio.to_thread(self._reassembler.feed, chunk, arrival)
                else:
                    pcm = self._reassembler.feed(chunk, arrival)
            except InputError as exc:
                # The audio before the fault still counts; bytes that do not decode go nowhere.
                await self._stream.write_message(b"", exc.pcm)
                raise
            await self._stream.write_message(chunk, pcm)

    def _raise_backend_error(self) -> None:
        if self._results is not None and self._results.error is not None:
            raise self._results.error.with_traceback(None)

    async def close(self) -> None:
        """Flush the audio, wait for the final segments, and stop the backend. Idempotent.

        Iteration ends once the remaining segments are consumed. Never raises the backend's
        errors (iteration does); waits at most ``close_timeout`` seconds for the backend.
        """
        if self._closing:
            await self._closed_event.wait()
            return
        self._closing = True
        try:
            if self._stream is not None and self._send_lock is not None:
                async with self._send_lock:
                    with contextlib.suppress(InputError):
                        await self._stream.write_message(b"", self._reassembler.flush())
                    await asyncio.wait_for(self._finish(), self.close_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            if self._results is not None:
                self._results.put_error(
                    ServiceError(
                        f"no end of results from the backend within {self.close_timeout} s"
                    )
                )
        except StreamDiarizeError as exc:
            if self._results is not None and isinstance(exc, TranscriberError):
                self._results.put_error(exc)
        finally:
            await self._release()

    async def _finish(self) -> None:
        assert self._stream is not None
        if self._results is not None and not self._results.closed:
            await self._stream.finish()

    async def abort(self) -> None:
        """Stop at once without waiting for final results; iteration ends. Idempotent."""
        self._closing = True
        await self._release()

    async def _release(self) -> None:
        stream, self._stream = self._stream, None
        try:
            if stream is not None:
                await stream.aclose()
        finally:
            if self._results is None:
                self._results = _ResultQueue()
            self._results.put_end()
            self._closed = True
            self._closed_event.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Segment:
        if self._results is None:
            await self.start()
        assert self._results is not None
        item = await self._results.get()
        if isinstance(item, _End):
            raise StopAsyncIteration
        if isinstance(item, TranscriberError):
            raise item.with_traceback(None)
        return item

    async def segments(self) -> list[Segment]:
        """Collect every remaining segment until the session ends (after :meth:`close`)."""
        return [segment async for segment in self]
