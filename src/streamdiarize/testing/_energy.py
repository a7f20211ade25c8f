"""``EnergyRecognizer``: what the emulator answers in a live demo (``serve --engine fake``).

A :class:`~streamdiarize.testing.Recognizer` like the scripted and local ones, so it lives
beside them rather than in the server.

It is not speech recognition. It marks where the audio has speech-level energy and tells
voices apart by their median pitch, so the whole path (browser capture, decoding, the real
Azure SDK, diarized results on the page) can be seen working with no key and no model. The
page labels the engine as an emulator; phrases read like ``[speech 2.4 s · -21 dBFS · 182 Hz]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .._speech_rate import SPEECH_SAMPLE_RATE as _RATE
from ._recognizers import Hypothesis, Phrase, TurnInfo

__all__ = ["EnergyRecognizer"]

_FRAME = 512  # 32 ms
_FRAME_SECONDS = _FRAME / _RATE
_MIN_LAG, _MAX_LAG = _RATE // 400, _RATE // 60  # pitch search range 60-400 Hz
_UNKNOWN = "Unknown"


def frame_levels(frames: NDArray[np.float64]) -> NDArray[np.float64]:
    """RMS level in dBFS of each row of ``frames`` (samples scaled to [-1, 1])."""
    power = np.mean(frames**2, axis=1)
    levels: NDArray[np.float64] = 10.0 * np.log10(np.maximum(power, 1e-12))
    return levels


def median_pitch(frames: NDArray[np.float64], *, min_strength: float = 0.4) -> float | None:
    """Median fundamental frequency (Hz) of the periodic rows of ``frames``, or ``None``.

    Autocorrelation through the FFT, all frames at once; a frame counts when its best lag in
    60-400 Hz keeps ``min_strength`` of the frame's energy.
    """
    if len(frames) == 0:
        return None
    centred = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=2 * _FRAME, axis=1)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :_FRAME]
    window = autocorr[:, _MIN_LAG:_MAX_LAG]
    lags = _MIN_LAG + np.argmax(window, axis=1)
    energy = np.maximum(autocorr[:, 0], 1e-12)
    strength = autocorr[np.arange(len(frames)), lags] / energy
    periodic = strength >= min_strength
    if np.count_nonzero(periodic) < 3:
        return None
    return float(np.median(_RATE / lags[periodic]))


class EnergyRecognizer:
    """A :class:`~streamdiarize.testing.Recognizer` that reports speech spans, not words.

    Args:
        threshold_dbfs: a 32 ms frame above this level is speech.
        hangover: seconds below the threshold that end a phrase.
        min_speech: shorter phrases are dropped (clicks, bumps).
        max_phrase: a phrase is cut after this many seconds.
        interim_every: seconds between interim hypotheses inside a phrase.
        semitones: pitch distance within which a phrase joins a known voice.
    """

    def __init__(
        self,
        *,
        threshold_dbfs: float = -45.0,
        hangover: float = 0.5,
        min_speech: float = 0.25,
        max_phrase: float = 15.0,
        interim_every: float = 0.5,
        semitones: float = 1.8,
    ) -> None:
        self.threshold_dbfs = threshold_dbfs
        self.hangover = hangover
        self.min_speech = min_speech
        self.max_phrase = max_phrase
        self.interim_every = interim_every
        self.semitones = semitones
        self._voices: list[tuple[float, int]] = []  # (mean log2 pitch, phrases) per Guest-N

    def start_turn(self, turn: TurnInfo) -> _EnergyTurn:
        """Recognise one turn (voices are shared by every turn and connection)."""
        return _EnergyTurn(self)

    def speaker_for(self, pitch: float | None) -> str:
        """``Guest-N`` for the known voice nearest ``pitch``, or a new one; ``Unknown``
        without a pitch."""
        if pitch is None:
            return _UNKNOWN
        octave = float(np.log2(pitch))
        if self._voices:
            means = np.array([mean for mean, _ in self._voices])
            best = int(np.argmin(np.abs(means - octave)))
            if abs(means[best] - octave) * 12.0 <= self.semitones:
                mean, count = self._voices[best]
                self._voices[best] = ((mean * count + octave) / (count + 1), count + 1)
                return f"Guest-{best + 1}"
        self._voices.append((octave, 1))
        return f"Guest-{len(self._voices)}"


class _EnergyTurn:
    """One turn of an :class:`EnergyRecognizer`: a level gate with hangover, frame by frame."""

    def __init__(self, recognizer: EnergyRecognizer) -> None:
        self._r = recognizer
        self._carry: NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self._frames_done = 0
        self._start: float | None = None
        self._last_voiced = 0.0
        self._last_interim = 0.0
        self._voiced: list[NDArray[np.float64]] = []
        self._voiced_levels: list[float] = []

    def feed(self, pcm: NDArray[np.int16]) -> Sequence[Hypothesis | Phrase]:
        data = np.concatenate((self._carry, pcm)) if self._carry.size else pcm
        count = len(data) // _FRAME
        self._carry = data[count * _FRAME :].copy()
        if count == 0:
            return []
        frames = data[: count * _FRAME].reshape(count, _FRAME).astype(np.float64) / 32768.0
        levels = frame_levels(frames)
        out: list[Hypothesis | Phrase] = []
        for index in range(count):  # per 32 ms frame: a tiny state machine
            now = (self._frames_done + index) * _FRAME_SECONDS
            result = self._step(now, frames[index], float(levels[index]))
            if result is not None:
                out.append(result)
        self._frames_done += count
        return out

    def finish(self) -> Sequence[Hypothesis | Phrase]:
        phrase = self._end_phrase()
        return [] if phrase is None else [phrase]

    def _step(
        self, now: float, frame: NDArray[np.float64], level: float
    ) -> Hypothesis | Phrase | None:
        voiced = level > self._r.threshold_dbfs
        if self._start is None:
            if not voiced:
                return None
            self._start = self._last_interim = now
        if voiced:
            self._last_voiced = now
            self._voiced.append(frame)
            self._voiced_levels.append(level)
        if now - self._last_voiced >= self._r.hangover or now - self._start >= self._r.max_phrase:
            return self._end_phrase()
        if now - self._last_interim >= self._r.interim_every:
            self._last_interim = now
            length = now - self._start
            return Hypothesis(f"[speech {length:.1f} s …]", self._start, length, _UNKNOWN)
        return None

    def _end_phrase(self) -> Phrase | None:
        start, self._start = self._start, None
        voiced, self._voiced = self._voiced, []
        levels, self._voiced_levels = self._voiced_levels, []
        if start is None:
            return None
        length = self._last_voiced + _FRAME_SECONDS - start
        if length < self._r.min_speech:
            return None
        pitch = median_pitch(np.stack(voiced)) if voiced else None
        level = 10.0 * np.log10(np.mean(np.power(10.0, np.array(levels) / 10.0)))
        text = f"[speech {length:.1f} s · {level:.0f} dBFS"
        text += f" · {pitch:.0f} Hz]" if pitch is not None else "]"
        return Phrase(text, start, length, self._r.speaker_for(pitch))
