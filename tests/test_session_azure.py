"""TranscriptionSession + AzureTranscriber + the REAL Azure Speech SDK against FakeSpeechService.

Every browser capture mode goes in as the browser sent it; the emulator checks that what the
SDK forwards is real 16 kHz speech PCM, answers with the scripted phrases, and the session must
yield them with the right speaker, language, text and offsets.
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import streamdiarize as sd
from _feeding import CAPTURES, capture_dir, capture_messages
from streamdiarize.testing import FakeSpeechService, ScriptedPhrase, ScriptedRecognizer
from streamdiarize.transcribers.azure import AzureTranscriber

pytestmark = pytest.mark.slow  # drives the real Azure Speech SDK

SPEAKERS = {"spk1": "Guest-1", "spk2": "Guest-2", "spk3": "Guest-3"}
UTTERANCES = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]


def _meta(letter: str) -> dict[str, object]:
    return json.loads((capture_dir(letter) / "meta.json").read_text())  # type: ignore[no-any-return]


def _mime(letter: str) -> str:
    meta = _meta(letter)
    if meta.get("mimeType"):
        return str(meta["mimeType"])
    encoding = "int16" if "s16" in capture_dir(letter).name else "float32"
    return f"audio/pcm;rate={meta['sampleRate']};encoding={encoding}"


def _script(
    letter: str, language: str = "en-US"
) -> tuple[ScriptedRecognizer, list[ScriptedPhrase]]:
    """The dialog's utterances placed where they sit in this capture (its measured lag)."""
    lag = float(_meta(letter)["verification"]["lag_s"])  # type: ignore[index]
    covered = capture_seconds(letter)
    phrases = [_placed(u, lag, language) for u in UTTERANCES if u["end_s"] + lag <= covered]
    return ScriptedRecognizer(phrases), phrases


def _placed(utterance: dict[str, Any], lag: float, language: str) -> ScriptedPhrase:
    """One utterance of the dialog as a phrase ``lag`` seconds later, in ``language``."""
    return ScriptedPhrase(
        utterance["text"],
        utterance["start_s"] + lag,
        utterance["end_s"] + lag,
        speaker=SPEAKERS[utterance["speaker"]],
        language=language,
    )


def capture_seconds(letter: str) -> float:
    return float(_meta(letter)["reference"]["duration_s"])  # type: ignore[index]


@pytest.fixture
def service() -> Iterator[FakeSpeechService]:
    with FakeSpeechService(ScriptedRecognizer([])) as svc:
        yield svc


async def _transcribe(
    transcriber: sd.Transcriber, messages: list[bytes], mime: str, *, interim: bool = False
) -> list[sd.Segment]:
    async with sd.TranscriptionSession(transcriber, mime=mime, interim_results=interim) as session:
        collected = asyncio.create_task(session.segments())
        for message in messages:
            await session.send(message)
        await session.close()
        return await collected


@pytest.mark.parametrize("letter", ["A", "G", "D", "F"])
async def test_capture_modes_give_the_scripted_segments(letter: str) -> None:
    """WebM/Opus, Ogg/Opus, float32 and int16 frames: speaker, language, text, offsets ±50 ms."""
    recognizer, phrases = _script(letter)
    with FakeSpeechService(recognizer) as svc:
        transcriber = AzureTranscriber(["en-US"], host=svc.host, key="test-key", pace_audio=False)
        segments = await _transcribe(transcriber, capture_messages(letter), _mime(letter))
        assert not svc.audio_problems, svc.audio_problems
    assert [s.text for s in segments] == [p.text for p in phrases]
    for segment, phrase in zip(segments, phrases, strict=True):
        assert segment.final
        assert segment.speaker == phrase.speaker
        assert segment.language == "en-US"
        assert segment.offset == pytest.approx(phrase.start, abs=0.05)
        assert segment.end == pytest.approx(phrase.end, abs=0.05)
        lexical = phrase.text.lower().replace(",", "").replace(".", "").replace("?", "").split()
        assert [w.text for w in segment.words] == lexical  # Azure's words are lexical forms
        assert all(
            phrase.start - 0.05 <= w.offset <= w.end <= phrase.end + 0.05 for w in segment.words
        )


