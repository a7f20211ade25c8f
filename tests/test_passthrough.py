"""Passthrough backends (streams that take ``write_message``'s bytes, e.g.
``AzureTranscriber(passthrough=True)``) get the client's bytes as sent, and the session's
limits hold for them as for PCM backends: the session decodes every message, so
``audio_seconds``, the decompression-bomb cap, typed errors for bytes that are not audio and
the server's audio-length cap do not depend on the backend.

The backend here is a recorder of our own ``Transcriber`` protocol (what a passthrough backend
is handed is the point of the test); Azure's passthrough needs GStreamer inside the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

import streamdiarize as sd
from _feeding import capture_messages, reference_pcm
from browser.wsclient import converse
from streamdiarize.engines import Engine
from streamdiarize.server import BackgroundServer, ServerSettings, create_app
from streamdiarize.transcribers import SegmentSink, Transcriber, TranscriberStream
from test_reliability import WEBM_HEAD, webm_bomb

RATE = 16_000
WEBM = "audio/webm;codecs=opus"


class _RecordingStream(TranscriberStream):
    def __init__(self, backend: RecordingPassthrough) -> None:
        self._backend = backend

    async def write(self, pcm: NDArray[np.int16]) -> None:
        raise AssertionError("a passthrough stream is handed messages, not PCM alone")

    async def write_message(
        self, message: bytes | bytearray | memoryview, pcm: NDArray[np.int16]
    ) -> None:
        self._backend.received.extend(message)
        self._backend.pcm_samples += pcm.size

    async def finish(self) -> None:
        self._backend.finished = True

    async def aclose(self) -> None:
        pass


class RecordingPassthrough(Transcriber):
    """A passthrough backend that keeps every byte it is handed."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.pcm_samples = 0
        self.finished = False

    async def open(self, sink: SegmentSink, *, interim_results: bool = False) -> TranscriberStream:
        return _RecordingStream(self)


async def test_the_backend_gets_the_bytes_as_sent_and_the_session_counts_their_audio() -> None:
    messages = capture_messages("A")  # Chromium WebM/Opus, 16.9 s
    backend = RecordingPassthrough()
    async with sd.TranscriptionSession(backend, mime=WEBM) as session:
        for message in messages:
            await session.send(message)
    assert bytes(backend.received) == b"".join(messages)
    assert backend.finished
    reference = reference_pcm("A")  # FFmpeg's decode of the same bytes
    assert session.audio_seconds == pytest.approx(len(reference) / RATE, abs=0.1)
    # Each message came with the audio decoded from it, the flush's included.
    assert backend.pcm_samples == round(session.audio_seconds * RATE)


async def test_a_decompression_bomb_is_refused_before_it_reaches_the_backend() -> None:
    backend = RecordingPassthrough()
    session = sd.TranscriptionSession(backend, mime=WEBM, max_feed_seconds=30)
    await session.send(WEBM_HEAD)
    with pytest.raises(sd.LimitExceededError, match="more than 30 s of audio"):
        await session.send(webm_bomb(40_000))  # 320 KB that decode to 80 minutes
    await session.close()
    assert bytes(backend.received) == WEBM_HEAD
    assert 29 < session.audio_seconds <= 31  # what was decoded up to the cap is counted


async def test_bytes_that_are_not_audio_raise_a_typed_error_and_go_nowhere() -> None:
    backend = RecordingPassthrough()
    garbage = bytes(range(256)) * 64
    async with sd.TranscriptionSession(backend, mime=WEBM) as session:
        with pytest.raises(sd.InputError):
            await session.send(garbage)
    assert backend.received == b""
    assert session.audio_seconds == 0


@pytest.fixture
def passthrough_server() -> Iterator[tuple[BackgroundServer, RecordingPassthrough]]:
    backend = RecordingPassthrough()
    engine = Engine("passthrough", "a passthrough recorder", backend)
    settings = ServerSettings(max_session_seconds=5.0)
    server = BackgroundServer(create_app(engine, settings), settings=settings)
    server.start()
    try:
        yield server, backend
    finally:
        server.stop()


async def test_the_servers_audio_cap_ends_a_passthrough_session(
    passthrough_server: tuple[BackgroundServer, RecordingPassthrough],
) -> None:
    server, backend = passthrough_server
    start = {"type": "start", "mime": WEBM}
    talk = await converse(server.ws_url, [start, *capture_messages("A")])
    assert talk.error_code == "session_limit"
    assert talk.close_code == 1008
    # The backend had the bytes up to the message that crossed 5 s of audio, and no more.
    assert 0 < len(backend.received) < sum(map(len, capture_messages("A"))) // 2
