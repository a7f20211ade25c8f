"""``FakeSpeechService`` driven by Microsoft's JavaScript Speech SDK 1.52 in Node (no mocks).

``tests/js/run_sdk.js`` runs the SDK pinned in ``tests/js/package.json`` against the service
and prints its events as JSON lines. The fault table at the end runs every fault through both
SDKs (the Python one with ``test_fake_service.transcribe``) and states what each reports: they
differ, and both are what the SDKs do against the real service's failures.

``scripts/test.sh`` installs Node and runs ``npm ci`` in ``tests/js``; it sets
``STREAMDIARIZE_REQUIRE_NODE=1`` so that a missing Node fails the run instead of skipping it.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import azure.cognitiveservices.speech as speechsdk
import numpy as np
import pytest
import websockets
from websockets.sync.client import connect

from _feeding import dialog_script
from streamdiarize.testing import FakeSpeechService, Fault, ScriptedRecognizer
from streamdiarize.testing._resume import AudioSessions, client_offset
from test_fake_service import (
    CAPTURES,
    DIALOG_PCM,
    DIALOG_SAMPLES,
    RATE,
    SPEAKERS,
    UTTERANCES,
    transcribe,
)

pytestmark = pytest.mark.slow  # Node.js runs the JavaScript Speech SDK against the emulator

JS_DIR = Path(__file__).parent / "js"
RUNNER = JS_DIR / "run_sdk.js"
SDK_PACKAGE = JS_DIR / "node_modules" / "microsoft-cognitiveservices-speech-sdk" / "package.json"
NODE = shutil.which("node")
DIALOG_WAV = str(CAPTURES / "dialog.wav")
TICKS = 1e7
PACE = 8.0  # times real time: the 16.6 s dialog in about 2 s, slow enough for reconnects


def _require_node() -> None:
    """Skip without Node (fail under scripts/test.sh); install the SDK with npm if missing."""
    if NODE is None:
        message = "node is not installed (scripts/test.sh installs Debian's nodejs and npm)"
        if os.environ.get("STREAMDIARIZE_REQUIRE_NODE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    if not SDK_PACKAGE.exists():
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, timeout=600)
    assert json.loads(SDK_PACKAGE.read_text())["version"] == "1.52.0"


@pytest.fixture(scope="module", autouse=True)
def _node() -> None:
    _require_node()


# -- one view of both SDKs' events --------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """A transcribed / recognized (or interim) result, times in seconds."""

    text: str
    speaker: str | None
    offset: float
    duration: float
    language: str | None
    json: dict[str, Any]


@dataclass
class SdkRun:
    """What one SDK run reported; ``canceled`` codes and reasons by their enum names."""

    finals: list[Result]
    interims: list[Result]
    cancel_reason: str | None = None
    code: str | None = None
    details: str = ""
    canceled_at: float = 0.0
    first_final_at: float = 0.0
    stopped: bool = False
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)


def run_js(service: FakeSpeechService, timeout: float = 30.0, **config: Any) -> SdkRun:
    """Run ``tests/js/run_sdk.js`` against ``service``; ``config`` as its header describes
    (default: ``host``, a key, the dialog WAV, a ConversationTranscriber)."""
    config.setdefault("audio", DIALOG_WAV)
    if "endpoint" not in config:
        config.setdefault("host", service.host)
    if "token" not in config:
        config.setdefault("key", service.key or "fake-key")
    config["timeoutMs"] = int(timeout * 1000)
    assert NODE is not None
    process = subprocess.run(
        [NODE, str(RUNNER), "-"],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=timeout + 15,
        check=False,
    )
    events = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    assert process.returncode == 0, (process.returncode, process.stderr[-2000:], events[-3:])
    assert events[-1]["event"] == "done", events[-3:]
    run = SdkRun([], [], events=events, stopped=any(e["event"] == "sessionStopped" for e in events))
    for e in events:
        if e["event"] in ("transcribed", "recognized", "transcribing", "recognizing"):
            result = Result(
                e["text"],
                e["speakerId"],
                e["offset"] / TICKS,
                e["duration"] / TICKS,
                e["language"],
                json.loads(e["json"]) if e["json"] else {},
            )
            if e["event"].endswith("ed"):
                run.finals.append(result)
                run.first_final_at = run.first_final_at or e["at"] / 1000
            else:
                run.interims.append(result)
        elif e["event"] == "canceled":
            run.cancel_reason, run.code, run.details = (
                e["reason"],
                e["errorCode"],
                e["errorDetails"],
            )
            run.canceled_at = e["at"] / 1000
    return run


def run_python(service: FakeSpeechService) -> SdkRun:
    """The Python SDK's ConversationTranscriber (``test_fake_service.transcribe``)."""
    python = transcribe(service, DIALOG_PCM)
    run = SdkRun(
        [
            Result(e.text, e.speaker, e.offset, e.duration, e.language, json.loads(e.json))
            for e in python.finals
        ],
        [],
        stopped=any(e.kind == "session_stopped" for e in python.events),
    )
    run.first_final_at = python.finals[0].at if python.finals else 0.0
    canceled = [e for e in python.events if e.kind == "canceled"]
    if canceled:
        run.cancel_reason, run.code = canceled[0].cancel_reason.name, canceled[0].code.name
        run.details, run.canceled_at = canceled[0].details, canceled[0].at
    return run


