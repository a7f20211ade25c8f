"""Sans-I/O framing of USP, the Azure Speech WebSocket protocol: parse and build its messages.

A USP message travels in one WebSocket frame. A text frame holds ``Name:value`` header lines
separated by CRLF, a blank line, then the body (JSON). A binary frame holds a 2-byte big-endian
header length, the header lines (each ending in CRLF, no blank line), then the payload (audio).
Every message has a ``Path`` header naming its kind (``speech.context``, ``audio``,
``speech.phrase``, ...). The first ``audio`` message of a turn starts with a RIFF/WAVE header.

Nothing here does I/O: the functions take and return whole frames (``str`` or ``bytes``).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._exceptions import StreamDiarizeError
from .._speech_rate import SPEECH_SAMPLE_RATE

__all__ = [
    "JSON_CONTENT_TYPE",
    "UspMessage",
    "UspProtocolError",
    "WaveFormat",
    "encode_binary",
    "encode_text",
    "json_message",
    "parse_message",
    "parse_wave_header",
    "serialize_message",
]

#: The ``Content-Type`` of every JSON message the service sends.
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

_MAX_BINARY_HEADER = 0xFFFF
#: RFC 9110 token characters: what a header name may hold.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_CHARS = re.compile(r"[\r\n\x00]")
_OWS = " \t"


class UspProtocolError(StreamDiarizeError, ValueError):
    """A USP frame or RIFF header breaks the framing rules (or cannot be built)."""


@dataclass(frozen=True, slots=True)
class UspMessage:
    """One USP message.

    Attributes:
        path: the ``Path`` header: the message kind.
        headers: every other header as ``(name, value)`` pairs, in wire order.
        body: the body (UTF-8 text for text messages) or the binary payload.
        binary: ``True`` for a binary frame (audio), ``False`` for a text frame.
    """

    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    binary: bool = False

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or ``None``."""
        if name.lower() == "path":
            return self.path
        key = name.lower()
        return next((v for k, v in self.headers if k.lower() == key), None)

    @property
    def request_id(self) -> str | None:
        """The ``X-RequestId`` header, or ``None``."""
        return self.header("X-RequestId")

    def json(self) -> Any:
        """The body decoded as UTF-8 JSON.

        Raises:
            UspProtocolError: the body is not UTF-8 JSON.
        """
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UspProtocolError(f"{self.path!r} message body is not JSON: {exc}") from exc


@dataclass(frozen=True, slots=True)
class WaveFormat:
    """The ``fmt `` chunk of a RIFF/WAVE header.

    Attributes:
        format_tag: 1 for integer PCM, 3 for IEEE float.
        channels: interleaved channels.
        sample_rate: frames per second.
        bits_per_sample: bits of one sample.
    """

    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int

    @property
    def is_pcm16_mono_16k(self) -> bool:
        """True for the one format the service is fed here: 16 kHz, 16-bit PCM, mono."""
        return (self.format_tag, self.channels, self.sample_rate, self.bits_per_sample) == (
            1,
            1,
            SPEECH_SAMPLE_RATE,
            16,
        )

    def __str__(self) -> str:
        return (
            f"{self.sample_rate} Hz, {self.bits_per_sample}-bit, {self.channels} channel(s), "
            f"format tag {self.format_tag}"
        )


def json_message(path: str, request_id: str, payload: object) -> UspMessage:
    """A service → client text message with the headers the SDK requires.

    The SDK drops a message whose ``X-RequestId`` is not its latest ``speech.context`` id.
    """
    return UspMessage(
        path=path,
        headers=(("X-RequestId", request_id), ("Content-Type", JSON_CONTENT_TYPE)),
        body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
    )


def parse_message(frame: str | bytes) -> UspMessage:
    """Parse one WebSocket frame (``str`` for text, ``bytes`` for binary) into a message.

    Raises:
        UspProtocolError: the frame is not a USP message (no header block, bad header line,
            no ``Path`` or two of them, header length past the frame's end, non-UTF-8 headers).
    """
    if isinstance(frame, str):
        if frame.startswith("\r\n"):
            head, body = "", frame[2:]
        else:
            head, sep, body = frame.partition("\r\n\r\n")
            if not sep:
                raise UspProtocolError("text frame has no blank line ending its headers")
        headers = _parse_header_lines(head.split("\r\n") if head else [])
        try:
            payload = body.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates cannot come from a real frame
            raise UspProtocolError(f"text frame body is not encodable: {exc}") from exc
        return _with_path(headers, payload, binary=False)
    if len(frame) < 2:
        raise UspProtocolError(f"binary frame of {len(frame)} bytes has no header length")
    (size,) = struct.unpack_from(">H", frame)
    if 2 + size > len(frame):
        raise UspProtocolError(
            f"binary frame declares {size} header bytes but holds only {len(frame) - 2}"
        )
    try:
        head = frame[2 : 2 + size].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UspProtocolError(f"binary frame headers are not UTF-8: {exc}") from exc
    if head.endswith("\r\n"):
        head = head[:-2]
    headers = _parse_header_lines(head.split("\r\n") if head else [])
    return _with_path(headers, bytes(frame[2 + size :]), binary=True)


