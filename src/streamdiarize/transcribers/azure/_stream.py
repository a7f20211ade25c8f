"""One running Azure ConversationTranscriber, bridged from SDK threads into asyncio.

SDK callbacks run on the SDK's native threads. They only convert the event (pure functions
in ``_results``) and hop to the event loop with ``loop.call_soon_threadsafe``; every state
change happens on the loop thread. Blocking SDK calls (``start/stop_transcribing_async().get()``)
run in worker threads, never on the loop.

Connection drops are first handled by the SDK itself: it reconnects, tells the service the
offset of its last final phrase and re-sends the audio after it, so offsets stay exact. When
it gives up (five failed attempts without progress) the stream opens a fresh recognizer and
re-sends the audio not yet covered by a final result, kept in a bounded replay buffer;
offsets of the new recognizer are shifted by the replay start so the stream clock stays
continuous, and phrases already delivered are not delivered twice. A service that stops
answering (no result for ``stall_timeout`` seconds while that much sent audio waits) is
treated as a failed connection too: the SDK never reports a stall by itself.

The stream's phase is explicit: see ``_phase``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..._exceptions import (
    BackendUnavailableError,
    ConnectionLostError,
    ServiceError,
    TranscriberError,
)
from ...segment import Segment
from .._base import SAMPLE_RATE, SegmentSink, TranscriberStream
from ._connection import Connection
from ._phase import ENDED, Phase, advance
from ._replay import ReplayBuffer
from ._results import error_from_cancellation, is_retryable, segment_from_result
from ._sdk import set_recognizer_token
from ._source import AudioSource

if TYPE_CHECKING:
    from . import AzureTranscriber

__all__ = ["AzureStream"]

log = logging.getLogger("streamdiarize.azure")


class AzureStream(TranscriberStream):
    """A ConversationTranscriber over a PCM (or compressed) push stream."""

    def __init__(
        self,
        transcriber: AzureTranscriber,
        sink: SegmentSink,
        *,
        interim_results: bool,
    ) -> None:
        self._transcriber = transcriber
        self._settings = settings = transcriber.settings
        self._sink = sink
        self._interim = interim_results
        self._loop = asyncio.get_running_loop()
        self._phase = Phase.STREAMING
        self._connection: Connection | None = None
        self._generation = 0
        self._reconnects = 0
        self._replay = ReplayBuffer(settings.max_replay_seconds)
        self._delivered_until = 0.0  # end (s) of the last final segment delivered
        self._acknowledged = 0.0  # end (s) of the last final result, text or not
        self._progress = asyncio.Event()  # set when _acknowledged advances or the stream ends
        self._stopped = asyncio.Event()
        self._connected = asyncio.Event()
        self._error: TranscriberError | None = None
        self._finishing = False  # finish() ended the audio: reconnects end their input too
        self._reconnecting: asyncio.Task[None] | None = None
        self._token_refresh: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._last_event = self._loop.time()
        self._max_buffered_bytes = int(settings.max_buffered_seconds * SAMPLE_RATE * 2)

    @property
    def phase(self) -> Phase:
        """Where the stream is: streaming, reconnecting, failed or closed."""
        return self._phase

    def _enter(self, phase: Phase) -> None:
        self._phase = advance(self._phase, phase)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the first connection and wait (``connect_timeout``) until the service accepts it.

        Raises:
            BackendUnavailableError: the SDK cannot be loaded or rejects the configuration.
            TranscriberError: the service refused the connection (credentials, quota).
        """
        await self._connect(base=0.0)
        connected = asyncio.ensure_future(self._connected.wait())
        failed = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait(
                {connected, failed},
                timeout=self._settings.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            connected.cancel()
            failed.cancel()
        if self._error is not None:
            raise self._error.with_traceback(None)
        if self._settings.credentials.token_provider is not None:
            self._token_refresh = asyncio.create_task(self._refresh_tokens())
        if self._settings.stall_timeout:
            self._watchdog = asyncio.create_task(self._watch_for_stalls())

    async def _connect(self, base: float) -> None:
        self._generation += 1
        generation = self._generation
        try:
            source = AudioSource(self._loop, self._max_buffered_bytes)
            recognition = await asyncio.to_thread(self._transcriber.build_recognizer, source)
        except TranscriberError:
            raise
        except Exception as exc:
            reason = self._settings.credentials.scrub(str(exc))
            raise BackendUnavailableError(
                f"Azure Speech SDK could not be set up: {reason}"
            ) from exc
        connection = Connection(generation, recognition, source, base)
        recognizer = connection.recognizer
        recognizer.transcribed.connect(functools.partial(self._on_result, generation, True))
        if self._interim:
            recognizer.transcribing.connect(functools.partial(self._on_result, generation, False))
        recognizer.canceled.connect(functools.partial(self._on_canceled, generation))
        recognizer.session_stopped.connect(functools.partial(self._on_stopped, generation))
        connection.sdk_connection.connected.connect(
            functools.partial(self._on_connected, generation)
        )
        self._connection = connection
        self._last_event = self._loop.time()  # the stall clock starts with each connection
        self._stopped.clear()
        await asyncio.to_thread(lambda: recognizer.start_transcribing_async().get())

    async def write(self, pcm: NDArray[np.int16]) -> None:
        if not pcm.size:
            return
        await self._wait_for_acknowledgement()
        await self._wait_for_room()
        if self._phase in ENDED:
            return
        self._replay.append(pcm)
        connection = self._connection
        if connection is not None and self._phase is Phase.STREAMING:
            connection.source.write(pcm.tobytes())

    async def write_message(
        self, message: bytes | bytearray | memoryview, pcm: NDArray[np.int16]
    ) -> None:
        if not self._settings.passthrough:
            await super().write_message(message, pcm)
            return
        if not message:
            return
        await self._wait_for_room()
        if self._phase not in ENDED and self._connection is not None:
            self._connection.source.write(bytes(message))  # the source keeps it

    async def _wait_for_acknowledgement(self) -> None:
        """Backpressure: never hold more unanswered audio than a reconnect can re-send.

        The SDK keeps unacknowledged audio too, and gives up ("client buffer exceeded") when
        results stop advancing; audio past ``max_replay_seconds`` could not be replayed then.
        """
        limit = self._settings.max_replay_seconds
        while (
            self._replay.written_seconds - self._acknowledged >= limit and self._phase not in ENDED
        ):
            self._progress.clear()
            await self._progress.wait()

    async def _wait_for_room(self) -> None:
        """Backpressure: wait while the SDK has not read the audio already queued."""
        connection = self._connection
        if connection is not None and self._phase is Phase.STREAMING:
            await connection.source.wait_for_room()

    async def finish(self) -> None:
        self._finishing = True
        try:
            await self._drain()
        finally:
            await self.aclose()

    async def _drain(self) -> None:
        """End the audio and wait for the service's last results (through reconnects)."""
        timeout = self._settings.finish_timeout
        deadline = self._loop.time() + timeout
        while self._phase is not Phase.FAILED:
            if self._reconnecting is not None:  # it re-sends the audio, then ends it
                await asyncio.shield(self._reconnecting)
                continue
            if self._connection is None:
                return
            self._connection.close_input()
            try:
                await asyncio.wait_for(self._stopped.wait(), deadline - self._loop.time())
            except (TimeoutError, asyncio.TimeoutError):
                self._fail(
                    ServiceError(
                        f"Azure Speech sent no end of results within {timeout:g} s after "
                        "the end of the audio; the last phrases may be missing",
                        error_code="ServiceTimeout",
                    )
                )
                return
            if self._reconnecting is None:
                return

    async def aclose(self) -> None:
        if self._phase is Phase.CLOSED:
            return
        self._enter(Phase.CLOSED)
        self._progress.set()
        for task in (self._reconnecting, self._token_refresh, self._watchdog):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        connection, self._connection = self._connection, None
        self._replay.clear()
        if connection is not None:
            await connection.dispose(self._settings.finish_timeout)

    # -- SDK threads -> loop ---------------------------------------------------------------

    def _post(self, callback: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_result(self, generation: int, final: bool, event: Any) -> None:
        connection = self._connection
        if connection is None or connection.generation != generation:
            return
        try:
            segment = segment_from_result(
                event.result,
                final=final,
                base=connection.base,
                default_language=self._settings.default_language,
            )
            end = connection.base + (event.result.offset + event.result.duration) / 1e7
        except Exception:  # a malformed result must not kill the SDK thread
            log.exception("could not read an Azure result")
            return
        self._post(self._deliver, generation, segment, final, end)

    def _on_canceled(self, generation: int, event: Any) -> None:
        details = getattr(event, "cancellation_details", event)
        reason = getattr(details.reason, "name", str(details.reason))
        code = getattr(details.code, "name", str(getattr(details, "code", "")))
        text = self._settings.credentials.scrub(str(details.error_details or ""))
        self._post(self._handle_cancel, generation, reason, code, text)

    def _on_stopped(self, generation: int, event: Any) -> None:
        self._post(self._handle_stopped, generation)

    def _on_connected(self, generation: int, event: Any) -> None:
        self._post(self._handle_connected, generation)

    # -- loop thread -----------------------------------------------------------------------

    def _current(self, generation: int) -> bool:
        return (
            self._phase is not Phase.CLOSED
            and self._connection is not None
            and self._connection.generation == generation
        )

    def _deliver(self, generation: int, segment: Segment | None, final: bool, end: float) -> None:
        if not self._current(generation) or self._phase is Phase.FAILED:
            return
        self._last_event = self._loop.time()
        if final:
            self._acknowledged = max(self._acknowledged, end)
            self._progress.set()
            self._replay.forget_until(end)
        if segment is None:
            return
        if final:
            if segment.end <= self._delivered_until + 1e-3:
                return  # re-recognised after a reconnect: already delivered
            self._delivered_until = segment.end
        elif segment.end <= self._delivered_until:
            return
        self._sink.put_segment(segment)

    def _handle_connected(self, generation: int) -> None:
        if self._current(generation):
            self._connected.set()

    def _handle_stopped(self, generation: int) -> None:
        if self._current(generation) and self._phase is not Phase.RECONNECTING:
            self._stopped.set()

    def _handle_cancel(self, generation: int, reason: str, code: str, details: str) -> None:
        if not self._current(generation) or self._phase is Phase.FAILED:
            return
        if reason != "Error":
            self._stopped.set()  # EndOfStream: the service answered our end of audio
            return
        log.info("Azure cancelled: %s %s", code, details)
        assert self._connection is not None
        self._connection.errored = True
        self._connection.close_input()  # its audio is replayed to the next connection
        if is_retryable(code, details) and self._reconnects < self._settings.max_reconnects:
            self._reconnects += 1
            self._enter(Phase.RECONNECTING)
            self._reconnecting = asyncio.create_task(self._reconnect())
            return
        error = error_from_cancellation(code, details)
        if isinstance(error, ConnectionLostError) and self._reconnects:
            error = ConnectionLostError(
                f"{error} (after {self._reconnects} reconnect attempts)",
                error_code=code,
                details=details,
            )
        self._fail(error)

    def _fail(self, error: TranscriberError) -> None:
        if self._phase is not Phase.CLOSED:  # an error after close() is still reported
            self._enter(Phase.FAILED)
        self._error = error
        self._progress.set()
        self._stopped.set()
        if self._connection is not None:
            self._connection.close_input()  # wakes writers waiting for room
        self._sink.put_error(error)

    async def _reconnect(self) -> None:
        """Replace the failed connection and re-send the audio not yet finally recognised."""
        old = self._connection
        try:
            await asyncio.sleep(min(0.25 * 2 ** (self._reconnects - 1), 4.0))
            if old is not None:
                self._connection = None
                await old.dispose(self._settings.finish_timeout)
            await self._connect(base=self._replay.start_seconds)
            assert self._connection is not None
            for pcm in self._replay.chunks():
                self._connection.source.write(pcm.tobytes())
            if self._finishing:
                self._connection.close_input()
        except asyncio.CancelledError:
            raise
        except TranscriberError as exc:
            self._fail(exc)
        except Exception as exc:
            self._fail(ConnectionLostError(f"reconnecting to Azure Speech failed: {exc}"))
        finally:
            self._reconnecting = None
            if self._phase is Phase.RECONNECTING:
                self._enter(Phase.STREAMING)

    async def _watch_for_stalls(self) -> None:
        """Reconnect (or fail) when sent audio goes unanswered for ``stall_timeout`` seconds."""
        timeout = self._settings.stall_timeout
        assert timeout is not None
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            connection = self._connection
            if connection is None or self._phase is not Phase.STREAMING:
                continue
            waiting = self._replay.written_seconds - self._acknowledged
            silent_for = self._loop.time() - self._last_event
            # (waiting is capped near max_replay_seconds by the backpressure in write())
            if silent_for >= timeout and waiting >= timeout / 2:
                self._handle_cancel(
                    connection.generation,
                    "Error",
                    "ServiceTimeout",
                    f"no result from the service for {silent_for:.0f} s "
                    f"while {waiting:.0f} s of audio waited",
                )

    async def _refresh_tokens(self) -> None:
        """Entra ID tokens live ≈ 10 minutes: fetch a new one every 8 for the live recognizer."""
        provider = self._settings.credentials.token_provider
        assert provider is not None
        while True:
            await asyncio.sleep(self._transcriber.token_refresh_seconds)
            token = await asyncio.to_thread(provider)
            if self._connection is not None:
                set_recognizer_token(self._connection.recognizer, token)
