"""Resampling: streaming output equals the one-shot result, for any chunking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamdiarize as sd


def _relative_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b**2)))


def _signal(n: int, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / rate
    tones = [0.4 * np.sin(2 * np.pi * f * t) for f in (180.0, 1234.0, 3100.0)[:channels]]
    return (
        np.stack(tones, axis=1).astype(np.float32) if channels > 1 else tones[0].astype(np.float32)
    )


@pytest.mark.parametrize("in_rate", [8000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("chunk", [1, 128, 4096])
def test_stream_equals_oneshot(in_rate: int, chunk: int) -> None:
    x = _signal(in_rate // 2 + 17, in_rate)
    oneshot = sd.resample(x, in_rate, 16000)
    r = sd.Resampler(in_rate, 16000)
    streamed = np.concatenate(
        [r.process(x[i : i + chunk]) for i in range(0, len(x), chunk)] + [r.flush()]
    )
    assert streamed.shape == oneshot.shape
    assert _relative_rms(streamed, oneshot) < 1e-4


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_output(sizes: list[int]) -> None:
    x = _signal(sum(sizes) + 4410, 44100)
    oneshot = sd.resample(x, 44100, 16000)
    r = sd.Resampler(44100, 16000)
    parts, pos = [], 0
    for n in [*sizes, len(x)]:
        parts.append(r.process(x[pos : pos + n]))
        pos += n
    parts.append(r.flush())
    streamed = np.concatenate(parts)
    assert len(streamed) == len(oneshot)
    assert _relative_rms(streamed, oneshot) < 1e-4


def test_no_click_at_chunk_borders() -> None:
    """Per-chunk resampling clicks at borders; the stream's border samples match its neighbours."""
    x = _signal(48000, 48000)
    r = sd.Resampler(48000, 16000)
    streamed = np.concatenate(
        [r.process(x[i : i + 4800]) for i in range(0, 48000, 4800)] + [r.flush()]
    )
    steps = np.abs(np.diff(streamed[100:-100]))
    assert steps.max() < 0.2  # a 180 Hz tone at 16 kHz moves ≤ 0.03 per sample


def test_multichannel_and_dtypes() -> None:
    x = _signal(4410, 44100, channels=2)
    y = sd.resample(x, 44100, 16000)
    assert y.shape == (1600, 2)
    assert y.dtype == np.float32
    i16 = (x[:, 0] * 20000).astype(np.int16)
    assert sd.resample(i16, 44100, 16000).dtype == np.int16


def test_the_resampled_tone_keeps_its_frequency() -> None:
    x = _signal(48000, 48000)
    y = sd.resample(x, 48000, 16000)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 180.0) < 2.0


def test_equal_rates_pass_through() -> None:
    x = _signal(1000, 16000)
    assert np.array_equal(sd.resample(x, 16000, 16000), x)
    assert np.array_equal(sd.Resampler(16000, 16000).process(x), x)


def test_wrong_dtype_names_the_expected_one() -> None:
    with pytest.raises(TypeError, match="float32"):
        sd.Resampler(48000, 16000).process(np.zeros(10, dtype=np.float64))
    with pytest.raises(TypeError):
        sd.resample([0.0, 1.0], 48000, 16000)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0, -1, 10**9])
def test_bad_rates(rate: int) -> None:
    with pytest.raises(sd.ConfigurationError):
        sd.Resampler(rate, 16000)
