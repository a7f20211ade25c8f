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
        revision: 0 when a final segment is first published; ``n > 0`` for a correction
            that replaces the final segment with the same ``offset`` (the local engine
            relabels a recent turn's speaker once later speech shows who it was; text and
            times do not change). Interim segments and Azure's results are always 0.
    """

    speaker: str
    language: str | None
    text: str
    offset: float
    duration: float
    final: bool = True
    words: tuple[Word, ...] = ()
    revision: int = 0

    @property
    def end(self) -> float:
        """``offset + duration``."""
        return self.offset + self.duration
