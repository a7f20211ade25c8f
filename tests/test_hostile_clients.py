"""Hostile and broken clients against the demo server, each followed by a health check.

uvicorn runs on 127.0.0.1:0 in a thread with the real Azure SDK against the emulator. Every
test ends with :meth:`Watch.recovered`: the server's asyncio tasks, our threads and the SDK's
native threads are back to what they were, no session slot is held, and a normal client
still gets its transcript. (Bad JSON, binary before ``start``, text after it and the 100 MB
frame are in test_server.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from _feeding import capture_messages
from browser.stack import Counter, wait_until
from browser.wsclient import converse
from streamdiarize.server import (
    BackgroundServer,
    Engine,
    ServerSettings,
    create_app,
)
from streamdiarize.testing import (
    EnergyRecognizer,
    FakeSpeechService,
    ScriptedPhrase,
    ScriptedRecognizer,
)
from streamdiarize.transcribers.azure import AzureTranscriber
from test_server import DIALOG, STOP, WEBM, dedicated_threads, server_tasks, start

# slow: real servers under abuse, several through the Azure Speech SDK
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

A = capture_messages("A")  # Chromium WebM/Opus, 141 messages, 16.9 s
FIRST_UTTERANCE = A[:34]  # 4.0 s: the first phrase (0.5-3.5 s) and no part of the second
F32_STEREO_48K = "audio/pcm;rate=48000;encoding=float32;channels=2"


@dataclass
class Watch:
    """A server and what it ran before the hostile client came."""

    server: BackgroundServer
    counter: Counter
    expected: tuple[str, ...]  # the first finals a normal client gets (empty: any)
    tasks: list[str] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    native_threads: int = 0

    def snapshot(self) -> None:
        wait_until(lambda: self.server.loop is not None)
        self.tasks = server_tasks(self.server)
        self.threads = dedicated_threads()
        self.native_threads = native_threads()

    def recovered(self) -> None:
        """Nothing of the hostile session is left, and a normal client is served."""
        context = self.server.config.app.state.context  # type: ignore[attr-defined]
        ended = len(self.counter.started)
        wait_until(lambda: len(self.counter.ended) == ended, 20, "every session ended")
        wait_until(lambda: context.slots.active == 0, what="slots released")
        wait_until(lambda: server_tasks(self.server) == self.tasks, 20, "server tasks")
        wait_until(lambda: dedicated_threads() == self.threads, 20, "Python threads")
        wait_until(lambda: native_threads() <= self.native_threads + 2, 20, "SDK threads")
        talk = asyncio.run(converse(self.server.ws_url, [start(), *FIRST_UTTERANCE, STOP]))
        assert talk.types[0] == "ready"
        assert talk.types[-1] == "end"
        texts = [f["text"] for f in talk.finals]
        assert texts, "a normal client gets its transcript"
        assert tuple(texts[: len(self.expected)]) == self.expected


def native_threads() -> int:
    """OS threads that are not Python threads: the Speech SDK's (executor workers excluded,
    they are Python threads that the pool keeps, bounded by its ``max_workers``)."""
    return psutil.Process().num_threads() - threading.active_count()


@contextlib.contextmanager
def watched(
    engine: Engine,
    settings: ServerSettings | None = None,
    expected: tuple[str, ...] = (DIALOG[0]["text"],),
) -> Iterator[Watch]:
    """A server on ``engine``; ``expected``: what a normal client's first finals say."""
    counter = Counter()
    app = create_app(engine, settings, observer=counter)
    with BackgroundServer(app, settings=settings) as server:
        watch = Watch(server, counter, expected)
        watch.snapshot()
        yield watch


async def open_session(url: str, mime: str = WEBM, **options: Any) -> ClientConnection:
    ws = await connect(
        url,
        subprotocols=["streamdiarize.v1"],  # type: ignore[list-item]
        max_size=None,
        compression=None,
        proxy=None,
        **options,
    )
    await ws.send(json.dumps({"type": "start", "mime": mime, "interim": False}))
    assert json.loads(await ws.recv())["type"] == "ready"
    return ws


def masked_frame_header(opcode: int, length: int, mask: bytes = b"\0\0\0\0") -> bytes:
    """A client frame header (RFC 6455 §5.2) announcing ``length`` payload bytes."""
    if length < 126:
        return bytes([0x80 | opcode, 0x80 | length]) + mask
    if length < 1 << 16:
        return bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", length) + mask
    return bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", length) + mask


# -- disconnects mid-element -----------------------------------------------------------------