def assert_dialog(run: SdkRun, *, tolerance: float = 0.001) -> None:
    """Every utterance once, in order, with its speaker and stream times."""
    assert [r.text for r in run.finals] == [u["text"] for u in UTTERANCES]
    for result, u in zip(run.finals, UTTERANCES, strict=True):
        assert result.speaker == SPEAKERS[u["speaker"]]
        assert result.offset == pytest.approx(u["start_s"], abs=tolerance)
        assert result.offset + result.duration == pytest.approx(u["end_s"], abs=tolerance)


def assert_clean_end(run: SdkRun) -> None:
    assert (run.cancel_reason, run.code) == ("EndOfStream", "NoError")
    assert run.stopped


# -- conversation transcription ---------------------------------------------------------------


@pytest.mark.parametrize("languages", [None, ["en-US", "es-ES"]], ids=["fixed", "language-id"])
@pytest.mark.parametrize("words", [False, True], ids=["simple", "words"])
def test_conversation_transcription(
    service: FakeSpeechService, languages: list[str] | None, words: bool
) -> None:
    run = run_js(service, languages=languages, words=words)

    assert_dialog(run)
    assert_clean_end(run)
    for result in run.finals:
        assert result.language == ("en-US" if languages else None)
        if words:
            best = result.json["NBest"][0]
            assert best["Display"] == result.text
            assert [w["Word"] for w in best["Words"]] == best["Lexical"].split()
            # The SDK rewrites word offsets to the stream's timeline, as it does the phrase's.
            assert best["Words"][0]["Offset"] / TICKS == pytest.approx(result.offset, abs=1e-6)
        else:
            assert "NBest" not in result.json
    # Interims grow word by word and carry no speaker unless asked for.
    assert len(run.interims) >= len(run.finals)
    assert {r.speaker for r in run.interims} == {"Unknown"}
    (conn,) = service.connections
    # What the JS SDK sends: no subprotocol, the key in a header and in the query, the
    # conversation path from a host.
    assert conn.path == "/speech/recognition/conversation/cognitiveservices/v1"
    assert "sec-websocket-protocol" not in conn.headers
    assert conn.headers["ocp-apim-subscription-key"] == conn.query["Ocp-Apim-Subscription-Key"]
    assert conn.query["X-ConnectionId"] == conn.headers["x-connectionid"]
    assert conn.query["language"] == "en-US"
    assert ("lidEnabled" in conn.query) == bool(languages)
    (turn,) = conn.turns
    diarization = turn.speech_context["phraseDetection"]["speakerDiarization"]
    assert diarization["mode"] == "Anonymous"
    assert diarization["audioOffsetMs"] == 0
    assert diarization["diarizeIntermediates"] is False
    assert turn.client_offset == 0.0
    if languages:
        assert turn.speech_context["languageId"]["languages"] == languages
    output = turn.speech_context.get("phraseOutput", {})  # {} without word timings
    assert ("WordTimings" in output.get("detailed", {}).get("options", [])) == words
    assert turn.wave_format is not None
    assert turn.wave_format.is_pcm16_mono_16k
    assert turn.ended
    assert conn.closed_by == "client"
    assert not service.audio_problems
    assert not service.protocol_errors


