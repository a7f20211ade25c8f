"""LocalEngine end to end: real Silero VAD, Whisper tiny.en and GE2E on real audio.

Accuracy measured here (Whisper tiny.en, greedy): WER 39-45 % on dialog.wav, whose voices
(espeak-ng en-us+f4 and en-gb-scotland+m1 at 155-165 wpm, resampled from 48 kHz) are hard
for the smallest Whisper; 0-10 % on a plain espeak-ng en-us voice at 140 wpm. The dialog test
therefore bounds WER at 50 % (anything broken in the audio path gives 80-100 %) and the clean
voice test at 15 %. Speaker labels and times are exact on both.
"""

from __future__ import annotations

import io
import itertools
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faster_whisper")
jiwer = pytest.importorskip("jiwer")
pytestmark = pytest.mark.slow  # loads Whisper

from _feeding import dialog  # noqa: E402
from streamdiarize import BackendUnavailableError, ConfigurationError, SessionClosedError  # noqa: E402
from streamdiarize.segment import Segment  # noqa: E402
from streamdiarize.transcribers.local import (  # noqa: E402
    LocalEngine,
    LocalSettings,
    VadOptions,
    recognize,
)
from streamdiarize.transcribers.local.asr import WhisperRecognizer, encoded_frames  # noqa: E402
from streamdiarize.transcribers.local.engine import _LOOKAHEAD  # noqa: E402
from streamdiarize.transcribers.local.metrics import normalize_text  # noqa: E402

RATE = 16_000


def stream(engine: LocalEngine, pcm: np.ndarray, sizes: list[int]) -> list[Segment]:
    out: list[Segment] = []
    pos, k = 0, 0
    while pos < len(pcm):
        n = sizes[k % len(sizes)]
        out += engine.feed(pcm[pos : pos + n])
        pos, k = pos + n, k + 1
    return out + engine.finish()


def wer(reference: list[str], segments: list[Segment]) -> float:
    return float(
        jiwer.wer(
            normalize_text(" ".join(reference)), normalize_text(" ".join(s.text for s in segments))
        )
    )


@pytest.fixture(scope="module")
def dialog_result() -> list[Segment]:
    return stream(LocalEngine(), dialog()[0], [1600])


def test_dialog_turns_speakers_and_times(dialog_result: list[Segment]) -> None:
    _, utterances = dialog()
    assert len(dialog_result) == len(utterances) == 5
    assert all(s.final for s in dialog_result)
    # spk1 spk2 spk3 spk1 spk2: labels numbered by first appearance, stable across turns.
    assert [s.speaker for s in dialog_result] == [
        "Speaker 1",
        "Speaker 2",
        "Speaker 3",
        "Speaker 1",
        "Speaker 2",
    ]
    for segment, utterance in zip(dialog_result, utterances, strict=True):
        assert segment.language == "en"
        assert abs(segment.offset - float(utterance["start_s"])) <= 0.15  # type: ignore[arg-type]
        assert abs(segment.end - float(utterance["end_s"])) <= 0.15  # type: ignore[arg-type]
        assert segment.words, "word timestamps"
        starts = [w.offset for w in segment.words]
        assert starts == sorted(starts)
        assert segment.offset - 0.11 <= starts[0]
        assert segment.words[-1].end <= segment.end + 0.11
        assert " ".join(w.text for w in segment.words).split() == segment.text.split()


def test_dialog_wer_within_the_measured_bound(dialog_result: list[Segment]) -> None:
    _, utterances = dialog()
    assert wer([str(u["text"]) for u in utterances], dialog_result) <= 0.5


def test_results_do_not_depend_on_chunking(dialog_result: list[Segment]) -> None:
    pcm = dialog()[0]
    assert stream(LocalEngine(), pcm, [4999, 1, 0, 320, 16000]) == dialog_result
    assert stream(LocalEngine(), pcm, [len(pcm)]) == dialog_result  # a whole file at once


