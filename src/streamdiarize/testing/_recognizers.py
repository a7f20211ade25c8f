"""Recognisers for :class:`~streamdiarize.testing.FakeSpeechService`: audio in, phrases out.

A :class:`Recognizer` opens one :class:`TurnRecognizer` per turn (a ``speech.context`` and the
audio after it). The turn recogniser gets the turn's 16 kHz int16 PCM as it arrives and
returns interim :class:`Hypothesis` and final :class:`Phrase` results whose times are seconds
from the start of the turn's audio, as the real service counts them.

:class:`ScriptedRecognizer` plays a script of phrases, but only for audio that is real speech
at the right place: see :func:`speech_problem`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .._audio_buffer import AudioBuffer
from .._exceptions import ConfigurationError

__all__ = [
    "SAMPLE_RATE",
    "Hypothesis",
    "Phrase",
    "Recognizer",
    "Result",
    "ScriptedPhrase",
    "ScriptedRecognizer",
    "TurnInfo",
    "TurnRecognizer",
    "WordTiming",
    "speech_problem",
]

#: The PCM rate the service is fed.
SAMPLE_RATE = 16_000

_FRAME = 512  # 32 ms analysis frames
_FULL_SCALE = 32768.0
_PUNCTUATION = re.compile(r"^[^\w']+|[^\w']+$")


@dataclass(frozen=True, slots=True)
class TurnInfo:
    """What the service knows when a turn starts.

    Attributes:
        connection: index of the connection attempt in ``FakeSpeechService.connections``.
        turn: index of the turn on that connection.
        request_id: the turn's ``X-RequestId``.
        audio_offset: seconds of the client's stream that precede this turn's audio: the
            SDK's ``speakerDiarization.audioOffsetMS``. After a reconnect or a new turn the
            SDK resends the audio after its last acknowledged phrase and sets this to where
            that audio starts.
        speech_context: the ``speech.context`` JSON the client sent.
    """

    connection: int
    turn: int
    request_id: str
    audio_offset: float
    speech_context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WordTiming:
    """One word of a phrase; times are seconds from the start of the turn's audio.

    Attributes:
        text: the word.
        offset: start, in seconds from the start of the turn's audio.
        duration: length in seconds.
    """

    text: str
    offset: float
    duration: float


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """An interim result (``speech.hypothesis``); times in seconds from the turn's start.

    Attributes:
        text: the hypothesis so far.
        offset: start, in seconds from the start of the turn's audio.
        duration: length in seconds.
        speaker: the speaker id sent (``"Guest-1"``, or ``"Unknown"`` while undecided).
        language: the detected locale reported, or ``None``.
    """

    text: str
    offset: float
    duration: float
    speaker: str = "Unknown"
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Phrase:
    """A final result (``speech.phrase``); times in seconds from the turn's start.

    Attributes:
        text: the display text (empty for ``NoMatch``).
        offset: start, in seconds from the start of the turn's audio.
        duration: length in seconds.
        speaker: the speaker id sent (``"Guest-1"``, …, or ``"Unknown"``).
        language: the detected locale reported, or ``None``.
        words: word timings of the detailed result (their texts form its lexical text).
        confidence: the phrase's confidence (per word too, when the client asks for it).
        problem: why the audio was not recognised; the service answers ``NoMatch`` and
            records it in ``FakeSpeechService.audio_problems``.
    """

    text: str
    offset: float
    duration: float
    speaker: str = "Unknown"
    language: str | None = None
    words: tuple[WordTiming, ...] = ()
    confidence: float = 0.9
    problem: str | None = None

    @property
    def status(self) -> str:
        """The ``RecognitionStatus``: ``"Success"``, or ``"NoMatch"`` without text."""
        return "Success" if self.text and self.problem is None else "NoMatch"


Result = Hypothesis | Phrase


class TurnRecognizer(Protocol):
    """Recognises one turn's audio incrementally."""

    def feed(self, pcm: NDArray[np.int16]) -> Sequence[Result]:
        """Take the next samples of the turn; return the results now due, in order."""

    def finish(self) -> Sequence[Result]:
        """End of the turn's audio: return the remaining final results."""


class Recognizer(Protocol):
    """Makes one :class:`TurnRecognizer` per turn; shared by every connection of a service."""

    def start_turn(self, turn: TurnInfo) -> TurnRecognizer:
        """Begin recognising a new turn."""


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


