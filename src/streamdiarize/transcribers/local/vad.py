"""Streaming voice activity detection: Silero VAD v6 frames turned into utterance boundaries.

Two layers, both sans-I/O (``feed(...) -> list[event]``, no threads, no clocks):

* :class:`SileroVad` runs the ONNX model bundled with faster-whisper on 32 ms windows (512
  samples at 16 kHz, each preceded by the previous window's last 64 samples as context; the
  LSTM state ``h``/``c`` carries over). It returns one speech probability per window.
* :class:`UtteranceSegmenter` turns probabilities into :class:`SpeechStarted` and
  :class:`SpeechEnded` events with hysteresis (start above ``threshold``, end after
  ``min_silence`` below ``neg_threshold``), drops blips shorter than ``min_speech``, and cuts
  speech longer than ``max_utterance`` at its last pause (or hard, when there is none).

:class:`VoiceActivityDetector` chains the two. Event positions are sample indices counted
from the first sample fed, unpadded: callers add their own padding.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..._exceptions import BackendUnavailableError, ConfigurationError
from ..._speech_rate import SPEECH_SAMPLE_RATE as SAMPLE_RATE

__all__ = [
    "CONTEXT",
    "WINDOW",
    "SileroVad",
    "SpeechEnded",
    "SpeechStarted",
    "UtteranceSegmenter",
    "VadEvent",
    "VadOptions",
    "VoiceActivityDetector",
]

WINDOW = 512  # samples per model step (32 ms); fixed by Silero for 16 kHz
CONTEXT = 64  # samples of the previous window the model sees before each window
_STATE_SHAPE = (1, 1, 128)
_MIN_CUT_PAUSE = 3  # windows (96 ms): a pause this long is a good place for a max-length cut


@dataclass(frozen=True, slots=True)
class VadOptions:
    """How speech probabilities become utterances.

    Attributes:
        threshold: a window at or above this probability is speech.
        neg_threshold: below this a window is silence; in between keeps the current state
            (hysteresis). ``None``: ``threshold - 0.15``.
        min_silence: seconds of silence that end an utterance (the end-of-speech hangover).
        min_speech: utterances with less speech than this (seconds) are dropped as noise.
        max_utterance: speech longer than this (seconds) is cut, at its last pause when it
            has one.
        speech_pad: seconds of audio kept around each utterance by consumers (must be
            shorter than ``min_silence`` so the padding has arrived when the end is known).
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_silence: float = 0.5
    min_speech: float = 0.25
    max_utterance: float = 15.0
    speech_pad: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigurationError(f"VAD threshold must be in (0, 1), got {self.threshold}")
        if not 0.0 <= self.negative_threshold <= self.threshold:
            raise ConfigurationError(
                f"VAD neg_threshold must be in [0, threshold={self.threshold}], "
                f"got {self.neg_threshold}"
            )
        if self.min_silence <= 0 or self.min_speech < 0:
            raise ConfigurationError("VAD min_silence must be > 0 and min_speech >= 0 seconds")
        if self.max_utterance < 1.0:
            raise ConfigurationError(
                f"VAD max_utterance must be at least 1 second, got {self.max_utterance}"
            )
        if not 0.0 <= self.speech_pad < self.min_silence:
            raise ConfigurationError(
                f"VAD speech_pad ({self.speech_pad}) must be >= 0 and shorter than "
                f"min_silence ({self.min_silence})"
            )

    @property
    def negative_threshold(self) -> float:
        """The effective silence threshold."""
        if self.neg_threshold is None:
            return max(self.threshold - 0.15, 0.01)
        return self.neg_threshold


