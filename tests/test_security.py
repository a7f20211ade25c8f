"""Secrets stay secret, risky features stay off, limits stay on: by default, as documented.

Secrets are the Azure key, an Azure bearer token and the server's own token. They must not
reach any log record (every logger at DEBUG, the WebSocket layer's header dumps included),
the Speech SDK's own log file (``log_file=``), a ``repr``, an exception's message, args or
traceback, the page and its files, or any message the server sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import traceback
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import streamdiarize as sd
from _feeding import capture_messages
from browser.wsclient import converse
from streamdiarize.cli import build_parser
from streamdiarize.server import BackgroundServer, Engine, ServerSettings, create_app
from streamdiarize.server._app import STATIC_DIR
from streamdiarize.server._run import uvicorn_config
from streamdiarize.testing import FakeSpeechService, ScriptedRecognizer
from streamdiarize.transcribers.azure import AzureTranscriber
from test_server import DIALOG, STOP, start

# slow: real servers and the Azure Speech SDK
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

AZURE_KEY = "7f3a9c2e" * 4  # the shape of a Speech resource key: 32 hex digits
WRONG_KEY = "0b1d5e9a" * 4
AZURE_TOKEN = "eyJhbGciOi.JSUzI1NiIsInR5cCI6.IkpXVCJ9-bearer-0451"
SERVER_TOKEN = "srv-token-5f4dcc3b5aa765d61d83"
SECRETS = (AZURE_KEY, WRONG_KEY, AZURE_TOKEN, SERVER_TOKEN)
PCM16 = "audio/pcm;rate=16000;encoding=int16"
A = capture_messages("A")


def leaked(text: str) -> list[str]:
    """The secrets, or long enough pieces of them, that ``text`` shows."""
    return [s for s in SECRETS if s in text or s[4:20] in text]


class Records(logging.Handler):
    """Every log record of every logger, formatted as a handler would write it."""

    def __init__(self) -> None:
        super().__init__(level=1)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {self.format(record)}")


@pytest.fixture
def all_logs() -> Iterator[Records]:
    """Capture every logger at DEBUG (``serve --log-level debug``; uvicorn's own TRACE level,
    which the CLI does not offer, dumps whole ASGI scopes: see docs/security.md)."""
    records = Records()
    records.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "websockets"]
    names += ["streamdiarize", "azure", "asyncio"]
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(records)
    try:
        yield records
    finally:
        root.removeHandler(records)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def server_side(records: Records) -> str:
    """Log lines of the server and the library (the test's own client logs its headers)."""
    return "\n".join(line for line in records.lines if not line.startswith("websockets.client"))


def exception_text(error: BaseException) -> str:
    """Everything an exception shows: message, args, attributes, traceback, causes."""
    parts = [str(error), repr(error), repr(error.args), repr(vars(error))]
    parts += traceback.format_exception(error)
    return "\n".join(parts)


async def _stream(transcriber: sd.Transcriber, seconds: float = 4.0) -> list[sd.Segment]:
    with_speech = np.frombuffer(_dialog_pcm(), dtype=np.int16)[: int(seconds * 16000)]
    async with sd.TranscriptionSession(transcriber, mime=PCM16) as session:
        collected = asyncio.create_task(session.segments())
        for i in range(0, len(with_speech), 1600):
            await session.send(with_speech[i : i + 1600].tobytes())
        await session.close()
        return await collected


def _dialog_pcm() -> bytes:
    import wave

    from _feeding import CAPTURES

    with wave.open(str(CAPTURES / "dialog.wav")) as w:
        return w.readframes(w.getnframes())


# -- the library: logs, the SDK log file, reprs, exceptions -----------------------------------


@pytest.mark.parametrize("credential", ["key", "auth_token"])
def test_azure_secrets_stay_out_of_logs_sdk_log_reprs_and_errors(
    all_logs: Records, tmp_path: Path, credential: str
) -> None:
    secret = AZURE_KEY if credential == "key" else AZURE_TOKEN
    sdk_log = tmp_path / "speech-sdk.log"
    recognizer = ScriptedRecognizer.from_utterances(DIALOG)
    with FakeSpeechService(recognizer, key=secret) as service:
        good = AzureTranscriber(
            ["en-US"], host=service.host, log_file=str(sdk_log), pace_audio=False,
            **{credential: secret},
        )  # fmt: skip
        segments = asyncio.run(_stream(good))
        assert [s.text for s in segments] == [DIALOG[0]["text"]]
        wrong = AzureTranscriber(["en-US"], host=service.host, key=WRONG_KEY, log_file=str(sdk_log))
        with pytest.raises(sd.AuthenticationError) as refused:
            asyncio.run(_stream(wrong))
        for transcriber in (good, wrong):
            session = sd.TranscriptionSession(transcriber, mime=PCM16)
            shown = [repr(transcriber), repr(transcriber.credentials), str(vars(transcriber))]
            shown.append(repr(session))
            assert not leaked("\n".join(shown))
    assert not leaked(exception_text(refused.value))
    assert "401" in str(refused.value) or "uthenticat" in str(refused.value)
    assert not leaked(server_side(all_logs)), [line for line in all_logs.lines if leaked(line)]
    # The SDK writes a detailed log of its own when asked: check what it writes there.
    written = sdk_log.read_text(errors="replace")
    assert len(written) > 10_000
    assert "universal/v2" in written
    assert not leaked(written)


# -- the server: page, API, messages, logs ----------------------------------------------------


def test_server_never_shows_the_azure_key_or_its_own_token(all_logs: Records) -> None:
    """At ``--log-level debug`` the WebSocket layer logs every handshake header, where the
    token travels (subprotocol or ``Authorization``): its value must be redacted there."""
    recognizer = ScriptedRecognizer.from_utterances(DIALOG)
    with FakeSpeechService(recognizer, key=AZURE_KEY) as service:
        good = AzureTranscriber(["en-US"], host=service.host, key=AZURE_KEY, pace_audio=False)
        bad = AzureTranscriber(["en-US"], host=service.host, key=WRONG_KEY)
        settings = ServerSettings(token=SERVER_TOKEN)
        shown: list[str] = []
        for transcriber in (good, bad):
            engine = Engine("azure", "Azure Speech (test)", transcriber)
            app = create_app(engine, settings)
            with BackgroundServer(app, settings=settings, log_level="debug") as server:
                for path in [
                    "/",
                    "/api/info",
                    *(f"/static/{p.name}" for p in STATIC_DIR.iterdir()),
                ]:
                    with urllib.request.urlopen(server.url + path, timeout=5) as response:
                        shown += [str(response.headers), response.read().decode()]
                for offer in (
                    {"subprotocols": ["streamdiarize.v1", f"streamdiarize.token.{SERVER_TOKEN}"]},
                    {"headers": {"Authorization": f"Bearer {SERVER_TOKEN}"}},
                ):
                    talk = asyncio.run(
                        converse(server.ws_url, [start(), *A[:34], STOP], **offer)  # type: ignore[arg-type]
                    )
                    shown += [json.dumps(talk.received), talk.close_reason]
                    expected = "end" if transcriber is good else "error"
                    assert talk.types[-1] == expected, talk.received
    assert not leaked("\n".join(shown))
    logs = server_side(all_logs)
    assert "streamdiarize.token." in logs, "the WebSocket layer logged the handshake headers"
    assert not leaked(logs), [line[:300] for line in logs.splitlines() if leaked(line)][:3]


# -- risky SDK features off ---------------------------------------------------------------------


def test_sdk_audio_logging_is_off_by_default() -> None:
    """The SDK asks the service to keep the audio (``storeAudio=true`` on the connection URL)
    only when ``SpeechServiceConnection_EnableAudioLogging`` is set; we never set it."""
    with FakeSpeechService() as service:
        asyncio.run(_stream(AzureTranscriber(["en-US"], host=service.host, key="k"), 0.5))
        opted_in = AzureTranscriber(
            ["en-US"], host=service.host, key="k",
            properties={"SPEECH-EnableAudioLogging": "true"},
        )  # fmt: skip
        asyncio.run(_stream(opted_in, 0.5))
        default, logged = service.connections[0], service.connections[-1]
    assert default.query.get("storeAudio", "false") == "false", default.query
    assert logged.query.get("storeAudio") == "true", "the check above can see audio logging"
    assert "storeAudio" not in json.dumps(default.speech_context)


# -- safe defaults, as documented ---------------------------------------------------------------


def documented_limits() -> dict[str, str]:
    """The "Limits" table of docs/protocol.md: setting → default column."""
    text = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    table = text.split("## Limits", 1)[1].split("\n\n")[1]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| `")]
    return {name.strip().strip("`"): default.strip() for name, default in rows}


def _number(text: str) -> float:
    value = float(re.match(r"[\d.]+", text).group())  # type: ignore[union-attr]
    return value * (1 << 20) if "MiB" in text else value


def test_limits_are_on_by_default_and_as_documented() -> None:
    settings = ServerSettings()
    documented = documented_limits()
    assert set(documented) >= {
        "max_message_bytes",
        "max_message_seconds",
        "max_buffered_bytes",
        "max_session_seconds",
        "max_sessions",
        "start_timeout",
        "idle_timeout",
        "close_timeout",
    }
    for name, default in documented.items():
        assert getattr(settings, name) == _number(default), name
    # The command line starts from the same defaults, and the WebSocket layer enforces them.
    args = build_parser().parse_args(["serve"])
    assert (args.max_sessions, args.max_session_seconds, args.max_message_bytes) == (
        settings.max_sessions,
        settings.max_session_seconds,
        settings.max_message_bytes,
    )
    config = uvicorn_config(_app)
    assert config.ws_max_size == settings.max_message_bytes
    assert config.ws_per_message_deflate is False  # no zip bombs through permessage-deflate
    assert config.proxy_headers is False  # X-Forwarded-For is not trusted unless configured
    assert config.server_header is False


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """A stand-in ASGI app: only uvicorn's configuration is looked at."""


def test_origin_and_host_checks_are_on_by_default_token_optional_as_documented() -> None:
    settings = ServerSettings()
    assert settings.allowed_origins == ()  # same-origin pages only
    assert settings.hosts_for("127.0.0.1") == ("127.0.0.1", "localhost", "[::1]")
    assert settings.hosts_for("0.0.0.0") == ("*",)  # reachable by any name: use a token
    assert settings.token is None  # opt-in: `serve --token`; the CLI warns when exposed
    assert SERVER_TOKEN not in repr(ServerSettings(token=SERVER_TOKEN))
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"
    assert args.allow_origin == []
    assert args.token is None
