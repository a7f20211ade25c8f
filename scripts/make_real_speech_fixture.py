#!/usr/bin/env python3
"""Cut a small real-speech fixture (two human voices) from pyannote.audio's sample recording.

``tests/data/local/real_speech.ogg`` (Opus, 16 kHz mono, ≈ 40 KB) holds six 1.5 s clips of two
speakers, taken from single-speaker stretches of ``pyannote/audio/sample/sample.wav`` in the
``pyannote.audio`` 4.0.7 wheel (MIT), as annotated by the ``sample.rttm`` next to it;
``real_speech.json`` says where each clip is and who speaks. The speaker-embedding tests use it
to check that a voice is closer to itself than to the other one on real, not synthetic, speech.

Usage::

    pip download --no-deps -d /tmp/pa pyannote-audio==4.0.7
    python scripts/make_real_speech_fixture.py /tmp/pa/pyannote_audio-4.0.7-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import wave
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests/data/local/real_speech.ogg"
SAMPLE = "pyannote/audio/sample/sample.wav"
RATE = 16_000
#: (start s, speaker) in sample.wav; each clip lies inside one speaker's turn per sample.rttm.
CLIPS = [
    (11.1, "speaker90"),
    (12.8, "speaker90"),
    (28.5, "speaker90"),
    (14.8, "speaker91"),
    (22.0, "speaker91"),
    (26.0, "speaker91"),
]
DURATION = 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="pyannote_audio-4.0.7-py3-none-any.whl")
    args = parser.parse_args()
    data = args.wheel.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as wheel, wave.open(io.BytesIO(wheel.read(SAMPLE))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    n = int(DURATION * RATE)
    pieces = [pcm[int(start * RATE) : int(start * RATE) + n] for start, _ in CLIPS]
    joined = np.concatenate(pieces).tobytes()
    subprocess.run(
        [
            *(
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "s16le",
                "-ar",
                str(RATE),
                "-ac",
                "1",
                "-i",
                "-",
            ),
            *("-c:a", "libopus", "-b:a", "32k", "-map_metadata", "-1", str(OUT)),
        ],
        input=joined,
        check=True,
    )
    meta = {
        "source": f"{args.wheel.name} ({SAMPLE}), sha256 {hashlib.sha256(data).hexdigest()}",
        "license": "MIT (pyannote.audio)",
        "sample_rate": RATE,
        "clip_seconds": DURATION,
        "clips": [
            {"offset_s": i * DURATION, "source_start_s": start, "speaker": speaker}
            for i, (start, speaker) in enumerate(CLIPS)
        ],
    }
    OUT.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
