"""Every file in examples/ runs as a user would run it, against the emulated Azure service.

Each example server is started as ``python examples/<name>.py --port N`` with ``SPEECH_*``
variables pointing the real Azure SDK at a :class:`FakeSpeechService` in this process; the
example client streams ``dialog.wav`` to it and must print the dialog's five phrases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from _feeding import CAPTURES, capture_dir, capture_messages
from browser.wsclient import converse
from streamdiarize.server import BackgroundServer, ServerSettings, create_app, open_engine
from streamdiarize.testing import FakeSpeechService, ScriptedRecognizer

# slow: runs the example servers as child processes
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DIALOG = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]
DIALOG_WAV = CAPTURES / "dialog.wav"
STOP = {"type": "stop"}
TOKEN = "example-token-0123456789"


@pytest.fixture(scope="module")
def emulator() -> Iterator[FakeSpeechService]:
    with FakeSpeechService(ScriptedRecognizer.from_utterances(DIALOG)) as service:
        yield service


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running(example: str, port: int, service: FakeSpeechService) -> Iterator[None]:
    """``python examples/<example> --port <port>`` until the block ends (then SIGTERM)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEECH_")}
    env |= {"SPEECH_KEY": "emulator-key", "SPEECH_REGION": "emulator", "SPEECH_HOST": service.host}
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / example), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = process.communicate(timeout=5)
                pytest.fail(f"{example} did not start: {err[-2000:]}")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def stream_file(path: Path, url: str, *options: str) -> tuple[int, list[dict[str, Any]]]:
    """Run the example client with ``--json``; its exit status and the messages it printed."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "stream_file_client.py"), str(path), "--url", url,
         "--json", *options],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )  # fmt: skip
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, messages


def assert_dialog(messages: list[dict[str, Any]]) -> None:
    finals = [m for m in messages if m["type"] == "segment" and m["final"]]
    assert [f["text"] for f in finals] == [u["text"] for u in DIALOG]
    assert [f["speaker"] for f in finals] == ["Guest-1", "Guest-2", "Guest-3", "Guest-1", "Guest-2"]
    for final, utterance in zip(finals, DIALOG, strict=True):
        assert final["offset"] == pytest.approx(utterance["start_s"], abs=0.02)
    assert messages[-1]["type"] == "end"
    assert messages[-1]["audio_seconds"] == pytest.approx(DIALOG_SECONDS, abs=0.05)


DIALOG_SECONDS = 16.5827


@pytest.mark.parametrize(
    ("example", "path"),
    [("websockets_server.py", ""), ("fastapi_app.py", "/ws"), ("aiohttp_app.py", "/ws")],
)
def test_example_server_transcribes_a_streamed_file(
    emulator: FakeSpeechService, example: str, path: str
) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}{path}"
    with running(example, port, emulator):
        status, messages = stream_file(DIALOG_WAV, url, "--speed", "0")
        assert status == 0, messages
        assert_dialog(messages)
        assert not emulator.audio_problems, "the SDK received real speech, not container bytes"

        # The same process keeps serving: a zero-config page (no subprotocol, no start
        # message, the root path), a protocol error, then a page of another site.
        root = f"ws://127.0.0.1:{port}/"
        plain = asyncio.run(converse(root, [*capture_messages("G"), STOP], subprotocols=()))
        assert [f["text"] for f in plain.finals] == [u["text"] for u in DIALOG]
        talk = asyncio.run(converse(url, [STOP]))
        assert talk.error_code == "unexpected_message"
        assert talk.close_code == 1003
        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(converse(url, [], origin="https://evil.example"))
        assert refused.value.response.status_code == 403
        if example != "fastapi_app.py":  # Starlette's close before accept has no body
            assert b"--allow-origin https://evil.example" in refused.value.response.body


def test_client_paces_a_webm_recording_to_the_demo_server(tmp_path: Path) -> None:
    recording = tmp_path / "recording.webm"
    shutil.copy(capture_dir("A") / "stream.bin", recording)  # Chromium MediaRecorder bytes
    with (
        open_engine("fake", script=DIALOG) as engine,
        BackgroundServer(create_app(engine, ServerSettings(token=TOKEN))) as server,
    ):
        began = time.monotonic()
        status, messages = stream_file(recording, server.ws_url, "--speed", "4", "--token", TOKEN)
        elapsed = time.monotonic() - began
        refused, _ = stream_file(recording, server.ws_url, "--speed", "0")
    assert status == 0
    texts = [m["text"] for m in messages if m["type"] == "segment"]  # finals only: no interim
    assert texts == [u["text"] for u in DIALOG]
    assert messages[-1] == {"type": "end", "audio_seconds": pytest.approx(16.8, abs=0.1)}
    assert 16.8 / 4 * 0.9 < elapsed < 16.8 / 4 + 8, "paced at 4x real time"
    assert refused == 1, "no token: the server says unauthorized"
