#!/usr/bin/env python3
"""Regenerate the small Matroska fixtures under tests/data/webm/ (needs ffmpeg and mkvmerge).

FFmpeg's Matroska muxer never laces, so the laced files come from mkvmerge (MKVToolNix),
which picks the smallest lacing per block: EBML lacing for VBR Opus, fixed-size lacing for
CBR Opus (all frames the same size) and Xiph lacing for some blocks of 32 kbit/s AAC (frames
of 127-254 bytes). Each file is half a second and a few KB; tests/test_webm.py compares our
demuxer against PyAV on them.

Usage: python scripts/make_fixtures.py   (run from anywhere; overwrites the files)
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "webm"

TONE = "sine=frequency=440:duration=0.5:sample_rate=48000"

#: fixture name → (ffmpeg input, ffmpeg output options, intermediate file suffix)
FIXTURES = {
    "opus_ebml_laced.mka": (TONE, ["-c:a", "libopus", "-b:a", "24k", "-ac", "2"], ".opus"),
    "opus_fixed_laced.mka": (TONE, ["-c:a", "libopus", "-b:a", "16k", "-vbr", "off"], ".opus"),
    "aac_xiph_laced.mka": (TONE, ["-c:a", "aac", "-b:a", "32k", "-ar", "44100"], ".m4a"),
}


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (source, options, suffix) in FIXTURES.items():
            encoded = Path(tmp) / f"{name}{suffix}"
            run("ffmpeg", "-nostdin", "-y", "-f", "lavfi", "-i", source, *options, str(encoded))
            # --deterministic makes mkvmerge write the same bytes on every run.
            target = OUT / name
            run("mkvmerge", "--quiet", "--deterministic", "1", "-o", str(target), str(encoded))
            print(f"{target.relative_to(OUT.parent.parent.parent)}: {target.stat().st_size} bytes")


if __name__ == "__main__":
    main()
