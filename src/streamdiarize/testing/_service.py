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
import contextlib
import itertools
import logging
import math
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from numpy.typing import NDArray
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from .._audio_buffer import AudioBuffer
from .._exceptions import ConfigurationError
from .._redact import redact_secrets
from ..transcribers.azure import NO_PACING
from ._handshake import (
    RECOGNITION_PATHS,
    connection_id,
    judge_upgrade,
    select_subprotocol,
)
from ._recognizers import (
    SAMPLE_RATE,
    Hypothesis,
    Phrase,
    Recognizer,
    Result,
    ScriptedRecognizer,
    TurnInfo,
    TurnRecognizer,
)
from ._resume import AudioSessions, client_offset, session_key
from ._usp import (
    JSON_CONTENT_TYPE,
    UspMessage,
    UspProtocolError,
    WaveFormat,
    encode_text,
    json_message,
    parse_message,
    parse_wave_header,
    serialize_message,
)

if TYPE_CHECKING:
    from azure.cognitiveservices.speech import SpeechConfig

__all__ = [
    "RECOGNITION_PATHS",
    "AudioProblem",
    "ConnectionRecord",
    "FakeSpeechService",
    "Fault",
    "TurnRecord",
]

logger = logging.getLogger("streamdiarize.testing")
redact_secrets(logger)  # websockets logs the client's key with the headers at DEBUG

_TICKS = 10_000_000  # 100 ns ticks per second
_TICKS_PER_MS = 10_000
_START_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 1.0
_ABORT_GRACE = 0.05

FaultKind = Literal["http", "close", "abort", "stall", "malformed", "end_turn"]
MalformedKind = Literal["bad_json", "no_path", "unknown_path", "foreign_request_id"]


@dataclass(frozen=True, slots=True)
class Fault:
    """A failure injected on one connection attempt; build with the class methods.

    Attributes:
        kind: what happens: an HTTP refusal of the upgrade, a close frame, a TCP abort, a
            stall, a malformed message, or an early end of the turn.
        status: the HTTP status of an ``"http"`` fault.
        close_code: the close code of a ``"close"`` fault.
        reason: the close reason of a ``"close"`` fault.
        after: seconds of audio received on that connection before the fault.
        duration: how long a ``"stall"`` lasts, in seconds.
        malformed: which broken message a ``"malformed"`` fault sends.
    """

    kind: FaultKind
    status: int = 0
    close_code: int = 0
    reason: str = ""
    after: float = 0.0
    duration: float = 0.0
    malformed: MalformedKind | None = None

    @classmethod
    def reject_auth(cls, status: Literal[401, 403] = 401) -> Fault:
        """Refuse the WebSocket upgrade with HTTP 401 (bad key) or 403 (forbidden)."""
        return cls("http", status=status)

    @classmethod
    def throttle(cls) -> Fault:
        """Refuse the WebSocket upgrade with HTTP 429 (too many requests)."""
        return cls("http", status=429)

    @classmethod
    def http_error(cls, status: int) -> Fault:
        """Refuse the WebSocket upgrade with any HTTP status (e.g. 500, 503)."""
        return cls("http", status=status)

    @classmethod
    def quota_exceeded(cls, after: float = 1.0) -> Fault:
        """Close with 1007 "Quota exceeded" after ``after`` seconds of audio."""
        return cls("close", close_code=1007, reason="Quota exceeded", after=after)

    @classmethod
    def close(cls, code: int, reason: str = "", *, after: float = 1.0) -> Fault:
        """Close the WebSocket with ``code`` and ``reason`` after ``after`` seconds of audio."""
        return cls("close", close_code=code, reason=reason, after=after)

    @classmethod
    def drop(cls, after: float = 1.0, *, abrupt: bool = True) -> Fault:
        """Drop the connection mid-stream: abort the TCP connection, or close with 1011.

        An abort waits 50 ms first, so that results already sent are not lost with it.
        """
        if abrupt:
            return cls("abort", after=after)
        return cls("close", close_code=1011, reason="Internal server error", after=after)

    @classmethod
    def stall(cls, after: float = 1.0, duration: float = 5.0) -> Fault:
        """Stop reading and answering for ``duration`` seconds, then carry on."""
        return cls("stall", after=after, duration=duration)

    @classmethod
    def end_turn(cls, after: float = 1.0) -> Fault:
        """End the turn early (``speech.endDetected``, ``turn.end``) after ``after`` seconds of
        audio, as the service does at a segmentation limit; the SDK opens a new turn on the
        same socket and resends the audio after its last acknowledged phrase."""
        return cls("end_turn", after=after)

    @classmethod
    def malformed_message(cls, kind: MalformedKind, *, after: float = 1.0) -> Fault:
        """Send one broken message, then carry on.

        ``bad_json``: a ``speech.phrase`` whose body is not JSON; ``no_path``: a phrase
        without ``Path``; ``unknown_path``: ``Path: speech.bogus``; ``foreign_request_id``:
        a valid phrase with another turn's ``X-RequestId``.
        """
        return cls("malformed", after=after, malformed=kind)


