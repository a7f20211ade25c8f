"""USP framing (``streamdiarize.testing._usp``): round trips, real SDK frames, malformed input.

USP messages arrive as whole WebSocket frames, so there is no byte-split case to test here;
instead every byte string and every text must either parse or raise ``UspProtocolError``.
"""

from __future__ import annotations

import io
import json
import struct
import wave

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from streamdiarize import StreamDiarizeError
from streamdiarize.testing import UspMessage, UspProtocolError, parse_message, serialize_message
from streamdiarize.testing._usp import (
    JSON_CONTENT_TYPE,
    WaveFormat,
    encode_binary,
    encode_text,
    json_message,
    parse_wave_header,
)

# Frames as the Python SDK 1.53 sends them (captured from a socket): no space after the colon,
# binary header lines each end in CRLF with no blank line.
SDK_CONTEXT = (
    "X-Timestamp:2026-11-25T14:43:21.151Z\r\nPath:speech.context\r\n"
    "X-RequestId:eb4265c1766d49cf9274268b2d716771\r\n\r\n"
    '{"phraseDetection":{"mode":"Conversation","language":"en-US"}}'
)
_SDK_AUDIO_HEAD = (
    b"X-Timestamp:2026-11-25T14:43:21.151Z\r\nPath:audio\r\n"
    b"X-RequestId:eb4265c1766d49cf9274268b2d716771\r\nX-StreamId:1\r\n"
)
SDK_AUDIO = struct.pack(">H", len(_SDK_AUDIO_HEAD)) + _SDK_AUDIO_HEAD + b"\x01\x00" * 8

token = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=20,
)
header_name = token.filter(lambda n: n.lower() != "path")
header_value = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"), max_size=40
).map(lambda v: v.strip(" \t"))
headers = st.lists(st.tuples(header_name, header_value), max_size=6).map(tuple)
text_body = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)


@given(path=token, hdrs=headers, body=text_body)
@example(path="speech.phrase", hdrs=(), body="")
@example(path="turn.end", hdrs=(("X-RequestId", ""),), body="\r\n\r\nbody\r\n")
def test_text_round_trip(path: str, hdrs: tuple[tuple[str, str], ...], body: str) -> None:
    message = UspMessage(path=path, headers=hdrs, body=body.encode("utf-8"))
    frame = serialize_message(message)
    assert isinstance(frame, str)
    assert parse_message(frame) == message


@given(path=token, hdrs=headers, payload=st.binary(max_size=300))
def test_binary_round_trip(path: str, hdrs: tuple[tuple[str, str], ...], payload: bytes) -> None:
    message = UspMessage(path=path, headers=hdrs, body=payload, binary=True)
    frame = serialize_message(message)
    assert isinstance(frame, bytes)
    assert parse_message(frame) == message
    (size,) = struct.unpack_from(">H", frame)
    assert frame[2 + size :] == payload


def test_parses_sdk_text_frame() -> None:
    message = parse_message(SDK_CONTEXT)
    assert message.path == "speech.context"
    assert not message.binary
    assert message.request_id == "eb4265c1766d49cf9274268b2d716771"
    assert message.header("x-timestamp") == "2026-11-25T14:43:21.151Z"
    assert message.json()["phraseDetection"]["mode"] == "Conversation"


def test_parses_sdk_binary_frame() -> None:
    message = parse_message(SDK_AUDIO)
    assert message.binary
    assert message.path == "audio"
    assert message.header("X-STREAMID") == "1"
    assert message.body == b"\x01\x00" * 8


def test_json_message_has_the_headers_the_sdk_requires() -> None:
    message = parse_message(serialize_message(json_message("speech.phrase", "ab" * 16, {"A": 1})))
    assert message.path == "speech.phrase"
    assert message.request_id == "ab" * 16
    assert message.header("Content-Type") == JSON_CONTENT_TYPE
    assert message.json() == {"A": 1}


@given(st.text(max_size=300))
@example("Path: x")  # no blank line
@example("\r\n\r\n{}")  # no headers at all
@example("Path: a\r\nPath: b\r\n\r\n")
@example("Path a\r\n\r\n")
@example("Path:\r\n\r\n")
@example(": value\r\nPath: a\r\n\r\n")
def test_arbitrary_text_parses_or_raises_typed_error(frame: str) -> None:
    assert issubclass(UspProtocolError, StreamDiarizeError)
    try:
        message = parse_message(frame)
    except UspProtocolError:
        pass
    else:
        assert message.path.strip() == message.path != ""


