"""Writers that turn :class:`~streamdiarize.Segment` objects into transcript files, as they come.

Five formats, one small class each. ``text`` and ``jsonl`` stream (a line per final segment,
flushed at once, so ``tail -f`` and pipes see results live; a speaker correction, a segment
with ``revision`` > 0, is written as one more line). ``srt``, ``vtt`` and ``rttm`` are
documents whose every entry must be right: they are written when the transcript ends, in time
order, with each segment's latest speaker::

    text   [00:01.20] Speaker 1 (en): Good morning.
    jsonl  {"speaker": "Speaker 1", "language": "en", "text": "...", "offset": 1.2, ...}
    srt    SubRip cues, the speaker as a "Speaker 1: " prefix
    vtt    WebVTT cues with <v Speaker 1> voice spans
    rttm   SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>

Only ``jsonl`` writes interim hypotheses, and only when asked (``interim=True``): the other
formats describe what was said, which an interim result does not yet know.
"""

from __future__ import annotations

import abc
import json
import re
from typing import Any, ClassVar, TextIO

from ._exceptions import ConfigurationError
from .segment import Segment

__all__ = [
    "FORMATS",
    "JsonLinesWriter",
    "RttmWriter",
    "SegmentWriter",
    "SrtWriter",
    "TextWriter",
    "VttWriter",
    "clock",
    "make_writer",
    "segment_to_dict",
]

