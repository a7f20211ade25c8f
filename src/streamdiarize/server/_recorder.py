"""``SessionRecorder``: keep every session's bytes, laid out like ``tests/data/captures``.

``streamdiarize serve --record DIR`` writes one directory per session: ``stream.bin`` (all
binary messages joined), ``sizes.json`` (each message's length, zeros included) and
``meta.json`` (the start message, arrival times, how it ended). A bug report with that
directory reproduces the socket byte for byte; rebuild the messages with::

    ends = itertools.accumulate(json.load(open("sizes.json")))
    messages = [data[a:b] for a, b in zip([0, *ends], ends)]
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import IO, Any

from .._exceptions import ConfigurationError
from ._observer import SessionInfo, SessionOutcome

__all__ = ["SessionRecorder"]


class _Capture:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.stream: IO[bytes] = (directory / "stream.bin").open("wb")
        self.sizes: list[int] = []
        self.arrival_ms: list[float] = []
        self.started = time.monotonic()


class SessionRecorder:
    """A :class:`SessionObserver` that writes each session to ``root/<time>-<id>/``.

    Writes happen on the event loop (small, buffered appends): meant for debugging and tests,
    not for a busy production server.

    Raises:
        ConfigurationError: ``root`` cannot be created.
    """

    def __init__(self, root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the recording directory {root}: {exc}"
            ) from exc
        self.root = root
        self._open: dict[str, _Capture] = {}
        #: Session id to its directory, for every session recorded so far.
        self.directories: dict[str, Path] = {}

    def session_started(self, info: SessionInfo) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        directory = self.root / f"{stamp}-{info.id}"
        directory.mkdir(parents=True, exist_ok=True)
        self._open[info.id] = _Capture(directory)
        self.directories[info.id] = directory

    def audio_received(self, info: SessionInfo, data: bytes) -> None:
        capture = self._open.get(info.id)
        if capture is None:
            return
        capture.stream.write(data)
        capture.sizes.append(len(data))
        capture.arrival_ms.append(round((time.monotonic() - capture.started) * 1000.0, 1))

    def session_ended(self, info: SessionInfo, outcome: SessionOutcome) -> None:
        capture = self._open.pop(info.id, None)
        if capture is None:
            return
        capture.stream.close()
        (capture.directory / "sizes.json").write_text(json.dumps(capture.sizes))
        meta: dict[str, Any] = {
            "session": info.id,
            "mimeType": info.mime,
            "interim": info.interim,
            "origin": info.origin,
            "message_count": len(capture.sizes),
            "total_bytes": sum(capture.sizes),
            "zero_length_messages": [i for i, size in enumerate(capture.sizes) if size == 0],
            "per_message_arrival_ms": capture.arrival_ms,
            "arrival_ms_origin": "the start message",
            "outcome": dataclasses.asdict(outcome),
        }
        (capture.directory / "meta.json").write_text(json.dumps(meta, indent=1))
