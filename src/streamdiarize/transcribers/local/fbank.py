"""Kaldi-compatible log mel filterbank features in numpy (``compute-fbank-feats``' defaults).

This is the front end the Kaldi-style speaker networks (CAM++, WeSpeaker, ECAPA from
3D-Speaker) are trained on, as computed by ``torchaudio.compliance.kaldi.fbank`` and
``kaldi-native-fbank``: 25 ms frames every 10 ms with ``snip_edges`` (only whole frames), no
dither, per-frame DC removal, pre-emphasis 0.97, Povey window, a 512-point power spectrum and
triangular filters on Kaldi's mel scale (``1127 ln(1 + f / 700)``) between 20 Hz and Nyquist,
then the natural log floored at float32 epsilon. All frames are computed in one vectorised pass.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

from ..._speech_rate import SPEECH_SAMPLE_RATE as SAMPLE_RATE

__all__ = [
    "FRAME_LENGTH",
    "FRAME_SHIFT",
    "N_MELS",
    "SAMPLE_RATE",
    "fbank",
    "kaldi_mel_filterbank",
    "num_frames",
]

FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
N_FFT = 512  # the frame rounded up to a power of two
N_MELS = 80
LOW_FREQ = 20.0
PREEMPHASIS = 0.97
_LOG_FLOOR = float(np.finfo(np.float32).eps)

FloatArray = NDArray[np.float32]


def num_frames(n_samples: int) -> int:
    """Frames Kaldi makes from ``n_samples`` with ``snip_edges``: whole 25 ms frames only."""
    return 0 if n_samples < FRAME_LENGTH else 1 + (n_samples - FRAME_LENGTH) // FRAME_SHIFT


def _kaldi_mel(hz: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1127.0 * np.log1p(hz / 700.0)


@functools.cache
def kaldi_mel_filterbank(
    n_mels: int = N_MELS, low_freq: float = LOW_FREQ, high_freq: float = SAMPLE_RATE / 2
) -> FloatArray:
    """Kaldi's triangular mel filters, shape ``(n_mels, N_FFT // 2 + 1)``.

    Triangles are linear in mel (not Hz) and unnormalised, as in Kaldi's ``MelBanks``; the
    Nyquist bin gets no weight.
    """
    mel_low, mel_high = _kaldi_mel(np.array(low_freq)), _kaldi_mel(np.array(high_freq))
    delta = (mel_high - mel_low) / (n_mels + 1)
    left = mel_low + delta * np.arange(n_mels)[:, None]
    center, right = left + delta, left + 2 * delta
    bin_hz = np.arange(N_FFT // 2, dtype=np.float64) * (SAMPLE_RATE / N_FFT)
    mel = _kaldi_mel(bin_hz)[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    weights = np.where((mel > left) & (mel < right), np.minimum(up, down), 0.0)
    weights = np.pad(weights, ((0, 0), (0, 1)))  # the Nyquist bin
    result: FloatArray = weights.astype(np.float32)
    result.setflags(write=False)
    return result


@functools.cache
def _povey_window() -> FloatArray:
    """Kaldi's default window: a Hann window (symmetric) raised to the power 0.85."""
    n = np.arange(FRAME_LENGTH)
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / (FRAME_LENGTH - 1))) ** 0.85
    result: FloatArray = window.astype(np.float32)
    result.setflags(write=False)
    return result


def fbank(wav: NDArray[np.floating] | NDArray[np.int16]) -> FloatArray:
    """Log mel filterbank energies, shape ``(num_frames(len(wav)), 80)``, float32.

    Args:
        wav: mono 16 kHz samples, any scale (CAM++ was trained on floats in [-1, 1]; the scale
            only shifts every value by the same log gain, which mean normalisation removes).
    """
    x = np.asarray(wav, dtype=np.float32)
    n = num_frames(len(x))
    if n == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME_LENGTH)[::FRAME_SHIFT][:n]
    frames = frames - frames.mean(axis=1, keepdims=True)
    # Pre-emphasis, Kaldi style: the first sample is scaled by 1 - 0.97, not left alone.
    previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    emphasised = (frames - np.float32(PREEMPHASIS) * previous) * _povey_window()
    spectrum = np.fft.rfft(emphasised, n=N_FFT, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    energies = power @ kaldi_mel_filterbank().T
    result: FloatArray = np.log(np.maximum(energies, np.float32(_LOG_FLOOR)))
    return result
