"""CAM++ speaker embeddings: Kaldi fbank in numpy, the ONNX network, windows and errors.

``tests/data/local/campplus_reference.npz`` was computed once with 3D-Speaker's PyTorch model
code and kaldi-native-fbank by ``scripts/make_campplus_reference.py``; ``real_speech.ogg`` holds
two real voices cut from pyannote.audio's sample by ``scripts/make_real_speech_fixture.py``.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import threading
import wave
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import av
import kaldi_native_fbank as knf  # type: ignore[import-untyped]
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from streamdiarize import BackendUnavailableError, ConfigurationError
from streamdiarize.transcribers.local import campplus_embedding
from streamdiarize.transcribers.local.campplus_embedding import (
    EMBEDDING_SIZE,
    MIN_SAMPLES,
    CampPlusEncoder,
)
from streamdiarize.transcribers.local.fbank import (
    N_MELS,
    fbank,
    kaldi_mel_filterbank,
    num_frames,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
LOCAL = ROOT / "src/streamdiarize/transcribers/local"
REFERENCE = np.load(DATA / "local" / "campplus_reference.npz")


def dialog_pcm() -> NDArray[np.int16]:
    with wave.open(str(DATA / "captures" / "dialog.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def real_speech() -> tuple[NDArray[np.int16], list[tuple[int, str]]]:
    """The fixture decoded by FFmpeg (PyAV) to 16 kHz mono int16, and (start sample, speaker)."""
    meta = json.loads((DATA / "local" / "real_speech.json").read_text())
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    chunks = []
    with av.open(str(DATA / "local" / "real_speech.ogg")) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    clips = [(round(c["offset_s"] * 16000), c["speaker"]) for c in meta["clips"]]
    return np.concatenate(chunks).astype(np.int16), clips


def knf_fbank(wav: NDArray[np.float32]) -> NDArray[np.float32]:
    """kaldi-native-fbank with CAM++'s options: 80 bins, no dither, Kaldi defaults otherwise."""
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = 80
    extractor = knf.OnlineFbank(opts)
    extractor.accept_waveform(16000, wav.tolist())
    extractor.input_finished()
    frames = [extractor.get_frame(i) for i in range(extractor.num_frames_ready)]
    return np.array(frames, dtype=np.float32).reshape(-1, N_MELS)


@pytest.fixture(scope="module")
def encoder() -> CampPlusEncoder:
    return CampPlusEncoder()


# --- fbank -------------------------------------------------------------------------------------


def test_fbank_matches_kaldi_native_fbank_on_speech() -> None:
    wav = dialog_pcm()[:48000].astype(np.float32) / 32768.0
    ours, reference = fbank(wav), knf_fbank(wav)
    assert ours.shape == reference.shape == (298, 80)
    assert ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 2e-3  # log energies; float32 FFT rounding


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=4000),
    scale=st.sampled_from([1e-3, 0.1, 1.0, 1000.0]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_fbank_matches_kaldi_native_fbank_on_noise(n: int, scale: float, seed: int) -> None:
    wav = (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)
    ours, reference = fbank(wav), knf_fbank(wav)
    assert ours.shape == reference.shape == (num_frames(n), 80)
    assert np.allclose(ours, reference, atol=2e-3, rtol=1e-4)


def test_fbank_accepts_int16_and_floors_silence() -> None:
    pcm = dialog_pcm()[8000:16000]
    assert np.allclose(fbank(pcm), fbank(pcm.astype(np.float32)), atol=1e-5)
    silent = fbank(np.zeros(1000, dtype=np.float32))
    assert np.all(silent == np.float32(np.log(np.finfo(np.float32).eps)))


@pytest.mark.parametrize(("n", "frames"), [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2)])
def test_num_frames_keeps_whole_frames_only(n: int, frames: int) -> None:
    assert num_frames(n) == frames
    assert fbank(np.ones(n, dtype=np.float32)).shape == (frames, 80)


def test_mel_filters_are_kaldis_triangles() -> None:
    filters = kaldi_mel_filterbank()
    assert filters.shape == (80, 257)
    assert np.all(filters >= 0)
    assert np.all(filters <= 1)
    assert np.all(filters[:, 256] == 0)  # Nyquist
    assert np.all(filters[:, 0] == 0)  # 0 Hz is below the 20 Hz edge
    peaks = filters.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0)  # centres rise with the band index
    assert peaks[-1] > 240  # the top band reaches close to 8 kHz


# --- the network -------------------------------------------------------------------------------


