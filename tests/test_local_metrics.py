"""DER and text normalisation used by the local engine's benchmark and tests.

``tests/data/local/der_pyannote.json`` holds random cases scored by pyannote.metrics 4.2.0
(``scripts/make_der_reference.py``): our implementation must agree with it.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdiarize.segment import Segment
from streamdiarize.transcribers.local.metrics import (
    Turn,
    diarization_error,
    merge_turns,
    normalize_text,
    optimal_assignment,
    turns_from_segments,
)

CASES = json.loads((Path(__file__).parent / "data" / "local" / "der_pyannote.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_matches_pyannote_metrics(case: dict[str, object]) -> None:
    ref = [Turn(str(s), float(a), float(b)) for s, a, b in case["reference"]]  # type: ignore[attr-defined]
    hyp = [Turn(str(s), float(a), float(b)) for s, a, b in case["hypothesis"]]  # type: ignore[attr-defined]
    e = diarization_error(ref, hyp, collar=float(case["collar"]))  # type: ignore[arg-type]
    assert e.total == pytest.approx(case["total"], abs=1e-9)
    assert e.missed == pytest.approx(case["missed"], abs=1e-9)
    assert e.false_alarm == pytest.approx(case["false_alarm"], abs=1e-9)
    assert e.confusion == pytest.approx(case["confusion"], abs=1e-9)


def test_hand_computed_case() -> None:
    ref = [Turn("a", 0, 10), Turn("b", 10, 20)]
    # b's label is right for 10-15, then a wrong speaker for 15-18, silence 18-20, extra 20-22.
    hyp = [Turn("x", 0, 10), Turn("y", 10, 15), Turn("x", 15, 18), Turn("y", 20, 22)]
    e = diarization_error(ref, hyp, collar=0.0)
    assert (e.total, e.missed, e.false_alarm, e.confusion) == (20, 2, 2, 3)
    assert e.rate == pytest.approx(7 / 20)
    # With a 0.25 s collar, 0.5 s around 0, 10 and 20 (0.25 outside the ends) is not scored.
    c = diarization_error(ref, hyp, collar=0.25)
    assert c.total == pytest.approx(20 - 0.25 - 0.5 - 0.25)
    assert (c.missed, c.false_alarm, c.confusion) == pytest.approx((1.75, 1.75, 3))


def test_overlapping_speech_counts_per_speaker() -> None:
    ref = [Turn("a", 0, 4), Turn("b", 2, 6)]
    e = diarization_error(ref, [Turn("x", 0, 6)], collar=0.0)
    assert (e.total, e.missed, e.false_alarm, e.confusion) == (8, 2, 0, 2)


turn_lists = st.lists(
    st.tuples(st.sampled_from("abcd"), st.floats(0, 20), st.floats(0.05, 5)).map(
        lambda t: Turn(t[0], t[1], t[1] + t[2])
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(turn_lists, st.sampled_from([0.0, 0.25]))
def test_perfect_hypothesis_under_any_renaming(ref: list[Turn], collar: float) -> None:
    renamed = [Turn(t.speaker.upper() + "!", t.start, t.end) for t in ref]
    e = diarization_error(ref, renamed, collar=collar)
    assert e.missed + e.false_alarm + e.confusion == pytest.approx(0, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(turn_lists, turn_lists)
def test_errors_are_bounded_and_empty_hypothesis_misses_everything(
    ref: list[Turn], hyp: list[Turn]
) -> None:
    e = diarization_error(ref, hyp, collar=0.0)
    assert min(e.missed, e.false_alarm, e.confusion) >= -1e-9
    assert e.missed + e.confusion <= e.total + 1e-9
    empty = diarization_error(ref, [], collar=0.0)
    assert empty.missed == pytest.approx(empty.total)
    assert empty.confusion == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 5), st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_assignment_is_optimal(n: int, m: int, seed: int) -> None:
    gain = np.random.default_rng(seed).random((n, m)).round(2)
    rows, cols = optimal_assignment(gain)
    assert len(set(rows.tolist())) == len(rows) == len(set(cols.tolist())) == min(n, m)
    best = _brute_force(gain)
    assert gain[rows, cols].sum() == pytest.approx(best)


def _brute_force(gain: np.ndarray) -> float:
    n, m = gain.shape
    if n <= m:
        return max(
            (sum(gain[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n)),
            default=0.0,
        )
    return max(
        (sum(gain[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m)),
        default=0.0,
    )


def test_merge_turns_joins_a_speakers_overlaps_only() -> None:
    merged = merge_turns(
        [Turn("a", 0, 2), Turn("a", 1, 3), Turn("a", 3, 4), Turn("b", 1, 2), Turn("a", 5, 6)]
    )
    assert merged == [Turn("a", 0, 4), Turn("a", 5, 6), Turn("b", 1, 2)]


def test_turns_from_segments_ignore_interim() -> None:
    segments = [
        Segment("S1", "en", "hi", 1.0, 0.5),
        Segment("Unknown", "en", "h", 2.0, 0.2, final=False),
    ]
    assert turns_from_segments(segments) == [Turn("S1", 1.0, 1.5)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Good morning, the quarterly report is ready.",
            "good morning the quarterly report is ready",
        ),
        ("It's the on-the-roff edition!", "it's the on the roff edition"),
        ("  'Quoted'  —  words ", "quoted words"),
        ("", ""),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected
