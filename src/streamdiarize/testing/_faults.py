"""Faults the emulated service injects on chosen connection attempts, and the broken frames."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from ._usp import JSON_CONTENT_TYPE, encode_text

__all__ = ["Fault", "FaultKind", "MalformedKind", "malformed_frame"]

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


def malformed_frame(kind: MalformedKind, request_id: str) -> str:
    """The broken text frame a ``"malformed"`` fault of ``kind`` sends in turn ``request_id``."""
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
