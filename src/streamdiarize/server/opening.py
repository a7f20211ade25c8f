"""How a connection begins: a ``start`` message, or (zero-config clients) nothing but audio.

The pages people already wrote open ``new WebSocket("ws://localhost:8000")`` and send bytes:
MediaRecorder chunks or ``getChannelData(0)`` frames, with no start message and no
subprotocol. A server reads the connection's first message and hands it to
:func:`parse_opening`: a text message is the ``start`` message of
:mod:`~streamdiarize.server.protocol` (it takes precedence, as before); a binary message is
the first audio, and the format is found out from the bytes (containers by magic, raw frames
by :mod:`~streamdiarize.raw_detection`). The URL's query string may hint what raw frames
are, for pages that know: ``ws://host:8000/?rate=48000&format=f32&channels=1``.

Pure, like the protocol module: the demo server and the examples share it::

    opening = parse_opening(await websocket.recv(), query)
    async with opening.session(transcriber) as session:
        await session.send(opening.audio)        # b"" after a start message
        ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from .._exceptions import StreamDiarizeError
from ..formats import AudioFormat, SampleFormat, sample_format_named
from ..segment import Segment
from ..session import TranscriptionSession
from ..transcribers import Transcriber
from .protocol import ErrorCode, ProtocolError, StartMessage, parse_start

__all__ = [
    "Opening",
    "RawHints",
    "console_line",
    "origin_refusal",
    "parse_opening",
    "parse_query_hints",
]


@dataclass(frozen=True, slots=True)
class RawHints:
    """What the query string says about raw frames (each ``None`` when it says nothing).

    Attributes:
        sample_rate: ``rate=48000``.
        sample_format: ``format=f32`` (or ``float32``, ``s16``, ``int16``).
        channels: ``channels=2``.
    """

    sample_rate: int | None = None
    sample_format: SampleFormat | None = None
    channels: int | None = None


@dataclass(frozen=True, slots=True)
class Opening:
    """The start of a connection, as :func:`parse_opening` read it.

    Attributes:
        start: the client's ``start`` message, or ``None`` when its first message was audio.
        audio: that first audio (``b""`` after a start message): send it to the session first.
        hints: the query string's hints for raw frames.
    """

    start: StartMessage | None
    audio: bytes
    hints: RawHints

    @property
    def mime(self) -> str | None:
        """The declared format, or ``None``: found out from the bytes."""
        return self.start.mime if self.start is not None else None

    @property
    def interim(self) -> bool:
        """The client asked for interim hypotheses (only a start message can)."""
        return self.start is not None and self.start.interim

    def session(self, transcriber: Transcriber | None, **options: Any) -> TranscriptionSession:
        """A :class:`TranscriptionSession` for this client: its declared format or the hints.

        ``options`` go to the session as well (``max_buffered``, ``close_timeout``, ...).
        """
        return TranscriptionSession(
            transcriber,
            mime=self.mime,
            interim_results=self.interim,
            sample_rate=self.hints.sample_rate,
            sample_format=self.hints.sample_format,
            channels=self.hints.channels or 1,
            **options,
        )


def parse_query_hints(query: str | bytes) -> RawHints:
    """Read ``rate``, ``format`` and ``channels`` from a URL query string (unknown keys ignored).

    Raises:
        ProtocolError: ``unsupported_format`` for a value that is no rate, format or count.
    """
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    values = {key: found[-1] for key, found in parse_qs(text.lstrip("?")).items()}
    try:
        rate = int(values["rate"]) if "rate" in values else None
        channels = int(values["channels"]) if "channels" in values else None
        name = values.get("format") or values.get("encoding")
        sample_format = sample_format_named(name) if name else None
        AudioFormat.raw(rate, sample_format, channels or 1)  # validates the ranges
    except (ValueError, StreamDiarizeError) as exc:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"bad raw format in the URL's query string {text!r}: {exc}; "
            "e.g. ?rate=48000&format=f32&channels=1",
        ) from exc
    return RawHints(rate, sample_format, channels)


def parse_opening(message: str | bytes, query: str | bytes = "") -> Opening:
    """Read a connection's first message: a ``start`` message, or the first audio.

    Raises:
        ProtocolError: a text message that is not a valid ``start`` message (see
            :func:`~streamdiarize.server.protocol.parse_start`), or bad query hints.
    """
    hints = parse_query_hints(query)
    if isinstance(message, str):
        return Opening(parse_start(message), b"", hints)
    return Opening(None, bytes(message), hints)


def console_line(segment: Segment) -> str:
    """A final segment as a server prints it: ``[   4.14 s] Guest-2: Thanks.``"""
    return f"[{segment.offset:7.2f} s] {segment.speaker}: {segment.text}"


def origin_refusal(origin: str | None) -> str:
    """What a refused page's developer needs to read: which option admits that origin."""
    return (
        f"WebSocket from origin {origin!r} refused: only pages from this server's own origin "
        f"may connect; start the server with --allow-origin {origin} to accept this page "
        "(ServerSettings(allowed_origins=...) in code)"
    )
