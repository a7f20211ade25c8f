"""GE2E speaker encoder: the numpy port against the reference implementation (torch, librosa).

``tests/data/local/ge2e_reference.npz`` was computed once with Resemblyzer 0.1.4's own code
(torch 2.14.1, librosa 0.11.0) by ``scripts/make_ge2e_reference.py``; see that script.
"""

from __future__ import annotations

import io
import itertools
import pickle
import struct
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdiarize.transcribers.local.embedding import (
    EMBEDDING_SIZE,
    SpeakerEncoder,
    mel_filterbank,
    mel_spectrogram,
    normalize_volume,
    partial_slices,
)

DATA = Path(__file__).parent / "data"
REFERENCE = np.load(DATA / "local" / "ge2e_reference.npz")
ROOT = Path(__file__).resolve().parents[1]


def dialog_pcm() -> np.ndarray:
    with wave.open(str(DATA / "captures" / "dialog.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


def test_mel_spectrogram_matches_librosa() -> None:
    wav = dialog_pcm()[8000:16000].astype(np.float32) / 32768.0
    ours = mel_spectrogram(wav)
    reference = REFERENCE["mel"]
    assert ours.shape == reference.shape == (51, 40)
    assert np.allclose(ours, reference, rtol=1e-4, atol=1e-6 * reference.max())


def test_embeddings_match_the_torch_reference(encoder: SpeakerEncoder) -> None:
    pcm = dialog_pcm()
    for (start, end), expected in zip(REFERENCE["clips"], REFERENCE["embeddings"], strict=True):
        ours = encoder.embed(pcm[int(start * 16000) : int(end * 16000)])
        assert ours.shape == (EMBEDDING_SIZE,)
        assert ours.dtype == np.float32
        assert float(ours @ expected) > 0.99999
        assert np.abs(ours - expected).max() < 1e-4


def test_float_and_int16_input_agree(encoder: SpeakerEncoder) -> None:
    pcm = dialog_pcm()[8000:40000]
    a = encoder.embed(pcm)
    b = encoder.embed(pcm.astype(np.float32) / 32768.0)
    assert np.allclose(a, b, atol=1e-6)


def test_embedding_is_unit_length_and_non_negative(encoder: SpeakerEncoder) -> None:
    rng = np.random.default_rng(3)
    e = encoder.embed((rng.standard_normal(12000) * 3000).astype(np.int16))
    assert abs(float(np.linalg.norm(e)) - 1.0) < 1e-5
    assert (e >= 0).all()


def test_embedding_does_not_depend_on_the_level(encoder: SpeakerEncoder) -> None:
    """Volume normalisation: -30 dBFS RMS whatever the input level."""
    pcm = dialog_pcm()[8000:56000].astype(np.float32) / 32768.0
    quiet = normalize_volume(pcm * np.float32(0.05))
    assert np.isclose(
        20 * np.log10(np.sqrt(np.mean(quiet.astype(np.float64) ** 2))), -30, atol=0.01
    )
    assert float(encoder.embed(pcm * 0.05) @ encoder.embed(pcm * 0.9)) > 0.9999


def test_silence_is_left_alone() -> None:
    silent = np.zeros(1600, dtype=np.float32)
    assert not normalize_volume(silent).any()


def test_mel_filterbank_is_slaney() -> None:
    """Independent facts of librosa's Slaney filters: peaks at the mel centres, unit area."""
    fb = mel_filterbank()
    assert fb.shape == (40, 201)
    freqs = np.fft.rfftfreq(400, 1 / 16000)
    peaks = freqs[fb.argmax(axis=1)]
    assert np.all(np.diff(peaks) > 0)
    # Linear spacing (200/3 Hz per mel) below 1 kHz: centres k * (mel_max / 41) * 200/3.
    assert peaks[0] == pytest.approx(80.0, abs=40)
    # Slaney normalisation: each triangle has area 1 over its Hz width.
    areas = fb.sum(axis=1) * (freqs[1] - freqs[0])
    assert np.allclose(areas[5:], 1.0, atol=0.08)


@pytest.mark.parametrize(
    ("n_samples", "expected_starts"),
    [
        (0, [0]),
        (8000, [0]),
        (16000 * 16 // 10, [0]),  # exactly one partial
        (16000 * 3, [0, 77, 154]),  # 3 s: the third partial covers 77 % of its audio
        (16000 * 25 // 10, [0, 77]),
    ],
)
def test_partial_slices_follow_resemblyzer(n_samples: int, expected_starts: list[int]) -> None:
    slices = partial_slices(n_samples)
    assert [s.start for s in slices] == expected_starts
    assert all(s.stop - s.start == 160 for s in slices)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 16000 * 30))
def test_partials_cover_the_audio(n_samples: int) -> None:
    slices = partial_slices(n_samples)
    n_frames = int(np.ceil((n_samples + 1) / 160))
    assert slices[0].start == 0
    assert all(b.start - a.start == 77 for a, b in itertools.pairwise(slices))
    # Dropping the last partial is allowed only when < 75 % of it is audio.
    uncovered = n_frames - slices[-1].stop
    assert uncovered < 77 + 0.25 * 160 + 1


def test_shipped_weights() -> None:
    path = ROOT / "src/streamdiarize/transcribers/local/ge2e.npz"
    with np.load(path) as weights:
        total = sum(weights[name].size for name in weights.files)
        assert all(weights[name].dtype == np.float32 for name in weights.files)
    assert total == 1_423_616
    assert (path.parent / "NOTICE").read_text().count("Apache License") >= 1


class _FakeStorage:
    """Pickles as torch's legacy ``FloatStorage`` persistent id."""

    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key, self.data = key, data


def _legacy_checkpoint(tensors: dict[str, np.ndarray]) -> bytes:
    """A legacy ``torch.save`` byte string built by hand from its documented layout."""

    class Rebuild:
        def __init__(self, storage: _FakeStorage, shape: tuple[int, ...]) -> None:
            self.storage, self.shape = storage, shape

        def __reduce__(self):  # type: ignore[no-untyped-def]
            stride = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
            return (_rebuild_tensor_v2, (self.storage, 0, self.shape, stride, False, {}))

    storages = [
        _FakeStorage(str(i), a.astype("<f4").ravel()) for i, a in enumerate(tensors.values())
    ]

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _FakeStorage):
                return ("storage", _FloatStorage, obj.key, "cpu", obj.data.size, None)
            return None

    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    model_state = {
        name: Rebuild(s, a.shape) for (name, a), s in zip(tensors.items(), storages, strict=True)
    }
    Pickler(out, protocol=2).dump({"step": 7, "model_state": model_state})
    pickle.dump([s.key for s in storages], out, protocol=2)
    for s in storages:
        out.write(struct.pack("<q", s.data.size) + s.data.tobytes())
    return out.getvalue()


def _rebuild_tensor_v2(*args: object) -> None:  # pickled by reference as torch._utils.<name>
    raise AssertionError("never called")


class _FloatStorage:  # pickled by reference as torch.FloatStorage
    pass


def test_converter_reads_a_legacy_checkpoint(
    monkeypatch: pytest.MonkeyPatch, load_script: Callable[[str], ModuleType]
) -> None:
    converter = load_script("convert_resemblyzer")
    fake_torch = type(sys)("torch")
    fake_utils = type(sys)("torch._utils")
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = (
        "torch._utils",
        "_rebuild_tensor_v2",
    )
    _FloatStorage.__module__, _FloatStorage.__qualname__ = "torch", "FloatStorage"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    fake_torch.FloatStorage = _FloatStorage  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)
    rng = np.random.default_rng(0)
    tensors = {
        "a": rng.standard_normal((3, 4)).astype(np.float32),
        "b": np.arange(5, dtype=np.float32),
    }
    data = _legacy_checkpoint(tensors)
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.delitem(sys.modules, "torch._utils")
    checkpoint = converter.load_legacy_checkpoint(data)
    assert checkpoint["step"] == 7
    for name, array in tensors.items():
        assert np.array_equal(checkpoint["model_state"][name], array)


def test_converter_refuses_foreign_globals(load_script: Callable[[str], ModuleType]) -> None:
    converter = load_script("convert_resemblyzer")
    data = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, data, protocol=2)
    pickle.dump(print, data, protocol=2)  # builtins.print: not a checkpoint's business
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        converter.load_legacy_checkpoint(data.getvalue())
