#!/usr/bin/env python3
"""Score random diarization cases with pyannote.metrics, as a reference for our own DER.

Writes ``tests/data/local/der_pyannote.json`` (≈ 15 KB): random reference/hypothesis turns
(overlapping speech and same-speaker overlaps included) with pyannote's missed detection,
false alarm, confusion and total, for md-eval collars of 0 and 0.25 s (pyannote's ``collar`` is
the *total* width, so it gets 0.5). ``tests/test_local_metrics.py`` checks
``streamdiarize.transcribers.local.metrics.diarization_error`` against them.

pyannote.metrics needs no torch, but it is not a project dependency; use a throwaway venv::

    python3 -m venv /tmp/pyaref && /tmp/pyaref/bin/pip install pyannote.metrics
    /tmp/pyaref/bin/python scripts/make_der_reference.py

Produced with pyannote.metrics 4.2.0 and pyannote.core 6.1.0.
"""

from __future__ import annotations

import json
import random
import sys
import warnings
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests/data/local/der_pyannote.json"


def random_turns(rng: random.Random, prefix: str) -> list[list[object]]:
    turns: list[list[object]] = []
    for _ in range(rng.randint(1 if prefix == "r" else 0, 7)):
        start = round(rng.uniform(0, 30), 3)
        turns.append([f"{prefix}{rng.randint(0, 3)}", start, round(start + rng.uniform(0.2, 5), 3)])
    return turns


def main() -> int:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    warnings.simplefilter("ignore")  # "uem was approximated by the union of extents"

    def annotation(turns: list[list[object]]) -> Annotation:
        result = Annotation()
        for track, (speaker, start, end) in enumerate(turns):
            result[Segment(start, end), track] = speaker
        return result.support()  # a speaker talks or does not: merge own overlaps

    rng = random.Random(20240611)
    cases = []
    for _ in range(30):
        reference, hypothesis = random_turns(rng, "r"), random_turns(rng, "h")
        for collar in (0.0, 0.25):
            metric = DiarizationErrorRate(collar=2 * collar)
            detail = metric(annotation(reference), annotation(hypothesis), detailed=True)
            cases.append(
                {
                    "reference": reference,
                    "hypothesis": hypothesis,
                    "collar": collar,
                    "total": detail["total"],
                    "missed": detail["missed detection"],
                    "false_alarm": detail["false alarm"],
                    "confusion": detail["confusion"],
                }
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(cases, separators=(",", ":")) + "\n")
    print(f"wrote {len(cases)} cases to {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
