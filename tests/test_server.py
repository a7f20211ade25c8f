"""The demo server over real sockets: uvicorn on 127.0.0.1:0 in a thread, the Azure SDK against
the emulator, a websockets client speaking the protocol (good and hostile)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from _feeding import CAPTURES, capture_messages
from browser.stack import Collector, wait_until
from browser.wsclient import converse
from streamdiarize import Segment, Word
from streamdiarize.cli import main
from streamdiarize.server import (
    BackgroundServer,
    Engine,
    ServerSettings,
    SessionRecorder,
    create_app,
)
from streamdiarize.server._security import origin_allowed, presented_token
from streamdiarize.server.protocol import (
    ErrorCode,
    ProtocolError,
    StartMessage,
    parse_message,
    parse_start,
    segment_to_dict,
)
from streamdiarize.testing import EnergyRecognizer, Phrase, TurnInfo

pytestmark = pytest.mark.timeout(120)

DIALOG = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]
WEBM = "audio/webm;codecs=opus"


Serve = Callable[..., BackgroundServer]


@pytest.fixture
def serve(engine: Engine) -> Iterator[Serve]:
    servers: list[BackgroundServer] = []

    def start(
        settings: ServerSettings | None = None, observer: Any = None, **options: Any
    ) -> BackgroundServer:
        app = create_app(engine, settings, observer=observer)
        server = BackgroundServer(app, settings=settings, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def server_tasks(server: BackgroundServer) -> list[str]:
    """Names of the tasks alive on the server's loop."""

    async def names() -> list[str]:
        return sorted(t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task())

    assert server.loop is not None
    return asyncio.run_coroutine_threadsafe(names(), server.loop).result(5)


def dedicated_threads() -> set[str]:
    """Threads other than the event loops' reusable executor workers (``asyncio_N``)."""
    return {t.name for t in threading.enumerate() if not t.name.startswith("asyncio_")}


def start(mime: str = WEBM, interim: bool = False) -> dict[str, Any]:
    return {"type": "start", "mime": mime, "interim": interim}


STOP = {"type": "stop"}

# -- streaming through the whole stack ------------------------------------------------------


@pytest.mark.parametrize(
    ("capture", "mime", "utterances"),
    [
        ("A", WEBM, 5),
        ("B", WEBM, 5),  # MediaRecorder stop()/start() inside the connection
        ("G", "audio/ogg;codecs=opus", 5),  # Firefox: 117 empty messages
        ("F", "audio/pcm;rate=44100;encoding=int16;channels=1", 2),  # 7.4 s of raw int16
    ],
)
async def test_capture_streams_to_the_dialog_transcript(
    serve: Serve, engine: Engine, capture: str, mime: str, utterances: int
) -> None:
    collector = Collector()
    server = serve(observer=collector)
    messages = capture_messages(capture)
    talk = await converse(server.ws_url, [start(mime, interim=True), *messages, STOP])

    assert talk.subprotocol == "streamdiarize.v1"
    assert talk.types[0] == "ready"
    assert talk.types[-1] == "end"
    assert talk.close_code == 1000
    finals = talk.finals
    assert [f["text"] for f in finals] == [u["text"] for u in DIALOG[:utterances]]
    # Emulated diarization follows the script's speakers: spk1 -> Guest-1, in order.
    guests: dict[str, str] = {}
    for final, utterance in zip(finals, DIALOG, strict=False):
        assert guests.setdefault(utterance["speaker"], final["speaker"]) == final["speaker"]
        assert final["language"] == "en-US"
        assert final["offset"] == pytest.approx(utterance["start_s"], abs=0.15)
        assert final["words"][0]["offset"] == final["offset"]
    assert len(set(guests.values())) == len(guests)
    interims = [m for m in talk.received if m["type"] == "segment" and not m["final"]]
    assert interims, "interim hypotheses were asked for"
    # The server saw exactly the bytes sent, and the session ended cleanly.
    (info,) = collector.started
    assert info.mime == mime
    assert collector.audio[info.id] == messages
    outcome = collector.ended[info.id]
    assert (outcome.close_code, outcome.error) == (1000, None)
    assert outcome.restarts == (1 if capture == "B" else 0)
    assert talk.received[-1]["audio_seconds"] == pytest.approx(outcome.audio_seconds, abs=1e-3)
    assert not engine.emulator.audio_problems