def test_diarized_intermediates_when_asked(service: FakeSpeechService) -> None:
    run = run_js(service, diarizeIntermediates=True)

    assert_dialog(run)
    assert {r.speaker for r in run.interims} == set(SPEAKERS.values())
    for final in run.finals:
        mine = [r for r in run.interims if r.offset == pytest.approx(final.offset, abs=1e-6)]
        assert mine
        assert {r.speaker for r in mine} == {final.speaker}
    context = service.connections[0].speech_context
    assert context is not None
    assert context["phraseDetection"]["speakerDiarization"]["diarizeIntermediates"] is True


# -- continuous recognition, endpoints and credentials ------------------------------------------


@pytest.mark.parametrize(
    ("form", "path"),
    [
        ("host", "/speech/recognition/conversation/cognitiveservices/v1"),
        ("endpoint", "/speech/recognition/interactive/cognitiveservices/v1"),
        ("endpoint", "/speech/recognition/dictation/cognitiveservices/v1"),
        ("endpoint", "/stt/speech/universal/v2"),
    ],
    ids=["host", "interactive", "dictation", "stt-universal"],
)
def test_continuous_recognition(service: FakeSpeechService, form: str, path: str) -> None:
    where = {"host": service.host} if form == "host" else {"endpoint": service.host + path}
    run = run_js(service, recognizer="speech", words=True, **where)

    assert [r.text for r in run.finals] == [u["text"] for u in UTTERANCES]
    assert [r.offset for r in run.finals] == pytest.approx(
        [u["start_s"] for u in UTTERANCES], abs=0.001
    )
    assert {r.speaker for r in run.finals} == {None}  # no diarization here
    assert_clean_end(run)
    (conn,) = service.connections
    assert conn.path == path
    assert "speakerDiarization" not in conn.speech_context.get("phraseDetection", {})  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "path",
    [
        "/stt/speech/universal/v2",
        "/speech/universal/v2",
        "/speech/recognition/conversation/cognitiveservices/v1",
    ],
)
def test_conversation_transcriber_from_endpoint(service: FakeSpeechService, path: str) -> None:
    run = run_js(service, endpoint=service.host + path, languages=["en-US", "es-ES"])
    assert_dialog(run)
    assert_clean_end(run)
    assert service.connections[0].path == path


def test_authorization_token() -> None:
    with FakeSpeechService(dialog_script(), key="token-123") as svc:
        run = run_js(svc, token="token-123")
        assert_dialog(run)
        (conn,) = svc.connections
    assert conn.headers["authorization"] == "Bearer token-123"
    assert conn.query["Authorization"] == "Bearer token-123"  # what a browser can send
    assert "ocp-apim-subscription-key" not in conn.headers


def test_wrong_key_is_refused_on_every_attempt() -> None:
    with FakeSpeechService(dialog_script(), key="secret") as svc:
        run = run_js(svc, key="wrong")
    assert (run.cancel_reason, run.code) == ("Error", "ConnectionFailure")
    assert not run.finals
    assert {c.status for c in svc.connections} == {401}
    assert len(svc.connections) == 5


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("Ocp-Apim-Subscription-Key=secret", {}, 101),
        ("Authorization=Bearer%20secret", {}, 101),
        ("authorization=secret", {}, 101),
        ("", {"Authorization": "Bearer secret"}, 101),
        ("Ocp-Apim-Subscription-Key=wrong", {}, 401),
        ("Authorization=Bearer%20wrong", {}, 401),
        ("", {}, 401),
    ],
)
def test_browser_style_credentials(query: str, headers: dict[str, str], status: int) -> None:
    """A browser's WebSocket can send neither headers nor, here, a subprotocol."""
    with FakeSpeechService(key="secret") as svc:
        url = f"{svc.host}/stt/speech/universal/v2?language=en-US&{query}"
        if status == 101:
            with connect(url, additional_headers=headers) as ws:
                assert ws.subprotocol is None
        else:
            with pytest.raises(websockets.InvalidStatus) as info:
                connect(url, additional_headers=headers)
            assert info.value.response.status_code == status
        assert [c.status for c in svc.connections] == [status]


