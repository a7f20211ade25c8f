"""Watching a running server from a test: session observers (one keeps everything, one only
counts) and a polling helper."""

from __future__ import annotations

import time
from collections.abc import Callable

from streamdiarize.server import SessionInfo, SessionOutcome


class Collector:
    """A :class:`~streamdiarize.server.SessionObserver` that keeps everything in memory."""

    def __init__(self) -> None:
        self.started: list[SessionInfo] = []
        self.audio: dict[str, list[bytes]] = {}
        self.ended: dict[str, SessionOutcome] = {}

    def session_started(self, info: SessionInfo) -> None:
        self.started.append(info)
        self.audio[info.id] = []

    def audio_received(self, info: SessionInfo, data: bytes) -> None:
        self.audio[info.id].append(data)

    def session_ended(self, info: SessionInfo, outcome: SessionOutcome) -> None:
        self.ended[info.id] = outcome


class Counter:
    """A SessionObserver that counts, so that minutes of audio are not kept in memory."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.started: list[SessionInfo] = []
        self.ended: list[SessionOutcome] = []

    def session_started(self, info: SessionInfo) -> None:
        self.started.append(info)

    def audio_received(self, info: SessionInfo, data: bytes) -> None:
        self.messages += 1
        self.bytes += len(data)

    def session_ended(self, info: SessionInfo, outcome: SessionOutcome) -> None:
        self.ended.append(outcome)


def wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``condition`` every 20 ms until it is truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or condition}")
        time.sleep(0.02)
