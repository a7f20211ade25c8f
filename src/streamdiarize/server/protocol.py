"""The small JSON protocol between a browser page and a streamdiarize WebSocket endpoint.

One WebSocket connection carries one audio stream. Text messages are JSON objects with a
``type``; binary messages are audio bytes, split however the client likes.

Client to server::

    {"type": "start", "mime": "audio/webm;codecs=opus", "interim": true}    optional, first
    <binary> <binary> ...                                                    the audio bytes
    {"type": "stop"}                                                         optional: end of audio

* The ``start`` message is optional: a client whose first message is binary (a page that
  just sends ``MediaRecorder`` chunks or ``getChannelData(0)`` frames, no subprotocol) is
  served too; its format is found out from the bytes, raw frames included (see
  :mod:`streamdiarize.server.opening`; the URL may hint ``?rate=48000&format=f32``).

* ``mime`` (required in ``start``) is what ``MediaRecorder.mimeType`` reported, or for raw
  samples ``audio/pcm;rate=44100;encoding=float32;channels=1`` (``encoding`` ``float32`` or
  ``int16``, little-endian, interleaved; what is left out is found out from the stream).
  Containers (WebM, Ogg, MP4, WAV) are recognised by their bytes; the MIME type adds the
  codec and says what raw samples are.
* ``interim`` (optional, default ``false``): also send interim hypotheses.
* Unknown fields are ignored, so newer clients work with older servers.
* A MediaRecorder ``stop()``/``start()`` on the same socket needs no message: the new stream
  header in the bytes is enough.
* ``stop`` asks for the last results: the server sends them, then ``end``, then closes (code
  1000). Closing the socket instead drops results still in flight.

Server to client::

    {"type": "ready", "session": "3f9c2a1e", "engine": "azure", "emulated": false,
     "limits": {"max_message_bytes": 1048576, "max_session_seconds": 3600.0, ...}}
    {"type": "segment", "speaker": "Guest-1", "language": "en-US", "text": "Good morning.",
     "offset": 0.5, "duration": 1.25, "final": true, "revision": 0,
     "words": [{"text": "good", "offset": 0.5, "duration": 0.4, "confidence": 0.9}, ...]}
    {"type": "end", "audio_seconds": 16.58}
    {"type": "error", "code": "unsupported_format", "message": "MIME type ... is not ..."}

``ready`` comes once the speech backend is running (audio sent before it is kept). Times are
seconds from the start of the client's stream. An interim segment (``final: false``) is
replaced by the next segment. A final segment with ``revision`` above 0 corrects the speaker
of the final segment with the same ``offset`` (the local engine revises recent turns once it
has heard more voices); text and times do not change. ``error`` is always the last message:
the server closes right after it with the close code below. Error codes and close codes:

==================== ===== ========================================================
``code``             close when
==================== ===== ========================================================
bad_message          1007  a text message that is not the JSON described here
unexpected_message   1003  text other than ``start`` first or ``stop`` after it
unsupported_format   1003  the MIME type names nothing we decode, or raw frames whose
                           format or rate cannot be found out (declare them)
bad_audio            1007  the bytes do not decode as the declared format
message_too_big      1009  a message over the server's ``max_message_bytes``
unauthorized         1008  missing or wrong token (when the server requires one)
timeout              1008  no first message in time, or no message for too long
session_limit        1008  the session reached ``max_session_seconds`` (wall or audio time)
busy                 1013  the server runs ``max_sessions`` sessions already
quota                1013  the speech service throttled the request
backend              1011  the speech backend failed (bad key, network, missing model)
internal             1011  a bug in the server
==================== ===== ========================================================

A frame over the server's size limit may be refused by the WebSocket layer itself: then the
close code 1009 arrives without an ``error`` message. A cross-origin page gets HTTP 403 at
the handshake; the response body and the server's log name the ``--allow-origin`` that
would admit it. Tokens travel in the ``Sec-WebSocket-Protocol`` header (the only header a
page can set): offer ``["streamdiarize.v1", "streamdiarize.token.<token>"]``; the server answers
``streamdiarize.v1``. Other clients may send ``Authorization: Bearer <token>`` instead.

This module is pure (no I/O): the demo server and the examples share it.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Any

from .._exceptions import (
    InputError,
    LimitExceededError,
    QuotaExceededError,
    StreamDiarizeError,
    TranscriberError,
    UnsupportedFormatError,
)
from ..formats import parse_mime
from ..segment import Segment

__all__ = [
    "SUBPROTOCOL",
    "TOKEN_SUBPROTOCOL_PREFIX",
    "ErrorCode",
    "ProtocolError",
    "StartMessage",
    "StopMessage",
    "end_message",
    "error_for",
    "error_message",
    "parse_message",
    "parse_start",
    "ready_message",
    "segment_message",
    "segment_to_dict",
]

#: The subprotocol a server selects; clients offer it so a future v2 can be told apart.
SUBPROTOCOL = "streamdiarize.v1"
#: Prefix of the subprotocol that carries a bearer token from a browser page.
TOKEN_SUBPROTOCOL_PREFIX = "streamdiarize.token."

#: Longest text message a client may send (the start message is tiny).
MAX_TEXT_MESSAGE = 4096
#: Longest MIME string accepted.
MAX_MIME_LENGTH = 256


class ErrorCode(str, enum.Enum):
    """The ``code`` of an ``error`` message, with its WebSocket close code."""

    BAD_MESSAGE = "bad_message"
    UNEXPECTED_MESSAGE = "unexpected_message"
    UNSUPPORTED_FORMAT = "unsupported_format"
    BAD_AUDIO = "bad_audio"
    MESSAGE_TOO_BIG = "message_too_big"
    UNAUTHORIZED = "unauthorized"
    TIMEOUT = "timeout"
    SESSION_LIMIT = "session_limit"
    BUSY = "busy"
    QUOTA = "quota"
    BACKEND = "backend"
    INTERNAL = "internal"

    @property
    def close_code(self) -> int:
        """The WebSocket close code (RFC 6455 §7.4.1) the server uses after this error."""
        return _CLOSE_CODES[self]


_CLOSE_CODES = {
    ErrorCode.BAD_MESSAGE: 1007,
    ErrorCode.UNEXPECTED_MESSAGE: 1003,
    ErrorCode.UNSUPPORTED_FORMAT: 1003,
    ErrorCode.BAD_AUDIO: 1007,
    ErrorCode.MESSAGE_TOO_BIG: 1009,
    ErrorCode.UNAUTHORIZED: 1008,
    ErrorCode.TIMEOUT: 1008,
    ErrorCode.SESSION_LIMIT: 1008,
    ErrorCode.BUSY: 1013,
    ErrorCode.QUOTA: 1013,
    ErrorCode.BACKEND: 1011,
    ErrorCode.INTERNAL: 1011,
}


class ProtocolError(StreamDiarizeError):
    """Ends a connection: send :meth:`message` to the client, then close with :attr:`close_code`.

    Attributes:
        code: what went wrong, as the client sees it.
        text: the human-readable explanation sent to the client.
        close_code: the WebSocket close code to use.
        close_reason: ``text`` cut to the 123 bytes a close frame allows.
    """

    def __init__(self, code: ErrorCode, text: str) -> None:
        super().__init__(f"{code.value}: {text}")
        self.code = code
        self.text = text
        self.close_code = code.close_code
        self.close_reason = _truncate_utf8(text, 123)

    def message(self) -> str:
        """The ``error`` message (JSON text) for the client."""
        return error_message(self.code, self.text)


@dataclass(frozen=True, slots=True)
class StartMessage:
    """The client's first message: what it will send.

    Attributes:
        mime: ``MediaRecorder.mimeType`` or an ``audio/pcm;rate=...`` description.
        interim: the client wants interim hypotheses too.
    """

    mime: str
    interim: bool = False


@dataclass(frozen=True, slots=True)
class StopMessage:
    """The client sent all its audio and waits for the last results."""


def _decode_object(text: str) -> dict[str, Any]:
    if len(text) > MAX_TEXT_MESSAGE:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"text message of {len(text)} characters; control messages are under "
            f"{MAX_TEXT_MESSAGE}",
        )
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f"text message is not valid JSON: {exc}"
        ) from exc
    if not isinstance(value, dict):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f'a control message must be a JSON object with a "type", got {type(value).__name__}',
        )
    return value


def parse_start(message: str | bytes) -> StartMessage:
    """Parse and check the client's first message, as received (text or binary).

    Raises:
        ProtocolError: a binary message (audio before ``start``), not JSON, not
            ``type: start``, a bad ``mime`` (``unsupported_format`` when it is well formed but
            names nothing we decode), or a non-boolean ``interim``.
    """
    if not isinstance(message, str):
        raise ProtocolError(
            ErrorCode.UNEXPECTED_MESSAGE,
            'audio arrived before the start message: send {"type": "start", "mime": ...} '
            "as a text message first",
        )
    value = _decode_object(message)
    kind = value.get("type")
    if kind != "start":
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE if kind is None else ErrorCode.UNEXPECTED_MESSAGE,
            f'the first message must be {{"type": "start", "mime": ...}}, got type {kind!r}',
        )
    mime = value.get("mime")
    if not isinstance(mime, str) or not mime.strip() or len(mime) > MAX_MIME_LENGTH:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            '"mime" must be a non-empty string such as "audio/webm;codecs=opus" or '
            '"audio/pcm;rate=48000;encoding=float32;channels=1"',
        )
    interim = value.get("interim", False)
    if not isinstance(interim, bool):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, '"interim" must be true or false')
    try:
        parse_mime(mime)  # raw frames without rate= are measured from the stream
    except StreamDiarizeError as exc:
        raise ProtocolError(ErrorCode.UNSUPPORTED_FORMAT, str(exc)) from exc
    return StartMessage(mime=mime.strip(), interim=interim)


def parse_message(text: str) -> StopMessage:
    """Parse a text message sent after ``start``: only ``{"type": "stop"}`` is allowed.

    Raises:
        ProtocolError: anything else.
    """
    value = _decode_object(text)
    kind = value.get("type")
    if kind == "stop":
        return StopMessage()
    raise ProtocolError(
        ErrorCode.BAD_MESSAGE if kind is None else ErrorCode.UNEXPECTED_MESSAGE,
        f'after "start" only audio (binary messages) and {{"type": "stop"}} may follow, '
        f"got type {kind!r}",
    )


def _round(value: float) -> float:
    return round(value, 3) if math.isfinite(value) else 0.0


def segment_to_dict(segment: Segment) -> dict[str, Any]:
    """A :class:`Segment` as the ``segment`` message's JSON object (times rounded to 1 ms)."""
    return {
        "type": "segment",
        "speaker": segment.speaker,
        "language": segment.language,
        "text": segment.text,
        "offset": _round(segment.offset),
        "duration": _round(segment.duration),
        "final": segment.final,
        "revision": segment.revision,
        "words": [
            {
                "text": w.text,
                "offset": _round(w.offset),
                "duration": _round(w.duration),
                "confidence": w.confidence,
            }
            for w in segment.words
        ],
    }


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def segment_message(segment: Segment) -> str:
    """The ``segment`` message (JSON text) for one segment."""
    return _dumps(segment_to_dict(segment))