async def test_webm_bytes_pushed_as_pcm_are_caught_by_the_emulator() -> None:
    """The original bug: container bytes pushed as PCM give no text, and the emulator says why."""
    recognizer, _ = _script("A")
    with FakeSpeechService(recognizer) as svc:
        transcriber = AzureTranscriber(["en-US"], host=svc.host, key="test-key", pace_audio=False)
        # Declaring the WebM bytes as raw int16 makes the library push them as PCM, unchanged.
        segments = await _transcribe(
            transcriber, capture_messages("A"), "audio/pcm;rate=16000;encoding=int16"
        )
        assert svc.audio_problems
    assert segments == []


async def test_interim_results_are_opt_in_and_precede_their_final() -> None:
    recognizer, phrases = _script("A")
    with FakeSpeechService(recognizer) as svc:
        transcriber = AzureTranscriber(["en-US"], host=svc.host, key="test-key", pace_audio=False)
        without = await _transcribe(transcriber, capture_messages("A"), _mime("A"))
        with_interim = await _transcribe(
            transcriber, capture_messages("A"), _mime("A"), interim=True
        )
    assert all(s.final for s in without)
    finals = [s for s in with_interim if s.final]
    assert [s.text for s in finals] == [p.text for p in phrases]
    interims = [s for s in with_interim if not s.final]
    assert interims, "no interim hypotheses arrived"
    for interim in interims:
        final = next(s for s in finals if abs(s.offset - interim.offset) < 0.05)
        assert final.text.lower().startswith(interim.text.split()[0].lower())


async def test_language_identification_reports_each_phrase_language() -> None:
    lag = float(_meta("A")["verification"]["lag_s"])  # type: ignore[index]
    languages = ["en-US", "es-ES", "en-US", "es-ES", "en-US"]
    phrases = [_placed(u, lag, lang) for u, lang in zip(UTTERANCES, languages, strict=True)]
    with FakeSpeechService(ScriptedRecognizer(phrases)) as svc:
        transcriber = AzureTranscriber(
            ["en-US", "es-ES"], host=svc.host, key="test-key", pace_audio=False
        )
        segments = await _transcribe(transcriber, capture_messages("A"), _mime("A"))
        context = svc.connections[0].speech_context
    assert [s.language for s in segments] == languages
    assert context is not None
    assert "languageId" in json.dumps(context)


async def test_restart_mid_connection_keeps_offsets_monotonic() -> None:
    """B: MediaRecorder stop()/start() at 10 s; the phrases after it keep their stream times."""
    recognizer, phrases = _script("B")
    with FakeSpeechService(recognizer) as svc:
        transcriber = AzureTranscriber(["en-US"], host=svc.host, key="test-key", pace_audio=False)
        segments = await _transcribe(transcriber, capture_messages("B"), _mime("B"))
    assert [s.text for s in segments] == [p.text for p in phrases]
    offsets = [s.offset for s in segments]
    assert offsets == sorted(offsets)
    # ≈ 40 ms of audio is lost at the restart (see the capture's README): later phrases shift.
    assert segments[-1].offset == pytest.approx(phrases[-1].start - 0.04, abs=0.05)


async def test_close_drains_the_last_phrase() -> None:
    """The last phrase ends 0.3 s before the audio does; close() must wait for it."""
    recognizer, phrases = _script("A")
    with FakeSpeechService(recognizer) as svc:
        transcriber = AzureTranscriber(["en-US"], host=svc.host, key="test-key", pace_audio=False)
        session = sd.TranscriptionSession(transcriber, mime=_mime("A"))
        await session.start()
        for message in capture_messages("A"):
            await session.send(message)
        await session.close()
        segments = [s async for s in session]
    assert segments[-1].text == phrases[-1].text
    assert session.closed
    with pytest.raises(sd.SessionClosedError):
        await session.send(b"more")


def test_repr_and_errors_never_show_the_key(service: FakeSpeechService) -> None:
    secret = "0123456789abcdef0123456789abcdef"
    transcriber = AzureTranscriber(["en-US"], host=service.host, key=secret)
    assert secret not in repr(transcriber)
    assert secret not in repr(transcriber.credentials)
    assert secret not in str(vars(transcriber))


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECH_KEY", "env-key")
    monkeypatch.setenv("SPEECH_REGION", "westeurope")
    transcriber = AzureTranscriber()
    assert transcriber.credentials.key == "env-key"
    assert transcriber.credentials.region == "westeurope"
    monkeypatch.delenv("SPEECH_KEY")
    with pytest.raises(sd.ConfigurationError, match="SPEECH_KEY"):
        AzureTranscriber()