def test_embeddings_match_the_torch_reference(encoder: CampPlusEncoder) -> None:
    pcm = dialog_pcm()
    for (start, end), expected in zip(REFERENCE["clips"], REFERENCE["embeddings"], strict=True):
        ours = encoder.embed(pcm[int(start * 16000) : int(end * 16000)])
        assert ours.shape == (EMBEDDING_SIZE,) == (encoder.dim,)
        assert ours.dtype == np.float32
        assert float(ours @ expected) > 0.99999
        assert np.abs(ours - expected).max() < 1e-4


def test_same_speaker_is_closer_than_another_on_real_speech(encoder: CampPlusEncoder) -> None:
    pcm, clips = real_speech()
    embeddings = np.stack([encoder.embed(pcm[start : start + 24000]) for start, _ in clips])
    similarity = embeddings @ embeddings.T
    speakers = np.array([speaker for _, speaker in clips])
    same = speakers[:, None] == speakers[None, :]
    off_diagonal = ~np.eye(len(clips), dtype=bool)
    assert len(set(speakers)) == 2
    assert similarity[same & off_diagonal].min() > similarity[~same].max()
    # Clearly apart on average (GE2E's gap on the same clips is about 0.15).
    assert similarity[same & off_diagonal].mean() > similarity[~same].mean() + 0.25


def test_embedding_is_deterministic_and_unit_length(encoder: CampPlusEncoder) -> None:
    pcm = dialog_pcm()[8000:40000]
    a, b = encoder.embed(pcm), CampPlusEncoder(threads=2).embed(pcm)
    assert np.array_equal(a, encoder.embed(pcm))
    assert np.allclose(a, b, atol=1e-5)
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-5


def test_float_and_int16_input_agree(encoder: CampPlusEncoder) -> None:
    pcm = dialog_pcm()[8000:40000]
    assert np.allclose(
        encoder.embed(pcm), encoder.embed(pcm.astype(np.float32) / np.float32(32768)), atol=1e-6
    )


@pytest.mark.parametrize("gain", [0.01, 0.2, 4.0])
def test_embedding_does_not_depend_on_the_level(encoder: CampPlusEncoder, gain: float) -> None:
    """Int16-scale log features minus their mean: a gain cancels, even for quiet speech."""
    pcm, clips = real_speech()
    wav = pcm[clips[0][0] : clips[0][0] + 24000].astype(np.float32) / np.float32(32768)
    assert float(encoder.embed(wav) @ encoder.embed(wav * np.float32(gain))) > 0.9999