@dataclass(frozen=True, slots=True)
class AudioProblem:
    """Audio the service could not use: wrong format, or not speech where speech was due.

    Attributes:
        connection: index in ``FakeSpeechService.connections``.
        turn: index of the turn on that connection.
        start: seconds from the start of the client's stream (turn offset + position).
        end: as ``start``.
        message: what is wrong.
    """

    connection: int
    turn: int
    start: float
    end: float
    message: str


@dataclass(eq=False)
class TurnRecord:
    """One turn: a ``speech.context`` and the audio that followed it.

    Attributes:
        index: position of the turn on its connection.
        request_id: the turn's ``X-RequestId``.
        speech_context: the ``speech.context`` JSON that opened the turn.
        audio_offset: where this turn's audio starts in the client's stream, in seconds: the
            Python SDK's ``speakerDiarization.audioOffsetMS``, else the end of the last phrase
            the service sent in this audio session (see ``_resume``).
        client_offset: the audio offset the client reported in seconds (Python SDK
            ``audioOffsetMS``, JavaScript SDK ``audioOffsetMs``: the audio sent so far), or
            ``None`` when the context has none.
        wave_format: the RIFF header of the first audio message, if it had one.
        ended: the client sent its empty end-of-audio message.
        pcm: the PCM received in this turn (:attr:`audio` returns a copy).
    """

    index: int
    request_id: str
    speech_context: dict[str, Any]
    audio_offset: float
    client_offset: float | None = None
    wave_format: WaveFormat | None = None
    ended: bool = False
    pcm: AudioBuffer = field(default_factory=AudioBuffer, repr=False)

    @property
    def audio(self) -> NDArray[np.int16]:
        """The PCM received in this turn (a copy)."""
        return self.pcm.slice(0, self.pcm.end)


@dataclass(eq=False)
class ConnectionRecord:
    """Everything about one connection attempt, filled in as it happens.

    Attributes:
        index: position in ``FakeSpeechService.connections``.
        path: the request path without its query.
        query: the query parameters (``language``, ``format``, ``wordLevelTimestamps``, ...).
        headers: the upgrade request headers, keys lower-case.
        status: 101 when upgraded, else the HTTP status the service answered.
        fault: the fault injected on this attempt.
        speech_config: the client's ``speech.config`` JSON.
        turns: the turns, in order.
        messages_received: every text message from the client.
        messages_sent: every well-formed message the service sent.
        closed_by: who closed the WebSocket first: ``"service"`` or ``"client"``.
        close_code: the code in that side's close frame (1006: the TCP connection dropped
            without one).
        close_reason: the reason in that close frame.
    """

    index: int
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 101
    fault: Fault | None = None
    speech_config: dict[str, Any] | None = None
    turns: list[TurnRecord] = field(default_factory=list)
    messages_received: list[UspMessage] = field(default_factory=list, repr=False)
    messages_sent: list[UspMessage] = field(default_factory=list, repr=False)
    closed_by: Literal["service", "client"] | None = None
    close_code: int | None = None
    close_reason: str = ""

    @property
    def speech_context(self) -> dict[str, Any] | None:
        """The latest ``speech.context`` JSON, or ``None`` before one arrived."""
        return self.turns[-1].speech_context if self.turns else None

    @property
    def audio(self) -> NDArray[np.int16]:
        """All PCM received on this connection, turns concatenated.

        A later turn starts with audio the SDK resent (see :attr:`TurnRecord.audio_offset`).
        """
        parts = [t.audio for t in self.turns]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def sent_paths(self) -> list[str]:
        """The ``Path`` of each message sent, in order."""
        return [m.path for m in self.messages_sent]


