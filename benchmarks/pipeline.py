"""Pipeline speed: chunked ChunkReassembler vs a whole-file PyAV decode + soxr, same run, one core.

Usage: python benchmarks/pipeline.py [--repeat N]

For each browser capture (real Chromium/Firefox WebSocket messages) it prints the x-realtime
of the chunked path (messages fed as they arrived → 16 kHz int16), the x-realtime of the
baseline (FFmpeg container decode of the joined bytes + one soxr call), their ratio, and the
per-message processing time (p50 / p99, and p99 scaled to a 100 ms chunk); then the raw
capture with nothing declared (rate measured from arrival times) against it declared. Ratios
are what to compare across machines; absolute figures move with load.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

import av
import numpy as np
import soxr

import streamdiarize as sd

CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "captures"
CASES = {
    "A_chromium_mediarecorder_webm_opus_ts100": "audio/webm;codecs=opus",
    "G_firefox_mediarecorder_ogg_opus_ts100": "audio/ogg;codecs=opus",
    "C_chromium_mediarecorder_webm_pcm_ts100": "audio/webm;codecs=pcm",
    "E_chromium_audioworklet_f32_128": "audio/pcm;rate=44100;encoding=float32",
}


def messages(capture: Path) -> list[bytes]:
    data = (capture / "stream.bin").read_bytes()
    out, pos = [], 0
    for size in json.loads((capture / "sizes.json").read_text()):
        out.append(data[pos : pos + size])
        pos += size
    return out


def chunked(chunks: list[bytes], mime: str) -> tuple[float, list[float], int]:
    """Seconds for the whole stream, seconds per message, output samples."""
    r = sd.ChunkReassembler(mime=mime)
    per_message = []
    samples = 0
    start = time.perf_counter()
    for chunk in chunks:
        t = time.perf_counter()
        samples += len(r.feed(chunk))
        per_message.append(time.perf_counter() - t)
    samples += len(r.flush())
    return time.perf_counter() - start, per_message, samples


def undeclared(chunks: list[bytes], bytes_per_second: float) -> tuple[float, int]:
    """Seconds for the stream with nothing declared, each message arriving as its audio ends
    (the format guessed from the values, the rate measured from the arrival times)."""
    arrivals = np.cumsum([len(c) for c in chunks]) / bytes_per_second
    r = sd.ChunkReassembler()
    samples = 0
    start = time.perf_counter()
    for chunk, arrival in zip(chunks, arrivals.tolist(), strict=True):
        samples += len(r.feed(chunk, arrival))
    samples += len(r.flush())
    return time.perf_counter() - start, samples


def whole_file(data: bytes, mime: str) -> tuple[float, int]:
    """Baseline: FFmpeg demux+decode of the joined file, channel mean, one soxr call."""
    start = time.perf_counter()
    if mime.startswith("audio/pcm"):
        mono = np.frombuffer(data, dtype="<f4")
        rate = 44100
    else:
        with av.open(io.BytesIO(data)) as container:
            frames = [f.to_ndarray() for f in container.decode(audio=0)]
            rate = container.streams.audio[0].codec_context.sample_rate
        mono = np.concatenate(frames, axis=1).mean(axis=0, dtype=np.float32)
    out = soxr.resample(mono, rate, 16000, quality="HQ")
    pcm = np.clip(np.rint(out * 32768), -32768, 32767).astype(np.int16)
    return time.perf_counter() - start, len(pcm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per case; best is kept")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as specified
    print(f"streamdiarize {sd.__version__}, PyAV {av.__version__}, one core, best of {args.repeat}")
    columns = ("chunked", "whole", "ratio", "p50 ms", "p99 ms", "p99/100ms")
    print(f"{'capture':44} " + " ".join(f"{c:>9}" for c in columns))
    for name, mime in CASES.items():
        chunks = messages(CAPTURES / name)
        data = b"".join(chunks)
        best_chunked, best_whole, timings = float("inf"), float("inf"), []
        audio_seconds = 0.0
        for _ in range(args.repeat):
            seconds, per_message, samples = chunked(chunks, mime)
            best_chunked = min(best_chunked, seconds)
            timings.extend(per_message)
            audio_seconds = samples / 16000
            best_whole = min(best_whole, whole_file(data, mime)[0])
        nonempty = [t for t, c in zip(timings, chunks * args.repeat, strict=True) if c]
        p50 = statistics.median(nonempty) * 1000
        p99 = float(np.percentile(nonempty, 99)) * 1000
        per_chunk_audio = audio_seconds / max(1, sum(1 for c in chunks if c))
        p99_per_100ms = p99 * 0.1 / per_chunk_audio
        print(
            f"{name:44} {audio_seconds / best_chunked:8.0f}x {audio_seconds / best_whole:8.0f}x "
            f"{best_whole / best_chunked:9.2f} {p50:9.3f} {p99:9.3f} {p99_per_100ms:9.3f}"
        )
    # Undeclared raw frames: the rate measurement (run on every message until decided) against
    # the same stream declared. E's 128-frame messages are the most messages per second.
    name, mime = "E_chromium_audioworklet_f32_128", CASES["E_chromium_audioworklet_f32_128"]
    chunks = messages(CAPTURES / name)
    declared = min(chunked(chunks, mime)[0] for _ in range(args.repeat))
    measured, samples = min(undeclared(chunks, 44100 * 4) for _ in range(args.repeat))
    print(
        f"{name + ' undeclared':44} {samples / 16000 / measured:8.0f}x "
        f"{'declared':>9} {declared / measured:9.2f}  (rate measured from arrival times)"
    )


if __name__ == "__main__":
    main()
