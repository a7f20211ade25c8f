"""Write the small Ogg and MP4 files the container tests demux (tests/data/ogg, tests/data/mp4).

Encoded with PyAV (FFmpeg's aac/libopus encoders and ogg/mp4/mov muxers) from a few words of
espeak-ng speech or a generated two-tone signal. The MP4 files mimic Safari MediaRecorder's
``audio/mp4``: an init segment (ftyp + moov with mvex/trex, empty sample tables), then one
moof + mdat pair per ~100 ms (``frag_keyframe+empty_moov+default_base_moof``). The outputs are
committed so tests need neither espeak-ng nor an encoder; run this again only to change them:

    .venv/bin/python scripts/make_container_fixtures.py
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
LOW = {"b": "32000"}  # keeps the files small; quality is irrelevant to demuxing
FRAGMENTED = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
    "frag_duration": "100000",
}


@dataclass(frozen=True)
class Fixture:
    """One output file: what to encode and how to mux it."""

    path: str
    container: str
    codec: str
    rate: int
    channels: int
    seconds: float
    speech: bool = True
    options: dict[str, str] = field(default_factory=dict)
    codec_options: dict[str, str] = field(default_factory=dict)


FIXTURES = (
    # Firefox-like Ogg Opus, and a second recording to chain after it (its own serial).
    Fixture(
        "ogg/speech_mono.opus",
        "ogg",
        "libopus",
        48000,
        1,
        1.2,
        options={"serial_offset": "7", "page_duration": "200000"},
        codec_options={"b": "32000"},
    ),
    Fixture(
        "ogg/tone_stereo_40ms.opus",
        "ogg",
        "libopus",
        48000,
        2,
        0.5,
        speech=False,
        options={"serial_offset": "90001"},
        codec_options={"frame_duration": "40", "b": "24000"},
    ),
    # Safari-like fragmented MP4: AAC-LC and Opus, ~100 ms fragments, default-base-is-moof.
    Fixture("mp4/aac_frag.mp4", "mp4", "aac", 48000, 1, 1.2, options=FRAGMENTED, codec_options=LOW),
    Fixture(
        "mp4/opus_frag.mp4", "mp4", "libopus", 48000, 1, 1.2, options=FRAGMENTED, codec_options=LOW
    ),
    # Fragments addressed by absolute tfhd base-data-offset (no default_base_moof).
    Fixture(
        "mp4/aac_stereo_44k_abs_offsets.mp4",
        "mp4",
        "aac",
        44100,
        2,
        0.5,
        speech=False,
        options={"movflags": "frag_keyframe+empty_moov+skip_trailer", "frag_duration": "100000"},
        codec_options=LOW,
    ),
    # Progressive MP4 with the moov first (sample tables in stbl).
    Fixture(
        "mp4/aac_faststart.mp4",
        "mp4",
        "aac",
        48000,
        1,
        0.6,
        options={"movflags": "+faststart"},
        codec_options=LOW,
    ),
    # Uncompressed: ISO 23003-5 ipcm/fpcm in MP4, QuickTime sowt (v0) and fl32 (v1 + enda).
    Fixture("mp4/ipcm_s16.mp4", "mp4", "pcm_s16le", 8000, 1, 0.3, speech=False, options=FRAGMENTED),
    Fixture("mp4/fpcm_f32.mp4", "mp4", "pcm_f32le", 8000, 1, 0.2, speech=False, options=FRAGMENTED),
    Fixture("mp4/sowt_s16.mov", "mov", "pcm_s16le", 8000, 2, 0.2, speech=False, options=FRAGMENTED),
    Fixture("mp4/fl32.mov", "mov", "pcm_f32le", 8000, 1, 0.2, speech=False, options=FRAGMENTED),
)


def speech(seconds: float) -> tuple[NDArray[np.float32], int]:
    """A few words of espeak-ng at its native rate, cut or padded to ``seconds``."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(wav), "Good morning, report."],
            check=True,
        )
        with av.open(str(wav)) as container:
            stream = container.streams.audio[0]
            rate = stream.rate
            frames = [
                f.to_ndarray().astype(np.float32).reshape(-1) for f in container.decode(stream)
            ]
    x = np.concatenate(frames)
    if x.dtype.kind != "f" or np.abs(x).max() > 1.5:
        x = x / 32768.0
    n = int(seconds * rate)
    return np.pad(x[:n], (0, max(0, n - len(x)))).astype(np.float32), rate


def tones(seconds: float, rate: int) -> NDArray[np.float32]:
    """Two decaying tones: deterministic, and not silence (so every codec spends bits)."""
    t = np.arange(int(seconds * rate)) / rate
    return (
        0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    ).astype(np.float32)


def encode(fx: Fixture) -> bytes:
    """Encode and mux one fixture in memory."""
    if fx.speech:
        mono, source_rate = speech(fx.seconds)
    else:
        mono, source_rate = tones(fx.seconds, fx.rate), fx.rate
    layout = "stereo" if fx.channels == 2 else "mono"
    planes = np.tile(mono, (fx.channels, 1))
    if fx.channels == 2:
        planes[1] *= 0.5  # make the channels differ
    frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
    frame.sample_rate = source_rate
    with tempfile.TemporaryDirectory() as tmp:  # a real file: +faststart rewrites it at close
        path = Path(tmp) / f"out.{fx.container}"
        mux(fx, frame, layout, path)
        return path.read_bytes()


def mux(fx: Fixture, frame: av.AudioFrame, layout: str, path: Path) -> None:
    """Resample ``frame`` to the fixture's rate, encode it and mux it into ``path``."""
    with av.open(str(path), "w", format=fx.container, options=fx.options) as container:
        stream = container.add_stream(fx.codec, rate=fx.rate, layout=layout)
        stream.codec_context.options = fx.codec_options
        resampler = av.AudioResampler(
            format=stream.codec_context.format, layout=layout, rate=fx.rate
        )
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def main() -> None:
    """Write every fixture and print its size."""
    for fx in FIXTURES:
        path = DATA / fx.path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = encode(fx)
        path.write_bytes(data)
        print(f"{fx.path}: {len(data)} bytes")


if __name__ == "__main__":
    main()
