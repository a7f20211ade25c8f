"""Where a turn's audio starts in the client's stream, after reconnects and new turns.

When a connection drops, or the service ends a turn early, both SDKs open a new turn and
resend the audio that follows the end of the last ``speech.phrase`` the service sent (they
keep unacknowledged audio in a replay buffer). The service reports times from the start of
the turn's audio and the SDK adds the resume point. To answer from the right place of a
script, the emulator must know that point. The two SDKs tell it differently
(``speech.context`` → ``phraseDetection.speakerDiarization``):

* the Python SDK (native core) sends ``audioOffsetMS``: the resume point, in whole
  milliseconds (truncated); it also sends (and without diarization, ``SpeechRecognizer``,
  only sends) the resume point in 100 ns ticks as ``continuation.audio.streams.<id>.offset``
  (a string), beside the ``previousServiceTag`` of the interrupted turn's ``turn.start``.
  Either way the audio it resends starts at that point truncated to whole milliseconds
  (measured with 1.53: ticks 70936000, audio from sample 113488 = 7.093 s at 16 kHz), so
  the continuation offset is truncated the same way;
* the JavaScript SDK 1.52 sends ``audioOffsetMs``: the audio it has *sent* in this
  recognition, including what was lost with the old socket and, on later reconnects, what it
  replayed. It is 0 on a new recognition and never less than the resume point, but not the
  resume point itself; a ``SpeechRecognizer`` sends no diarization block at all.

So the service keeps, per audio session, the end of the last phrase it sent, and uses it
where the client does not state the resume point itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["AudioSessions", "ClientOffset", "client_offset", "session_key"]

_TICKS = 10_000_000  # 100 ns ticks per second
_TICKS_PER_MS = 10_000
_MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class ClientOffset:
    """The audio offset a ``speech.context`` carries.

    Attributes:
        seconds: the value, in seconds.
        is_resume_point: ``True`` for the Python SDK's ``audioOffsetMS`` and continuation
            offset (where the turn's audio starts; the continuation offset truncated to
            whole milliseconds, as the SDK resends it), ``False`` for the JavaScript SDK's
            ``audioOffsetMs`` (audio sent so far).
    """

    seconds: float
    is_resume_point: bool


def _diarization(context: Mapping[str, Any]) -> Mapping[str, Any]:
    detection = context.get("phraseDetection")
    block = detection.get("speakerDiarization") if isinstance(detection, Mapping) else None
    return block if isinstance(block, Mapping) else {}


def _continuation_ticks(context: Mapping[str, Any]) -> int | None:
    continuation = context.get("continuation")
    audio = continuation.get("audio") if isinstance(continuation, Mapping) else None
    streams = audio.get("streams") if isinstance(audio, Mapping) else None
    if not isinstance(streams, Mapping):
        return None
    for stream in streams.values():
        offset = stream.get("offset") if isinstance(stream, Mapping) else None
        if isinstance(offset, str | int) and str(offset).isdigit():
            return int(offset)
    return None


def client_offset(context: Mapping[str, Any]) -> ClientOffset | None:
    """The audio offset in a ``speech.context``, or ``None`` when it has none (or no number)."""
    ticks = _continuation_ticks(context)
    if ticks is not None:
        # The Python SDK resends from the resume point in whole ms, not from the exact tick.
        return ClientOffset((ticks // _TICKS_PER_MS) / 1000, is_resume_point=True)
    diarization = _diarization(context)
    for name, is_resume_point in (("audioOffsetMS", True), ("audioOffsetMs", False)):
        value = diarization.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return ClientOffset(float(value) / 1000, is_resume_point)
    return None


def session_key(context: Mapping[str, Any], connection_id: str) -> str:
    """The audio session a turn belongs to: the diarization ``audioSessionId``, else the
    client's ``X-ConnectionId`` (kept across reconnects by both SDKs)."""
    session = _diarization(context).get("audioSessionId")
    return f"session:{session}" if isinstance(session, str) and session else f"conn:{connection_id}"


@dataclass(slots=True)
class _Session:
    acknowledged: int = 0  # ticks: end of the last speech.phrase sent, in stream time
    finished: bool = False  # the client ended its audio: the next turn is a new recognition


class AudioSessions:
    """The resume point of every audio session the service has seen (thread-safe, bounded)."""

    def __init__(self, max_sessions: int = _MAX_SESSIONS) -> None:
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_sessions

    def _get(self, key: str) -> _Session:
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session()
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(key)
        return session

    def turn_offset(self, key: str, context: Mapping[str, Any]) -> float:
        """Where a new turn's audio starts in the client's stream, in seconds.

        The Python SDK's ``audioOffsetMS`` is taken as it is. Otherwise a new recognition
        (JavaScript ``audioOffsetMs`` of 0, or a session whose client ended its audio)
        starts at 0, and a resumed one at the end of the last phrase sent in the session,
        never past the audio the client says it sent.
        """
        offset = client_offset(context)
        with self._lock:
            session = self._get(key)
            if offset is not None and offset.is_resume_point:
                seconds = offset.seconds
            elif session.finished or (offset is not None and offset.seconds == 0):
                seconds = 0.0
            else:
                seconds = session.acknowledged / _TICKS
                if offset is not None:
                    seconds = min(seconds, offset.seconds)
            session.acknowledged = round(seconds * _TICKS)
            session.finished = False
            return seconds

    def acknowledge(self, key: str, end_ticks: int) -> None:
        """The service sent a ``speech.phrase`` ending at ``end_ticks`` (stream time)."""
        with self._lock:
            session = self._get(key)
            session.acknowledged = max(session.acknowledged, end_ticks)

    def finish(self, key: str) -> None:
        """The client ended its audio: a later turn in this session starts a new stream."""
        with self._lock:
            self._get(key).finished = True