class FakeSpeechService:
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

    def __enter__(self) -> FakeSpeechService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeSpeechService:
        # The service keeps its own thread even under asyncio: a test that calls a blocking
        # SDK method (``.get()``) on its loop would otherwise deadlock the service.
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

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
            await _Connection(self, websocket, record).run()
        except Exception as exc:  # a bug in a recogniser (or here): keep it for the test
            logger.exception("FakeSpeechService: connection %d failed", record.index)
            self.errors.append(exc)
            await websocket.close(1011, f"FakeSpeechService failed: {exc!r}"[:120])
        finally:
            self._handlers.discard(task)
            _record_close(record, websocket)


def _record_close(record: ConnectionRecord, websocket: ServerConnection) -> None:
    if record.closed_by is not None:
        return
    protocol = websocket.protocol
    sent, received = protocol.close_sent, protocol.close_rcvd
    if received is not None and (sent is None or protocol.close_rcvd_then_sent):
        record.closed_by, record.close_code, record.close_reason = (
            "client",
            received.code,
            received.reason,
        )
    elif sent is not None:
        record.closed_by, record.close_code, record.close_reason = "service", sent.code, sent.reason
    elif websocket.state is State.CLOSED:
        record.closed_by, record.close_code = "client", 1006


@dataclass(eq=False)
class _Turn:
    record: TurnRecord
    info: TurnInfo
    recognizer: TurnRecognizer
    output: _OutputOptions
    session: str
    audio_messages: int = 0
    start_detected: bool = False
    carry: bytes = b""


@dataclass(frozen=True, slots=True)
class _OutputOptions:
    """What the client's ``speech.context`` asked to see in results."""

    detailed: bool
    word_timings: bool
    word_confidence: bool
    language_id: bool
    diarize_interim: bool

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> _OutputOptions:
        output = _dict(context.get("phraseOutput"))
        options = _dict(output.get("detailed")).get("options") or []
        diarization = _dict(_dict(context.get("phraseDetection")).get("speakerDiarization"))
        return cls(
            detailed=str(output.get("format", "")).lower() == "detailed",
            word_timings="WordTimings" in options,
            word_confidence="WordConfidence" in options,
            language_id="languageId" in context,
            diarize_interim=str(diarization.get("diarizeIntermediates", "")).lower() == "true",
        )


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ticks(seconds: float) -> int:
    return round(seconds * _TICKS)


