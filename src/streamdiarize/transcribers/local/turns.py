"""Finished speaker turns waiting for Whisper, and which of the words it hears are theirs.

Whisper hears a little audio around a turn (padding at a pause, a look-ahead at a cut), so
its words are given to the turn their middle falls in, and a turn that begins at a cut gives
up a start that repeats the end of the turn before. Pure functions on sample positions: no
model, no audio.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

from ...segment import Word

__all__ = ["ClosedTurn", "assign_words", "drop_repeated_start"]

_MAX_REPEAT = 3  # words: the most two Whisper calls around one cut are seen to share


@dataclass(frozen=True, slots=True)
class ClosedTurn:
    """A finished turn ``[start, end)`` in samples.

    Attributes:
        after_cut: it begins where the previous turn was cut (a change of speaker or the
            utterance length limit), not at a pause: the audio before it is someone's speech.
        cut: it ends at such a cut.
    """

    start: int
    end: int
    after_cut: bool = False
    cut: bool = False


def assign_words(
    words: Sequence[Word], turns: Sequence[ClosedTurn], rate: int
) -> list[tuple[Word, ...]]:
    """The words of each turn: by where the word's middle falls.

    A word centred between two turns goes to the nearer one. A word before the first turn or
    after the last goes to it when that edge is a pause (the padding Whisper heard there is
    the turn's own breath and tail), and is dropped when the edge is a cut (it is the
    neighbouring turn's speech, transcribed with that turn).
    """
    shares: list[list[Word]] = [[] for _ in turns]
    if not turns:
        return []
    first, last = turns[0], turns[-1]
    for word in words:
        middle = (word.offset + word.duration / 2) * rate
        if middle < first.start:
            if not first.after_cut:
                shares[0].append(word)
            continue
        if middle >= last.end:
            if not last.cut:
                shares[-1].append(word)
            continue
        distances = [
            0.0 if t.start <= middle < t.end else min(abs(middle - t.start), abs(middle - t.end))
            for t in turns
        ]
        shares[distances.index(min(distances))].append(word)
    return [tuple(share) for share in shares]


def drop_repeated_start(words: Sequence[Word], before: Sequence[Word]) -> tuple[Word, ...]:
    """``words`` without a start that repeats the end of ``before`` (up to three words).

    Two Whisper calls meet at a cut, each hearing a little of the other side: when both kept
    the same word(s) there, the later turn gives them up. Compared as lower-case text without
    punctuation; the longest repeat wins.
    """
    said = [_bare(w.text) for w in words]
    heard = [_bare(w.text) for w in before]
    for k in range(min(_MAX_REPEAT, len(said), len(heard)), 0, -1):
        if said[:k] == heard[-k:]:
            return tuple(words[k:])
    return tuple(words)


def _bare(text: str) -> str:
    return text.strip().strip(string.punctuation).lower()
