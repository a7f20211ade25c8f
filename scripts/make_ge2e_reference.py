#!/usr/bin/env python3
"""Compute reference GE2E outputs with the original Resemblyzer code and torch (run once).

The test fixture ``tests/data/local/ge2e_reference.npz`` (≈ 10 KB) holds what the *reference*
implementation computes on slices of ``tests/data/captures/dialog.wav``, so
``tests/test_local_embedding.py`` can check our numpy port against it without torch:

* ``embeddings``: ``VoiceEncoder().embed_utterance(normalize_volume(wav, -30))`` for each clip
  in ``clips`` (start/end seconds; one clip is shorter than a 1.6 s partial). Our encoder
  brings every utterance to -30 dBFS RMS (Resemblyzer only raises quiet audio), so the
  reference is computed at that level too;
* ``mel``: ``resemblyzer.audio.wav_to_mel_spectrogram`` (librosa) of the first 0.5 s of speech.

Resemblyzer's VAD trimming (webrtcvad) is not part of the comparison, so webrtcvad is stubbed.
Torch must never enter the project's environment; use a throwaway one::

    python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch librosa
    pip download --no-deps resemblyzer==0.1.4 -d /tmp/rz
    (cd /tmp/rz && unzip -o -q Resemblyzer-0.1.4-py3-none-any.whl -d src)
    PYTHONPATH=/tmp/rz/src /tmp/torchref/bin/python scripts/make_ge2e_reference.py

Produced with torch 2.14.1 and librosa 0.11.0.
"""

from __future__ import annotations

import json
import sys
import types
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIALOG = ROOT / "tests/data/captures/dialog.wav"
OUT = ROOT / "tests/data/local/ge2e_reference.npz"
#: (start, end) seconds in dialog.wav: three speakers, one clip shorter than a partial.
CLIPS = [(0.45, 3.6), (4.1, 7.15), (7.65, 10.2), (10.7, 13.2), (13.7, 14.6)]


def main() -> int:
    sys.modules.setdefault("webrtcvad", types.ModuleType("webrtcvad"))  # only used for trimming
    import librosa
    import resemblyzer
    import torch
    from resemblyzer import VoiceEncoder, normalize_volume, wav_to_mel_spectrogram

    with wave.open(str(DIALOG)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    wav = pcm.astype(np.float32) / 32768.0
    encoder = VoiceEncoder(device="cpu", verbose=False)
    embeddings = []
    for start, end in CLIPS:
        clip = normalize_volume(wav[int(start * 16000) : int(end * 16000)], -30)
        embeddings.append(encoder.embed_utterance(clip.astype(np.float32)))
    mel = wav_to_mel_spectrogram(wav[8000:16000])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT,
        clips=np.array(CLIPS, dtype=np.float64),
        embeddings=np.array(embeddings, dtype=np.float32),
        mel=mel.astype(np.float32),
    )
    versions = {"torch": torch.__version__, "librosa": librosa.__version__}
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with {json.dumps(versions)}")
    print(f"resemblyzer from {Path(resemblyzer.__file__).parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
