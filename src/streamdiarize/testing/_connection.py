"""One accepted WebSocket of the emulated service: the USP exchange and the fault it carries.

Per turn (a ``speech.context`` and the audio after it) the connection feeds PCM to the
service's recogniser and sends ``turn.start``, hypotheses, phrases and the end-of-audio
handshake the way Azure does; it records everything in its :class:`ConnectionRecord`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .._redact import redact_secrets
from ._faults import malformed_frame
from ._handshake import connection_id
from ._payloads import TICKS, OutputOptions, hypothesis_body, phrase_body, ticks
from ._recognizers import SAMPLE_RATE, Hypothesis, Result, TurnInfo, TurnRecognizer
from ._records import AudioProblem, ConnectionRecord, TurnRecord
from ._resume import client_offset, session_key
from ._usp import (
    UspMessage,
    UspProtocolError,
    json_message,
    parse_message,
    parse_wave_header,
    serialize_message,
)

if TYPE_CHECKING:
    from ._service import FakeSpeechService

__all__ = ["ServiceConnection", "logger"]

logger = logging.getLogger("streamdiarize.testing")
redact_secrets(logger)  # websockets logs the client's key with the headers at DEBUG

_TICKS_PER_MS = 10_000
_ABORT_GRACE = 0.05


@dataclass(eq=False)
class _Turn:
    """The turn in progress: its record, recogniser and what the client asked to see."""

    record: TurnRecord
    info: TurnInfo
    recognizer: TurnRecognizer
    output: OutputOptions
    session: str
    audio_messages: int = 0
    start_detected: bool = False
    carry: bytes = b""


class ServiceConnection:
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
            OutputOptions.from_context(context),
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
        end = math.ceil(turn.record.pcm.end * TICKS / SAMPLE_RATE / _TICKS_PER_MS) * _TICKS_PER_MS
        await self.send(
            "speech.phrase", {"RecognitionStatus": "EndOfDictation", "Offset": end, "Duration": 0}
        )
        self.service._sessions.finish(turn.session)
        await self.send("speech.endDetected", {"Offset": end})
        await self.send("turn.end", {})

    async def end_turn(self, turn: _Turn) -> None:
        """End a turn before the client's end of audio; later audio of it is ignored."""
        turn.record.ended = True
        await self.send("speech.endDetected", {"Offset": ticks(turn.record.pcm.end / SAMPLE_RATE)})
        await self.send("turn.end", {})

    async def send_results(self, turn: _Turn, results: Iterable[Result]) -> None:
        for result in results:
            if not turn.start_detected:
                turn.start_detected = True
                await self.send("speech.startDetected", {"Offset": ticks(result.offset)})
            if isinstance(result, Hypothesis):
                await self.send("speech.hypothesis", hypothesis_body(result, turn.output))
                continue
            if result.problem is not None:
                self.audio_problem(result.offset, result.offset + result.duration, result.problem)
            body = phrase_body(result, turn.output)
            await self.send("speech.phrase", body)
            # The SDKs resume after the end of the last phrase: Offset + Duration as sent.
            end = ticks(turn.info.audio_offset) + body["Offset"] + body["Duration"]
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
            request_id = self.turn.record.request_id if self.turn else ""
            await self.ws.send(malformed_frame(fault.malformed, request_id))
        elif fault.kind == "end_turn" and self.turn is not None:
            await self.end_turn(self.turn)
        return True
