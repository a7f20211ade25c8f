"""What a transcriber produces: :class:`Segment` (a phrase) and :class:`Word`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Segment", "Word"]


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its timing (seconds from the start of the client's stream).

    Attributes:
        text: the word as the backend spells it (Azure: the lexical form, lower case).
        offset: start, in seconds from the start of the client's stream.
        duration: length in seconds.
        confidence: the backend's confidence in [0, 1], when it gives one.
    """

    text: str
    offset: float
    duration: float
    confidence: float | None = None

    @property
    def end(self) -> float:
        """``offset + duration``."""
        return self.offset + self.duration


@dataclass(frozen=True, slots=True)
class Segment:
    """One recognised phrase of one speaker.

    Attributes:
        speaker: speaker label: ``"Guest-1"`` (Azure), ``"Speaker 1"`` (local engine), or
            ``"Unknown"`` when the backend has not decided yet.
        language: BCP-47 tag of the detected language (``"en-US"``), or ``None``.
        text: the display text.
        offset: start, in seconds from the start of the client's stream. Monotonic across
            MediaRecorder restarts and service reconnects.
        duration: length in seconds.
        final: ``False`` for an interim hypothesis that a later segment will replace.
        words: word-level timings when the backend gives them.
    """

    speaker: str
    language: str | None
    text: str
    offset: float
    duration: float
    final: bool = True
    words: tuple[Word, ...] = ()

    @property
    def end(self) -> float:
        """``offset + duration``."""
        return self.offset + self.duration
