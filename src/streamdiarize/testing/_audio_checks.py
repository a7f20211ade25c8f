"""Checks on the audio the service receives: is it speech, and where in a reference is it."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._recognizers import SAMPLE_RATE

__all__ = ["locate", "speech_problem"]

_FRAME = 512  # 32 ms analysis frames
_FULL_SCALE = 32768.0


def speech_problem(
    pcm: NDArray[np.int16],
    *,
    min_level_dbfs: float = -50.0,
    min_loud_fraction: float = 0.2,
    max_flatness: float = 0.1,
) -> str | None:
    """Why ``pcm`` is not speech-level 16 kHz audio, or ``None`` when it looks like speech.

    Two tests on 32 ms frames: enough frames above ``min_level_dbfs`` (speech, not silence),
    and a median spectral flatness of those frames at most ``max_flatness``. Speech is tonal:
    on the espeak dialog of ``tests/data/captures`` every utterance has a median flatness of
    0.001. WebM/Ogg Opus bytes or float32 samples misread as int16 look like loud white noise
    (flatness 0.23–0.56; white noise gives e^-γ ≈ 0.56) at about −5 dBFS RMS.
    """
    if len(pcm) == 0:
        return "no audio was received for this span"
    n = max(1, len(pcm) // _FRAME)
    padded = np.zeros(n * _FRAME, dtype=np.float64)
    take = min(len(pcm), n * _FRAME)
    padded[:take] = pcm[:take]
    frames = padded.reshape(n, _FRAME) / _FULL_SCALE
    power = np.mean(frames**2, axis=1)
    level = 10.0 * np.log10(np.maximum(power, 1e-20))
    loud = level > min_level_dbfs
    if loud.mean() < min_loud_fraction:
        return (
            f"no speech-level energy: {loud.mean():.0%} of 32 ms frames above "
            f"{min_level_dbfs:g} dBFS (peak frame {level.max():.1f} dBFS)"
        )
    voiced = frames[loud]
    voiced = (voiced - voiced.mean(axis=1, keepdims=True)) * np.hanning(_FRAME)
    spectrum = np.abs(np.fft.rfft(voiced, axis=1)[:, 1:]) ** 2 + 1e-20
    flatness = np.exp(np.mean(np.log(spectrum), axis=1)) / np.mean(spectrum, axis=1)
    median = float(np.median(flatness))
    if median > max_flatness:
        return (
            f"audio looks like noise, not speech: median spectral flatness {median:.2f} "
            f"(speech ≈ 0.001, white noise 0.56); were container bytes pushed as PCM?"
        )
    return None


def locate(audio: NDArray[np.int16], reference: NDArray[np.int16]) -> float | None:
    """Where ``audio`` starts in ``reference`` (seconds), by FFT cross-correlation.

    ``None`` when the best match is weak (normalized correlation below 0.5): silence, or
    audio that is not from the reference.
    """
    a = audio.astype(np.float64)
    r = reference.astype(np.float64)
    if not np.any(a) or len(a) > len(r):
        return None
    size = 1 << (len(r) + len(a)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(r, size) * np.conj(np.fft.rfft(a, size)), size)[: len(r)]
    cumulative = np.concatenate(([0.0], np.cumsum(r * r), np.full(len(a), np.sum(r * r))))
    energy = cumulative[len(a) : len(a) + len(r)] - cumulative[: len(r)]  # sliding window
    ncc = corr / np.sqrt(np.maximum(energy, 1e-9) * np.dot(a, a))
    lag = int(np.argmax(ncc))
    return lag / SAMPLE_RATE if ncc[lag] >= 0.5 else None
