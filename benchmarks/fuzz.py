"""Coverage-guided fuzzing of format sniffing and ChunkReassembler, one target per container.

Usage::

    python benchmarks/fuzz.py [--seconds 60] [--target webm ...] [--engine atheris|random]

Each target feeds fuzzer-made bytes through the whole decode path (detect, demux, decode,
resample) in pieces whose sizes the input also chooses (0-byte and 1-byte pieces included), and
fails on anything but a :class:`~streamdiarize.StreamDiarizeError`: an untyped exception, a
call slower than ``1 s + 200 µs per byte`` (time per byte is bounded), more than 1 GiB of RSS,
or a crash of the process. The corpora start from the real browser captures and the container
fixtures under ``tests/data``.

``atheris`` (libFuzzer, coverage-guided; ``pip install atheris``, wheels for CPython 3.11+ on
Linux) runs each target in its own process for ``--seconds``; where it is missing,
``--engine random`` mutates the same seeds (bit flips, insertions, deletions, overwrites with
0xFF, duplicated slices) without coverage feedback. Artifacts go to ``artifacts/fuzz/``:
``<target>/corpus/`` (grown by libFuzzer), ``<target>/crash-*`` (inputs that failed) and
``summary.json``. Reproduce one input with ``--replay FILE --target NAME``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
OUT = ROOT / "artifacts" / "fuzz"
MAX_LEN = 24_000  # bytes per input: a few seconds of any capture
SLOW_BASE, SLOW_PER_BYTE = 1.0, 200e-6  # a call may take at most this long
PIECES = (0, 1, 2, 3, 5, 17, 64, 256, 1500, 4096, 16_384, MAX_LEN)

#: Target name → MIME hint given to the reassembler (None: sniff the magic bytes).
TARGETS: dict[str, str | None] = {
    "webm": "audio/webm;codecs=opus",
    "ogg": "audio/ogg;codecs=opus",
    "mp4": "audio/mp4",
    "wav": None,
    "raw_f32": "audio/pcm;rate=44100;encoding=float32;channels=1",
    "raw_guess": "audio/pcm;rate=44100",
    "detect": None,
}


class TooSlowError(Exception):
    """One call took longer than the time-per-byte budget."""


def _captures(letter: str, limit: int = MAX_LEN - 1) -> bytes:
    (directory,) = (DATA / "captures").glob(f"{letter}_*")
    return (directory / "stream.bin").read_bytes()[:limit]


def _wav_seeds() -> Iterator[bytes]:
    """dialog.wav's start, and a float32 WAV written here (no fixture needed)."""
    yield (DATA / "captures" / "dialog.wav").read_bytes()[: MAX_LEN - 1]
    import struct

    import numpy as np

    audio = (0.3 * np.sin(np.arange(4800) / 7)).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 48000, 192000, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(audio)) + audio
    yield b"RIFF" + struct.pack("<I", len(body)) + body


def seeds(target: str) -> list[bytes]:
    """Real streams to start from; the first byte of every input picks the piece sizes."""
    if target == "webm":
        streams = [_captures(x) for x in "ABC"]
        streams += [p.read_bytes() for p in sorted((DATA / "webm").iterdir())]
        streams += _surround("webm", "-c:a", "libopus")
    elif target == "ogg":
        streams = [_captures("G")] + [p.read_bytes() for p in sorted((DATA / "ogg").iterdir())]
        streams += _surround("ogg", "-c:a", "libopus")
    elif target == "mp4":
        streams = [p.read_bytes() for p in sorted((DATA / "mp4").iterdir())]
        streams += _surround("mp4", "-c:a", "aac", "-movflags", "+frag_keyframe+empty_moov")
    elif target == "wav":
        streams = list(_wav_seeds())
    elif target.startswith("raw"):
        streams = [_captures(x) for x in "DEF"]
    else:  # detect: heads of everything, behind a MIME index byte
        heads = [s[:64] for t in ("webm", "ogg", "mp4", "wav") for s in seeds(t)]
        return [bytes([i % len(_MIMES)]) + h for i, h in enumerate(heads)]
    return [bytes([i]) + s[: MAX_LEN - 1] for i, s in enumerate(streams)]


def _surround(suffix: str, *codec: str) -> list[bytes]:
    """0.3 s of 7.1 audio from the ffmpeg binary, if there is one (8+ channels once crashed
    PyAV's plane reader: worth a seed)."""
    if shutil.which("ffmpeg") is None:
        return []
    path = OUT / f"seed-7.1.{suffix}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        graph = "sine=f=440:d=0.3,aformat=channel_layouts=7.1"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph, *codec, str(path)],
            check=True,
        )
    return [path.read_bytes()]


_MIMES = (
    None,
    "audio/webm;codecs=opus",
    "audio/ogg;codecs=opus",
    "audio/mp4;codecs=mp4a.40.2",
    "audio/wav",
    "audio/pcm;rate=48000;encoding=int16;channels=2",
    "audio/webm;codecs=pcm",
    "audio/pcm;rate=16000",
)


def _pieces(stream: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    pos = 0
    while pos < len(stream):
        size = rng.choice(PIECES)
        yield stream[pos : pos + size]
        pos += size


def make_target(name: str) -> Callable[[bytes], None]:
    """The function one fuzz input runs through: typed errors only, bounded time."""
    import streamdiarize as sd

    mime = TARGETS[name]

    def timed(call: Callable[[], object], size: int) -> None:
        began = time.perf_counter()
        call()
        elapsed = time.perf_counter() - began
        if elapsed > SLOW_BASE + SLOW_PER_BYTE * size:
            raise TooSlowError(f"{elapsed:.2f} s for a call on {size} bytes")

    def reassemble(data: bytes) -> None:
        if not data:
            return
        reassembler = sd.ChunkReassembler(mime=mime, max_buffered=1 << 20, max_feed_seconds=60)
        try:
            for piece in _pieces(data[1:], data[0]):
                timed(lambda piece=piece: reassembler.feed(piece), len(piece))
            timed(reassembler.flush, 0)
        except sd.StreamDiarizeError:
            pass

    def detect(data: bytes) -> None:
        if not data:
            return
        hint = _MIMES[data[0] % len(_MIMES)]
        with contextlib.suppress(sd.StreamDiarizeError):
            sd.detect_format(data[1:], hint)
        with contextlib.suppress(sd.StreamDiarizeError):
            sd.formats.parse_mime(data[1:80].decode("latin-1"))

    return detect if name == "detect" else reassemble


# -- running -------------------------------------------------------------------------------


@dataclass
class Result:
    """One target's run."""

    target: str
    engine: str
    seconds: float
    executions: int = 0
    coverage: int | None = None  # libFuzzer's "cov:" (edges), atheris only
    corpus: int | None = None
    crashes: list[str] = field(default_factory=list)


def _run_atheris_child(target: str, seconds: float) -> None:
    """In the child process: instrument streamdiarize and hand over to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["streamdiarize"]):
        import streamdiarize  # noqa: F401

    run = make_target(target)
    directory = OUT / target
    corpus, seed_dir = directory / "corpus", directory / "seeds"
    for path in (corpus, seed_dir):
        path.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds(target)):
        (seed_dir / f"seed-{i:02d}").write_bytes(seed)
    argv = [
        sys.argv[0],
        str(corpus),
        str(seed_dir),
        f"-max_total_time={int(seconds)}",
        f"-max_len={MAX_LEN}",
        "-timeout=20",
        "-rss_limit_mb=1024",
        f"-artifact_prefix={directory}/",
        "-print_final_stats=1",
    ]
    atheris.Setup(argv, run)
    atheris.Fuzz()


def run_atheris(target: str, seconds: float) -> Result:
    """One target in a child process (libFuzzer exits at the first failure)."""
    result = Result(target, "atheris", seconds)
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        left = max(1.0, seconds - (time.monotonic() - began))
        before = _artifacts(target)
        process = subprocess.run(
            [sys.executable, __file__, "--child", target, "--seconds", str(left)],
            capture_output=True,
            text=True,
            check=False,
        )
        log = process.stderr
        (OUT / target / "last.log").write_text(log[-200_000:])
        result.executions += _stat(log, r"stat::number_of_executed_units:\s*(\d+)") or 0
        cov = re.findall(r"cov: (\d+)", log)
        corp = re.findall(r"corp: (\d+)", log)
        if cov:
            result.coverage = max(result.coverage or 0, int(cov[-1]))
        if corp:
            result.corpus = int(corp[-1])
        after = _artifacts(target)
        new = sorted(after - before)
        if process.returncode == 0 or not new:
            if process.returncode and not before:  # a failure libFuzzer could not save
                result.crashes.append(f"exit {process.returncode} without an artifact")
            break  # done, or the same input failed again
        for path in new:
            result.crashes.append(f"{path.name}: {_failure(log)}")
    return result


def _artifacts(target: str) -> set[Path]:
    """The failing inputs libFuzzer saved for ``target`` so far."""
    return {p for kind in ("crash", "oom", "timeout") for p in (OUT / target).glob(f"{kind}-*")}


def _stat(log: str, pattern: str) -> int | None:
    found = re.findall(pattern, log)
    return int(found[-1]) if found else None


def _failure(log: str) -> str:
    """The exception line of a libFuzzer crash report."""
    lines = [
        line
        for line in log.splitlines()
        if re.match(r"^\w*(Error|Exception)\b", line) or "deadly signal" in line.lower()
    ]
    return lines[-1] if lines else "see last.log"


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(len(out) + 1)
        kind = rng.choice(("flip", "insert", "delete", "ff", "dup"))
        if kind == "flip" and pos < len(out):
            out[pos] ^= 1 << rng.randrange(8)
        elif kind == "insert":
            out[pos:pos] = rng.randbytes(rng.choice((1, 2, 4, 8, 64)))
        elif kind == "delete":
            del out[pos : pos + rng.choice((1, 2, 4, 64, 512))]
        elif kind == "ff":
            out[pos : pos + 4] = b"\xff" * 4
        elif pos < len(out):
            size = rng.choice((4, 16, 256, 2048))
            out[pos:pos] = out[pos : pos + size]
    return bytes(out[:MAX_LEN])


def run_random(target: str, seconds: float, seed: int = 0) -> Result:
    """Mutation fuzzing without coverage feedback, in this process."""
    result = Result(target, "random", seconds)
    run = make_target(target)
    rng = random.Random(seed)
    pool = seeds(target)
    began = time.monotonic()
    directory = OUT / target
    directory.mkdir(parents=True, exist_ok=True)
    while time.monotonic() - began < seconds:
        data = _mutate(rng.choice(pool), rng)
        result.executions += 1
        try:
            run(data)
        except Exception as exc:
            name = f"crash-random-{result.executions}"
            (directory / name).write_bytes(data)
            result.crashes.append(f"{name}: {type(exc).__name__}: {exc}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Fuzz the chosen targets and print (and save) a summary; exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS))
    parser.add_argument("--engine", choices=("atheris", "random"))
    parser.add_argument("--replay", type=Path, help="run one saved input through --target")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _run_atheris_child(args.child, args.seconds)
        return 0
    targets = args.target or list(TARGETS)
    if args.replay:
        make_target(targets[0])(args.replay.read_bytes())
        print("no failure")
        return 0
    engine = args.engine
    if engine is None:
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "random"
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for target in targets:
        runner = run_atheris if engine == "atheris" else run_random
        result = runner(target, args.seconds)
        results.append(result)
        print(
            f"{target:10s} {engine}: {result.executions:8d} inputs in {result.seconds:.0f} s"
            f"  cov {result.coverage if result.coverage is not None else '-':>5}"
            f"  corpus {result.corpus if result.corpus is not None else '-':>5}"
            f"  failures {len(result.crashes)}",
            flush=True,
        )
        for crash in result.crashes:
            print(f"    {crash}")
    summary = {"python": sys.version.split()[0], "pid": os.getpid(), "results": []}
    summary["results"] = [asdict(r) for r in results]
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    return 1 if any(r.crashes for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