_WHITESPACE = re.compile(r"\s+")
_VTT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _milliseconds(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def clock(seconds: float, *, separator: str = ".", hours: bool = True) -> str:
    """``HH:MM:SS.mmm`` (``separator`` before the milliseconds: ``","`` for SRT).

    With ``hours=False`` the hours are left out while they are zero (``MM:SS.mmm``). Negative
    times print as zero; rounding is to the nearest millisecond, so 59.9996 s is ``00:01:00.000``.
    """
    ms = _milliseconds(seconds)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    tail = f"{m:02d}:{s:02d}{separator}{ms:03d}"
    return f"{h:02d}:{tail}" if hours or h else tail


def _one_line(text: str) -> str:
    """Text on a single line: a blank line would end an SRT/VTT cue early."""
    return _WHITESPACE.sub(" ", text).strip()


def _token(value: str) -> str:
    """A whitespace-free field for RTTM (``Speaker 1`` → ``Speaker_1``)."""
    return _WHITESPACE.sub("_", value.strip()) or "_"


def segment_to_dict(segment: Segment) -> dict[str, Any]:
    """The JSON shape of a segment: times in seconds, rounded to the millisecond."""
    return {
        "speaker": segment.speaker,
        "language": segment.language,
        "text": segment.text,
        "offset": round(segment.offset, 3),
        "duration": round(segment.duration, 3),
        "final": segment.final,
        "revision": segment.revision,
        "words": [
            {
                "text": w.text,
                "offset": round(w.offset, 3),
                "duration": round(w.duration, 3),
                "confidence": None if w.confidence is None else round(w.confidence, 4),
            }
            for w in segment.words
        ],
    }


class SegmentWriter(abc.ABC):
    """Writes segments to a text stream in one format; call :meth:`close` at the end.

    Args:
        stream: where to write (not closed by the writer).
        file_id: the recording's name, for formats that carry one (RTTM).
        interim: also write interim hypotheses, for formats that can show them.
    """

    #: The format's name on the command line.
    name: ClassVar[str]
    #: The usual file suffix.
    suffix: ClassVar[str]
    #: Whether the format has a way to show interim hypotheses.
    shows_interim: ClassVar[bool] = False
    #: Whether segments are written as they come (else at :meth:`close`, corrections applied).
    live: ClassVar[bool] = False

    def __init__(self, stream: TextIO, *, file_id: str = "audio", interim: bool = False) -> None:
        self.stream = stream
        self.file_id = file_id
        self.interim = interim
        self.count = 0
        self._started = False
        self._held: list[Segment] = []  # final segments, until close()

    def write(self, segment: Segment) -> None:
        """Write one segment (interim ones are skipped unless the format shows them).

        A format that is not :attr:`live` keeps final segments until :meth:`close`; a
        correction (``revision`` > 0) replaces the segment with the same ``offset``.
        """
        wanted = segment.final or (self.interim and self.shows_interim)
        if not wanted or not segment.text.strip():
            return
        if self.live:
            self._write(segment)
            return
        if segment.revision:  # replaces the same turn: same times and text, new speaker
            key = (segment.offset, segment.duration, segment.text)
            for i, held in enumerate(self._held):
                if (held.offset, held.duration, held.text) == key:
                    self._held[i] = segment
                    return
        self._held.append(segment)

    def close(self) -> None:
        """Write what was held, and finish the file (the header of an empty WebVTT file)."""
        held, self._held = self._held, []
        for segment in sorted(held, key=lambda s: s.offset):
            self._write(segment)
        if not self._started:
            self._started = True
            self._emit(self.header())
        self.stream.flush()

    def _write(self, segment: Segment) -> None:
        if not self._started:
            self._started = True
            self._emit(self.header())
        self.count += 1
        self._emit(self.format(segment))

    def header(self) -> str:
        """What the file starts with."""
        return ""

    @abc.abstractmethod
    def format(self, segment: Segment) -> str:
        """One segment as text, newline included."""

    def _emit(self, text: str) -> None:
        if text:
            self.stream.write(text)
            self.stream.flush()


class TextWriter(SegmentWriter):
    """``[MM:SS.cc] Speaker 1 (en): text`` — one line per final segment, for people."""

    name = "text"
    suffix = ".txt"
    live = True

    def format(self, segment: Segment) -> str:
        stamp = clock(segment.offset, hours=False)[:-1]  # centiseconds read better here
        language = f" ({segment.language})" if segment.language else ""
        note = " (speaker corrected)" if segment.revision else ""
        return f"[{stamp}] {segment.speaker}{language}{note}: {_one_line(segment.text)}\n"


class JsonLinesWriter(SegmentWriter):
    """One JSON object per segment (see :func:`segment_to_dict`), for programs."""

    name = "jsonl"
    suffix = ".jsonl"
    shows_interim = True
    live = True

    def format(self, segment: Segment) -> str:
        return json.dumps(segment_to_dict(segment), ensure_ascii=False) + "\n"


class SrtWriter(SegmentWriter):
    """SubRip subtitles: numbered cues, ``HH:MM:SS,mmm``, the speaker as a text prefix."""

    name = "srt"
    suffix = ".srt"

    def format(self, segment: Segment) -> str:
        start, end = _cue_times(segment, ",")
        text = _one_line(segment.text)
        return f"{self.count}\n{start} --> {end}\n{segment.speaker}: {text}\n\n"


class VttWriter(SegmentWriter):
    """WebVTT subtitles with a ``<v Speaker>`` voice span per cue (players can style voices)."""

    name = "vtt"
    suffix = ".vtt"

    def header(self) -> str:
        return "WEBVTT\n\n"

    def format(self, segment: Segment) -> str:
        start, end = _cue_times(segment, ".")
        voice = _one_line(segment.speaker).translate(_VTT_ESCAPES)
        text = _one_line(segment.text).translate(_VTT_ESCAPES)
        return f"{start} --> {end}\n<v {voice}>{text}\n\n"


class RttmWriter(SegmentWriter):
    """NIST RTTM speaker turns, the input of md-eval and ``pyannote.metrics``."""

    name = "rttm"
    suffix = ".rttm"

    def format(self, segment: Segment) -> str:
        if segment.duration <= 0:
            return ""
        return (
            f"SPEAKER {_token(self.file_id)} 1 {segment.offset:.3f} {segment.duration:.3f} "
            f"<NA> <NA> {_token(segment.speaker)} <NA> <NA>\n"
        )


def _cue_times(segment: Segment, separator: str) -> tuple[str, str]:
    """Start and end of a cue; the end is at least 1 ms after the start, as players require."""
    start = _milliseconds(segment.offset)
    end = max(start + 1, _milliseconds(segment.end))
    return clock(start / 1000, separator=separator), clock(end / 1000, separator=separator)


#: Writer classes by format name.
FORMATS: dict[str, type[SegmentWriter]] = {
    cls.name: cls for cls in (TextWriter, JsonLinesWriter, SrtWriter, VttWriter, RttmWriter)
}


def make_writer(
    format: str, stream: TextIO, *, file_id: str = "audio", interim: bool = False
) -> SegmentWriter:
    """A writer for ``format`` (one of :data:`FORMATS`).

    Raises:
        ConfigurationError: an unknown format name.
    """
    cls = FORMATS.get(format)
    if cls is None:
        raise ConfigurationError(
            f"unknown output format {format!r}: choose one of {', '.join(FORMATS)}"
        )
    return cls(stream, file_id=file_id, interim=interim)
