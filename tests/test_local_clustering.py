"""Session-wide speaker clustering: the rules, on vectors whose geometry is known."""

from __future__ import annotations

import numpy as np
import pytest

from streamdiarize import ConfigurationError
from streamdiarize.transcribers.local.clustering import SpeakerClustering


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float64)
    return v / np.linalg.norm(v)


def labels_of(c: SpeakerClustering, pieces: list[tuple[np.ndarray, float]]) -> list[int]:
    return [c.add(v, d).label for v, d in pieces]


def test_speakers_are_numbered_in_order_of_appearance() -> None:
    c = SpeakerClustering(0.8)
    a, b = unit(1, 0, 0), unit(0, 1, 0)
    assert labels_of(c, [(a, 2.0), (b, 2.0), (a, 2.0), (unit(0.95, 0.1, 0), 2.0), (b, 2.0)]) == [
        0,
        1,
        0,
        0,
        1,
    ]
    assert c.n_speakers == 2
    assert c.labels == {0: 0, 1: 1, 2: 0, 3: 0, 4: 1}


def test_an_early_merge_is_revised_when_the_second_voice_is_heard_more() -> None:
    """B's first turn is near enough to A to merge; B's later turns pull it away."""
    c = SpeakerClustering(0.7)
    a, b_first, b = unit(1, 0), unit(0.72, 0.694), unit(0.3, 0.954)
    assert c.add(a, 2.0).label == 0
    assert c.add(b_first, 2.0).label == 0  # cos 0.72: one speaker, for now
    third = c.add(b, 2.0)
    assert third.label == 1
    assert third.revised == {1: 1}  # B's first turn moves to B; A keeps "Speaker 1"
    assert c.labels == {0: 0, 1: 1, 2: 1}
    again = c.add(a, 2.0)
    assert (again.label, again.revised) == (0, {})  # stable once settled


def test_min_speakers_splits_the_closest_voices() -> None:
    c = SpeakerClustering(0.5, min_speakers=2)
    assert labels_of(c, [(unit(1, 0.1), 2.0), (unit(1, 0.3), 2.0)]) == [0, 1]
    third = c.add(unit(1, 0.28), 2.0)
    assert third.label == 1
    assert not third.revised


def test_max_speakers_caps_the_count() -> None:
    c = SpeakerClustering(0.9, max_speakers=2)
    labels = labels_of(c, [(unit(1, 0, 0), 2.0), (unit(0, 1, 0), 2.0), (unit(0.2, 0.3, 1), 2.0)])
    assert labels[:2] == [0, 1]
    assert c.n_speakers == 2
    assert set(c.labels.values()) == {0, 1}


def test_short_pieces_take_the_nearest_voice_and_keep_it() -> None:
    c = SpeakerClustering(0.9, min_duration=1.0)
    assert c.add(unit(1, 0), 2.0).label == 0
    short = c.add(unit(0, 1), 0.5)
    assert short.label == 0
    assert c.n_speakers == 1
    later = c.add(unit(0, 1), 2.0)
    assert later.label == 1
    assert later.revised == {}  # the short piece is not revised


def test_a_first_short_piece_still_gets_speaker_one() -> None:
    assert SpeakerClustering().add(unit(1, 2, 3), 0.3).label == 0


def test_old_pieces_fold_into_anchors_that_keep_the_label() -> None:
    c = SpeakerClustering(0.8, horizon=3)
    a, b = unit(1, 0), unit(0, 1)
    assert labels_of(c, [(a, 2.0), (b, 2.0)] + [(b, 2.0)] * 6) == [0] + [1] * 7
    assert sorted(c.labels) == [5, 6, 7]  # only the horizon may be revised
    assert c.add(a, 2.0).label == 0  # A returns after long: still Speaker 1


def test_a_long_session_stays_bounded_and_consistent() -> None:
    rng = np.random.default_rng(7)
    voices = [unit(*rng.normal(size=16)) for _ in range(3)]
    c = SpeakerClustering(0.6, horizon=20)
    truth, got = [], []
    for _ in range(150):
        who = int(rng.integers(3))
        noisy = voices[who] + rng.normal(scale=0.05, size=16)
        truth.append(who)
        got.append(c.add(noisy, float(rng.uniform(1.0, 4.0))).label)
    assert c.n_speakers == 3
    assert len(c.labels) == 20
    pairs = set(zip(truth, got, strict=True))
    assert len(pairs) == 3  # one label per voice, for all 150 turns


def test_zero_embedding_is_refused() -> None:
    with pytest.raises(ValueError, match="non-zero"):
        SpeakerClustering().add(np.zeros(4, dtype=np.float32), 1.0)


@pytest.mark.parametrize(
    ("threshold", "min_speakers", "max_speakers"),
    [(1.0, None, None), (-1.0, None, None), (0.5, None, 0), (0.5, 0, None), (0.5, 3, 2)],
)
def test_bad_settings(threshold: float, min_speakers: int | None, max_speakers: int | None) -> None:
    with pytest.raises(ConfigurationError):
        SpeakerClustering(threshold, min_speakers=min_speakers, max_speakers=max_speakers)


def test_a_borderline_short_cluster_joins_the_voice_its_residual_points_to() -> None:
    """All voices share a channel (axis 0): a short piece just below the threshold with A is
    A once the session's mean is taken out; a piece unlike anyone still opens a speaker."""
    c = SpeakerClustering(0.8, noise_seconds=0.0)
    a, b = unit(0.8, 0.6, 0, 0, 0), unit(0.8, 0, 0.6, 0, 0)
    assert labels_of(c, [(a, 3.0), (b, 3.0)] * 3) == [0, 1] * 3  # cos(a, b) = 0.64: two voices
    borderline = unit(0.8, 0.25, 0, 0.55, 0)
    assert float(borderline @ a) < 0.8  # alone, the raw threshold would make it a third voice
    assert c.add(borderline, 1.5).label == 0
    assert c.add(unit(0, 0, 0, 0, 1), 1.5).label == 2
    assert c.n_speakers == 3
