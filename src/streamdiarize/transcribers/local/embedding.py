"""GE2E speaker embeddings (Resemblyzer's encoder) as a plain numpy forward pass.

The network is Resemblyzer's ``VoiceEncoder`` (Wan et al., "Generalized End-to-End Loss for
Speaker Verification", 2018): 40-band *power* mel frames (25 ms window, 10 ms hop, 16 kHz) into
a 3-layer LSTM of width 256, the last hidden state through a linear layer, ReLU and L2
normalisation. An utterance is cut into 1.6 s partials; its embedding is the normalised mean of
the partial embeddings. The weights (``ge2e.npz``, Apache-2.0, see ``NOTICE``) were converted from
the Resemblyzer 0.1.4 wheel by ``scripts/convert_resemblyzer.py``; no torch is needed.

The mel front end reproduces ``librosa.feature.melspectrogram`` (Slaney mel scale and area
normalisation, periodic Hann window, centred frames with zero padding) so embeddings match the
reference implementation, not just its idea.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading

import numpy as np
from numpy.typing import NDArray

from ..._exceptions import BackendUnavailableError
from ..._speech_rate import SPEECH_SAMPLE_RATE as SAMPLE_RATE
from ._vectors import l2_normalize

__all__ = [
    "EMBEDDING_SIZE",
    "SAMPLE_RATE",
    "SpeakerEncoder",
    "mel_filterbank",
    "mel_spectrogram",
    "normalize_volume",
    "partial_slices",
]

N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_RATE = 1.3  # partials per second (Resemblyzer's default): a step of 77 frames
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
EMBEDDING_SIZE = 256
_WEIGHTS = "ge2e.npz"
_N_LAYERS = 3

FloatArray = NDArray[np.float32]


def _hz_to_mel(hz: NDArray[np.float64]) -> NDArray[np.float64]:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa ``htk=False``)."""
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    safe = np.maximum(hz, min_log_hz)
    return np.where(hz >= min_log_hz, min_log_mel + np.log(safe / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of :func:`_hz_to_mel`."""
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(
        mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), mel * f_sp
    )


@functools.cache
def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS
) -> FloatArray:
    """Triangular Slaney-normalised mel filters, shape ``(n_mels, n_fft // 2 + 1)``.

    Same construction as ``librosa.filters.mel(sr, n_fft, n_mels)`` with its defaults
    (``fmin=0``, ``fmax=sr/2``, ``htk=False``, ``norm="slaney"``).
    """
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_edges = np.linspace(
        _hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2.0)), n_mels + 2
    )
    hz_edges = _mel_to_hz(mel_edges)
    widths = np.diff(hz_edges)
    ramps = hz_edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]
    result: FloatArray = weights.astype(np.float32)
    result.setflags(write=False)
    return result


@functools.cache
def _hann(n: int) -> FloatArray:
    """Periodic Hann window (``scipy.signal.get_window("hann", n, fftbins=True)``)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def mel_spectrogram(wav: FloatArray) -> FloatArray:
    """Power mel spectrogram, shape ``(frames, 40)``: ``1 + len(wav) // 160`` centred frames.

    Args:
        wav: float32 mono samples at 16 kHz in [-1, 1].
    """
    padded = np.pad(np.asarray(wav, dtype=np.float32), N_FFT // 2)
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(
        padded,
        shape=(n_frames, N_FFT),
        strides=(padded.strides[0] * HOP, padded.strides[0]),
        writeable=False,
    )
    spectrum = np.fft.rfft(frames * _hann(N_FFT), axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    result: FloatArray = power @ mel_filterbank().T
    return result


def normalize_volume(wav: FloatArray, target_dbfs: float = TARGET_DBFS) -> FloatArray:
    """Scale to ``target_dbfs`` RMS (Resemblyzer's training level); silence stays silence.

    The encoder reads linear (not log) mel power, so its output depends on the input level.
    Resemblyzer only raises quiet audio; we also lower loud audio, so one voice gives one
    embedding at any level (raise-only: cosine 0.985 between a clip at -30 and -24 dBFS).
    """
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms <= 1e-7:  # below the int16 quantisation floor: nothing to normalise
        return wav
    gain = np.float32(10.0 ** (target_dbfs / 20.0) / rms)
    result: FloatArray = (wav * gain).astype(np.float32)
    return result


def partial_slices(n_samples: int) -> list[slice]:
    """Mel-frame ranges of the 1.6 s partials covering ``n_samples`` samples.

    Resemblyzer's ``compute_partial_slices`` with its defaults: a step of 77 frames, and a
    last partial kept only when at least 75 % of it is real audio (one is always kept).
    """
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = round(SAMPLE_RATE / PARTIAL_RATE / HOP)
    starts = range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)
    slices = [slice(i, i + PARTIAL_FRAMES) for i in starts]
    last_start = slices[-1].start * HOP
    coverage = (n_samples - last_start) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(slices) > 1:
        slices.pop()
    return slices


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 0.5 + 0.5 * np.tanh(0.5 * x)  # no overflow for large |x|
    return result


class SpeakerEncoder:
    """Turns an utterance into a 256-d L2-normalised speaker embedding (thread-safe, stateless).

    Args:
        weights: arrays named as in PyTorch's ``state_dict`` (``lstm.weight_ih_l0``, …,
            ``linear.bias``); default: the bundled ``ge2e.npz``.
    """

    def __init__(self, weights: dict[str, FloatArray] | None = None) -> None:
        w = weights if weights is not None else _bundled_weights()
        self._w_ih = [np.ascontiguousarray(w[f"lstm.weight_ih_l{k}"].T) for k in range(_N_LAYERS)]
        self._w_hh = [np.ascontiguousarray(w[f"lstm.weight_hh_l{k}"].T) for k in range(_N_LAYERS)]
        self._bias = [w[f"lstm.bias_ih_l{k}"] + w[f"lstm.bias_hh_l{k}"] for k in range(_N_LAYERS)]
        self._linear_w = np.ascontiguousarray(w["linear.weight"].T)
        self._linear_b = w["linear.bias"]

    def embed_mels(self, mels: FloatArray) -> FloatArray:
        """Embeddings of a batch of equal-length mel sequences ``(batch, frames, 40)``.

        Returns:
            ``(batch, 256)`` float32 rows, non-negative and L2-normalised.
        """
        x = np.asarray(mels, dtype=np.float32)
        batch, n_frames, _ = x.shape
        hidden = np.zeros((batch, EMBEDDING_SIZE), dtype=np.float32)
        for layer in range(_N_LAYERS):
            # Input projections for every time step at once; only the recurrence is sequential.
            gates_in = x @ self._w_ih[layer] + self._bias[layer]
            hidden = np.zeros((batch, EMBEDDING_SIZE), dtype=np.float32)
            cell = np.zeros_like(hidden)
            outputs = np.empty((batch, n_frames, EMBEDDING_SIZE), dtype=np.float32)
            for t in range(n_frames):
                gates = gates_in[:, t] + hidden @ self._w_hh[layer]
                i, f, g, o = np.split(gates, 4, axis=1)  # PyTorch's gate order
                cell = _sigmoid(f) * cell + _sigmoid(i) * np.tanh(g)
                hidden = _sigmoid(o) * np.tanh(cell)
                outputs[:, t] = hidden
            x = outputs
        raw = np.maximum(hidden @ self._linear_w + self._linear_b, 0.0)
        return l2_normalize(raw)

    def embed(self, pcm: NDArray[np.int16] | FloatArray) -> FloatArray:
        """Embedding of one utterance (int16, or float32 in [-1, 1], 16 kHz mono).

        The audio is scaled to -30 dBFS RMS, cut into 1.6 s partials (zero-padded at the end),
        and the partial embeddings are averaged and renormalised.
        """
        wav = normalize_volume(_as_float(pcm))  # before padding: the level of the speech
        slices = partial_slices(len(wav))
        needed = slices[-1].stop * HOP
        if needed > len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = mel_spectrogram(wav)
        partials = np.stack([mel[s] for s in slices])
        mean = self.embed_mels(partials).mean(axis=0, keepdims=True)
        result: FloatArray = l2_normalize(mean)[0]
        return result

    def embed_windows(
        self, pcm: NDArray[np.int16] | FloatArray, window: int, hop: int
    ) -> FloatArray:
        """Embeddings of the windows ``[k * hop, k * hop + window)`` that fit in ``pcm``.

        The mel spectrogram is computed once and the windows go through the network as one
        batch. ``window`` and ``hop`` are in samples (multiples of 160 are exact).

        Returns:
            ``(n_windows, 256)`` float32 rows, L2-normalised (no rows when ``pcm`` is shorter
            than one window).
        """
        wav = normalize_volume(_as_float(pcm))
        if len(wav) < window:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        count = (len(wav) - window) // hop + 1
        mel = mel_spectrogram(wav)
        frames, step = window // HOP, hop // HOP
        batch = np.stack([mel[k * step : k * step + frames] for k in range(count)])
        return self.embed_mels(batch)


def _as_float(pcm: NDArray[np.int16] | FloatArray) -> FloatArray:
    if pcm.dtype == np.int16:
        scaled: FloatArray = pcm.astype(np.float32) / np.float32(32768.0)
        return scaled
    return np.asarray(pcm, dtype=np.float32)


_weights_lock = threading.Lock()


@functools.cache
def _load_bundled_weights() -> dict[str, FloatArray]:
    resource = importlib.resources.files(__package__).joinpath(_WEIGHTS)
    try:
        with resource.open("rb") as f, np.load(f) as archive:
            arrays = {name: archive[name].astype(np.float32) for name in archive.files}
    except FileNotFoundError as exc:
        raise BackendUnavailableError(
            f"the speaker-embedding weights {_WEIGHTS} are missing from the streamdiarize "
            "package; reinstall it, or rebuild them with scripts/convert_resemblyzer.py"
        ) from exc
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


def _bundled_weights() -> dict[str, FloatArray]:
    """The shipped GE2E weights, read once per process."""
    with _weights_lock:
        return _load_bundled_weights()
