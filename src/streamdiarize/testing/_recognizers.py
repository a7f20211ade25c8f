"""Recognisers for :class:`~streamdiarize.testing.FakeSpeechService`: audio in, phrases out.

A :class:`Recognizer` opens one :class:`TurnRecognizer` per turn (a ``speech.context`` and the
audio after it). The turn recogniser gets the turn's 16 kHz int16 PCM as it arrives and
returns interim :class:`Hypothesis` and final :class:`Phrase` results whose times are seconds
from the start of the turn's audio, as the real service counts them.

The recognisers themselves live in ``_scripted`` (a script of phrases) and ``_local`` (the
offline engine); ``_audio_checks`` tells speech from silence and noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .._speech_rate import SPEECH_SAMPLE_RATE as SAMPLE_RATE

__all__ = [
    "SAMPLE_RATE",
    "Hypothesis",
    "Phrase",
    "Recognizer",
    "Result",
    "TurnInfo",
    "TurnRecognizer",
    "WordTiming",
]


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