class _Connection:
    """One accepted WebSocket: the USP state machine and the fault it carries."""

    def __init__(self, service: FakeSpeechService, ws: ServerConnection, record: ConnectionRecord):
        self.service = service
        self.ws = ws
        self.record = record
        self.turn: _Turn | None = None
        self.audio_seconds = 0.0
        self.fault_pending = record.fault is not None
        self.connection_id = connection_id(record.headers, record.query)

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                try:
                    message = parse_message(frame)
                except UspProtocolError as exc:
                    self.protocol_error(f"unparseable frame: {exc}")
                    continue
                if not await self.dispatch(message):
                    return
        except ConnectionClosed:
            pass

    def protocol_error(self, text: str) -> None:
        text = f"connection {self.record.index}: {text}"
        logger.warning("FakeSpeechService: %s", text)
        self.service.protocol_errors.append(text)

    def audio_problem(self, start: float, end: float, message: str) -> None:
        turn = self.turn
        assert turn is not None
        base = turn.info.audio_offset
        problem = AudioProblem(
            self.record.index, turn.record.index, base + start, base + end, message
        )
        logger.warning("FakeSpeechService: %s", problem)
        self.service.audio_problems.append(problem)

    async def dispatch(self, message: UspMessage) -> bool:
        """Handle one client message; False once the connection is to end."""
        if message.binary:
            if message.path != "audio":
                self.protocol_error(f"unexpected binary message {message.path!r}")
                return True
            return await self.on_audio(message)
        self.record.messages_received.append(message)
        if message.path == "speech.config":
            self.record.speech_config = self.parse_json(message)
        elif message.path == "speech.context":
            self.start_turn(message)
        elif message.path != "telemetry":
            logger.info("FakeSpeechService: ignoring client message %r", message.path)
        return True

    def parse_json(self, message: UspMessage) -> dict[str, Any]:
        try:
            body = message.json()
        except UspProtocolError as exc:
            self.protocol_error(str(exc))
            return {}
        if not isinstance(body, dict):
            self.protocol_error(f"{message.path} body is not a JSON object")
            return {}
        return body

    def start_turn(self, message: UspMessage, context: dict[str, Any] | None = None) -> _Turn:
        if context is None:
            context = self.parse_json(message)
        request_id = message.request_id or ""
        if not request_id:
            self.protocol_error(f"{message.path} without X-RequestId")
        if self.turn is not None and not self.turn.record.ended:
            logger.info("FakeSpeechService: new speech.context before the end of the turn's audio")
        session = session_key(context, self.connection_id)
        offset = self.service._sessions.turn_offset(session, context)
        reported = client_offset(context)
        record = TurnRecord(
            len(self.record.turns),
            request_id,
            context,
            offset,
            client_offset=None if reported is None else reported.seconds,
        )
        self.record.turns.append(record)
        info = TurnInfo(self.record.index, record.index, request_id, offset, context)
        self.turn = _Turn(
            record,
            info,
            self.service.recognizer.start_turn(info),
            _OutputOptions.from_context(context),
            session,
        )
        return self.turn

    async def on_audio(self, message: UspMessage) -> bool:
        turn = self.turn
        if turn is not None and turn.record.ended and message.request_id == turn.record.request_id:
            logger.debug("FakeSpeechService: ignoring audio after the end of its turn")
            return True
        if turn is None or turn.record.ended:
            self.protocol_error("audio without a speech.context; starting a turn for it")
            turn = self.start_turn(message, {})
        if message.request_id != turn.record.request_id:
            self.protocol_error(
                f"audio X-RequestId {message.request_id} is not the turn's {turn.record.request_id}"
            )
        payload = message.body
        turn.audio_messages += 1
        if turn.audio_messages == 1:
            payload = self.read_wave_header(turn, payload)
            await self.send("turn.start", {"context": {"serviceTag": uuid.uuid4().hex}})
        if not message.body:  # the client's end of audio
            await self.end_of_audio(turn)
            return True
        data = turn.carry + payload
        usable = len(data) & ~1
        turn.carry = data[usable:]
        pcm = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
        turn.record.pcm.append(pcm)
        self.audio_seconds += len(pcm) / SAMPLE_RATE
        await self.send_results(turn, turn.recognizer.feed(pcm))
        return await self.apply_fault()

    def read_wave_header(self, turn: _Turn, payload: bytes) -> bytes:
        if payload[:4] != b"RIFF":
            self.audio_problem(0, 0, "the turn's first audio message has no RIFF/WAVE header")
            return payload
        try:
            wave_format, rest = parse_wave_header(payload)
        except UspProtocolError as exc:
            self.audio_problem(0, 0, str(exc))
            return b""
        turn.record.wave_format = wave_format
        if not wave_format.is_pcm16_mono_16k:
            self.audio_problem(
                0, 0, f"audio format is {wave_format}; expected 16 kHz 16-bit mono PCM"
            )
        return rest

    async def end_of_audio(self, turn: _Turn) -> None:
        """Final results, then the handshake that lets ``stop_transcribing`` return at once."""
        turn.record.ended = True
        await self.send_results(turn, turn.recognizer.finish())
        # The SDK acknowledges audio in whole milliseconds: an end offset that falls short of
        # the last sample by a fraction of a millisecond makes it open a turn for that rest.
        end = math.ceil(turn.record.pcm.end * _TICKS / SAMPLE_RATE / _TICKS_PER_MS) * _TICKS_PER_MS
        await self.send(
            "speech.phrase", {"RecognitionStatus": "EndOfDictation", "Offset": end, "Duration": 0}
        )
        self.service._sessions.finish(turn.session)
        await self.send("speech.endDetected", {"Offset": end})
        await self.send("turn.end", {})

    async def end_turn(self, turn: _Turn) -> None:
        """End a turn before the client's end of audio; later audio of it is ignored."""
        turn.record.ended = True
        await self.send("speech.endDetected", {"Offset": _ticks(turn.record.pcm.end / SAMPLE_RATE)})
        await self.send("turn.end", {})

    async def send_results(self, turn: _Turn, results: Iterable[Result]) -> None:
        for result in results:
            if not turn.start_detected:
                turn.start_detected = True
                await self.send("speech.startDetected", {"Offset": _ticks(result.offset)})
            if isinstance(result, Hypothesis):
                await self.send("speech.hypothesis", _hypothesis_body(result, turn.output))
                continue
            if result.problem is not None:
                self.audio_problem(result.offset, result.offset + result.duration, result.problem)
            body = _phrase_body(result, turn.output)
            await self.send("speech.phrase", body)
            # The SDKs resume after the end of the last phrase: Offset + Duration as sent.
            end = _ticks(turn.info.audio_offset) + body["Offset"] + body["Duration"]
            self.service._sessions.acknowledge(turn.session, end)

    async def send(self, path: str, payload: object) -> None:
        turn = self.turn
        message = json_message(path, turn.record.request_id if turn else "", payload)
        self.record.messages_sent.append(message)
        await self.ws.send(serialize_message(message))

    async def apply_fault(self) -> bool:
        """Fire the connection's fault once its audio threshold is reached."""
        fault = self.record.fault
        if not self.fault_pending or fault is None or self.audio_seconds < fault.after:
            return True
        self.fault_pending = False
        logger.info("FakeSpeechService: connection %d: injecting %s", self.record.index, fault)
        if fault.kind == "close":
            await self.ws.close(fault.close_code, fault.reason)
            return False
        if fault.kind == "abort":
            # Let the results already sent reach the client first: the RST of an abort makes
            # its TCP stack drop data it has not read yet, so the test would race.
            await asyncio.sleep(_ABORT_GRACE)
            self.record.closed_by, self.record.close_code = "service", 1006
            self.ws.transport.abort()
            return False
        if fault.kind == "stall":
            with contextlib.suppress(asyncio.TimeoutError):  # ends early when the service stops
                await asyncio.wait_for(self.service._closing.wait(), fault.duration)
        elif fault.kind == "malformed" and fault.malformed is not None:
            await self.ws.send(self.malformed_frame(fault.malformed))
        elif fault.kind == "end_turn" and self.turn is not None:
            await self.end_turn(self.turn)
        return True

    def malformed_frame(self, kind: MalformedKind) -> str:
        request_id = self.turn.record.request_id if self.turn else ""
        phrase = '{"RecognitionStatus":"Success","DisplayText":"Injected.","Offset":0,"Duration":1}'
        headers = [("X-RequestId", request_id), ("Content-Type", JSON_CONTENT_TYPE)]
        if kind == "bad_json":
            return encode_text([("Path", "speech.phrase"), *headers], '{"RecognitionStatus": "Succ')
        if kind == "no_path":
            return encode_text(headers, phrase)
        if kind == "unknown_path":
            return encode_text([("Path", "speech.bogus"), *headers], "{}")
        foreign = [("Path", "speech.phrase"), ("X-RequestId", uuid.uuid4().hex), headers[1]]
        return encode_text(foreign, phrase)


