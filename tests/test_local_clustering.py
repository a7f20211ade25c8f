"""Online speaker clustering: rules on synthetic vectors, then real GE2E voices.

Measured separation (cosine of GE2E embeddings of whole utterances, espeak-ng voices):
* dialog.wav: same voice 0.81-0.88, different voices 0.48-0.65 (closest pair: the two male
  voices en-gb-scotland+m1 and en-us+m7);
* six sentences per voice: same voice 0.85-1.0 (mean 0.92); espeak-ng's plain male voices
  (en-us, en-gb, en-gb-scotland) are 0.89-0.90 apart on average and its female variants
  f2/f5/rp+f2 0.89-0.91: the encoder, trained on real people, hears each group as one person.
  Male against female variants: mean 0.53-0.72, max 0.77.
The default threshold, 0.75, sits between the ranges for the dialog's voices.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from streamdiarize import ConfigurationError
from streamdiarize.transcribers.local.clustering import DEFAULT_THRESHOLD, SpeakerClustering
from streamdiarize.transcribers.local.embedding import SpeakerEncoder

CAPTURES = Path(__file__).parent / "data" / "captures"


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_new_speakers_open_below_the_threshold_and_labels_are_stable() -> None:
    c = SpeakerClustering(0.8)
    a, b = unit(1, 0, 0), unit(0, 1, 0)
    assert [c.assign(v, 2.0) for v in (a, b, a, unit(0.95, 0.1, 0), b)] == [0, 1, 0, 0, 1]
    assert c.n_speakers == 2


def test_centroid_is_the_duration_weighted_mean() -> None:
    c = SpeakerClustering(0.5)
    c.assign(unit(1, 0), 3.0)
    c.assign(unit(1, 1), 1.0)
    expected = 3.0 * unit(1, 0) + 1.0 * unit(1, 1)
    assert np.allclose(c.centroids[0], expected / np.linalg.norm(expected), atol=1e-6)


def test_at_max_speakers_the_nearest_speaker_is_used_and_not_moved() -> None:
    c = SpeakerClustering(0.9, max_speakers=2)
    c.assign(unit(1, 0, 0), 2.0)
    c.assign(unit(0, 1, 0), 2.0)
    before = c.centroids.copy()
    assert c.assign(unit(0.2, 0.3, 1), 2.0) == 1
    assert c.n_speakers == 2
    assert np.array_equal(c.centroids, before)


def test_short_utterances_never_open_a_speaker() -> None:
    c = SpeakerClustering(0.9, min_duration=1.0)
    c.assign(unit(1, 0), 2.0)
    before = c.centroids.copy()
    assert c.assign(unit(0, 1), 0.5) == 0
    assert c.n_speakers == 1
    assert np.array_equal(c.centroids, before)


def test_first_utterance_opens_speaker_one_even_when_short() -> None:
    c = SpeakerClustering()
    assert c.assign(unit(1, 2, 3), 0.3) == 0


def test_zero_embedding_is_refused() -> None:
    with pytest.raises(ValueError, match="non-zero"):
        SpeakerClustering().assign(np.zeros(4, dtype=np.float32), 1.0)


@pytest.mark.parametrize(("threshold", "max_speakers"), [(1.0, None), (-1.0, None), (0.5, 0)])
def test_bad_settings(threshold: float, max_speakers: int | None) -> None:
    with pytest.raises(ConfigurationError):
        SpeakerClustering(threshold, max_speakers=max_speakers)


# -- real voices ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dialog_embeddings() -> tuple[np.ndarray, list[str]]:
    with wave.open(str(CAPTURES / "dialog.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    utterances = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]
    encoder = SpeakerEncoder()
    vectors = [
        encoder.embed(pcm[int(u["start_s"] * 16000) : int(u["end_s"] * 16000)]) for u in utterances
    ]
    return np.array(vectors), [u["speaker"] for u in utterances]


def test_dialog_voices_separate(dialog_embeddings: tuple[np.ndarray, list[str]]) -> None:
    vectors, speakers = dialog_embeddings
    sims = vectors @ vectors.T
    same = [sims[i, j] for i in range(5) for j in range(i) if speakers[i] == speakers[j]]
    other = [sims[i, j] for i in range(5) for j in range(i) if speakers[i] != speakers[j]]
    assert min(same) > DEFAULT_THRESHOLD > max(other)
    assert min(same) - max(other) > 0.1  # the margin measured: 0.81 vs 0.65


def test_dialog_is_labelled_as_three_speakers(
    dialog_embeddings: tuple[np.ndarray, list[str]],
) -> None:
    vectors, _speakers = dialog_embeddings
    c = SpeakerClustering()
    labels = [c.assign(v, 2.5) for v in vectors]
    # spk1 spk2 spk3 spk1 spk2 -> first appearances numbered in order.
    assert labels == [0, 1, 2, 0, 1]
    c2 = SpeakerClustering(max_speakers=2)
    assert [c2.assign(v, 2.5) for v in vectors][:2] == [0, 1]
    assert c2.n_speakers == 2


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_male_and_female_espeak_voices_separate() -> None:
    import soxr

    encoder = SpeakerEncoder()

    def voice(name: str, text: str) -> np.ndarray:
        out = subprocess.run(
            ["espeak-ng", "-v", name, "-s", "150", "--stdout", text],
            check=True,
            capture_output=True,
        ).stdout
        import io

        with wave.open(io.BytesIO(out)) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
            rate = w.getframerate()
        return encoder.embed(soxr.resample(x / 32768, rate, 16000).astype(np.float32))

    texts = ["Can you send me the slides before the meeting?", "The weather was terrible again."]
    male = [voice("en-us", t) for t in texts]
    female = [voice("en-us+f4", t) for t in texts]
    assert float(male[0] @ male[1]) > DEFAULT_THRESHOLD
    assert float(female[0] @ female[1]) > DEFAULT_THRESHOLD
    assert max(float(m @ f) for m in male for f in female) < DEFAULT_THRESHOLD