def serialize_message(message: UspMessage) -> str | bytes:
    """The frame for ``message``: ``str`` for a text message, ``bytes`` for a binary one.

    ``Path`` goes first, then the other headers in order, so that
    ``parse_message(serialize_message(m)) == m``.

    Raises:
        UspProtocolError: a header name is not a token, a value holds CR/LF/NUL or
            surrounding whitespace, the binary header block exceeds 65,535 bytes, or a text
            body is not UTF-8.
    """
    headers = (("Path", message.path), *message.headers)
    if message.binary:
        return encode_binary(headers, message.body)
    try:
        body = message.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UspProtocolError(f"text message body is not UTF-8: {exc}") from exc
    return encode_text(headers, body)


def encode_text(headers: Iterable[tuple[str, str]], body: str) -> str:
    """A text frame from raw headers (``Path`` not required: fault injection uses this)."""
    return _header_block(headers) + "\r\n" + body


def encode_binary(headers: Iterable[tuple[str, str]], payload: bytes) -> bytes:
    """A binary frame from raw headers (``Path`` not required) and a payload."""
    head = _header_block(headers).encode("utf-8")
    if len(head) > _MAX_BINARY_HEADER:
        raise UspProtocolError(
            f"binary header block of {len(head)} bytes exceeds {_MAX_BINARY_HEADER}"
        )
    return struct.pack(">H", len(head)) + head + payload


def parse_wave_header(data: bytes) -> tuple[WaveFormat, bytes]:
    """Parse the RIFF/WAVE header that starts a turn's first audio message.

    The SDK sends a 44-byte header whose sizes are 0 (a stream of unknown length); any bytes
    after the ``data`` chunk header are returned as the first PCM.

    Returns:
        The ``fmt `` chunk and the bytes that follow the ``data`` chunk header.

    Raises:
        UspProtocolError: not RIFF/WAVE, or no ``fmt `` chunk before ``data``.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise UspProtocolError(
            f"first audio message does not start with a RIFF/WAVE header: {data[:12]!r}"
        )
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"data":
            if fmt is None:
                raise UspProtocolError("RIFF/WAVE header has a data chunk before its fmt chunk")
            return fmt, data[body:]
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise UspProtocolError(f"RIFF/WAVE fmt chunk of {size} bytes is too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = WaveFormat(tag, channels, rate, bits)
        pos = body + size + (size & 1)
    raise UspProtocolError("RIFF/WAVE header ends before its data chunk")


def _header_block(headers: Iterable[tuple[str, str]]) -> str:
    lines = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise UspProtocolError(f"header name {name!r} is not a token")
        if _BAD_VALUE_CHARS.search(value) or value != value.strip(_OWS):
            raise UspProtocolError(
                f"header {name} value {value!r} holds CR, LF, NUL or surrounding whitespace"
            )
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


def _parse_header_lines(lines: list[str]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.strip(_OWS)
        if not sep or not _TOKEN.fullmatch(name):
            raise UspProtocolError(f"bad USP header line {line!r}")
        value = value.strip(_OWS)
        if _BAD_VALUE_CHARS.search(value):
            raise UspProtocolError(f"header {name} value {value!r} holds a control character")
        headers.append((name, value))
    return headers


def _with_path(headers: list[tuple[str, str]], body: bytes, *, binary: bool) -> UspMessage:
    paths = [v for k, v in headers if k.lower() == "path"]
    if len(paths) != 1:
        raise UspProtocolError(
            "USP message has no Path header"
            if not paths
            else f"USP message has {len(paths)} Path headers"
        )
    if not paths[0]:
        raise UspProtocolError("USP message has an empty Path header")
    rest = tuple((k, v) for k, v in headers if k.lower() != "path")
    return UspMessage(path=paths[0], headers=rest, body=body, binary=binary)