def _language(language: str | None, output: _OutputOptions) -> dict[str, Any]:
    if not output.language_id or language is None:
        return {}
    return {"PrimaryLanguage": {"Language": language, "Confidence": "High"}}


def _hypothesis_body(result: Hypothesis, output: _OutputOptions) -> dict[str, Any]:
    return {
        "Text": result.text,
        "Offset": _ticks(result.offset),
        "Duration": _ticks(result.duration),
        "SpeakerId": result.speaker if output.diarize_interim else "Unknown",
        "Channel": 0,
        **_language(result.language, output),
    }


def _phrase_body(result: Phrase, output: _OutputOptions) -> dict[str, Any]:
    body: dict[str, Any] = {
        "RecognitionStatus": result.status,
        "Offset": _ticks(result.offset),
        "Duration": _ticks(result.duration),
        "Channel": 0,
        "SpeakerId": result.speaker if result.status == "Success" else "Unknown",
    }
    if result.status != "Success":
        return body
    body["DisplayText"] = result.text
    body.update(_language(result.language, output))
    if output.detailed:
        lexical = " ".join(w.text for w in result.words) or result.text.lower()
        best: dict[str, Any] = {
            "Confidence": result.confidence,
            "Lexical": lexical,
            "ITN": lexical,
            "MaskedITN": lexical,
            "Display": result.text,
        }
        if output.word_timings:
            best["Words"] = [
                {
                    "Word": w.text,
                    "Offset": _ticks(w.offset),
                    "Duration": _ticks(w.duration),
                    **({"Confidence": result.confidence} if output.word_confidence else {}),
                }
                for w in result.words
            ]
        body["NBest"] = [best]
    return body