@pytest.mark.parametrize("cut", ["inside a WebM block", "inside a WebSocket frame"])
def test_client_vanishing_mid_element(engine: Engine, cut: str) -> None:
    with watched(engine) as watch:

        async def client() -> None:
            ws = await open_session(watch.server.ws_url)
            for message in A[:20]:
                await ws.send(message)
            if cut == "inside a WebM block":
                # Half a message: the stream stops inside a SimpleBlock's payload.
                await ws.send(A[20][: len(A[20]) // 2])
            else:
                # A frame announcing 64 KB, of which 1,000 bytes arrive (mask 0: plain bytes).
                ws.transport.write(masked_frame_header(0x2, 65536) + A[20][:1000])
            await asyncio.sleep(0.3)
            ws.transport.abort()

        asyncio.run(client())
        wait_until(lambda: len(watch.counter.ended) == 1)
        (outcome,) = watch.counter.ended
        assert outcome.close_code == 1006
        assert outcome.messages == (21 if cut == "inside a WebM block" else 20)
        watch.recovered()


# -- clients that never send ------------------------------------------------------------------


def test_connections_that_never_send_do_not_block_others(engine: Engine) -> None:
    """Silent TCP connections, a request whose headers never end (slowloris) and WebSockets
    that never send ``start``: the last time out; uvicorn keeps the first two open (see
    docs/security.md: a reverse proxy's header timeout closes them), but normal clients are
    served meanwhile and nothing leaks once they go."""
    settings = ServerSettings(start_timeout=1.0)
    with watched(engine, settings) as watch:
        port = watch.server.port
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        partial = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        for sock in partial:
            sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websock")

        async def mute_websockets() -> list[dict[str, Any]]:
            async def one() -> dict[str, Any]:
                async with connect(watch.server.ws_url, proxy=None) as ws:
                    return dict(json.loads(await ws.recv()))  # the server's timeout error

            return await asyncio.gather(*(one() for _ in range(3)))

        began = time.monotonic()
        errors = asyncio.run(mute_websockets())
        assert [e["code"] for e in errors] == ["timeout"] * 3
        assert time.monotonic() - began < 5
        talk = asyncio.run(converse(watch.server.ws_url, [start(), *FIRST_UTTERANCE, STOP]))
        assert [f["text"] for f in talk.finals] == [DIALOG[0]["text"]]
        for sock in silent + partial:
            sock.close()
        watch.recovered()


# -- a client faster than real time ---------------------------------------------------------


@pytest.fixture(scope="module")
def paced_engine() -> Iterator[Engine]:
    """The SDK with its default pacing (5 s at once, then 2× real time), as against Azure."""
    with FakeSpeechService(EnergyRecognizer()) as service:
        transcriber = AzureTranscriber(["en-US"], host=service.host, key="emulator")
        yield Engine("fake", "paced", transcriber, emulated=True, emulator=service)


def test_client_faster_than_real_time_is_held_back_at_the_socket(paced_engine: Engine) -> None:
    """Three minutes of 48 kHz stereo float32 (69 MB) pushed as fast as the socket takes it:
    the server reads no faster than the backend consumes, so the client is held back by TCP
    instead of the server buffering; memory stays flat."""
    noise = np.random.default_rng(0).standard_normal((48000 * 10, 2)).astype("<f4") * 0.1
    messages = [noise[i : i + 4800].tobytes() for i in range(0, len(noise), 4800)]
    total = 1800  # 100 ms messages: 180 s, 69 MB
    window = 6.0
    process = psutil.Process()
    with watched(paced_engine, expected=()) as watch:
        counter = watch.counter

        async def client() -> tuple[int, float, float]:
            ws = await open_session(watch.server.ws_url, F32_STEREO_48K)
            sent = 0

            async def push() -> None:
                nonlocal sent
                for k in range(total):
                    await ws.send(messages[k % len(messages)])
                    sent += 1

            rss = process.memory_info().rss
            peak = rss
            pusher = asyncio.create_task(push())
            began = time.monotonic()
            while time.monotonic() - began < window:
                await asyncio.sleep(0.2)
                peak = max(peak, process.memory_info().rss)
            accepted = counter.bytes / (48000 * 2 * 4)
            assert not pusher.done(), "the server took all 180 s of audio without pushing back"
            pusher.cancel()
            ws.transport.abort()
            return sent, accepted, (peak - rss) / 2**20

        sent, accepted, growth = asyncio.run(client())
        # Azure pacing: 5 s burst + 2 s per second + 10 s queued for the SDK + slack.
        assert accepted < 5 + 2 * window + 10 + 8, f"the server accepted {accepted:.0f} s"
        ahead = (sent * 0.1 - accepted) * 48000 * 8
        assert ahead < 48 << 20, "more than socket buffers between the client and the server"
        assert sent < total / 2
        assert growth < 64, f"RSS grew by {growth:.0f} MiB"
        watch.recovered()


# -- a client that never reads its results ---------------------------------------------------


PERIOD = 0.2


@pytest.fixture(scope="module")
def wordy_engine() -> Iterator[Engine]:
    """A 4 KB phrase every 0.2 s of audio (about 40 KB/s of results), whatever the audio."""
    script = [
        ScriptedPhrase(f"Phrase {i}. " + "a" * 4000, PERIOD * i + 0.02, PERIOD * i + 0.1)
        for i in range(3000)  # 600 s: beyond the longest stream sent
    ]
    recognizer = ScriptedRecognizer(script, interim=False, check_audio=False)
    with FakeSpeechService(recognizer) as service:
        transcriber = AzureTranscriber(
            ["en-US"], host=service.host, key="emulator", pace_audio=False
        )
        yield Engine("fake", "wordy", transcriber, emulated=True, emulator=service)


def test_client_that_never_reads_results_stops_the_server_reading_audio(
    wordy_engine: Engine,
) -> None:
    """Results pile up to the socket's buffers and ``max_pending_segments``; then the server
    stops reading audio (it does not buffer without bound). Once the client reads, every
    phrase arrives once, in order."""
    loops = 30  # capture A sent 30 times (each first message restarts the stream): 507 s
    with watched(wordy_engine, expected=()) as watch:
        counter = watch.counter

        async def client() -> tuple[int, list[dict[str, Any]]]:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", watch.server.port))
            ws = await open_session(watch.server.ws_url, sock=sock, max_queue=1)
            pusher = asyncio.create_task(push_all(ws, A * loops))
            # Wait until the server's intake stops moving for 2 s while audio is pending.
            last, still_since, began = -1, time.monotonic(), time.monotonic()
            while time.monotonic() - still_since < 2.0:
                assert time.monotonic() - began < 40, "the server never stopped reading"
                await asyncio.sleep(0.25)
                if counter.messages != last:
                    last, still_since = counter.messages, time.monotonic()
            plateau = counter.messages

            async def stop_when_sent() -> None:
                await pusher
                await ws.send(json.dumps(STOP))

            stopper = asyncio.create_task(stop_when_sent())
            received: list[dict[str, Any]] = []
            with contextlib.suppress(ConnectionClosed):
                async for text in ws:
                    received.append(json.loads(text))
            await stopper
            return plateau, received

        plateau, received = asyncio.run(client())
        # About 4 MB in socket buffers and 256 segments queued: well before the end.
        assert plateau < 0.8 * len(A) * loops
        # Every phrase once, in order: one every PERIOD seconds of stream time, no gap, no
        # repeat (also across a reconnect, after which the emulator restarts its numbering).
        offsets = np.array([m["offset"] for m in received if m["type"] == "segment"])
        assert offsets[0] == pytest.approx(0.02, abs=0.01)
        bad = np.flatnonzero(~np.isclose(np.diff(offsets), PERIOD, atol=0.01))
        assert not bad.size, [(offsets[i], offsets[i + 1]) for i in bad[:10]]
        last = received[-1]
        if last["type"] == "error":  # the SDK's own buffer overflow, when the emulator lagged
            assert last["code"] == "backend", last
        else:
            assert last["type"] == "end"
            assert len(offsets) == pytest.approx(last["audio_seconds"] / PERIOD, abs=3)
        watch.recovered()


async def push_all(ws: ClientConnection, messages: list[bytes]) -> None:
    for message in messages:
        await ws.send(message)


# -- odd frames -------------------------------------------------------------------------------


def test_zero_byte_frames_are_harmless_and_an_empty_text_frame_is_refused(engine: Engine) -> None:
    with watched(engine) as watch:
        interleaved = [m for message in FIRST_UTTERANCE for m in (b"", message, b"")]
        talk = asyncio.run(converse(watch.server.ws_url, [start(), *interleaved, STOP]))
        assert [f["text"] for f in talk.finals] == [DIALOG[0]["text"]]
        assert talk.types[-1] == "end"
        empty_text = asyncio.run(converse(watch.server.ws_url, [start(), *A[:5], ""]))
        assert empty_text.error_code == "bad_message"
        assert empty_text.close_code == 1007
        watch.recovered()


# -- limits on what one message may hold --------------------------------------------------------


def test_decompression_bomb_ends_the_session_with_bad_audio_quickly(engine: Engine) -> None:
    """Regression: 320 KB of 2-byte Opus packets (80 minutes once decoded) took seconds of
    CPU and 1.3 GB before the session limit looked at it."""
    block = b"\xa3\x86\x81\x00\x00\x80\xfb\x06"  # SimpleBlock: one 120 ms packet of 2 bytes
    cluster = b"\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff\xe7\x81\x00"
    bomb = A[0][:146] + cluster + block * 40_000
    with watched(engine) as watch:
        rss = psutil.Process().memory_info().rss
        began = time.monotonic()
        talk = asyncio.run(converse(watch.server.ws_url, [start(), bomb]))
        assert time.monotonic() - began < 5
        assert talk.error_code == "bad_audio"
        limit = ServerSettings().max_message_seconds
        assert f"more than {limit:g} s of audio" in talk.error["message"]
        assert psutil.Process().memory_info().rss - rss < 200 << 20
        watch.recovered()


def test_buffered_bytes_cap_is_a_server_setting(engine: Engine) -> None:
    """``max_buffered_bytes`` reaches the demuxer: a block declaring 100,000 bytes is refused
    on its header by a server capped at 65,536."""
    cluster = b"\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff\xe7\x81\x00"
    big_block = b"\xa3\x21\x86\xa0\x81\x00\x00\x80" + bytes(2000)
    with watched(engine, ServerSettings(max_buffered_bytes=65536)) as watch:
        talk = asyncio.run(
            converse(watch.server.ws_url, [start(), A[0][:146] + cluster, big_block])
        )
        assert talk.error_code == "bad_audio"
        assert "100000 bytes" in talk.error["message"]
        assert "65536" in talk.error["message"]
        watch.recovered()