def ready_message(
    session: str, engine: str, *, emulated: bool = False, limits: dict[str, Any] | None = None
) -> str:
    """The ``ready`` message: the backend runs, results will follow."""
    return _dumps(
        {
            "type": "ready",
            "session": session,
            "engine": engine,
            "emulated": emulated,
            "limits": limits or {},
        }
    )


def end_message(audio_seconds: float) -> str:
    """The ``end`` message: every result was sent; the server closes next."""
    return _dumps({"type": "end", "audio_seconds": _round(audio_seconds)})


def error_message(code: ErrorCode, text: str) -> str:
    """The ``error`` message (JSON text)."""
    return _dumps({"type": "error", "code": code.value, "message": text})


def error_for(exc: StreamDiarizeError) -> ProtocolError:
    """The protocol error to report for a library exception raised by a session."""
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, UnsupportedFormatError):
        return ProtocolError(ErrorCode.UNSUPPORTED_FORMAT, str(exc))
    if isinstance(exc, LimitExceededError):
        return ProtocolError(ErrorCode.BAD_AUDIO, f"the audio stream exceeds a limit: {exc}")
    if isinstance(exc, InputError):
        return ProtocolError(ErrorCode.BAD_AUDIO, str(exc))
    if isinstance(exc, QuotaExceededError):
        return ProtocolError(ErrorCode.QUOTA, str(exc))
    if isinstance(exc, TranscriberError):
        return ProtocolError(ErrorCode.BACKEND, f"the speech backend failed: {exc}")
    return ProtocolError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "..."