class VadEvent:
    """Base of the segmenter's events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SpeechStarted(VadEvent):
    """Speech lasting at least ``min_speech`` began at sample ``start`` (an utterance opens)."""

    start: int


@dataclass(frozen=True, slots=True)
class SpeechEnded(VadEvent):
    """The open utterance spans samples ``[start, end)``.

    ``cut`` is True when it ended by the ``max_utterance`` limit; speech then goes on, and a
    :class:`SpeechStarted` at ``end`` follows at once.
    """

    start: int
    end: int
    cut: bool = False


class UtteranceSegmenter:
    """Hysteresis state machine over per-window speech probabilities (pure, no model).

    Feed probabilities with :meth:`feed`; call :meth:`flush` at end of stream to close an
    utterance still open.
    """

    def __init__(self, options: VadOptions | None = None, *, window: int = WINDOW) -> None:
        self.options = options or VadOptions()
        self._window = window
        to_windows = SAMPLE_RATE / window
        self._min_silence = max(1, round(self.options.min_silence * to_windows))
        self._min_speech = round(self.options.min_speech * to_windows)
        self._max_len = max(2, int(self.options.max_utterance * to_windows))  # never longer
        self._neg = self.options.negative_threshold
        self._index = 0  # windows seen
        self._start: int | None = None  # window where the current speech run began
        self._confirmed = False  # SpeechStarted emitted for the current run
        self._silence_start: int | None = None  # first window of the current pause
        self._cut_at: int | None = None  # middle of the latest pause of >= 96 ms

    @property
    def position(self) -> int:
        """Samples analysed so far."""
        return self._index * self._window

    @property
    def pending_start(self) -> int | None:
        """Start sample of the speech being tracked (confirmed or not), else ``None``.

        Audio from here on may still become part of an utterance.
        """
        return None if self._start is None else self._start * self._window

    def feed(self, probabilities: NDArray[np.float32]) -> list[VadEvent]:
        """Advance by one window per probability; return the events they complete."""
        events: list[VadEvent] = []
        for p in np.asarray(probabilities, dtype=np.float32).tolist():
            self._step(p, events)
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: close the open utterance (if it has enough speech). Idempotent."""
        events: list[VadEvent] = []
        if self._start is not None:
            end = self._silence_start if self._silence_start is not None else self._index
            self._close(end, events)
        return events

    def _step(self, p: float, events: list[VadEvent]) -> None:
        i = self._index
        self._index += 1
        if self._start is None:
            if p >= self.options.threshold:
                self._start, self._confirmed = i, False
                self._silence_start = self._cut_at = None
                self._confirm(i + 1, events)
            return
        if p >= self.options.threshold:
            self._end_pause(i)
        elif p < self._neg and self._silence_start is None:
            self._silence_start = i
        if self._silence_start is not None and i + 1 - self._silence_start >= self._min_silence:
            self._close(self._silence_start, events)
            return
        self._confirm(i + 1 if self._silence_start is None else self._silence_start, events)
        if self._confirmed and i + 1 - self._start >= self._max_len:
            self._cut(i + 1, events)

    def _end_pause(self, i: int) -> None:
        """Speech resumes at window ``i``: remember a long enough pause as a cut point."""
        if self._silence_start is not None and i - self._silence_start >= _MIN_CUT_PAUSE:
            self._cut_at = (self._silence_start + i) // 2
        self._silence_start = None

    def _confirm(self, speech_end: int, events: list[VadEvent]) -> None:
        assert self._start is not None
        if not self._confirmed and speech_end - self._start >= max(1, self._min_speech):
            self._confirmed = True
            events.append(SpeechStarted(self._start * self._window))

    def _close(self, end: int, events: list[VadEvent]) -> None:
        assert self._start is not None
        self._confirm(end, events)
        if self._confirmed:
            events.append(SpeechEnded(self._start * self._window, end * self._window))
        self._start = self._silence_start = self._cut_at = None
        self._confirmed = False

    def _cut(self, now: int, events: list[VadEvent]) -> None:
        """Split at the latest pause, or hard at ``now``, and keep the speech going."""
        assert self._start is not None
        if self._silence_start is not None and now - self._silence_start >= _MIN_CUT_PAUSE:
            self._cut_at = (self._silence_start + now) // 2
        cut = self._cut_at if self._cut_at is not None and self._cut_at > self._start else now
        events.append(SpeechEnded(self._start * self._window, cut * self._window, cut=True))
        events.append(SpeechStarted(cut * self._window))
        self._start, self._cut_at = cut, None
        if self._silence_start is not None and self._silence_start < cut:
            self._silence_start = cut