def test_query_credentials_stay_out_of_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="streamdiarize.testing")
    with FakeSpeechService(dialog_script(), key="key-4f1c") as svc:
        run = run_js(svc, key="key-4f1c")
        assert_clean_end(run)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Ocp-Apim-Subscription-Key=[redacted]" in logged  # the request line was logged
    assert "key-4f1c" not in logged


def test_usp_is_echoed_when_offered(service: FakeSpeechService) -> None:
    key = {"Ocp-Apim-Subscription-Key": "k"}
    with connect(
        service.host + "/speech/universal/v2", subprotocols=["USP"], additional_headers=key
    ) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "USP"


# -- resume points ----------------------------------------------------------------------------


def test_resume_point_rules() -> None:
    js = {"phraseDetection": {"speakerDiarization": {"audioSessionId": "a", "audioOffsetMs": 0}}}
    python = {"phraseDetection": {"speakerDiarization": {"audioOffsetMS": 7093}}}
    continuation = {"continuation": {"audio": {"streams": {"1": {"offset": "70936000"}}}}}
    assert client_offset(python) is not None
    assert client_offset(python) == client_offset(python)
    assert client_offset({}) is None
    offset = client_offset(continuation)
    assert offset is not None
    # In whole ms: the Python SDK resends its audio from there, not from the exact tick.
    assert (offset.seconds, offset.is_resume_point) == (7.093, True)

    sessions = AudioSessions()
    assert sessions.turn_offset("a", js) == 0.0
    sessions.acknowledge("a", 70_936_000)
    resumed = {"phraseDetection": {"speakerDiarization": {"audioOffsetMs": 8200.0}}}
    assert sessions.turn_offset("a", resumed) == 7.0936  # not the 8.2 s the client sent
    few = {"phraseDetection": {"speakerDiarization": {"audioOffsetMs": 5000.0}}}
    assert sessions.turn_offset("a", few) == 5.0  # never past the audio sent
    assert sessions.turn_offset("a", python) == 7.093  # the Python SDK says it itself
    sessions.finish("a")
    assert sessions.turn_offset("a", {}) == 0.0  # a new recognition after the end of audio
    bounded = AudioSessions(max_sessions=2)
    for key in "xyz":
        bounded.acknowledge(key, 1)
    assert bounded.turn_offset("x", {}) == 0.0  # forgotten: the oldest session went first


# -- the fault table, both SDKs -----------------------------------------------------------------

Sdk = Literal["python", "js"]


@dataclass(frozen=True)
class Outcome:
    """What one SDK reports for a fault.

    Attributes:
        code: the cancellation error code; ``None``: it recovers and delivers the dialog.
        details: texts one of which the error details contain.
        attempts: connection attempts that were refused or carried audio.
        within: seconds from the start to the cancellation (or to the end of the dialog).
    """

    code: str | None = None
    details: tuple[str, ...] = ()
    attempts: int = 1
    within: float = 3.0


@dataclass(frozen=True)
class FaultCase:
    id: str
    faults: Callable[[], Iterable[Fault | None]]
    python: Outcome
    js: Outcome


def _always(fault: Fault) -> Callable[[], Iterable[Fault | None]]:
    return lambda: itertools.repeat(fault)


def _once(fault: Fault) -> Callable[[], Iterable[Fault | None]]:
    return lambda: [fault]


_JS_GAVE_UP = ("Unable to contact server. StatusCode: 1006",)