def test_short_and_silent_clips_still_embed(encoder: CampPlusEncoder) -> None:
    short = encoder.embed(dialog_pcm()[10000 : 10000 + MIN_SAMPLES // 3])
    silent = encoder.embed(np.zeros(8000, dtype=np.int16))
    for e in (short, silent):
        assert np.isfinite(e).all()
        assert abs(float(np.linalg.norm(e)) - 1.0) < 1e-5


def test_concurrent_embeds_agree(encoder: CampPlusEncoder) -> None:
    pcm = dialog_pcm()
    clips = [pcm[k * 16000 : k * 16000 + 24000] for k in range(8)]
    expected = [encoder.embed(c) for c in clips]
    results: dict[int, NDArray[np.float32]] = {}

    def work(i: int) -> None:
        results[i] = CampPlusEncoder().embed(clips[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, e in enumerate(expected):
        assert np.allclose(results[i], e, atol=1e-6)


# --- windows -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("window", "hop"), [(24000, 8000), (16000, 4000), (24000, 7000)])
def test_windows_equal_single_clip_embeddings(
    encoder: CampPlusEncoder, window: int, hop: int
) -> None:
    pcm = dialog_pcm()[: 16000 * 6 + 1234]
    rows = encoder.embed_windows(pcm, window, hop)
    count = (len(pcm) - window) // hop + 1
    assert rows.shape == (count, EMBEDDING_SIZE)
    for k in (0, count // 2, count - 1):
        single = encoder.embed(pcm[k * hop : k * hop + window])
        assert np.abs(rows[k] - single).max() < 1e-5


def test_windows_span_several_network_batches(encoder: CampPlusEncoder) -> None:
    pcm = dialog_pcm()[: 16000 * 5]
    window, hop = 4000, 1120  # 67 windows: more than two batches
    rows = encoder.embed_windows(pcm, window, hop)
    assert rows.shape[0] == (len(pcm) - window) // hop + 1 > 2 * campplus_embedding._BATCH
    for k in (0, campplus_embedding._BATCH, rows.shape[0] - 1):
        assert np.abs(rows[k] - encoder.embed(pcm[k * hop : k * hop + window])).max() < 1e-5


def test_windows_of_a_short_clip_are_empty(encoder: CampPlusEncoder) -> None:
    rows = encoder.embed_windows(np.zeros(23999, dtype=np.int16), 24000, 8000)
    assert rows.shape == (0, EMBEDDING_SIZE)


@pytest.mark.parametrize(("window", "hop"), [(MIN_SAMPLES - 1, 160), (24000, 0)])
def test_bad_windows_are_refused(encoder: CampPlusEncoder, window: int, hop: int) -> None:
    with pytest.raises(ConfigurationError, match="window"):
        encoder.embed_windows(dialog_pcm(), window, hop)


# --- errors ------------------------------------------------------------------------------------


def test_empty_clip_and_bad_arguments_are_refused(encoder: CampPlusEncoder) -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        encoder.embed(np.zeros(0, dtype=np.int16))
    with pytest.raises(ConfigurationError, match="features"):
        encoder.embed_features(np.zeros((1, 3, 80), dtype=np.float32))
    with pytest.raises(ConfigurationError, match="features"):
        encoder.embed_features(np.zeros((1, 50, 40), dtype=np.float32))
    with pytest.raises(ConfigurationError, match="threads"):
        CampPlusEncoder(threads=0)


def test_missing_or_broken_model_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="missing"):
        CampPlusEncoder(tmp_path / "absent.onnx").embed(dialog_pcm()[:8000])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(BackendUnavailableError, match="cannot load"):
        CampPlusEncoder(broken).embed(dialog_pcm()[:8000])


def test_missing_onnxruntime_is_a_backend_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    model = tmp_path / "copy.onnx"  # a path no earlier test has cached a session for
    model.write_bytes(b"")
    with pytest.raises(BackendUnavailableError, match="onnxruntime"):
        CampPlusEncoder(model).embed(dialog_pcm()[:8000])


# --- the shipped model and its converter -------------------------------------------------------


def test_shipped_model() -> None:
    import onnx

    path = LOCAL / "campplus.onnx"
    assert path.stat().st_size < 30_000_000
    model = onnx.load(str(path))
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, dims) == ("fbank", ["batch", "frames", 80])
    assert out.name == "embedding"
    notice = (LOCAL / "NOTICE").read_text()
    assert "campplus.onnx" in notice
    assert "ge2e.npz" in notice  # the earlier section stays
    assert "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199" in notice


class _Storage:
    def __init__(self, key: str, data: NDArray[np.float32]) -> None:
        self.key, self.data = key, data


class _Tensor:
    """Pickles like a torch tensor: ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(self, storage: _Storage, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.size, self.stride = storage, size, stride

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_tensor_v2, (self.storage, 0, self.size, self.stride, False, OrderedDict()))


def _rebuild_tensor_v2(*args: object) -> None:  # pickled by reference as torch._utils.<name>
    raise AssertionError("never called")


class FloatStorage:  # pickled by reference as torch.FloatStorage
    pass


def _zip_checkpoint(state: dict[str, _Tensor]) -> bytes:
    """A ``torch.save`` zip file built by hand from its documented layout."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.data.size)
            return None

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = (
        "torch._utils",
        "_rebuild_tensor_v2",
    )
    FloatStorage.__module__ = "torch"
    fake_torch, fake_utils = ModuleType("torch"), ModuleType("torch._utils")
    fake_torch.FloatStorage = FloatStorage  # type: ignore[attr-defined]
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake_torch, "torch._utils": fake_utils})
    try:
        pkl = io.BytesIO()
        Pickler(pkl, protocol=2).dump(OrderedDict(state))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", pkl.getvalue())
        for tensor in state.values():
            archive.writestr(f"archive/data/{tensor.storage.key}", tensor.storage.data.tobytes())
    return out.getvalue()


def test_converter_reads_a_zip_checkpoint_without_torch(
    load_script: Callable[[str], ModuleType],
) -> None:
    converter = load_script("convert_campplus")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = np.arange(6, dtype=np.float32)
    state = {
        "a": _Tensor(_Storage("0", a.ravel()), (3, 4), (4, 1)),
        "a_t": _Tensor(_Storage("1", a.ravel()), (4, 3), (1, 4)),  # a transposed view
        "b": _Tensor(_Storage("2", b), (2, 3), (3, 1)),
    }
    arrays = converter.load_state_dict(_zip_checkpoint(state))
    assert np.array_equal(arrays["a"], a)
    assert np.array_equal(arrays["a_t"], a.T)
    assert np.array_equal(arrays["b"], b.reshape(2, 3))


def test_converter_refuses_foreign_globals(load_script: Callable[[str], ModuleType]) -> None:
    converter = load_script("convert_campplus")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(print, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        converter.load_state_dict(out.getvalue())
