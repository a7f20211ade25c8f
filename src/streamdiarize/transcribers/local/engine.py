"""The local engine as a plain synchronous object: PCM in, :class:`~streamdiarize.Segment` out.

:class:`LocalEngine` chains voice activity detection, Whisper and speaker clustering for one
stream. It has no threads and no asyncio: :class:`~.transcriber.LocalTranscriber` drives it
from a worker thread, and anything else that wants transcripts from PCM (the Azure protocol
emulator, a batch job) can call it directly::

    engine = LocalEngine()
    for chunk in chunks:                 # int16, 16 kHz mono, any length
        for segment in engine.feed(chunk):
            print(segment.speaker, segment.text)
    remaining = engine.finish()          # the last utterance

Each utterance is transcribed when the VAD closes it (``min_silence`` after its speech, or at
the ``max_utterance`` cut). ``offset``/``duration`` of a final segment are the VAD's speech
bounds in the stream; word times come from Whisper's alignment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..._audio_buffer import AudioBuffer
from ..._exceptions import ConfigurationError, SessionClosedError
from ...segment import Segment, Word
from .asr import DEFAULT_BEAM_SIZE, WhisperRecognizer
from .clustering import DEFAULT_THRESHOLD, SpeakerClustering
from .embedding import SpeakerEncoder
from .vad import SpeechEnded, SpeechStarted, VadEvent, VadOptions, VoiceActivityDetector

__all__ = ["UNKNOWN_SPEAKER", "LocalEngine", "LocalSettings", "recognize"]

SAMPLE_RATE = 16_000
#: Speaker label of interim hypotheses (the speaker is decided when the utterance ends).
UNKNOWN_SPEAKER = "Unknown"


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """Everything that configures the local engine (shared by every stream of a transcriber).

    Attributes:
        model: CTranslate2 Whisper model directory; ``None``: bundled ``tiny.en``.
        language: language to transcribe (``tiny.en``: only ``"en"``); ``None`` lets a
            multilingual model detect it per utterance.
        beam_size: Whisper beam width (1: greedy).
        compute_type: CTranslate2 quantisation.
        cpu_threads: CTranslate2 threads (0: one per available core).
        vad: utterance segmentation.
        speaker_threshold: cosine similarity needed to join a known speaker.
        max_speakers: cap on distinct speakers (``None``: no cap).
        interim_interval: seconds of new audio between two interim hypotheses.
    """

    model: str | os.PathLike[str] | None = None
    language: str | None = "en"
    beam_size: int = DEFAULT_BEAM_SIZE
    compute_type: str = "int8"
    cpu_threads: int = 0
    vad: VadOptions = field(default_factory=VadOptions)
    speaker_threshold: float = DEFAULT_THRESHOLD
    max_speakers: int | None = None
    interim_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.interim_interval <= 0:
            raise ConfigurationError(
                f"interim_interval must be > 0 seconds, got {self.interim_interval}"
            )
        # Validate the clustering arguments now, not when the first session opens.
        SpeakerClustering(self.speaker_threshold, max_speakers=self.max_speakers)


class LocalEngine:
    """VAD → Whisper → speaker embedding → clustering, for one stream (not thread-safe).

    Args:
        settings: engine configuration; the Whisper model is loaded once per process.
        interim_results: also return non-final hypotheses of the growing utterance, at most
            one per ``settings.interim_interval`` seconds of new audio and per :meth:`feed`.

    Raises:
        BackendUnavailableError: faster-whisper, onnxruntime or a model is missing.
    """

    def __init__(
        self, settings: LocalSettings | None = None, *, interim_results: bool = False
    ) -> None:
        self.settings = settings or LocalSettings()
        s = self.settings
        self._asr = WhisperRecognizer(
            s.model,
            language=s.language,
            beam_size=s.beam_size,
            compute_type=s.compute_type,
            cpu_threads=s.cpu_threads,
        )
        self._encoder = SpeakerEncoder()
        self._vad = VoiceActivityDetector(s.vad)
        self._clusters = SpeakerClustering(s.speaker_threshold, max_speakers=s.max_speakers)
        self._interim = interim_results
        self._interim_step = round(s.interim_interval * SAMPLE_RATE)
        self._pad = round(s.vad.speech_pad * SAMPLE_RATE)
        self._min_speech = round(s.vad.min_speech * SAMPLE_RATE)
        self._buffer = AudioBuffer(SAMPLE_RATE * 4)
        self._utterance: int | None = None  # start sample of the open utterance
        self._after_cut = False  # the open utterance began at a max-length cut
        self._last_interim = 0  # buffer end at the last interim hypothesis
        self._finished = False

    @property
    def samples_fed(self) -> int:
        """Samples received so far (the stream's clock)."""
        return self._buffer.end

    @property
    def buffered_samples(self) -> int:
        """Samples held for the open utterance: at most ``max_utterance`` plus padding."""
        return self._buffer.end - self._buffer.start

    def feed(self, pcm: NDArray[np.int16]) -> list[Segment]:
        """Take the next samples (int16, 16 kHz mono, any length) and return new segments.

        Raises:
            TypeError: ``pcm`` is not a 1-D int16 array.
            SessionClosedError: called after :meth:`finish`.
        """
        if self._finished:
            raise SessionClosedError("the local engine has finished; start a new one")
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError("feed() takes a 1-D numpy int16 array of 16 kHz mono samples")
        self._buffer.append(pcm)
        segments = self._handle(self._vad.feed(pcm))
        if (
            self._interim
            and self._utterance is not None
            and self._buffer.end - self._last_interim >= self._interim_step
        ):
            segments.extend(self._interim_hypothesis())
        self._discard_old_audio()
        return segments

    def finish(self) -> list[Segment]:
        """End of stream: transcribe the open utterance and return its segment(s). Idempotent."""
        if self._finished:
            return []
        self._finished = True
        return self._handle(self._vad.flush())

    def _handle(self, events: list[VadEvent]) -> list[Segment]:
        segments: list[Segment] = []
        for event in events:
            if isinstance(event, SpeechStarted):
                self._utterance = event.start
                self._last_interim = self._buffer.end
            elif isinstance(event, SpeechEnded):
                segment = self._final(event)
                if segment is not None:
                    segments.append(segment)
                self._utterance = None
                self._after_cut = event.cut
        return segments

    def _final(self, event: SpeechEnded) -> Segment | None:
        end = min(event.end, self._buffer.end)
        if end - event.start < self._min_speech:
            return None  # the sliver left after a max-length cut
        first = event.start if self._after_cut else event.start - self._pad
        last = end if event.cut else end + self._pad
        audio = self._buffer.slice(first, last)
        origin = max(first, self._buffer.start) / SAMPLE_RATE
        result = self._asr.transcribe(_to_float(audio))
        if not result.text:
            return None
        speech = self._buffer.slice(event.start, end)
        speaker = self._speaker(speech)
        limit = len(audio) / SAMPLE_RATE
        words = tuple(
            Word(
                w.text,
                origin + min(w.start, limit),
                max(0.0, min(w.end, limit) - min(w.start, limit)),
                w.probability,
            )
            for w in result.words
        )
        return Segment(
            speaker=speaker,
            language=result.language,
            text=result.text,
            offset=event.start / SAMPLE_RATE,
            duration=(end - event.start) / SAMPLE_RATE,
            final=True,
            words=words,
        )

    def _speaker(self, speech: NDArray[np.int16]) -> str:
        embedding = self._encoder.embed(speech)
        try:
            index = self._clusters.assign(embedding, len(speech) / SAMPLE_RATE)
        except ValueError:  # an all-zero embedding carries no voice
            return UNKNOWN_SPEAKER
        return f"Speaker {index + 1}"

    def _interim_hypothesis(self) -> list[Segment]:
        assert self._utterance is not None
        self._last_interim = self._buffer.end
        first = self._utterance if self._after_cut else self._utterance - self._pad
        audio = self._buffer.slice(first, self._buffer.end)
        result = self._asr.transcribe(_to_float(audio), word_timestamps=False)
        if not result.text:
            return []
        return [
            Segment(
                speaker=UNKNOWN_SPEAKER,
                language=result.language,
                text=result.text,
                offset=self._utterance / SAMPLE_RATE,
                duration=(self._buffer.end - self._utterance) / SAMPLE_RATE,
                final=False,
            )
        ]

    def _discard_old_audio(self) -> None:
        """Keep only what an utterance may still need: bounded by ``max_utterance``."""
        anchor = self._utterance
        if anchor is None:
            anchor = self._vad.pending_start
        if anchor is None:
            anchor = self._vad.position
        self._buffer.discard_before(anchor - self._pad)


def recognize(pcm: NDArray[np.int16], settings: LocalSettings | None = None) -> list[Segment]:
    """Transcribe a whole recording at once: the final segments of ``LocalEngine`` over it."""
    engine = LocalEngine(settings)
    return engine.feed(pcm) + engine.finish()


def _to_float(pcm: NDArray[np.int16]) -> NDArray[np.float32]:
    result: NDArray[np.float32] = pcm.astype(np.float32) / np.float32(32768.0)
    return result