FAULTS = [
    FaultCase(
        "401-once",
        _once(Fault.reject_auth(401)),
        Outcome("AuthenticationFailure", ("Authentication error (401)",), within=0.6),
        Outcome(attempts=2),  # the JS SDK fetches its credentials again and retries
    ),
    FaultCase(
        "401-always",
        _always(Fault.reject_auth(401)),
        Outcome("AuthenticationFailure", ("Authentication error (401)",), within=0.6),
        Outcome("ConnectionFailure", _JS_GAVE_UP, attempts=5),
    ),
    FaultCase(
        "403-once",
        _once(Fault.reject_auth(403)),
        Outcome("AuthenticationFailure", ("Authentication error (403)",), within=0.6),
        Outcome(attempts=2),
    ),
    FaultCase("429-once", _once(Fault.throttle()), Outcome(attempts=2), Outcome(attempts=2)),
    FaultCase(
        "429-always",
        _always(Fault.throttle()),
        Outcome("TooManyRequests", ("Too many requests (429)",), attempts=5),
        Outcome("ConnectionFailure", _JS_GAVE_UP, attempts=5),
    ),
    FaultCase(
        "500-always",
        _always(Fault.http_error(500)),
        Outcome("ServiceError", ("Internal service error (500)",), attempts=5),
        Outcome("ConnectionFailure", _JS_GAVE_UP, attempts=5),
    ),
    FaultCase(
        "1007-quota",
        _once(Fault.quota_exceeded(after=2.0)),
        Outcome("BadRequest", ("Error code: 1007. Error details: Quota exceeded",), within=0.6),
        Outcome("BadRequestParameters", ("Quota exceeded websocket error code: 1007",), within=1),
    ),
    FaultCase(
        "1002",
        _once(Fault.close(1002, "bad frame", after=2.0)),
        Outcome("ConnectionFailure", ("Error code: 1002",), within=0.6),
        Outcome("ConnectionFailure", ("bad frame websocket error code: 1002",), within=1),
    ),
    FaultCase(
        "1011-once",
        _once(Fault.drop(after=8.0, abrupt=False)),
        Outcome(attempts=2),
        Outcome(attempts=2),
    ),
    FaultCase(
        "1011-always",
        _always(Fault.drop(after=1.0, abrupt=False)),
        Outcome("ServiceError", ("Error code: 1011. Error details: Internal server error",), 5),
        # The JS SDK waits before it notices each close: ~3.5 s per attempt (measured 14 s).
        Outcome(
            "ConnectionFailure",
            ("Internal server error websocket error code: 1011",),
            5,
            within=25,
        ),
    ),
    FaultCase("drop-once", _once(Fault.drop(after=8.0)), Outcome(attempts=2), Outcome(attempts=2)),
    FaultCase(
        "drop-always",
        _always(Fault.drop(after=1.0)),
        Outcome(
            "ConnectionFailure",
            ("WS_ERROR_UNDERLYING_IO_ERROR", "Failure while sending a frame"),
            attempts=5,
        ),
        Outcome("ConnectionFailure", ("websocket error code: 1006",), attempts=5),
    ),
    FaultCase(
        "stall",
        _once(Fault.stall(after=2.0, duration=1.5)),
        Outcome(within=4.5),
        Outcome(within=4.5),
    ),
]


@pytest.mark.parametrize("sdk", ["python", "js"])
@pytest.mark.parametrize("case", FAULTS, ids=[c.id for c in FAULTS])
def test_fault_reported_by_each_sdk(case: FaultCase, sdk: Sdk) -> None:
    expected = case.python if sdk == "python" else case.js
    with FakeSpeechService(dialog_script(), faults=case.faults()) as svc:
        t0 = time.monotonic()
        # The JS SDK stops reading its stream at its end: only audio still to come is sent
        # after a reconnect, so it gets audio at a live pace (the Python SDK buffers it all).
        run = run_python(svc) if sdk == "python" else run_js(svc, pace=PACE, words=True)
        elapsed = time.monotonic() - t0
    attempts = [c for c in svc.connections if c.status != 101 or c.turns]
    assert len(attempts) == expected.attempts, [(c.status, len(c.turns)) for c in svc.connections]
    if expected.code is None:
        assert_dialog(run)  # every phrase once, at its time, across reconnects
        assert_clean_end(run)
        assert elapsed < expected.within + (16.6 / PACE if sdk == "js" else 0)
        if case.id == "stall":
            assert run.first_final_at >= 1.5
        resumed = [t for c in svc.connections for t in c.turns][1:]
        assert all(t.audio_offset == pytest.approx(7.0936, abs=0.001) for t in resumed)
    else:
        assert (run.cancel_reason, run.code) == ("Error", expected.code)
        assert any(text in run.details for text in expected.details), run.details
        assert run.canceled_at < expected.within
        assert not run.finals


