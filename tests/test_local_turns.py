"""Grouping finished turns for one Whisper call, and sharing its words out among them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamdiarize.segment import Word
from streamdiarize.transcribers.local.turns import ClosedTurn, assign_words

RATE = 100  # samples per second: positions read as centiseconds


def word(text: str, start: float, end: float) -> Word:
    return Word(text, start, end - start)


def test_words_go_to_the_turn_their_middle_falls_in() -> None:
    turns = [ClosedTurn(100, 300, cut=True), ClosedTurn(300, 500, after_cut=True)]
    words = [word("a", 1.0, 1.5), word("b", 2.6, 3.2), word("c", 3.3, 4.0), word("d", 4.6, 5.6)]
    first, second = assign_words(words, turns, RATE)
    assert [w.text for w in first] == ["a", "b"]  # b is centred at 2.9 s, before the cut
    assert [w.text for w in second] == ["c", "d"]  # d is centred at 5.1 s: the tail's pad


def test_words_beyond_a_cut_edge_belong_to_the_neighbour() -> None:
    """Whisper heard past the cuts; those words are the other turns' and are dropped."""
    turns = [ClosedTurn(100, 300, after_cut=True, cut=True)]
    words = [word("before", 0.5, 0.9), word("in", 1.2, 2.0), word("after", 3.1, 3.5)]
    assert [[w.text for w in share] for share in assign_words(words, turns, RATE)] == [["in"]]


def test_a_word_between_two_turns_goes_to_the_nearer() -> None:
    turns = [ClosedTurn(0, 200), ClosedTurn(400, 600)]
    words = [word("x", 2.1, 2.3), word("y", 3.7, 3.9)]
    first, second = assign_words(words, turns, RATE)
    assert [w.text for w in first] == ["x"]
    assert [w.text for w in second] == ["y"]


@given(
    st.lists(st.tuples(st.floats(0, 1), st.floats(0.01, 1)), max_size=40),
    st.lists(st.integers(10, 200), min_size=1, max_size=6),
    st.booleans(),
    st.booleans(),
)
def test_no_word_is_given_twice_and_order_is_kept(
    spans: list[tuple[float, float]], lengths: list[int], head_cut: bool, tail_cut: bool
) -> None:
    turns, at = [], 50
    for k, n in enumerate(lengths):
        turns.append(
            ClosedTurn(
                at, at + n, after_cut=head_cut and k == 0, cut=tail_cut and k == len(lengths) - 1
            )
        )
        at += n
    # Whisper's words follow each other: each starts at or after the end of the one before.
    words, clock = [], 0.0
    for i, (gap, duration) in enumerate(spans):
        words.append(word(str(i), clock + gap, clock + gap + duration))
        clock += gap + duration
    shares = assign_words(words, turns, RATE)
    given_out = [w for share in shares for w in share]
    assert len(given_out) == len({id(w) for w in given_out})
    assert sorted(given_out, key=lambda w: w.offset) == given_out  # turn order = time order
    if not head_cut and not tail_cut:
        assert len(given_out) == len(words)  # with pauses at both edges nothing is dropped