@given(st.binary(max_size=300))
@example(b"")
@example(b"\x00")
@example(b"\x00\x10Path: audio\r\n")  # declares 16 header bytes, has 13
@example(b"\x00\x05\xff\xfe\xfd\xfc\xfb")  # headers not UTF-8
def test_arbitrary_bytes_parse_or_raise_typed_error(frame: bytes) -> None:
    try:
        message = parse_message(frame)
    except UspProtocolError:
        pass
    else:
        assert message.binary


def test_truncated_binary_frames() -> None:
    header_end = 2 + len(_SDK_AUDIO_HEAD)
    for cut in range(len(SDK_AUDIO)):
        frame = SDK_AUDIO[:cut]
        if cut < header_end:
            with pytest.raises(UspProtocolError):
                parse_message(frame)
        else:
            assert parse_message(frame).body == SDK_AUDIO[header_end:cut]


@pytest.mark.parametrize(
    ("name", "value"),
    [("Bad Name", "x"), ("", "x"), ("Na:me", "x"), ("X", "a\r\nPath: evil"), ("X", " padded")],
)
def test_serialize_rejects_unencodable_headers(name: str, value: str) -> None:
    with pytest.raises(UspProtocolError):
        serialize_message(UspMessage("speech.phrase", ((name, value),)))
    with pytest.raises(UspProtocolError):
        encode_binary([(name, value)], b"")


def test_binary_header_block_limit() -> None:
    with pytest.raises(UspProtocolError, match="65535"):
        encode_binary([("Path", "audio"), ("X", "v" * 70_000)], b"")


def test_frames_without_path_can_be_built_for_fault_injection() -> None:
    frame = encode_text([("X-RequestId", "1")], "{}")
    with pytest.raises(UspProtocolError, match="no Path"):
        parse_message(frame)


def test_bad_json_body() -> None:
    with pytest.raises(UspProtocolError, match="not JSON"):
        UspMessage("speech.phrase", body=b'{"Recog').json()
    with pytest.raises(UspProtocolError, match="not JSON"):
        UspMessage("speech.phrase", body=b"\xff").json()


def _wav_header(rate: int, channels: int, width: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:  # the standard library's writer, not ours
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x00" * (channels * width * 3))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("rate", "channels", "width"), [(16000, 1, 2), (8000, 2, 2), (48000, 1, 1)]
)
def test_wave_header_from_stdlib_writer(rate: int, channels: int, width: int) -> None:
    fmt, rest = parse_wave_header(_wav_header(rate, channels, width))
    assert fmt == WaveFormat(1, channels, rate, 8 * width)
    assert rest == b"\x00" * (channels * width * 3)
    assert fmt.is_pcm16_mono_16k == ((rate, channels, width) == (16000, 1, 2))


def test_wave_header_as_the_sdk_sends_it() -> None:
    sdk = (
        b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00"
        b"\x00}\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"
    )
    fmt, rest = parse_wave_header(sdk)
    assert fmt.is_pcm16_mono_16k
    assert rest == b""


def test_wave_header_skips_other_chunks() -> None:
    plain = _wav_header(16000, 1, 2)
    with_list = plain[:36] + b"LIST\x03\x00\x00\x00abc\x00" + plain[36:]
    assert parse_wave_header(with_list) == parse_wave_header(plain)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RIFX\x00\x00\x00\x00WAVE",
        b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00",  # data before fmt
        b"RIFF\x00\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00",  # fmt too short
    ],
)
def test_bad_wave_headers(data: bytes) -> None:
    with pytest.raises(UspProtocolError):
        parse_wave_header(data)


@given(st.integers(min_value=0, max_value=43))
def test_truncated_wave_header(cut: int) -> None:
    with pytest.raises(UspProtocolError):
        parse_wave_header(_wav_header(16000, 1, 2)[:cut])


def test_round_trip_of_a_service_message_keeps_unicode() -> None:
    payload = {"DisplayText": "¿Qué tal? 你好", "Offset": 1}
    message = parse_message(serialize_message(json_message("speech.phrase", "id", payload)))
    assert json.loads(message.body.decode("utf-8")) == payload