def _recognize_python(service: FakeSpeechService) -> list[tuple[str, float]]:
    """The Python SDK's SpeechRecognizer, continuous: (text, offset) of each phrase."""
    config = service.speech_config()
    config.speech_recognition_language = "en-US"
    stream = speechsdk.audio.PushAudioInputStream()
    recognizer = speechsdk.SpeechRecognizer(
        speech_config=config, audio_config=speechsdk.audio.AudioConfig(stream=stream)
    )
    phrases: list[tuple[str, float]] = []
    stopped = threading.Event()
    recognizer.recognized.connect(
        lambda e: phrases.append((e.result.text, e.result.offset / TICKS))
    )
    recognizer.session_stopped.connect(lambda _: stopped.set())
    try:
        recognizer.start_continuous_recognition_async().get()
        stream.write(DIALOG_PCM)
        stream.close()
        assert stopped.wait(30)
        recognizer.stop_continuous_recognition_async().get()
    finally:
        recognizer.recognized.disconnect_all()
        recognizer.session_stopped.disconnect_all()
        del recognizer, stream
        gc.collect()
    return phrases


@pytest.mark.parametrize("sdk", ["python", "js"])
def test_continuous_recognition_across_a_drop(sdk: Sdk) -> None:
    """Without diarization the Python SDK states its resume point as a continuation offset
    and the JS SDK not at all: both get every phrase once."""
    with FakeSpeechService(dialog_script(), faults=[Fault.drop(after=8.0)]) as svc:
        if sdk == "python":
            phrases = _recognize_python(svc)
        else:
            phrases = [
                (r.text, r.offset) for r in run_js(svc, recognizer="speech", pace=PACE).finals
            ]
    assert [text for text, _ in phrases] == [u["text"] for u in UTTERANCES]
    assert [at for _, at in phrases] == pytest.approx([u["start_s"] for u in UTTERANCES], abs=0.001)
    first, second = svc.connections
    assert (first.closed_by, first.close_code) == ("service", 1006)  # the TCP drop
    assert [t.audio_offset for t in first.turns] == [0.0]
    (turn,) = second.turns
    if sdk == "python":
        # The resume point in ticks; the SDK resends the audio from it in whole ms.
        assert turn.speech_context["continuation"]["audio"]["streams"]["1"]["offset"] == "70936000"
        assert turn.audio_offset == 7.093
    else:
        assert turn.client_offset is None  # no resume point: the end of the last phrase sent
        assert turn.audio_offset == pytest.approx(7.0936, abs=1e-9)
    # The turn is placed where its audio really starts: nothing lost, nothing repeated.
    np.testing.assert_array_equal(turn.audio, DIALOG_SAMPLES[round(turn.audio_offset * RATE) :])
    assert not svc.audio_problems
    assert not svc.protocol_errors


def test_new_turn_on_the_same_socket() -> None:
    with FakeSpeechService(dialog_script(), faults=[Fault.end_turn(after=8.0)]) as svc:
        run = run_js(svc, pace=PACE)
    assert_dialog(run)
    assert_clean_end(run)
    (conn,) = svc.connections
    first, second = conn.turns
    assert second.request_id != first.request_id
    assert second.audio_offset == pytest.approx(7.0936, abs=1e-9)
    # The JS SDK reports the audio it had sent, not where it resumes.
    assert second.client_offset is not None
    assert second.client_offset > second.audio_offset


def test_reconnects_without_progress_resume_at_zero() -> None:
    """Drops before any phrase: every turn starts at the beginning of the stream."""
    script = ScriptedRecognizer(dialog_script().phrases[:1])
    with FakeSpeechService(script, faults=[Fault.drop(after=0.3), Fault.drop(after=0.3)]) as svc:
        run = run_js(svc, pace=PACE)
    assert_clean_end(run)
    assert [r.text for r in run.finals] == [UTTERANCES[0]["text"]]
    assert [t.audio_offset for c in svc.connections for t in c.turns] == [0.0, 0.0, 0.0]