async def test_recorder_writes_the_capture_layout(serve: Serve, tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path)
    server = serve(observer=recorder)
    messages = capture_messages("G")[:40]
    talk = await converse(server.ws_url, [start("audio/ogg;codecs=opus"), *messages, STOP])
    assert talk.close_code == 1000
    wait_until(lambda: any((d / "meta.json").exists() for d in recorder.directories.values()))
    (directory,) = recorder.directories.values()
    recorded, meta = read_recording(directory)
    assert recorded == messages
    assert meta["mimeType"] == "audio/ogg;codecs=opus"
    assert meta["zero_length_messages"] == [i for i, m in enumerate(messages) if not m]
    assert meta["outcome"]["close_code"] == 1000


def read_recording(directory: Path) -> tuple[list[bytes], dict[str, Any]]:
    """The messages and meta.json of a SessionRecorder directory."""
    data = (directory / "stream.bin").read_bytes()
    ends = np.cumsum(json.loads((directory / "sizes.json").read_text())).tolist()
    messages = [data[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    return messages, json.loads((directory / "meta.json").read_text())


async def test_stop_right_after_start_ends_cleanly(serve: Serve) -> None:
    talk = await converse(serve().ws_url, [start(), STOP])
    assert talk.types == ["ready", "end"]
    assert talk.received[-1]["audio_seconds"] == 0
    assert talk.close_code == 1000


# -- protocol errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outgoing", "code", "close_code"),
    [
        ([*capture_messages("A")[:6], b"\x00" * 64], "bad_audio", 1007),  # no start message
        (["{not json"], "bad_message", 1007),
        (["[1, 2]"], "bad_message", 1007),
        ([{"mime": WEBM}], "bad_message", 1007),
        ([{"type": "stop"}], "unexpected_message", 1003),
        ([{"type": "start"}], "bad_message", 1007),
        ([{"type": "start", "mime": WEBM, "interim": "yes"}], "bad_message", 1007),
        ([start("audio/flac;codecs=flac-nope")], "unsupported_format", 1003),
        ([start("video/x-unknown")], "unsupported_format", 1003),
        ([start("audio/pcm;rate=12;encoding=float32")], "unsupported_format", 1003),
        ([start(), {"type": "pause"}], "unexpected_message", 1003),
        ([start(), "hello"], "bad_message", 1007),
        ([start(), start()], "unexpected_message", 1003),
        ([start(), b"not a webm header at all"], "unsupported_format", 1003),
        ([start(), *capture_messages("A")[:6], b"\x00" * 64], "bad_audio", 1007),
    ],
)
async def test_bad_clients_get_an_error_message_then_a_close_code(
    serve: Serve, outgoing: list[Any], code: str, close_code: int
) -> None:
    collector = Collector()
    server = serve(observer=collector)
    talk = await converse(server.ws_url, outgoing)
    assert talk.error is not None, talk.received
    assert talk.error["code"] == code
    assert talk.error["message"]
    assert talk.received[-1] is talk.error, "the error is the last message"
    assert talk.close_code == close_code
    assert talk.close_reason
    assert talk.error["message"].startswith(talk.close_reason.rstrip("."))
    # The server is still up, and the failed session released its slot.
    wait_until(lambda: server.config.app.state.context.slots.active == 0)  # type: ignore[attr-defined]
    again = await converse(server.ws_url, [start(), STOP])
    assert again.types == ["ready", "end"]


async def test_a_100_mb_frame_is_refused_with_1009_and_the_server_stays_up(serve: Serve) -> None:
    server = serve()
    async with connect(server.ws_url, max_size=None, compression=None, proxy=None) as ws:
        await ws.send(json.dumps(start()))
        assert json.loads(await ws.recv())["type"] == "ready"
        with contextlib.suppress(ConnectionClosed):  # the server may close while we write
            await ws.send(bytes(100_000_000))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1009, (ws.close_code, ws.close_reason)
    assert "100000000" in ws.close_reason  # the reason names the frame and the limit
    assert str(ServerSettings().max_message_bytes) in ws.close_reason
    wait_until(lambda: server.config.app.state.context.slots.active == 0)  # type: ignore[attr-defined]
    again = await converse(server.ws_url, [start(), STOP])
    assert again.types == ["ready", "end"]


async def test_the_app_checks_message_size_under_any_websocket_layer(serve: Serve) -> None:
    settings = ServerSettings(max_message_bytes=64 * 1024)
    server = serve(settings, ws_max_size=16 << 20)  # the WebSocket layer lets it through
    talk = await converse(server.ws_url, [start(), bytes(65 * 1024)])
    assert talk.error_code == "message_too_big"
    assert "65536" in talk.error["message"]
    assert talk.close_code == 1009


# -- zero-config clients: no subprotocol, no start message ----------------------------------

SPEAKERS = ["Guest-1", "Guest-2", "Guest-3", "Guest-1", "Guest-2"]


def assert_phrases(talk: Any, count: int) -> None:
    assert [f["text"] for f in talk.finals] == [u["text"] for u in DIALOG[:count]], talk.received
    assert [f["speaker"] for f in talk.finals] == SPEAKERS[:count]
    for final, utterance in zip(talk.finals, DIALOG, strict=False):
        assert final["offset"] == pytest.approx(utterance["start_s"], abs=0.03)


@pytest.mark.slow
async def test_a_page_that_only_sends_scriptprocessor_frames_on_the_root_path(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    """Capture D exactly as the page sent it, in real time: float32 at 44.1 kHz, undeclared.
    The segments come back as JSON and are printed on the server's console."""
    server = serve(ServerSettings(print_segments=True))
    messages = capture_messages("D")
    talk = await converse(
        server.ws_url.removesuffix("/ws") + "/",
        [*messages, STOP],
        subprotocols=(),
        origin=server.url,
        pace=1024 / 44_100,
    )
    assert talk.subprotocol is None
    assert talk.types[0] == "ready"
    assert_phrases(talk, 2)
    seconds = len(messages) * 1024 / 44_100  # every sample, none lost to the measurement
    assert talk.received[-1] == {"type": "end", "audio_seconds": pytest.approx(seconds, abs=0.002)}
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == [
        f"[{u['start_s']:7.2f} s] {speaker}: {u['text']}"
        for u, speaker in zip(DIALOG[:2], SPEAKERS, strict=False)
    ]


async def test_a_page_that_only_sends_mediarecorder_chunks_on_ws(serve: Serve) -> None:
    collector = Collector()
    server = serve(observer=collector)
    talk = await converse(server.ws_url, [*capture_messages("A"), STOP], subprotocols=())
    assert_phrases(talk, 5)
    assert collector.started[-1].mime is None


async def test_query_hints_declare_raw_frames_so_no_pacing_is_needed(serve: Serve) -> None:
    server = serve()
    url = f"{server.ws_url}?rate=44100&format=s16"
    talk = await converse(url, [*capture_messages("F"), STOP], subprotocols=())
    assert_phrases(talk, 2)
    bad = await converse(f"{server.ws_url}?rate=fast", [b"\0" * 64], subprotocols=())
    assert bad.error_code == "unsupported_format"
    assert "?rate=48000&format=f32" in bad.error["message"]  # type: ignore[index]


async def test_a_file_pushed_at_full_speed_without_a_rate_is_told_what_to_declare(
    serve: Serve,
) -> None:
    server = serve()
    talk = await converse(server.ws_url, [*capture_messages("D"), STOP], subprotocols=())
    assert talk.error_code == "unsupported_format"
    assert "faster than real time" in talk.error["message"]  # type: ignore[index]
    assert talk.close_code == 1003


# -- access control --------------------------------------------------------------------------


async def test_cross_origin_pages_are_refused_at_the_handshake(serve: Serve) -> None:
    server = serve()
    with pytest.raises(InvalidStatus) as refused:
        await converse(server.ws_url, [start()], origin="https://evil.example")
    assert refused.value.response.status_code == 403
    assert b"--allow-origin https://evil.example" in refused.value.response.body
    same = await converse(server.ws_url, [start(), STOP], origin=server.url)
    assert same.types == ["ready", "end"]
    localhost = server.url.replace("127.0.0.1", "localhost")
    with pytest.raises(InvalidStatus):  # same host name, but another origin
        await converse(server.ws_url, [start()], origin=localhost)


async def test_allowed_origins_extend_same_origin(serve: Serve) -> None:
    server = serve(ServerSettings(allowed_origins=("https://app.example",)))
    talk = await converse(server.ws_url, [start(), STOP], origin="https://app.example")
    assert talk.types == ["ready", "end"]
    with pytest.raises(InvalidStatus):
        await converse(server.ws_url, [start()], origin="https://app.example:8443")


def test_foreign_host_names_are_refused_dns_rebinding(serve: Serve) -> None:
    server = serve()
    request = urllib.request.Request(server.url + "/", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400
    # A page of attacker.example rebound to 127.0.0.1 is same-origin by its own Host header.
    handshake = (
        "GET /ws HTTP/1.1\r\nHost: attacker.example\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nOrigin: http://attacker.example\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(handshake.encode())
        assert raw.recv(1024).startswith(b"HTTP/1.1 400 ")
    with urllib.request.urlopen(server.url + "/", timeout=5) as page:
        assert page.status == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]


TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize(
    ("subprotocols", "headers", "ok"),
    [
        (["streamdiarize.v1", f"streamdiarize.token.{TOKEN}"], {}, True),
        (["streamdiarize.v1"], {"Authorization": f"Bearer {TOKEN}"}, True),
        (["streamdiarize.v1"], {}, False),
        (["streamdiarize.v1", "streamdiarize.token.wrong-token-0123456789"], {}, False),
        (["streamdiarize.v1"], {"Authorization": f"Basic {TOKEN}"}, False),
    ],
)
async def test_token(
    serve: Serve, subprotocols: list[str], headers: dict[str, str], ok: bool
) -> None:
    server = serve(ServerSettings(token=TOKEN))
    talk = await converse(
        server.ws_url, [start(), STOP], subprotocols=subprotocols, headers=headers
    )
    assert talk.subprotocol == "streamdiarize.v1", "the token is never echoed back"
    if ok:
        assert talk.types == ["ready", "end"]
    else:
        assert talk.error_code == "unauthorized"
        assert talk.close_code == 1008
        assert talk.types == ["error"]


def test_token_is_not_in_the_settings_repr() -> None:
    assert TOKEN not in repr(ServerSettings(token=TOKEN))


# -- limits and timeouts ---------------------------------------------------------------------


async def test_sessions_over_the_limit_are_told_busy(serve: Serve) -> None:
    server = serve(ServerSettings(max_sessions=1))
    async with connect(server.ws_url, proxy=None) as first:
        await first.send(json.dumps(start()))
        assert json.loads(await first.recv())["type"] == "ready"
        talk = await converse(server.ws_url, [start()])
        assert talk.error_code == "busy"
        assert talk.close_code == 1013
        await first.send(json.dumps(STOP))
        assert json.loads(await first.recv())["type"] == "end"
    again = await converse(server.ws_url, [start(), STOP])
    assert again.types == ["ready", "end"]


async def test_a_silent_client_times_out(serve: Serve) -> None:
    server = serve(ServerSettings(start_timeout=0.3, idle_timeout=0.5))
    began = time.monotonic()
    talk = await converse(server.ws_url, [])
    assert talk.error_code == "timeout"
    assert "first message" in talk.error["message"]
    assert talk.close_code == 1008
    assert time.monotonic() - began < 3
    idle = await converse(server.ws_url, [start()])
    assert idle.types == ["ready", "error"]
    assert idle.error_code == "timeout"


async def test_audio_past_the_session_limit_ends_the_session(serve: Serve) -> None:
    server = serve(ServerSettings(max_session_seconds=5.0))
    talk = await converse(server.ws_url, [start(), *capture_messages("A")])
    assert talk.error_code == "session_limit"
    assert talk.close_code == 1008
    # What was said before the limit still arrived, before the error: utterance 0 whole,
    # utterance 1 (4.1-7.1 s) cut at the 5 s limit.
    first, cut = (f["text"] for f in talk.finals)
    assert first == DIALOG[0]["text"]
    assert DIALOG[1]["text"].startswith(cut)
    assert cut != DIALOG[1]["text"]


@pytest.mark.slow
async def test_wall_clock_session_limit(serve: Serve) -> None:
    server = serve(ServerSettings(max_session_seconds=1.0, idle_timeout=5.0))
    began = time.monotonic()
    talk = await converse(server.ws_url, [start(), *([b""] * 30)], pace=0.1)
    assert talk.error_code == "session_limit"
    assert 0.9 < time.monotonic() - began < 4


# -- disconnects and shutdown: nothing left running -------------------------------------------


@pytest.mark.parametrize("abrupt", [True, False])
async def test_client_leaving_mid_stream_leaves_nothing_running(
    serve: Serve, engine: Engine, abrupt: bool
) -> None:
    collector = Collector()
    server = serve(observer=collector)
    wait_until(lambda: server.loop is not None)
    baseline = server_tasks(server)
    threads = dedicated_threads()
    connections = len(engine.emulator.connections)
    async with connect(server.ws_url, proxy=None, compression=None) as ws:
        await ws.send(json.dumps(start(interim=True)))
        assert json.loads(await ws.recv())["type"] == "ready"
        for message in capture_messages("A")[:60]:  # about 7 s: inside utterance 1
            await ws.send(message)
        while json.loads(await ws.recv())["type"] != "segment":
            pass
        if abrupt:
            ws.transport.abort()  # no close frame: like a tab that crashed
        else:
            await ws.close()
    wait_until(lambda: len(collector.ended) == 1)
    (outcome,) = collector.ended.values()
    assert outcome.close_code == 1006
    assert 0 < outcome.messages <= 60
    wait_until(lambda: server_tasks(server) == baseline)
    assert server.config.app.state.context.slots.active == 0  # type: ignore[attr-defined]
    new = engine.emulator.connections[connections:]
    assert new, "the session had opened a service connection"
    wait_until(lambda: all(c.closed_by is not None for c in new))
    wait_until(lambda: dedicated_threads() == threads)


async def test_server_shutdown_closes_open_sessions(serve: Serve) -> None:
    server = serve()
    async with connect(server.ws_url, proxy=None) as ws:
        await ws.send(json.dumps(start()))
        assert json.loads(await ws.recv())["type"] == "ready"
        began = time.monotonic()
        await asyncio.to_thread(server.stop)
        assert time.monotonic() - began < 8
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1012


# -- the command line ------------------------------------------------------------------------


def test_cli_without_a_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_cli_azure_without_credentials_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SPEECH_KEY", "SPEECH_REGION", "SPEECH_ENDPOINT", "SPEECH_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve", "--engine", "azure"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("streamdiarize: error:")
    assert "SPEECH_KEY" in err


@pytest.mark.usefixtures("without_faster_whisper")
def test_cli_local_engine_missing_says_what_to_install(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--engine", "local"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'streamdiarize[local]'" in err
    assert "--engine fake" in err


@pytest.mark.slow
def test_cli_serve_runs_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "STREAMDIARIZE_TOKEN": TOKEN}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamdiarize.cli",
            "serve",
            "--engine",
            "fake",
            "--port",
            str(port),
            "--token",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        banner = [process.stderr.readline() for _ in range(3)]
        assert f"  open http://127.0.0.1:{port}/#token={TOKEN}\n" in banner, banner
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/api/info") is not None, timeout=20)
        info = json.loads(_get(f"http://127.0.0.1:{port}/api/info") or "{}")
        assert (info["engine"], info["emulated"], info["token_required"]) == ("fake", True, True)
        assert TOKEN not in json.dumps(info)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 130  # graceful shutdown, then the usual Ctrl+C status
    finally:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


# -- pure parts ------------------------------------------------------------------------------


_JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40))
_START_LIKE = st.dictionaries(
    st.sampled_from(["type", "mime", "interim", "x"]),
    st.one_of(
        _JSON_VALUES,
        st.sampled_from(["start", "stop", WEBM, "audio/pcm;rate=0", "audio/pcm;rate=8000"]),
    ),
).map(json.dumps)


@given(st.one_of(st.text(max_size=300), _START_LIKE))
def test_parse_start_accepts_or_raises_protocol_error(text: str) -> None:
    try:
        message = parse_start(text)
    except ProtocolError as exc:
        error = exc
    else:
        assert isinstance(message, StartMessage)
        assert json.loads(text)["type"] == "start"
        return
    assert error.close_code in (1003, 1007)
    assert len(error.close_reason.encode()) <= 123


@given(st.binary(max_size=300))
def test_binary_before_start_is_unexpected(data: bytes) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_start(data)
    assert refused.value.code is ErrorCode.UNEXPECTED_MESSAGE


@given(
    st.fixed_dictionaries(
        {"type": st.just("start"), "mime": st.sampled_from([WEBM, "audio/ogg", "audio/mp4"])},
        optional={"interim": st.booleans(), "extra": st.text(max_size=20)},
    )
)
def test_parse_start_ignores_unknown_fields(value: dict[str, Any]) -> None:
    message = parse_start(json.dumps(value))
    assert message == StartMessage(value["mime"], value.get("interim", False))


def test_parse_message_only_knows_stop() -> None:
    parse_message('{"type": "stop"}')
    with pytest.raises(ProtocolError) as refused:
        parse_message('{"type": "start", "mime": "audio/webm"}')
    assert refused.value.code is ErrorCode.UNEXPECTED_MESSAGE


def test_segment_json_rounds_times_and_keeps_words() -> None:
    segment = Segment(
        "Guest-1", None, "Hi.", 1.23456, 0.5, True, (Word("hi", 1.23456, 0.49999, 0.8),)
    )
    assert segment_to_dict(segment) == {
        "type": "segment",
        "speaker": "Guest-1",
        "language": None,
        "text": "Hi.",
        "offset": 1.235,
        "duration": 0.5,
        "final": True,
        "revision": 0,
        "words": [{"text": "hi", "offset": 1.235, "duration": 0.5, "confidence": 0.8}],
    }
    corrected = dataclasses.replace(segment, speaker="Guest-2", revision=1)
    assert segment_to_dict(corrected) | {"speaker": "Guest-1", "revision": 0} == (
        segment_to_dict(segment)
    )
    assert segment_to_dict(corrected)["revision"] == 1


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "127.0.0.1:8000", (), True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", (), True),
        ("HTTP://127.0.0.1:8000", "127.0.0.1:8000", (), True),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", (), False),
        ("https://demo.example", "demo.example", (), True),
        ("https://demo.example", "demo.example:443", (), True),
        ("http://demo.example", "demo.example:443", (), False),
        ("null", "127.0.0.1:8000", (), False),
        ("file://", "127.0.0.1:8000", (), False),
        ("https://other.example", "demo.example", ("https://other.example",), True),
        ("https://other.example", "demo.example", ("*",), True),
        ("http://[::1]:8000", "[::1]:8000", (), True),
    ],
)
def test_origin_rules(origin: str | None, host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_presented_token_prefers_the_subprotocol() -> None:
    assert presented_token(["streamdiarize.v1", "streamdiarize.token.abc"], "Bearer x") == "abc"
    assert presented_token(["streamdiarize.v1"], "bearer  xyz ") == "xyz"
    assert presented_token([], None) is None


@pytest.mark.parametrize(
    "settings",
    [
        {"max_message_bytes": 10},
        {"max_sessions": 0},
        {"idle_timeout": float("nan")},
        {"allowed_origins": ("example.com",)},
        {"token": "short"},
        {"token": "has spaces in it 0123456789"},
    ],
)
def test_settings_refuse_bad_values(settings: dict[str, Any]) -> None:
    from streamdiarize import ConfigurationError

    with pytest.raises(ConfigurationError):
        ServerSettings(**settings)


def test_energy_recognizer_finds_the_dialog_turns_and_voices() -> None:
    import wave

    with wave.open(str(CAPTURES / "dialog.wav")) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    turn = EnergyRecognizer().start_turn(TurnInfo(0, 0, "r", 0.0))
    results = [r for i in range(0, len(pcm), 1600) for r in turn.feed(pcm[i : i + 1600])]
    results += turn.finish()
    phrases = [r for r in results if isinstance(r, Phrase)]
    assert len(phrases) == len(DIALOG)
    for phrase, utterance in zip(phrases, DIALOG, strict=True):
        assert phrase.offset == pytest.approx(utterance["start_s"], abs=0.07)
        assert phrase.offset + phrase.duration == pytest.approx(utterance["end_s"], abs=0.12)
        assert phrase.text.startswith("[speech ")
    # Three espeak voices: f4 (~180 Hz), m1 (~92 Hz) and m7 (~104 Hz).
    assert [p.speaker for p in phrases] == ["Guest-1", "Guest-2", "Guest-3", "Guest-1", "Guest-2"]
    assert any(not isinstance(r, Phrase) for r in results), "interim hypotheses too"


async def test_a_rejected_key_is_a_backend_error_without_the_key() -> None:
    from streamdiarize.testing import FakeSpeechService
    from streamdiarize.transcribers.azure import AzureTranscriber

    secret = "wrong-key-5d41402abc4b2a76"
    with FakeSpeechService(key="the-right-key") as service:
        engine = Engine("azure", "test", AzureTranscriber(["en-US"], host=service.host, key=secret))
        with BackgroundServer(create_app(engine)) as server:
            talk = await converse(server.ws_url, [start(), *capture_messages("A")[:20], STOP])
    assert talk.error_code == "backend"
    assert talk.close_code == 1011
    assert secret not in json.dumps(talk.received)
    assert secret not in talk.close_reason
