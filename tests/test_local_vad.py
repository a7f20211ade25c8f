"""Streaming VAD: Silero windows and the utterance state machine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _feeding import dialog
from streamdiarize import ConfigurationError
from streamdiarize.transcribers.local.vad import (
    WINDOW,
    SileroVad,
    SpeechEnded,
    SpeechStarted,
    UtteranceSegmenter,
    VadEvent,
    VadOptions,
    VoiceActivityDetector,
)

RATE = 16_000


def windows(seconds: float) -> int:
    return round(seconds * RATE / WINDOW)


def run(probs: list[float], options: VadOptions | None = None) -> list[VadEvent]:
    seg = UtteranceSegmenter(options)
    return seg.feed(np.array(probs, dtype=np.float32)) + seg.flush()


OPTS = VadOptions(min_silence=0.32, min_speech=0.25, max_utterance=5.0)  # 10 and 8 windows


# -- the state machine, on scripted probabilities ------------------------------------------


def test_one_utterance_with_exact_bounds() -> None:
    probs = [0.0] * 5 + [0.9] * 20 + [0.0] * 30
    assert run(probs, OPTS) == [
        SpeechStarted(5 * WINDOW),
        SpeechEnded(5 * WINDOW, 25 * WINDOW),
    ]


def test_end_is_reported_after_min_silence_not_before() -> None:
    seg = UtteranceSegmenter(OPTS)
    assert seg.feed(np.array([0.9] * 20 + [0.0] * 9, dtype=np.float32)) == [SpeechStarted(0)]
    assert seg.feed(np.array([0.0], dtype=np.float32)) == [SpeechEnded(0, 20 * WINDOW)]


def test_hysteresis_keeps_speech_between_thresholds() -> None:
    """0.4 is below threshold 0.5 but above neg_threshold 0.35: not silence."""
    probs = [0.9] * 10 + [0.4] * 30 + [0.9] * 10 + [0.0] * 12
    assert run(probs, OPTS) == [SpeechStarted(0), SpeechEnded(0, 50 * WINDOW)]


def test_short_pause_does_not_split_but_long_one_does() -> None:
    probs = [0.9] * 10 + [0.0] * 9 + [0.9] * 10 + [0.0] * 10 + [0.9] * 10 + [0.0] * 12
    assert run(probs, OPTS) == [
        SpeechStarted(0),
        SpeechEnded(0, 29 * WINDOW),
        SpeechStarted(39 * WINDOW),
        SpeechEnded(39 * WINDOW, 49 * WINDOW),
    ]


def test_blips_shorter_than_min_speech_are_dropped() -> None:
    probs = [0.0] * 3 + [0.9] * 7 + [0.0] * 20 + [0.9] * 8 + [0.0] * 20
    assert run(probs, OPTS) == [SpeechStarted(30 * WINDOW), SpeechEnded(30 * WINDOW, 38 * WINDOW)]


def test_max_length_cuts_at_the_last_pause() -> None:
    limit = windows(5.0)
    probs = [0.9] * 60 + [0.0] * 6 + [0.9] * 200
    events = run(probs, OPTS)
    assert events[:3] == [
        SpeechStarted(0),
        SpeechEnded(0, 63 * WINDOW, cut=True),
        SpeechStarted(63 * WINDOW),
    ]
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert all(e.end - e.start <= limit * WINDOW for e in ends)
    assert ends[-1].end == 266 * WINDOW
    assert not ends[-1].cut


def test_max_length_cuts_hard_without_a_pause() -> None:
    limit = windows(5.0)
    events = run([0.9] * (3 * limit + 7), OPTS)
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert [(e.start, e.end, e.cut) for e in ends] == [
        (0, limit * WINDOW, True),
        (limit * WINDOW, 2 * limit * WINDOW, True),
        (2 * limit * WINDOW, 3 * limit * WINDOW, True),
        (3 * limit * WINDOW, (3 * limit + 7) * WINDOW, False),
    ]


def test_flush_closes_open_speech_and_is_idempotent() -> None:
    seg = UtteranceSegmenter(OPTS)
    assert seg.feed(
        np.array([0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.0], dtype=np.float32)
    ) == [SpeechStarted(WINDOW)]
    assert seg.flush() == [SpeechEnded(WINDOW, 9 * WINDOW)]
    assert seg.flush() == []


def test_pending_start_tracks_unconfirmed_speech() -> None:
    seg = UtteranceSegmenter(OPTS)
    seg.feed(np.array([0.0, 0.0, 0.9], dtype=np.float32))
    assert seg.pending_start == 2 * WINDOW
    seg.feed(np.zeros(12, dtype=np.float32))
    assert seg.pending_start is None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.2, 0.4, 0.6, 0.95]), max_size=600),
    st.lists(st.integers(0, 40), max_size=60),
)
def test_any_split_of_the_probabilities_gives_the_same_events(
    probs: list[float], cuts: list[int]
) -> None:
    whole = run(probs, OPTS)
    seg = UtteranceSegmenter(OPTS)
    events: list[VadEvent] = []
    rest = np.array(probs, dtype=np.float32)
    for n in cuts:
        events += seg.feed(rest[:n])
        rest = rest[n:]
    events += seg.feed(rest) + seg.flush()
    assert events == whole
    # Starts and ends alternate, ends follow their start, utterances respect the limits.
    kinds = [type(e) for e in events]
    assert kinds == [SpeechStarted, SpeechEnded] * (len(events) // 2)
    for start, end in zip(events[::2], events[1::2], strict=True):
        assert isinstance(start, SpeechStarted)
        assert isinstance(end, SpeechEnded)
        assert start.start == end.start < end.end
        assert end.end - end.start <= windows(5.0) * WINDOW


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 1.5},
        {"threshold": 0.5, "neg_threshold": 0.7},
        {"min_silence": 0.0},
        {"max_utterance": 0.5},
        {"speech_pad": 0.6, "min_silence": 0.5},
    ],
)
def test_bad_options_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        VadOptions(**kwargs)


# -- Silero on real audio ----------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 3000), max_size=30))
def test_silero_probabilities_do_not_depend_on_chunking(sizes: list[int]) -> None:
    pcm = dialog()[0][: 3 * RATE]
    whole = SileroVad()
    expected = np.concatenate([whole.feed(pcm), whole.flush()])
    vad = SileroVad()
    out, pos = [], 0
    for n in sizes:
        out.append(vad.feed(pcm[pos : pos + n]))
        pos += n
    out += [vad.feed(pcm[pos:]), vad.flush()]
    got = np.concatenate(out)
    assert got.shape == expected.shape == (int(np.ceil(len(pcm) / WINDOW)),)
    assert np.allclose(got, expected, atol=1e-6)


def test_dialog_utterances_are_found_within_150_ms() -> None:
    pcm, utterances = dialog()
    vad = VoiceActivityDetector()
    events: list[VadEvent] = []
    for i in range(0, len(pcm), 1600):  # 100 ms chunks, like a browser
        events += vad.feed(pcm[i : i + 1600])
    events += vad.flush()
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ends) == len(utterances) == 5
    for event, utterance in zip(ends, utterances, strict=True):
        assert abs(event.start / RATE - float(utterance["start_s"])) <= 0.15  # type: ignore[arg-type]
        assert abs(event.end / RATE - float(utterance["end_s"])) <= 0.15  # type: ignore[arg-type]


def test_silence_and_quiet_noise_are_not_speech() -> None:
    rng = np.random.default_rng(7)
    vad = VoiceActivityDetector()
    noise = (rng.standard_normal(5 * RATE) * 30).astype(np.int16)  # about -60 dBFS
    assert vad.feed(np.zeros(5 * RATE, dtype=np.int16)) + vad.feed(noise) + vad.flush() == []


def test_an_end_is_known_min_silence_after_the_speech() -> None:
    """The hangover: the end event arrives once min_silence of silence has been fed."""
    pcm, utterances = dialog()
    first_end = float(utterances[0]["end_s"])  # type: ignore[arg-type]
    vad = VoiceActivityDetector(VadOptions(min_silence=0.4))
    seen_at = None
    for i in range(0, len(pcm), 160):
        if any(isinstance(e, SpeechEnded) for e in vad.feed(pcm[i : i + 160])):
            seen_at = (i + 160) / RATE
            break
    assert seen_at is not None
    assert first_end + 0.4 - 0.05 <= seen_at <= first_end + 0.4 + 0.15