async def test_session_without_async_with(service: FakeSpeechService) -> None:
    transcriber = AzureTranscriber(["en-US"], host=service.host, key="k")
    session = sd.TranscriptionSession(transcriber, mime="audio/pcm;rate=16000;encoding=int16")
    await session.send(np.zeros(1600, dtype=np.int16).tobytes())
    await session.close()
    await session.close()  # idempotent
    assert [s async for s in session] == []


async def test_slow_consumer_makes_send_wait_instead_of_buffering() -> None:
    """Backpressure: with segments piling up unread, send() waits; reading one resumes it."""
    with wave.open(str(CAPTURES / "dialog.wav")) as w:
        dialog = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    length = len(dialog) / 16000
    repeats = 6  # 100 s, 30 phrases: room for a service that lags far behind a loaded machine
    stream = np.tile(dialog, repeats)
    phrases = [
        ScriptedPhrase(u["text"], u["start_s"] + k * length, u["end_s"] + k * length)
        for k in range(repeats)
        for u in UTTERANCES
    ]
    messages = [stream[i : i + 1600].tobytes() for i in range(0, len(stream), 1600)]
    with FakeSpeechService(ScriptedRecognizer(phrases)) as svc:
        transcriber = AzureTranscriber(["en-US"], host=svc.host, key="k", pace_audio=False)
        session = sd.TranscriptionSession(
            transcriber, mime="audio/pcm;rate=16000;encoding=int16", max_pending_segments=2
        )
        await session.start()
        sent = 0
        blocked = None
        while sent < len(messages):  # nobody reads: sending must stall at 2 unread segments
            attempt = asyncio.create_task(session.send(messages[sent]))
            done, _ = await asyncio.wait({attempt}, timeout=1.0)
            if not done:
                blocked = attempt
                break
            sent += 1
        assert blocked is not None, "send() accepted all audio although nothing was read"
        assert session.pending_segments >= 2  # stalled by unread segments, not by the end
        segments = []
        while not blocked.done():  # reading lets send() continue
            segments.append(await asyncio.wait_for(session.__anext__(), 5.0))
            await asyncio.sleep(0)
        assert session.pending_segments < 2

        async def send_rest() -> None:
            for message in messages[sent + 1 :]:
                await session.send(message)
            await session.close()

        sender = asyncio.create_task(send_rest())
        segments += [s async for s in session]
        await sender
    assert [s.text for s in segments] == [p.text for p in phrases]


async def test_send_waiting_when_the_session_closes_gets_a_clear_error(
    service: FakeSpeechService,
) -> None:
    transcriber = AzureTranscriber(["en-US"], host=service.host, key="k", pace_audio=False)
    session = sd.TranscriptionSession(
        transcriber, mime="audio/pcm;rate=16000;encoding=int16", max_pending_segments=1
    )
    await session.start()
    assert session._results is not None
    session._results.put_segment(sd.Segment("Guest-1", "en-US", "unread", 0.0, 1.0))
    waiting = asyncio.create_task(session.send(bytes(3200)))  # waits: one unread segment
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await session.abort()
    with pytest.raises(sd.SessionClosedError):
        await asyncio.wait_for(waiting, 5.0)


def test_credentials_fill_only_their_blanks_from_a_given_environment() -> None:
    environ = {"SPEECH_KEY": "env-key", "SPEECH_REGION": "westeurope"}
    token = sd.AzureCredentials(auth_token="aad#r#t", endpoint="wss://x.example/speech")
    filled = token.with_environment(environ)
    assert (filled.key, filled.region, filled.endpoint) == (None, None, "wss://x.example/speech")
    keyed = sd.AzureCredentials(host="ws://127.0.0.1:9").with_environment(environ)
    assert (keyed.key, keyed.region, keyed.host) == ("env-key", None, "ws://127.0.0.1:9")
    with pytest.raises(sd.ConfigurationError, match="SPEECH_REGION"):
        sd.AzureCredentials(key="k").with_environment({})
    with pytest.raises(sd.ConfigurationError, match="endpoint="):
        sd.AzureCredentials(token_credential=object(), region="westeurope").with_environment({})


def test_an_explicit_location_ignores_location_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECH_KEY", "env-key")
    monkeypatch.setenv("SPEECH_HOST", "ws://127.0.0.1:9")
    monkeypatch.setenv("SPEECH_ENDPOINT", "wss://elsewhere.example/speech")
    transcriber = AzureTranscriber(region="westeurope")
    assert transcriber.credentials.region == "westeurope"
    assert transcriber.credentials.host is None
    assert transcriber.credentials.endpoint is None
    assert transcriber.credentials.key == "env-key"
