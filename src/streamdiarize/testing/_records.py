"""What the emulated service records: connection attempts, turns and unusable audio."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from .._audio_buffer import AudioBuffer
from ._faults import Fault
from ._usp import UspMessage, WaveFormat

__all__ = ["AudioProblem", "ConnectionRecord", "TurnRecord", "record_close"]


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


def record_close(record: ConnectionRecord, websocket: ServerConnection) -> None:
    """Note who closed ``websocket`` first, and how, unless a fault already did."""
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
