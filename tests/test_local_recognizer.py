"""LocalRecognizer: the REAL Azure SDK against FakeSpeechService answering with the local engine.

The reference is the local engine run directly on the same samples, fed as a live stream (one
Whisper call per turn) and keeping its first decisions, as the emulator sends them: the
Azure path (USP framing, ticks, the SDK's result parsing, its offsets) must deliver the same
phrases at the same times, with Azure's names (``Guest-N``, ``en-US``, lexical words), and
the dialog's known speakers and times.
"""

from __future__ import annotations

import asyncio
import json
import re
import wave
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faster_whisper")

import streamdiarize as sd
from streamdiarize.testing import FakeSpeechService, Fault, LocalRecognizer
from streamdiarize.testing._local import guest_id
from streamdiarize.transcribers.local import LocalEngine

pytestmark = pytest.mark.slow  # loads Whisper

CAPTURES = Path(__file__).parent / "data" / "captures"
UTTERANCES = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]
GUESTS = {"spk1": "Guest-1", "spk2": "Guest-2", "spk3": "Guest-3"}
WAV = (CAPTURES / "dialog.wav").read_bytes()
_LEXICAL = re.compile(r"[a-z0-9']+")


def wav_pcm() -> np.ndarray:
    with wave.open(str(CAPTURES / "dialog.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


@pytest.fixture(scope="module")
def reference() -> list[sd.Segment]:
    engine, pcm, segments = LocalEngine(), wav_pcm(), []
    for i in range(0, len(pcm), 1600):  # 100 ms at a time, as audio arrives live
        segments += engine.feed(pcm[i : i + 1600])
    segments += engine.finish()
    return [s for s in segments if not s.revision]  # the emulator sends first decisions


async def transcribe(
    service: FakeSpeechService, data: bytes, *, interim: bool = False
) -> list[sd.Segment]:
    transcriber = sd.AzureTranscriber(["en-US"], host=service.host, key="x", pace_audio=False)
    async with sd.TranscriptionSession(transcriber, interim_results=interim) as session:
        collected = asyncio.create_task(session.segments())
        for i in range(0, len(data), 3200):  # 100 ms of 16 kHz int16 per message
            await session.send(data[i : i + 3200])
        await session.close()
        return await collected


def assert_clean(service: FakeSpeechService) -> None:
    assert not service.audio_problems
    assert not service.errors
    assert not service.protocol_errors


async def test_real_sdk_gets_the_local_engines_transcripts(reference: list[sd.Segment]) -> None:
    with FakeSpeechService(LocalRecognizer()) as service:
        segments = await transcribe(service, WAV)
        assert_clean(service)
    assert all(s.final for s in segments)
    assert [s.text for s in segments] == [r.text for r in reference]
    assert [s.speaker for s in segments] == [guest_id(r.speaker) for r in reference]
    assert [s.speaker for s in segments] == [GUESTS[u["speaker"]] for u in UTTERANCES]
    for segment, ref, utterance in zip(segments, reference, UTTERANCES, strict=True):
        assert segment.language == "en-US"
        assert segment.offset == pytest.approx(ref.offset, abs=0.002)
        assert segment.duration == pytest.approx(ref.duration, abs=0.002)
        assert segment.offset == pytest.approx(utterance["start_s"], abs=0.15)
        assert segment.end == pytest.approx(utterance["end_s"], abs=0.15)
        # Azure's word timings are lexical: lower case, no punctuation.
        assert [w.text for w in segment.words] == [w.text.strip(".,?!").lower() for w in ref.words]
        assert all(_LEXICAL.fullmatch(w.text) for w in segment.words)
        for word, ref_word in zip(segment.words, ref.words, strict=True):
            assert word.offset == pytest.approx(ref_word.offset, abs=0.002)
            assert segment.offset - 0.15 <= word.offset <= word.end <= segment.end + 0.15


async def test_turn_times_survive_a_reconnect() -> None:
    """After a dropped connection the SDK re-sends audio in a new turn that starts mid-stream:
    turn-relative phrase times plus the turn's offset must land where the speech is."""
    with FakeSpeechService(LocalRecognizer(), faults=[Fault.drop(after=8.5)]) as service:
        segments = await transcribe(service, WAV)
        assert_clean(service)
        turns = [(c.index, t.audio_offset) for c in service.connections for t in c.turns]
    assert len(turns) >= 2
    assert turns[-1][1] > 0  # the last turn began inside the stream
    starts = [round(s.offset, 1) for s in segments]
    assert len(segments) == len(UTTERANCES), starts  # nothing lost, nothing twice
    for segment, utterance in zip(segments, UTTERANCES, strict=True):
        assert segment.offset == pytest.approx(utterance["start_s"], abs=0.15)
        assert segment.end == pytest.approx(utterance["end_s"], abs=0.15)
        assert segment.text


async def test_interim_hypotheses_come_before_their_phrase() -> None:
    head = WAV[: 44 + 2 * 7 * 16_000]  # the first two utterances
    with FakeSpeechService(LocalRecognizer(interim=True)) as service:
        segments = await transcribe(service, head, interim=True)
        assert_clean(service)
    finals = [s for s in segments if s.final]
    assert len(finals) == 2
    for final in finals:
        before = segments[: segments.index(final)]
        mine = [s for s in before if not s.final and abs(s.offset - final.offset) < 0.15]
        assert mine, f"no hypothesis before {final.text!r}"
        assert all(s.text for s in mine)


def test_speaker_names_follow_azure() -> None:
    assert guest_id("Speaker 1") == "Guest-1"
    assert guest_id("Speaker 12") == "Guest-12"
    assert guest_id("Unknown") == "Unknown"
    assert guest_id("Speaker x") == "Unknown"


def test_only_the_models_language_can_be_reported() -> None:
    with pytest.raises(sd.ConfigurationError, match="English-only"):
        LocalRecognizer(locale="de-DE")
    assert LocalRecognizer(locale="en-GB").locale == "en-GB"