@dataclass(frozen=True, slots=True)
class ScriptedPhrase:
    """One phrase of a script; times are seconds from the start of the client's stream.

    Attributes:
        text: what the service answers for this span.
        start: where the phrase's speech starts in the client's stream, in seconds.
        end: where it ends, in seconds.
        speaker: the speaker id the service reports (``"Guest-1"``, ``"Guest-2"``, …).
        language: the locale reported as detected, or ``None``.
        words: ``(word, start, end)`` triples; by default the words of ``text`` spread over
            ``[start, end]`` in proportion to their length.
    """

    text: str
    start: float
    end: float
    speaker: str = "Guest-1"
    language: str | None = "en-US"
    words: Sequence[tuple[str, float, float]] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or not (
            0.0 <= self.start < self.end
        ):
            raise ConfigurationError(
                f"scripted phrase {self.text!r} needs 0 <= start < end, got "
                f"{self.start}..{self.end}"
            )
        if not self.text.split():
            raise ConfigurationError("a scripted phrase needs text (leave silence unscripted)")


class ScriptedRecognizer:
    """Answers a script of phrases, each once the audio received passes its end.

    While audio inside a phrase arrives, hypotheses grow word by word; ``latency`` seconds of
    audio after its end the phrase is final. At the end of a turn's audio, phrases that began
    in it are final at once (cut to the audio received). Each phrase is checked with
    :func:`speech_problem` on the audio of its span: audio that is not speech gets
    ``NoMatch`` and the reason, and no hypotheses. After a reconnect the script continues
    from the turn's ``audio_offset``: phrases the client acknowledged are not repeated.

    Args:
        phrases: the script, in stream time.
        latency: seconds of audio after a phrase's end before it is final.
        interim: emit hypotheses.
        check_audio: run :func:`speech_problem` (turn off to accept any audio).
        reference: the client's whole stream as 16 kHz int16, when known. A turn that starts
            at audio offset 0 is then located in it by cross-correlating its first
            3 s (``ALIGN_SECONDS``), so a brand-new session that re-sends audio from the middle
            of the stream (a client's own reconnect) is answered from the right place.
    """

    def __init__(
        self,
        phrases: Sequence[ScriptedPhrase],
        *,
        latency: float = 0.3,
        interim: bool = True,
        check_audio: bool = True,
        reference: NDArray[np.int16] | None = None,
    ) -> None:
        self.phrases = tuple(sorted(phrases, key=lambda p: (p.start, p.end)))
        self.latency = latency
        self.interim = interim
        self.check_audio = check_audio
        self.reference = reference

    @classmethod
    def from_utterances(
        cls, utterances: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> ScriptedRecognizer:
        """A script from dicts shaped like the utterances of ``tests/data/captures/dialog.json``.

        Each dict has ``text``, ``start_s``, ``end_s`` and optionally ``speaker`` and
        ``language``; speakers become ``Guest-1``, ``Guest-2``, ... in order of first
        appearance, as Azure names them.
        """
        guests: dict[str, str] = {}
        phrases = []
        for u in utterances:
            speaker = guests.setdefault(str(u.get("speaker", "")), f"Guest-{len(guests) + 1}")
            phrases.append(
                ScriptedPhrase(
                    str(u["text"]),
                    float(u["start_s"]),
                    float(u["end_s"]),
                    speaker=speaker,
                    language=u.get("language", "en-US"),
                )
            )
        return cls(phrases, **kwargs)

    def start_turn(self, turn: TurnInfo) -> TurnRecognizer:
        """Recognise one turn, continuing the script at ``turn.audio_offset``."""
        return _ScriptedTurn(self, turn.audio_offset)


@dataclass(slots=True)
class _Plan:
    """A scripted phrase placed on a turn's timeline (seconds from the turn's start)."""

    phrase: ScriptedPhrase
    start: float
    end: float
    tokens: tuple[str, ...]  # display tokens, one per word
    words: tuple[WordTiming, ...]
    words_sent: int = 0


def _lexical(token: str) -> str:
    return _PUNCTUATION.sub("", token).lower()


def _place(phrase: ScriptedPhrase, base: float) -> _Plan:
    start, end = max(phrase.start, base) - base, phrase.end - base
    if phrase.words is not None:
        tokens = tuple(w for w, _, _ in phrase.words)
        words = tuple(
            WordTiming(_lexical(w), max(s, base) - base, e - max(s, base))
            for w, s, e in phrase.words
            if e > base
        )
        return _Plan(phrase, start, end, tokens[len(tokens) - len(words) :], words)
    tokens = tuple(phrase.text.split())
    weights = np.array([len(_lexical(t)) + 1 for t in tokens], dtype=np.float64)
    edges = phrase.start + (phrase.end - phrase.start) * np.concatenate(
        ([0.0], np.cumsum(weights) / weights.sum())
    )
    keep = [i for i in range(len(tokens)) if edges[i + 1] > base]
    words = tuple(
        WordTiming(
            _lexical(tokens[i]), max(edges[i], base) - base, edges[i + 1] - max(edges[i], base)
        )
        for i in keep
    )
    return _Plan(phrase, start, end, tuple(tokens[i] for i in keep), words)


#: Seconds of a turn's audio used to locate it in :attr:`ScriptedRecognizer.reference`.
ALIGN_SECONDS = 3.0


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


class _ScriptedTurn:
    """One turn of a :class:`ScriptedRecognizer`."""

    def __init__(self, script: ScriptedRecognizer, base: float) -> None:
        self._script = script
        self._audio = AudioBuffer()
        self._pending: list[_Plan] | None = None
        if script.reference is None or base > 0:
            self._place(base)

    def _place(self, base: float) -> None:
        # Phrases the client acknowledged before this turn (end <= base) are done.
        self._pending = [_place(p, base) for p in self._script.phrases if p.end > base + 1e-3]

    def feed(self, pcm: NDArray[np.int16]) -> Sequence[Result]:
        self._audio.append(pcm)
        return self._advance(at_end=False)

    def finish(self) -> Sequence[Result]:
        return self._advance(at_end=True)

    def _align(self, at_end: bool) -> None:
        """Place the script once enough audio arrived to find it in the reference."""
        reference = self._script.reference
        assert reference is not None
        if self._audio.end < ALIGN_SECONDS * SAMPLE_RATE and not at_end:
            return
        head = self._audio.slice(0, round(ALIGN_SECONDS * SAMPLE_RATE))
        self._place(locate(head, reference) or 0.0)

    def _advance(self, *, at_end: bool) -> list[Result]:
        if self._pending is None:
            self._align(at_end)
            if self._pending is None:
                return []
        now = self._audio.end / SAMPLE_RATE
        out: list[Result] = []
        for plan in list(self._pending):
            if now >= plan.end + self._script.latency or (at_end and now > plan.start):
                out.append(self._final(plan, now))
                self._pending.remove(plan)
            elif at_end:
                self._pending.remove(plan)  # never heard: nothing to say
            elif self._script.interim and now > plan.start:
                hypothesis = self._hypothesis(plan, now)
                if hypothesis is not None:
                    out.append(hypothesis)
        return out

    def _problem(self, start: float, end: float) -> str | None:
        if not self._script.check_audio:
            return None
        pcm = self._audio.slice(round(start * SAMPLE_RATE), round(end * SAMPLE_RATE))
        return speech_problem(pcm)

    def _hypothesis(self, plan: _Plan, now: float) -> Hypothesis | None:
        heard = sum(1 for w in plan.words if w.offset + w.duration <= now)
        if heard <= plan.words_sent:
            return None
        end = plan.words[heard - 1].offset + plan.words[heard - 1].duration
        if self._problem(plan.start, end) is not None:
            return None
        plan.words_sent = heard
        p = plan.phrase
        text = " ".join(w.text for w in plan.words[:heard])
        return Hypothesis(text, plan.start, end - plan.start, p.speaker, p.language)

    def _final(self, plan: _Plan, now: float) -> Phrase:
        p = plan.phrase
        end = min(plan.end, now)
        problem = self._problem(plan.start, end)
        if problem is not None:
            return Phrase("", plan.start, end - plan.start, p.speaker, p.language, problem=problem)
        if end >= plan.end:
            text, words = p.text, plan.words
        else:  # audio ended inside the phrase: keep the words that began in it
            kept = [i for i, w in enumerate(plan.words) if w.offset < end]
            text = " ".join(plan.tokens[i] for i in kept)
            words = tuple(
                WordTiming(w.text, w.offset, min(w.duration, end - w.offset))
                for w in plan.words[: len(kept)]
            )
        return Phrase(text, plan.start, end - plan.start, p.speaker, p.language, words)
