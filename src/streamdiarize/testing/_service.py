"""``FakeSpeechService``: the Azure Speech WebSocket service, emulated on 127.0.0.1.

The real Azure Speech SDK connects to it with ``SpeechConfig(host=service.host, ...)`` and runs
conversation transcription over a real socket: the service answers ``speech.context`` and audio
messages the way Azure does (``turn.start``, hypotheses, phrases, the end-of-audio handshake),
records everything the client sent, and injects faults on chosen connection attempts.

What the Python SDK 1.53 does with each fault (measured against this service; the
JavaScript SDK 1.52's reactions are in ``docs/testing.md`` and ``tests/test_js_sdk.py``):

=================================  ==========================================================
fault                              SDK reaction
=================================  ==========================================================
HTTP 401 / 403 on upgrade          at once: Error, ``AuthenticationFailure``, "WebSocket
                                   upgrade failed: Authentication error (401)..."; no retry
HTTP 429 / 500 / 404 on upgrade    retried ~0.27 s apart; one refusal is absorbed; after 5
                                   refusals (~1.1 s): ``TooManyRequests`` "Too many requests
                                   (429)" / ``ServiceError`` "Internal service error (500)"
close 1007 "Quota exceeded"        at once: Error, ``BadRequest``, "Connection was closed by
                                   the remote host. Error code: 1007. Error details: Quota
                                   exceeded"
close 1002                         at once: Error, ``ConnectionFailure``
TCP drop, close 1000/1008/1011     silent reconnect after ~0.27 s; the new socket gets a new
                                   ``speech.context`` and the audio after the last final
                                   phrase; 5 failures in a row without a new final phrase:
                                   ``ConnectionFailure`` "WS_ERROR_UNDERLYING_IO_ERROR" or
                                   "Failure while sending a frame" (TCP: read or write first),
                                   or ``ServiceError`` "Error code: 1011"; no limit while phrases
                                   advance
stall                              waits (25 s tested) and carries on; ``stop_transcribing``
                                   during a stall: ``ServiceTimeout`` "Timeout while waiting for
                                   service to stop" after ~11 s
phrase with a non-JSON body        the SDK closes the socket (1000) and reconnects
no Path / unknown Path /           ignored
other X-RequestId
=================================  ==========================================================
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from .._exceptions import ConfigurationError
from .._lifecycle import AsyncThreadedService
from ..transcribers.azure import NO_PACING
from ._connection import ServiceConnection, logger
from ._faults import Fault
from ._handshake import judge_upgrade, select_subprotocol
from ._recognizers import Recognizer
from ._records import AudioProblem, ConnectionRecord, record_close
from ._resume import AudioSessions
from ._scripted import ScriptedRecognizer

if TYPE_CHECKING:
    from azure.cognitiveservices.speech import SpeechConfig

__all__ = ["FakeSpeechService"]

_START_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 1.0


class FakeSpeechService(AsyncThreadedService):
    """An in-process Azure Speech service for offline tests of the real SDK.

    Use it as ``with FakeSpeechService(recognizer) as service:`` (or ``async with``): it
    listens on 127.0.0.1 (a free port) and runs its own event loop in a daemon thread, so
    blocking SDK calls and any asyncio loop of the caller never stall it. Point the SDK at
    ``service.host`` or use :meth:`speech_config`.

    Args:
        recognizer: makes the phrases; by default none (every turn is silence).
        faults: one entry per connection attempt, in order (``None`` = healthy); attempts
            past the end are healthy. An iterator works too, e.g.
            ``itertools.repeat(Fault.drop(after=1.0))`` for a service that always fails.
        key: the subscription key to accept; by default any non-empty key or bearer token.
        port: TCP port; 0 picks a free one.
        max_records: keep only the newest this many connection records (their audio
            included), for long-running services; ``None`` keeps all.

    Attributes:
        connections: one :class:`ConnectionRecord` per connection attempt, refused ones too.
        audio_problems: audio that was not 16 kHz mono speech where the script had speech.
        protocol_errors: client messages that broke the protocol.
        errors: exceptions raised inside the service (e.g. by a recogniser); the connection
            was closed with 1011.

    Records are filled from the service's thread: read them once the client is done.
    """

    def __init__(
        self,
        recognizer: Recognizer | None = None,
        *,
        faults: Iterable[Fault | None] = (),
        key: str | None = None,
        port: int = 0,
        max_records: int | None = None,
    ) -> None:
        self.recognizer: Recognizer = recognizer or ScriptedRecognizer(())
        self.key = key
        self.connections: list[ConnectionRecord] = []
        self.max_records = max_records
        self._attempts = 0
        self.audio_problems: list[AudioProblem] = []
        self.protocol_errors: list[str] = []
        self.errors: list[Exception] = []
        self._faults: Iterator[Fault | None] = iter(faults)
        self._faults_lock = threading.Lock()
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._accepted: dict[ServerConnection, ConnectionRecord] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()
        self._sessions = AudioSessions()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (after :meth:`start`)."""
        if self._server is None:
            raise ConfigurationError("FakeSpeechService is not running: call start() first")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        """``ws://127.0.0.1:PORT``, for ``SpeechConfig(host=...)``."""
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start listening (idempotent). Returns once the port is bound.

        Raises:
            ConfigurationError: the port cannot be bound.
        """
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="FakeSpeechService", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._open(), loop).result(_START_TIMEOUT)
        except OSError as exc:
            self.stop()
            raise ConfigurationError(
                f"FakeSpeechService cannot listen on port {self._port}: {exc}"
            ) from exc

    def stop(self) -> None:
        """Close every connection, stop listening and end the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(_START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT)
            if thread.is_alive():  # a handler is stuck in a blocking call: leave it be
                logger.warning("FakeSpeechService: service thread did not stop in time")
            else:
                loop.close()
            self._loop = self._thread = None

    def add_faults(self, *faults: Fault | None) -> None:
        """Queue faults for the next connection attempts, after those not yet used."""
        with self._faults_lock:
            self._faults = itertools.chain(self._faults, faults)

    def speech_config(self, *, throttle: bool = False) -> SpeechConfig:
        """A ``SpeechConfig`` for this service (the SDK must be installed).

        Args:
            throttle: keep the SDK's pacing (5 s of audio at once, then twice real time).
                By default it is lifted (``SPEECH-TransmitLengthBeforeThrottleMs``), so
                pushed audio reaches the service as fast as the socket allows.
        """
        import azure.cognitiveservices.speech as speechsdk

        config = speechsdk.SpeechConfig(host=self.host, subscription=self.key or "fake-key")
        if not throttle:
            for name, value in NO_PACING.items():
                config.set_property_by_name(name, value)
        return config

    async def _open(self) -> None:
        self._closing = asyncio.Event()
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self._port,
            select_subprotocol=select_subprotocol,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            close_timeout=_CLOSE_TIMEOUT,
            max_size=2**22,
            logger=logger,
        )

    async def _close(self) -> None:
        server = self._server
        if server is None:
            return
        self._closing.set()
        server.close()  # closes open connections with 1001, then waits for their handlers
        try:
            await asyncio.wait_for(asyncio.shield(server.wait_closed()), _CLOSE_TIMEOUT + 1)
        except asyncio.TimeoutError:  # a handler stuck in a recogniser: cut it short
            for task in list(self._handlers):
                task.cancel()
            await server.wait_closed()

    # -- connections -------------------------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._faults_lock:
            return next(self._faults, None)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        record = ConnectionRecord(
            index=self._attempts,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in request.headers.raw_items()},
            fault=self._next_fault(),
        )
        self._attempts += 1
        self.connections.append(record)
        if self.max_records is not None and len(self.connections) > self.max_records:
            del self.connections[: len(self.connections) - self.max_records]
        refusal = judge_upgrade(url.path, record.headers, record.query, self.key)
        if refusal is None and record.fault is not None and record.fault.kind == "http":
            refusal = record.fault.status, f"Injected fault: HTTP {record.fault.status}"
        if refusal is not None and refusal[0] == 404:
            logger.warning("FakeSpeechService: unknown path %s, answering 404", url.path)
        if refusal is None:
            self._accepted[connection] = record
            return None
        record.status, text = refusal
        return connection.respond(record.status, text + "\n")

    async def _handle(self, websocket: ServerConnection) -> None:
        record = self._accepted.pop(websocket)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await ServiceConnection(self, websocket, record).run()
        except Exception as exc:  # a bug in a recogniser (or here): keep it for the test
            logger.exception("FakeSpeechService: connection %d failed", record.index)
            self.errors.append(exc)
            await websocket.close(1011, f"FakeSpeechService failed: {exc!r}"[:120])
        finally:
            self._handlers.discard(task)
            record_close(record, websocket)