@pytest.mark.parametrize(
    ("seconds", "frames"),
    [(0, 1000), (1.0, 1000), (9.98, 1000), (10.0, 1500), (12, 1500), (29, 3000), (40, 3000)],
)
def test_the_encoder_reads_the_utterance_rounded_up_not_a_padded_30_s(
    seconds: float, frames: int
) -> None:
    assert encoded_frames(round(seconds * 16_000)) == frames


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_clean_voice_is_transcribed_accurately() -> None:
    import soxr

    texts = [
        "Good morning everyone, thanks for joining the call today.",
        "Can you send me the slides before the meeting on Friday?",
    ]
    parts = [np.zeros(RATE // 2, dtype=np.float32)]
    for text in texts:
        out = subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "140", "--stdout", text],
            check=True,
            capture_output=True,
        ).stdout
        with wave.open(io.BytesIO(out)) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
            rate = w.getframerate()
        parts += [
            soxr.resample(x / 32768, rate, RATE).astype(np.float32),
            np.zeros(RATE, dtype=np.float32),
        ]
    pcm = (np.concatenate(parts) * 32767 * 0.7).astype(np.int16)
    segments = recognize(pcm)
    assert len(segments) == 2
    assert {s.speaker for s in segments} == {"Speaker 1"}
    assert wer(texts, segments) <= 0.15


def test_interim_hypotheses_precede_each_final() -> None:
    pcm, _ = dialog()
    engine = LocalEngine(LocalSettings(interim_interval=1.0), interim_results=True)
    events: list[tuple[int, Segment]] = []
    for i in range(0, 8 * RATE, 1600):
        events += [(i + 1600, s) for s in engine.feed(pcm[i : i + 1600])]
    interim = [(at, s) for at, s in events if not s.final]
    finals = [s for _, s in events if s.final]
    assert len(finals) == 2
    assert len(interim) >= 3
    for at, s in interim:
        assert s.speaker == "Unknown"
        assert s.text
        assert s.words == ()
        owner = next(f for f in finals if abs(f.offset - s.offset) < 1e-9)
        assert at / RATE <= owner.end + 0.6  # before its final (VAD hangover 0.5 s)
    times = [at for at, s in interim]
    same_utterance = [
        (a, b) for (a, sa), (b, sb) in itertools.pairwise(interim) if sa.offset == sb.offset
    ]
    assert all(b - a >= RATE for a, b in same_utterance), times
    # Interim text grows towards the final one.
    assert len(interim[-1][1].text) >= len(interim[0][1].text) // 2


def test_max_utterance_cuts_long_speech_and_bounds_memory() -> None:
    pcm, _ = dialog()
    vad = VadOptions(max_utterance=1.5)
    engine = LocalEngine(LocalSettings(vad=vad))
    segments: list[Segment] = []
    peak = 0
    for i in range(0, len(pcm), 1600):
        segments += engine.feed(pcm[i : i + 1600])
        peak = max(peak, engine.buffered_samples)
    segments += engine.finish()
    assert len(segments) >= 9
    assert all(s.duration <= 1.5 + 1e-9 for s in segments)
    # the turn, its padding, and the look-ahead Whisper hears past a cut
    assert peak <= (1.5 + vad.speech_pad + _LOOKAHEAD) * RATE + 1600 + 512


def test_silence_gives_nothing_and_the_engine_closes() -> None:
    engine = LocalEngine()
    assert engine.feed(np.zeros(3 * RATE, dtype=np.int16)) == []
    assert engine.feed(np.zeros(0, dtype=np.int16)) == []
    assert engine.finish() == []
    assert engine.finish() == []
    assert engine.samples_fed == 3 * RATE
    with pytest.raises(SessionClosedError):
        engine.feed(np.zeros(10, dtype=np.int16))


@pytest.mark.parametrize(
    "bad", [np.zeros(10, dtype=np.float32), np.zeros((10, 2), dtype=np.int16), b"\x00\x00"]
)
def test_feed_checks_its_input(bad: object) -> None:
    with pytest.raises(TypeError, match="int16"):
        LocalEngine().feed(bad)  # type: ignore[arg-type]


def test_english_only_model_refuses_other_languages() -> None:
    with pytest.raises(ConfigurationError, match="English-only"):
        WhisperRecognizer(language="de")
    assert WhisperRecognizer(language=None).language == "en"


def test_unusable_model_directory(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="cannot load the Whisper model"):
        WhisperRecognizer(tmp_path)


def test_missing_faster_whisper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'streamdiarize\[local\]'"):
        WhisperRecognizer(cpu_threads=3)  # settings not loaded yet in this process
