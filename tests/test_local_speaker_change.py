"""Speaker change detection on window embeddings whose geometry is known."""

from __future__ import annotations

import numpy as np

from streamdiarize.transcribers.local.speaker_change import SpeakerChangeDetector

WINDOW, HOP = 16_000, 4_000


def noisy(voice: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = voice + rng.normal(scale=0.03, size=voice.shape)
    return (v / np.linalg.norm(v)).astype(np.float32)


def run(detector: SpeakerChangeDetector, windows: list[tuple[np.ndarray, float]]) -> list[int]:
    changes = []
    start = 0
    for k, (vector, speech) in enumerate(windows):
        change = detector.add(k * HOP + start, vector, speech)
        if change is not None:
            changes.append(change)
            detector.reset()
    return changes


def voices(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=32), rng.normal(size=32)
    return a / np.linalg.norm(a), b / np.linalg.norm(b), rng


def test_a_change_of_voice_is_found_at_the_first_window_of_the_new_voice() -> None:
    a, b, rng = voices()
    windows = [(noisy(a, rng), 1.0) for _ in range(12)] + [(noisy(b, rng), 1.0) for _ in range(8)]
    assert run(SpeakerChangeDetector(0.4, WINDOW), windows) == [12 * HOP]


def test_one_odd_window_does_not_cut_the_turn() -> None:
    a, b, rng = voices()
    windows = [(noisy(a, rng), 1.0) for _ in range(8)]
    windows += [(noisy(b, rng), 1.0)] + [(noisy(a, rng), 1.0) for _ in range(8)]
    assert run(SpeakerChangeDetector(0.4, WINDOW), windows) == []


def test_windows_without_enough_speech_are_ignored() -> None:
    a, b, rng = voices()
    windows = [(noisy(a, rng), 1.0) for _ in range(8)] + [(noisy(b, rng), 0.3) for _ in range(4)]
    windows += [(noisy(a, rng), 1.0) for _ in range(4)]
    assert run(SpeakerChangeDetector(0.4, WINDOW), windows) == []


def test_nothing_is_compared_before_one_whole_window_of_the_turn() -> None:
    """The first windows overlap the turn's start: no left context, no change possible."""
    a, b, rng = voices()
    windows = [(noisy(a, rng), 1.0)] + [(noisy(b, rng), 1.0) for _ in range(3)]
    assert run(SpeakerChangeDetector(0.4, WINDOW), windows) == []


def test_the_change_is_placed_at_the_more_distant_window() -> None:
    """A window half in each voice is less distant than the next: the change goes there."""
    a, b, rng = voices()
    mixed = (a + b) / np.linalg.norm(a + b)
    assert 1 - float(a @ mixed) > 0.15  # the mixed window is itself a candidate
    windows = [(noisy(a, rng), 1.0) for _ in range(8)]
    windows += [(mixed.astype(np.float32), 1.0)] + [(noisy(b, rng), 1.0) for _ in range(6)]
    assert run(SpeakerChangeDetector(0.15, WINDOW), windows) == [9 * HOP]


def test_the_same_voice_throughout_makes_no_change() -> None:
    a, _b, rng = voices()
    windows = [(noisy(a, rng), 1.0) for _ in range(200)]
    assert run(SpeakerChangeDetector(0.4, WINDOW), windows) == []
