"""``FakeSpeechService`` driven by the REAL Azure Speech SDK over a real socket (no mocks).

Expected texts, speakers and times come from ``tests/data/captures/dialog.json``; expected SDK
reactions to faults are what the SDK 1.53 was measured to do (see the module docstrings).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import math
import socket
import threading
import time
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.cognitiveservices.speech as speechsdk
import numpy as np
import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from websockets.sync.client import connect

from _feeding import dialog_script
from streamdiarize import ConfigurationError
from streamdiarize.testing import (
    FakeSpeechService,
    Fault,
    Hypothesis,
    Phrase,
    ScriptedPhrase,
    ScriptedRecognizer,
    TurnInfo,
    parse_message,
    serialize_message,
    speech_problem,
)
from streamdiarize.testing._usp import UspMessage, encode_binary

pytestmark = pytest.mark.slow  # drives the real Azure Speech SDK

CAPTURES = Path(__file__).parent / "data" / "captures"
DIALOG = json.loads((CAPTURES / "dialog.json").read_text())
UTTERANCES: list[dict[str, Any]] = DIALOG["utterances"]
SPEAKERS = {"spk1": "Guest-1", "spk2": "Guest-2", "spk3": "Guest-3"}  # Azure's naming
TOLERANCE = 0.05  # seconds
RATE = 16_000
Reason = speechsdk.ResultReason
Code = speechsdk.CancellationErrorCode


def _read_dialog() -> bytes:
    with wave.open(str(CAPTURES / "dialog.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        frames: bytes = w.readframes(w.getnframes())
        return frames


DIALOG_PCM = _read_dialog()
DIALOG_SAMPLES = np.frombuffer(DIALOG_PCM, dtype="<i2")


# -- driving the real SDK ---------------------------------------------------------------------


@dataclass
class Event:
    kind: str
    at: float
    text: str = ""
    speaker: str = ""
    offset: float = 0.0
    duration: float = 0.0
    reason: Any = None
    language: str | None = None
    language_property: str | None = None
    json: str = ""
    cancel_reason: Any = None
    code: Any = None
    details: str = ""


@dataclass
class Run:
    events: list[Event]
    elapsed: float  # start_transcribing to session_stopped
    stop_seconds: float | None  # how long stop_transcribing_async took
    finals: list[Event] = field(init=False)
    interims: list[Event] = field(init=False)

    def __post_init__(self) -> None:
        self.finals = [e for e in self.events if e.kind == "transcribed"]
        self.interims = [e for e in self.events if e.kind == "transcribing"]

    @property
    def canceled(self) -> Event:
        (event,) = [e for e in self.events if e.kind == "canceled"]
        return event


def _result_event(kind: str, at: float, result: Any) -> Event:
    language = None
    if kind == "transcribed":
        language = speechsdk.AutoDetectSourceLanguageResult(result).language
    return Event(
        kind,
        at,
        text=result.text,
        speaker=result.speaker_id,
        offset=result.offset / 1e7,
        duration=result.duration / 1e7,
        reason=result.reason,
        language=language,
        language_property=result.properties.get(
            speechsdk.PropertyId.SpeechServiceConnection_AutoDetectSourceLanguageResult
        ),
        json=result.json,
    )


def transcribe(
    service: FakeSpeechService,
    data: bytes,
    *,
    languages: tuple[str, ...] | None = ("en-US", "es-ES"),
    words: bool = True,
    throttle: bool = False,
    configure: Callable[[speechsdk.SpeechConfig], None] | None = None,
    stream_format: speechsdk.audio.AudioStreamFormat | None = None,
    timeout: float = 30.0,
) -> Run:
    """Push ``data`` through a ConversationTranscriber; wait for session_stopped; tear down.

    After a cancellation with an error the SDK needs no ``stop_transcribing_async``: calling
    it costs 1 s, and destroying the transcriber afterwards 10 s more (measured).
    """
    config = service.speech_config(throttle=throttle)
    if words:
        config.request_word_level_timestamps()
    if configure is not None:
        configure(config)
    kwargs: dict[str, Any] = {}
    if languages:
        kwargs["auto_detect_source_language_config"] = (
            speechsdk.languageconfig.AutoDetectSourceLanguageConfig(languages=list(languages))
        )
    else:
        config.speech_recognition_language = "en-US"
    stream = speechsdk.audio.PushAudioInputStream(
        stream_format=stream_format or speechsdk.audio.AudioStreamFormat(RATE, 16, 1)
    )
    transcriber = speechsdk.transcription.ConversationTranscriber(
        speech_config=config, audio_config=speechsdk.audio.AudioConfig(stream=stream), **kwargs
    )
    events: list[Event] = []
    stopped = threading.Event()
    start = time.monotonic()

    def on(kind: str) -> Callable[[Any], None]:
        def handler(evt: Any) -> None:
            at = time.monotonic() - start
            if kind == "canceled":
                d = evt.cancellation_details
                events.append(
                    Event(kind, at, cancel_reason=d.reason, code=d.code, details=d.error_details)
                )
            elif kind == "session_stopped":
                events.append(Event(kind, at))
                stopped.set()
            else:
                events.append(_result_event(kind, at, evt.result))

        return handler

    signals = {
        "transcribing": transcriber.transcribing,
        "transcribed": transcriber.transcribed,
        "canceled": transcriber.canceled,
        "session_stopped": transcriber.session_stopped,
    }
    for kind, signal in signals.items():
        signal.connect(on(kind))
    try:
        transcriber.start_transcribing_async().get()
        stream.write(data)
        stream.close()
        assert stopped.wait(timeout), "the SDK never stopped the session"
        elapsed = time.monotonic() - start
        stop_seconds = None
        if not any(
            e.kind == "canceled" and e.cancel_reason == speechsdk.CancellationReason.Error
            for e in events
        ):
            t0 = time.monotonic()
            transcriber.stop_transcribing_async().get()
            stop_seconds = time.monotonic() - t0
    finally:
        # Release the SDK objects now: one left for interpreter exit can fire a callback
        # there and abort the process ("FATAL: exception not rethrown", measured 3 in 10).
        for signal in signals.values():
            signal.disconnect_all()
        del transcriber, stream, signals
        gc.collect()
    return Run(list(events), elapsed, stop_seconds)


def assert_dialog(run: Run, *, tolerance: float = TOLERANCE) -> None:
    """Every utterance of the dialog, once, in order, with its speaker and times."""
    texts = [e.text for e in run.finals]
    assert texts == [u["text"] for u in UTTERANCES]
    for event, u in zip(run.finals, UTTERANCES, strict=True):
        assert event.reason == Reason.RecognizedSpeech
        assert event.speaker == SPEAKERS[u["speaker"]]
        assert event.offset == pytest.approx(u["start_s"], abs=tolerance)
        assert event.offset + event.duration == pytest.approx(u["end_s"], abs=tolerance)


def assert_clean_end(run: Run) -> None:
    assert run.canceled.cancel_reason == speechsdk.CancellationReason.EndOfStream
    assert run.events[-1].kind == "session_stopped"


# -- the dialog, end to end ---------------------------------------------------------------------


def test_dialog_with_speakers_language_words_and_interims(service: FakeSpeechService) -> None:
    run = transcribe(service, DIALOG_PCM)

    assert_dialog(run)
    assert_clean_end(run)
    for event in run.finals:
        assert event.language == event.language_property == "en-US"
        best = json.loads(event.json)["NBest"][0]
        assert best["Display"] == event.text
        words = best["Words"]
        assert [w["Word"] for w in words] == best["Lexical"].split()
        assert len(words) == len(event.text.split())
        starts = np.array([w["Offset"] for w in words]) / 1e7
        ends = starts + np.array([w["Duration"] for w in words]) / 1e7
        assert starts[0] == pytest.approx(event.offset, abs=1e-6)
        assert ends[-1] == pytest.approx(event.offset + event.duration, abs=1e-6)
        assert np.all(np.diff(starts) > 0)
    # Interims: they grow word by word inside each phrase, before its final; no speaker
    # unless the client asked for diarized intermediates.
    assert len(run.interims) >= len(run.finals)
    for final in run.finals:
        mine = [e for e in run.interims if e.offset == pytest.approx(final.offset, abs=1e-6)]
        lexical = json.loads(final.json)["NBest"][0]["Lexical"]
        assert len(mine) >= 2
        assert all(e.at <= final.at and e.speaker == "Unknown" for e in mine)
        assert all(lexical.startswith(e.text) for e in mine)
        assert [len(e.text.split()) for e in mine] == sorted({len(e.text.split()) for e in mine})
    # Speed: unthrottled, 16.6 s of audio is through in well under real time; stop is instant.
    assert run.elapsed < 3.0
    assert run.stop_seconds is not None
    assert run.stop_seconds < 2.0
    # What the client sent, as recorded.
    (conn,) = service.connections
    assert conn.path == "/speech/universal/v2"
    assert conn.query["wordLevelTimestamps"] == "true"
    assert conn.headers["ocp-apim-subscription-key"] == "fake-key"
    context = conn.speech_context
    assert context is not None
    assert context["phraseDetection"]["mode"] == "Conversation"
    assert context["phraseDetection"]["speakerDiarization"]["mode"] == "Anonymous"
    assert context["languageId"]["languages"] == ["en-US", "es-ES"]
    assert "WordTimings" in context["phraseOutput"]["detailed"]["options"]
    assert conn.speech_config is not None
    assert conn.speech_config["context"]["audio"]["source"]["samplerate"] == "16000"
    (turn,) = conn.turns
    assert turn.wave_format is not None
    assert turn.wave_format.is_pcm16_mono_16k
    assert turn.ended
    np.testing.assert_array_equal(conn.audio, DIALOG_SAMPLES)
    assert not service.audio_problems
    assert not service.protocol_errors
    # Every service message carried the turn's request id and the JSON content type.
    for message in conn.messages_sent:
        assert message.request_id == turn.request_id
        assert message.header("Content-Type") == "application/json; charset=utf-8"
    paths = conn.sent_paths()
    assert paths[0] == "turn.start"
    assert paths.count("speech.startDetected") == 1
    assert paths[-3:] == ["speech.phrase", "speech.endDetected", "turn.end"]


def test_word_timings_and_language_appear_only_when_asked(service: FakeSpeechService) -> None:
    run = transcribe(service, DIALOG_PCM, languages=None, words=False)

    assert_dialog(run)
    for event in run.finals:
        body = json.loads(event.json)
        assert "NBest" not in body  # simple output format
        assert event.language is None
        assert event.language_property is None
    context = service.connections[0].speech_context
    assert context is not None
    assert "languageId" not in context
    assert "phraseOutput" not in context
    assert context["phraseDetection"]["language"] == "en-US"


def test_detailed_format_without_word_timestamps() -> None:
    with FakeSpeechService(dialog_script(interim=False)) as svc:
        run = transcribe(
            svc,
            DIALOG_PCM,
            words=False,
            configure=lambda c: setattr(c, "output_format", speechsdk.OutputFormat.Detailed),
        )
    # OutputFormat.Detailed alone asks for the same as request_word_level_timestamps().
    best = json.loads(run.finals[0].json)["NBest"][0]
    assert best["Words"][0]["Word"] == "good"
    assert not run.interims


def test_client_options_reach_the_service() -> None:
    def configure(config: speechsdk.SpeechConfig) -> None:
        config.set_profanity(speechsdk.ProfanityOption.Raw)
        config.set_property(
            speechsdk.PropertyId.SpeechServiceResponse_DiarizeIntermediateResults, "true"
        )
        config.set_property(
            speechsdk.PropertyId.SpeechServiceConnection_LanguageIdMode, "Continuous"
        )

    with FakeSpeechService(dialog_script()) as svc:
        run = transcribe(svc, DIALOG_PCM, configure=configure)
        (conn,) = svc.connections
    context = conn.speech_context
    assert context is not None
    assert conn.query["profanity"] == "raw"
    assert context["phraseDetection"]["enrichment"]["profanity"] == "raw"
    assert context["phraseDetection"]["speakerDiarization"]["diarizeIntermediates"] == "True"
    assert context["languageId"]["mode"] == "DetectContinuous"
    # With diarized intermediates the interims carry the speaker too.
    assert {e.speaker for e in run.interims} == set(SPEAKERS.values())


def test_phrase_list_is_recorded(service: FakeSpeechService) -> None:
    config = service.speech_config()
    stream = speechsdk.audio.PushAudioInputStream()
    transcriber = speechsdk.transcription.ConversationTranscriber(
        speech_config=config, audio_config=speechsdk.audio.AudioConfig(stream=stream)
    )
    grammar = speechsdk.PhraseListGrammar.from_recognizer(transcriber)
    grammar.addPhrase("quarterly report")
    grammar.addPhrase("Contoso")
    done = threading.Event()
    transcriber.session_stopped.connect(lambda _: done.set())
    try:
        transcriber.start_transcribing_async().get()
        stream.write(DIALOG_PCM[: 2 * RATE])
        stream.close()
        assert done.wait(10)
        transcriber.stop_transcribing_async().get()
    finally:
        transcriber.session_stopped.disconnect_all()
        del transcriber, grammar, stream
        gc.collect()
    context = service.connections[0].speech_context
    assert context is not None
    items = context["dgi"]["Groups"][0]["Items"]
    assert [i["Text"] for i in items] == ["quarterly report", "Contoso"]


@pytest.mark.slow
def test_sdk_pacing_when_throttled(service: FakeSpeechService) -> None:
    # Measured: the SDK sends the first 5 s at once, then 2x real time; so 16.6 s take ~5.7 s.
    run = transcribe(service, DIALOG_PCM, throttle=True)
    assert_dialog(run)
    assert run.elapsed > (16.58 - 5.0) / 2.0 - 0.5


# -- reconnects and turns -----------------------------------------------------------------------


def _acknowledged(index: int) -> float:
    """Where the SDK resumes after utterance ``index`` was its last final: the phrase end,
    truncated to whole milliseconds (``audioOffsetMS``)."""
    return math.floor(float(UTTERANCES[index]["end_s"]) * 1000) / 1000


@pytest.mark.parametrize(
    "fault",
    [Fault.drop(after=8.0), Fault.drop(after=8.0, abrupt=False), Fault.close(1000, after=8.0)],
    ids=["tcp-abort", "close-1011", "close-1000"],
)
def test_reconnect_resends_unacknowledged_audio(fault: Fault) -> None:
    with FakeSpeechService(dialog_script(), faults=[fault]) as svc:
        run = transcribe(svc, DIALOG_PCM)
    assert_clean_end(run)
    # Every phrase once; after the reconnect the SDK adds its acknowledged position to the
    # service's turn-relative offsets: exact to within a millisecond.
    assert_dialog(run, tolerance=0.001)
    first, second = svc.connections
    assert first.closed_by == "service"
    # The reconnect reuses the X-ConnectionId (and the diarization audioSessionId).
    assert second.headers["x-connectionid"] == first.headers["x-connectionid"]
    # Utterances 0 and 1 were final before the cut at 8 s: the SDK resumes after utterance 1.
    resume = _acknowledged(1)
    (turn,) = second.turns
    assert turn.audio_offset == resume
    session = first.speech_context["phraseDetection"]["speakerDiarization"]["audioSessionId"]  # type: ignore[index]
    assert turn.speech_context["phraseDetection"]["speakerDiarization"]["audioSessionId"] == session
    np.testing.assert_array_equal(turn.audio, DIALOG_SAMPLES[round(resume * RATE) :])
    # The word offsets in the JSON are rewritten to the stream's timeline too.
    words = json.loads(run.finals[2].json)["NBest"][0]["Words"]
    assert words[0]["Offset"] / 1e7 == pytest.approx(UTTERANCES[2]["start_s"], abs=0.001)


def test_new_turn_on_the_same_socket() -> None:
    with FakeSpeechService(dialog_script(), faults=[Fault.end_turn(after=8.0)]) as svc:
        run = transcribe(svc, DIALOG_PCM)
    assert_clean_end(run)
    assert_dialog(run, tolerance=0.001)
    (conn,) = svc.connections
    first, second = conn.turns
    assert second.request_id != first.request_id
    # speech.endDetected at 8 s does not acknowledge audio: only phrases do.
    assert second.audio_offset == _acknowledged(1)
    np.testing.assert_array_equal(second.audio, DIALOG_SAMPLES[round(second.audio_offset * RATE) :])
    after = conn.messages_sent[[m.path for m in conn.messages_sent].index("turn.end") + 1 :]
    assert after
    assert all(m.request_id == second.request_id for m in after)


def test_reconnects_have_no_limit_while_phrases_advance() -> None:
    script = ScriptedRecognizer(
        [ScriptedPhrase(f"phrase {i}", 0.2 + i, 0.9 + i) for i in range(16)],
        check_audio=False,
        latency=0.1,
    )
    with FakeSpeechService(script, faults=itertools.repeat(Fault.drop(after=2.5))) as svc:
        run = transcribe(svc, DIALOG_PCM, languages=None)
    assert [e.text for e in run.finals] == [f"phrase {i}" for i in range(16)]
    assert [e.offset for e in run.finals] == pytest.approx([0.2 + i for i in range(16)], abs=0.001)
    assert_clean_end(run)
    assert len(svc.connections) > 5  # more than the 5 attempts allowed without progress
    offsets = [c.turns[0].audio_offset for c in svc.connections]
    assert offsets == sorted(offsets)
    assert offsets[0] == 0.0


# -- faults -----------------------------------------------------------------------------------


# The fault table (HTTP refusals, closes, drops, a stall), with what the Python SDK and the
# JavaScript SDK each report, is in test_js_sdk.py: test_fault_reported_by_each_sdk.


@pytest.mark.slow
def test_stop_during_a_stall_times_out() -> None:
    with FakeSpeechService(dialog_script(), faults=[Fault.stall(after=2.0, duration=30.0)]) as svc:
        config = svc.speech_config()
        stream = speechsdk.audio.PushAudioInputStream()
        transcriber = speechsdk.transcription.ConversationTranscriber(
            speech_config=config, audio_config=speechsdk.audio.AudioConfig(stream=stream)
        )
        canceled: list[Any] = []
        transcriber.canceled.connect(lambda e: canceled.append(e.cancellation_details))
        try:
            transcriber.start_transcribing_async().get()
            stream.write(DIALOG_PCM[: 8 * 2 * RATE])
            time.sleep(0.5)
            t0 = time.monotonic()
            transcriber.stop_transcribing_async().get()
            took = time.monotonic() - t0
        finally:
            transcriber.canceled.disconnect_all()
            del transcriber, stream
            gc.collect()
    (details,) = canceled
    assert details.code == Code.ServiceTimeout
    assert "Timeout while waiting for service to stop" in details.error_details
    assert 9.0 < took < 13.0


def test_bad_json_makes_the_sdk_reconnect() -> None:
    faults = [Fault.malformed_message("bad_json", after=2.0)]
    with FakeSpeechService(dialog_script(), faults=faults) as svc:
        run = transcribe(svc, DIALOG_PCM)
    assert_dialog(run)
    assert_clean_end(run)
    first, _ = svc.connections
    assert (first.closed_by, first.close_code) == ("client", 1000)


@pytest.mark.parametrize("kind", ["no_path", "unknown_path", "foreign_request_id"])
def test_other_malformed_messages_are_ignored(kind: Any) -> None:
    with FakeSpeechService(
        dialog_script(), faults=[Fault.malformed_message(kind, after=2.0)]
    ) as svc:
        run = transcribe(svc, DIALOG_PCM)
    assert_dialog(run)  # the injected "Injected." phrase never surfaces
    assert_clean_end(run)
    assert len(svc.connections) == 1


# -- audio that is not 16 kHz speech ------------------------------------------------------------


def test_container_bytes_pushed_as_pcm_get_no_text() -> None:
    webm = (CAPTURES / "A_chromium_mediarecorder_webm_opus_ts100" / "stream.bin").read_bytes()
    with FakeSpeechService(dialog_script()) as svc:
        run = transcribe(svc, webm[: len(webm) // 2 * 2])
    assert run.finals
    assert all(e.reason == Reason.NoMatch and e.text == "" for e in run.finals)
    assert not run.interims
    heard = len(webm) / 2 / RATE
    spans = [u for u in UTTERANCES if u["start_s"] < heard]
    assert [p.start for p in svc.audio_problems] == pytest.approx([u["start_s"] for u in spans])
    assert all("noise" in p.message for p in svc.audio_problems)


def test_silence_gets_no_text() -> None:
    with FakeSpeechService(dialog_script()) as svc:
        run = transcribe(svc, bytes(len(DIALOG_PCM)))
    assert [e.reason for e in run.finals] == [Reason.NoMatch] * len(UTTERANCES)
    assert len(svc.audio_problems) == len(UTTERANCES)
    assert all("no speech-level energy" in p.message for p in svc.audio_problems)


def test_wrong_stream_format_is_reported() -> None:
    with FakeSpeechService(dialog_script()) as svc:
        transcribe(
            svc,
            DIALOG_PCM[: 2 * RATE],
            stream_format=speechsdk.audio.AudioStreamFormat(8000, 16, 1),
        )
    turn = svc.connections[0].turns[0]
    assert turn.wave_format is not None
    assert turn.wave_format.sample_rate == 8000
    assert "expected 16 kHz" in svc.audio_problems[0].message


# -- the protocol, frame by frame (a hand-written client) ----------------------------------------


def _text(path: str, request_id: str | None, body: object) -> str:
    headers = (("X-RequestId", request_id),) if request_id else ()
    frame = serialize_message(UspMessage(path, headers, json.dumps(body).encode()))
    assert isinstance(frame, str)
    return frame


def _audio(request_id: str, payload: bytes) -> bytes:
    return encode_binary([("Path", "audio"), ("X-RequestId", request_id)], payload)


_RIFF16K = (
    b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00"
    b"\x00}\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"
)


def _turn(ws: Any, request_id: str, pcm: bytes, *, chunk: int = 3200) -> list[UspMessage]:
    ws.send(_text("speech.context", request_id, {"phraseOutput": {"format": "Detailed"}}))
    ws.send(_audio(request_id, _RIFF16K))
    for i in range(0, len(pcm), chunk):
        ws.send(_audio(request_id, pcm[i : i + chunk]))
    ws.send(_audio(request_id, b""))
    received: list[UspMessage] = []
    while not received or received[-1].path != "turn.end":
        received.append(parse_message(ws.recv(timeout=5)))
    return received


def test_protocol_two_turns_on_one_socket(service: FakeSpeechService) -> None:
    url = service.host + "/speech/universal/v2?language=en-US"
    headers = {"Ocp-Apim-Subscription-Key": "k"}
    with connect(url, subprotocols=["USP"], additional_headers=headers) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "USP"
        ws.send(_text("speech.config", None, {"context": {}}))
        # Odd-sized chunks: samples split across messages must be reassembled.
        first = _turn(ws, "a" * 32, DIALOG_PCM[: 4 * 2 * RATE], chunk=3333)
        second = _turn(ws, "b" * 32, DIALOG_PCM[: 4 * 2 * RATE])
    for received, request_id in ((first, "a" * 32), (second, "b" * 32)):
        assert all(m.request_id == request_id for m in received)
        paths = [m.path for m in received]
        assert paths[:2] == ["turn.start", "speech.startDetected"]
        phrases = [m.json() for m in received if m.path == "speech.phrase"]
        assert phrases[0]["DisplayText"] == UTTERANCES[0]["text"]
        assert phrases[0]["NBest"][0]["Display"] == UTTERANCES[0]["text"]
        assert "Words" not in phrases[0]["NBest"][0]  # Detailed without WordTimings
        end = phrases[-1]
        assert end["RecognitionStatus"] == "EndOfDictation"
        assert end["Offset"] == 4 * 10_000_000
    conn = service.connections[0]
    assert conn.query == {"language": "en-US"}
    assert [len(t.audio) for t in conn.turns] == [4 * RATE, 4 * RATE]
    np.testing.assert_array_equal(conn.turns[0].audio, DIALOG_SAMPLES[: 4 * RATE])
    assert not service.protocol_errors


def test_protocol_errors_are_recorded(service: FakeSpeechService) -> None:
    with connect(
        service.host + "/speech/universal/v2",
        subprotocols=["USP"],  # type: ignore[list-item]
        additional_headers={"Authorization": "Bearer token"},
    ) as ws:
        ws.send(_audio("c" * 32, b"\x00\x00" * 100))  # audio before any speech.context
        ws.send("no headers at all")
        ws.send(_text("speech.context", "d" * 32, {}))
        ws.send(_audio("d" * 32, b"\x01\x00" * 100))  # no RIFF header
        ws.send(_audio("d" * 32, b""))
        while parse_message(ws.recv(timeout=5)).path != "turn.end":
            pass
    assert len(service.protocol_errors) == 2
    assert "without a speech.context" in service.protocol_errors[0]
    assert "unparseable" in service.protocol_errors[1]
    assert "no RIFF/WAVE header" in service.audio_problems[-1].message


def test_unknown_path_and_bad_key_are_refused() -> None:
    with FakeSpeechService(key="secret") as svc:
        for path, headers, status in [
            (
                "/speech/translation/cognitiveservices/v1",
                {"Ocp-Apim-Subscription-Key": "secret"},
                404,
            ),
            ("/speech/universal/v2", {"Ocp-Apim-Subscription-Key": "wrong"}, 401),
            ("/speech/universal/v2", {}, 401),
        ]:
            with pytest.raises(websockets.InvalidStatus) as info:
                connect(svc.host + path, additional_headers=headers)
            assert info.value.response.status_code == status
        assert [c.status for c in svc.connections] == [404, 401, 401]


def test_speech_recognizer_paths_are_served() -> None:
    with FakeSpeechService(dialog_script()) as svc:
        config = svc.speech_config()
        config.speech_recognition_language = "en-US"
        stream = speechsdk.audio.PushAudioInputStream()
        recognizer = speechsdk.SpeechRecognizer(
            speech_config=config, audio_config=speechsdk.audio.AudioConfig(stream=stream)
        )
        try:
            stream.write(DIALOG_PCM)
            stream.close()
            result = recognizer.recognize_once_async().get()
            text = result.text
        finally:
            del recognizer, stream
            gc.collect()
    assert text == UTTERANCES[0]["text"]
    assert svc.connections[0].path == "/speech/recognition/interactive/cognitiveservices/v1"


# -- lifecycle ----------------------------------------------------------------------------------


def _service_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "FakeSpeechService"]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_sync_lifecycle_leaves_nothing_behind() -> None:
    before = len(_service_threads())
    with FakeSpeechService() as svc:
        port = svc.port
        assert svc.host == f"ws://127.0.0.1:{port}"
        assert _port_open(port)
        assert len(_service_threads()) == before + 1
    assert len(_service_threads()) == before
    assert not _port_open(port)
    svc.stop()  # idempotent


async def test_async_lifecycle_and_use_from_a_running_loop() -> None:
    async with FakeSpeechService(dialog_script()) as svc:
        port = svc.port
        async with websockets.connect(
            svc.host + "/speech/universal/v2",
            subprotocols=["USP"],  # type: ignore[list-item]
            additional_headers={"Ocp-Apim-Subscription-Key": "k"},
        ) as ws:
            await ws.send(_text("speech.context", "e" * 32, {}))
            await ws.send(_audio("e" * 32, _RIFF16K))
            await ws.send(_audio("e" * 32, DIALOG_PCM[: 4 * 2 * RATE]))
            await ws.send(_audio("e" * 32, b""))
            paths: list[str] = []
            while not paths or paths[-1] != "turn.end":
                paths.append(parse_message(await ws.recv()).path)
        # A blocking SDK call on this loop's thread cannot starve the service (own thread).
        run = await asyncio.to_thread(transcribe, svc, DIALOG_PCM[: 4 * 2 * RATE])
    assert "speech.phrase" in paths
    assert [e.text for e in run.finals] == [UTTERANCES[0]["text"]]
    assert not _port_open(port)
    assert not _service_threads()


def test_stop_with_a_client_still_connected_is_prompt() -> None:
    svc = FakeSpeechService(faults=[Fault.stall(after=0.0, duration=60.0)])
    svc.start()
    with connect(
        svc.host + "/speech/universal/v2",
        subprotocols=["USP"],  # type: ignore[list-item]
        additional_headers={"Authorization": "x"},
    ) as ws:
        ws.send(_text("speech.context", "f" * 32, {}))
        ws.send(_audio("f" * 32, _RIFF16K))
        ws.send(_audio("f" * 32, b"\x00\x00" * 10))  # triggers the 60 s stall
        time.sleep(0.2)
        t0 = time.monotonic()
        svc.stop()
        assert time.monotonic() - t0 < 1.0
    assert not _service_threads()


# -- the scripted recogniser alone -----------------------------------------------------------------


def _play(
    script: ScriptedRecognizer, pcm: NDArray[np.int16], sizes: Iterable[int], offset: float = 0.0
) -> list[Hypothesis | Phrase]:
    turn = script.start_turn(TurnInfo(0, 0, "id", offset))
    out: list[Hypothesis | Phrase] = []
    pos = 0
    for size in sizes:
        out.extend(turn.feed(pcm[pos : pos + size]))
        pos += size
    out.extend(turn.feed(pcm[pos:]))
    out.extend(turn.finish())
    return out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20_000), max_size=40))
def test_finals_do_not_depend_on_chunking(sizes: list[int]) -> None:
    script = dialog_script()
    one_shot = [r for r in _play(script, DIALOG_SAMPLES, []) if isinstance(r, Phrase)]
    chunked = [r for r in _play(script, DIALOG_SAMPLES, sizes) if isinstance(r, Phrase)]
    assert chunked == one_shot
    assert [p.text for p in one_shot] == [u["text"] for u in UTTERANCES]


def test_hypotheses_grow_and_finals_wait_for_latency() -> None:
    script = dialog_script(latency=0.5)
    out = _play(script, DIALOG_SAMPLES, [1] * 10 + [160] * 2000)
    first_final = next(i for i, r in enumerate(out) if isinstance(r, Phrase))
    hyps = [r for r in out[:first_final] if isinstance(r, Hypothesis)]
    n_words = len(UTTERANCES[0]["text"].split())
    assert [len(h.text.split()) for h in hyps] == list(range(1, n_words + 1))
    assert hyps[-1].text == "good morning the quarterly report is finally ready"
    # Chunks of 10 ms: the final comes out with the chunk that passes end + latency.
    turn = script.start_turn(TurnInfo(0, 0, "id", 0.0))
    due = UTTERANCES[0]["end_s"] + 0.5
    samples = 0
    while not any(
        isinstance(r, Phrase) for r in turn.feed(DIALOG_SAMPLES[samples : samples + 160])
    ):
        samples += 160
    assert (samples + 160) / RATE == pytest.approx(due, abs=0.011)


def test_turn_offset_skips_acknowledged_phrases() -> None:
    base = _acknowledged(1)
    out = _play(dialog_script(), DIALOG_SAMPLES[round(base * RATE) :], [3200] * 100, offset=base)
    finals = [r for r in out if isinstance(r, Phrase)]
    assert [p.text for p in finals] == [u["text"] for u in UTTERANCES[2:]]
    assert [p.offset for p in finals] == pytest.approx(
        [u["start_s"] - base for u in UTTERANCES[2:]]
    )


def test_audio_ending_inside_a_phrase_cuts_it() -> None:
    cut = 9.0  # inside utterance 2 (7.69 .. 10.15 s)
    out = _play(dialog_script(), DIALOG_SAMPLES[: round(cut * RATE)], [])
    last = [r for r in out if isinstance(r, Phrase)][-1]
    assert UTTERANCES[2]["text"].startswith(last.text)
    assert last.text != UTTERANCES[2]["text"]
    assert last.offset + last.duration == pytest.approx(cut)
    assert all(w.offset < last.offset + last.duration for w in last.words)


@pytest.mark.parametrize("capture", ["A", "B", "C", "D", "E", "G"])
def test_speech_check_flags_every_misread_capture(capture: str) -> None:
    (path,) = CAPTURES.glob(f"{capture}_*/stream.bin")
    raw = path.read_bytes()
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
    spans = [u for u in UTTERANCES if u["end_s"] * RATE <= len(samples)]
    assert spans
    for u in spans:
        assert speech_problem(samples[round(u["start_s"] * RATE) : round(u["end_s"] * RATE)])


def test_speech_check_passes_the_dialog_and_real_pcm_captures() -> None:
    for u in UTTERANCES:
        span = DIALOG_SAMPLES[round(u["start_s"] * RATE) : round(u["end_s"] * RATE)]
        assert speech_problem(span) is None
    # F: Chromium AudioWorklet Int16 (really 44.1 kHz): real audio, so it passes this check.
    raw = next(CAPTURES.glob("F_*/stream.bin")).read_bytes()
    f = np.frombuffer(raw, dtype="<i2")
    assert speech_problem(f[round(0.5 * 44_100) : round(3.5 * 44_100)]) is None
    noise = np.random.default_rng(0).normal(0, 3000, RATE).astype(np.int16)
    assert speech_problem(noise) is not None


def test_explicit_word_timings_and_validation() -> None:
    words = [("Hello", 1.0, 1.3), ("there.", 1.4, 1.9)]
    script = ScriptedRecognizer([ScriptedPhrase("Hello there.", 1.0, 1.9, words=words)])
    (final,) = [r for r in _play(script, DIALOG_SAMPLES, []) if isinstance(r, Phrase)]
    assert final.text == "Hello there."
    assert [w.text for w in final.words] == ["hello", "there"]
    assert [w.offset for w in final.words] == pytest.approx([1.0, 1.4])
    assert [w.duration for w in final.words] == pytest.approx([0.3, 0.5])
    with pytest.raises(ConfigurationError):
        ScriptedPhrase("backwards", 2.0, 1.0)
    with pytest.raises(ConfigurationError):
        ScriptedPhrase("nan", math.nan, 1.0)
    with pytest.raises(ConfigurationError):
        ScriptedPhrase(" ", 0.0, 1.0)


class _Broken:
    def start_turn(self, turn: TurnInfo) -> Any:
        raise RuntimeError("recogniser bug")


def test_a_failing_recognizer_is_recorded_and_closes_1011() -> None:
    with (
        FakeSpeechService(_Broken()) as svc,
        connect(
            svc.host + "/speech/universal/v2",
            subprotocols=["USP"],  # type: ignore[list-item]
            additional_headers={"Authorization": "x"},
        ) as ws,
    ):
        ws.send(_text("speech.context", "g" * 32, {}))
        with pytest.raises(websockets.ConnectionClosedError) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1011
    assert [str(e) for e in svc.errors] == ["recogniser bug"]


def test_faults_can_be_queued_while_running() -> None:
    with FakeSpeechService(faults=[None]) as svc:
        svc.add_faults(Fault.reject_auth(403), None)
        for expected in (None, 403, None):
            url = svc.host + "/speech/universal/v2"
            headers = {"Authorization": "Bearer t"}
            if expected is None:
                with connect(url, subprotocols=["USP"], additional_headers=headers):  # type: ignore[list-item]
                    pass
            else:
                with pytest.raises(websockets.InvalidStatus):
                    connect(url, subprotocols=["USP"], additional_headers=headers)  # type: ignore[list-item]
        assert [c.status for c in svc.connections] == [101, 403, 101]