@functools.cache
def _shared_session() -> Any:
    """One ONNX Runtime session per process; ``run`` is thread-safe, state lives in callers."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(
            "the local engine needs onnxruntime: pip install 'streamdiarize[local]'"
        ) from exc
    try:
        assets = importlib.resources.files("faster_whisper").joinpath("assets")
        model = assets.joinpath("silero_vad_v6.onnx").read_bytes()
    except (ImportError, FileNotFoundError) as exc:
        raise BackendUnavailableError(
            "the Silero VAD model ships with faster-whisper, which is missing: "
            "pip install 'streamdiarize[local]'"
        ) from exc
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return onnxruntime.InferenceSession(
        model, providers=["CPUExecutionProvider"], sess_options=opts
    )


_session_lock = threading.Lock()


class SileroVad:
    """Silero VAD v6 over a stream: int16 samples in, one probability per 512-sample window.

    Samples that do not fill a window wait for the next call; :meth:`flush` pads them.
    """

    def __init__(self) -> None:
        with _session_lock:
            self._session = _shared_session()
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def feed(self, pcm: NDArray[np.int16]) -> NDArray[np.float32]:
        """Probabilities of every window completed by ``pcm`` (possibly none)."""
        samples = np.concatenate([self._pending, pcm.astype(np.float32) / np.float32(32768.0)])
        n = len(samples) // WINDOW * WINDOW
        self._pending = samples[n:]
        return self._run(samples[:n])

    def flush(self) -> NDArray[np.float32]:
        """Zero-pad and score the last partial window, if any."""
        if not len(self._pending):
            return np.zeros(0, dtype=np.float32)
        padded = np.pad(self._pending, (0, WINDOW - len(self._pending)))
        self._pending = self._pending[:0]
        return self._run(padded)

    def _run(self, samples: NDArray[np.float32]) -> NDArray[np.float32]:
        if not len(samples):
            return np.zeros(0, dtype=np.float32)
        windows = samples.reshape(-1, WINDOW)
        contexts = np.concatenate([self._context[None, :], windows[:-1, -CONTEXT:]])
        self._context = windows[-1, -CONTEXT:].copy()
        batch = np.concatenate([contexts, windows], axis=1)
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        return np.asarray(probs, dtype=np.float32).reshape(-1)


class VoiceActivityDetector:
    """Silero probabilities and the segmenter together: ``feed(pcm) -> list[VadEvent]``."""

    def __init__(self, options: VadOptions | None = None) -> None:
        self.options = options or VadOptions()
        self._model = SileroVad()
        self._segmenter = UtteranceSegmenter(self.options)
        self._speech = np.zeros(0, dtype=bool)  # recent windows at or above the threshold
        self._speech_first = 0  # index of the window in self._speech[0]

    @property
    def pending_start(self) -> int | None:
        """Start sample of speech that may still become (part of) an utterance, else None."""
        return self._segmenter.pending_start

    @property
    def position(self) -> int:
        """Samples analysed so far (a multiple of 512 until :meth:`flush`)."""
        return self._segmenter.position

    def feed(self, pcm: NDArray[np.int16]) -> list[VadEvent]:
        """Analyse ``pcm`` (any length, may be empty) and return the events it completes."""
        return self._segment(self._model.feed(pcm))

    def flush(self) -> list[VadEvent]:
        """End of stream: score the tail and close the open utterance."""
        return self._segment(self._model.flush()) + self._segmenter.flush()

    def speech_fraction(self, start: int, end: int) -> float:
        """Share of the analysed windows in samples ``[start, end)`` that are speech."""
        first = max(start // WINDOW - self._speech_first, 0)
        last = max(-(-end // WINDOW) - self._speech_first, 0)
        windows = self._speech[first:last]
        return float(windows.mean()) if len(windows) else 0.0

    def discard_before(self, sample: int) -> None:
        """Forget speech flags before ``sample`` (bounds memory like the audio buffer)."""
        drop = min(max(sample // WINDOW - self._speech_first, 0), len(self._speech))
        if drop:
            self._speech = self._speech[drop:]
            self._speech_first += drop

    def _segment(self, probabilities: NDArray[np.float32]) -> list[VadEvent]:
        self._speech = np.concatenate([self._speech, probabilities >= self.options.threshold])
        return self._segmenter.feed(probabilities)
