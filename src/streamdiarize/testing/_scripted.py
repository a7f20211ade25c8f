"""``ScriptedRecognizer``: answers a script of phrases, for audio that is speech where due."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._audio_buffer import AudioBuffer
from .._exceptions import ConfigurationError
from ._audio_checks import locate, speech_problem
from ._recognizers import (
    SAMPLE_RATE,
    Hypothesis,
    Phrase,
    Result,
    TurnInfo,
    TurnRecognizer,
    WordTiming,
)

__all__ = ["ALIGN_SECONDS", "ScriptedPhrase", "ScriptedRecognizer", "lexical_word"]

_PUNCTUATION = re.compile(r"^[^\w']+|[^\w']+$")

#: Seconds of a turn's audio used to locate it in :attr:`ScriptedRecognizer.reference`.
ALIGN_SECONDS = 3.0


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


def lexical_word(token: str) -> str:
    """``token`` as its lexical word: lower case, outer punctuation removed."""
    return _PUNCTUATION.sub("", token).lower()


def _place(phrase: ScriptedPhrase, base: float) -> _Plan:
    start, end = max(phrase.start, base) - base, phrase.end - base
    if phrase.words is not None:
        tokens = tuple(w for w, _, _ in phrase.words)
        words = tuple(
            WordTiming(lexical_word(w), max(s, base) - base, e - max(s, base))
            for w, s, e in phrase.words
            if e > base
        )
        return _Plan(phrase, start, end, tokens[len(tokens) - len(words) :], words)
    tokens = tuple(phrase.text.split())
    weights = np.array([len(lexical_word(t)) + 1 for t in tokens], dtype=np.float64)
    edges = phrase.start + (phrase.end - phrase.start) * np.concatenate(
        ([0.0], np.cumsum(weights) / weights.sum())
    )
    keep = [i for i in range(len(tokens)) if edges[i + 1] > base]
    words = tuple(
        WordTiming(
            lexical_word(tokens[i]), max(edges[i], base) - base, edges[i + 1] - max(edges[i], base)
        )
        for i in keep
    )
    return _Plan(phrase, start, end, tuple(tokens[i] for i in keep), words)


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
