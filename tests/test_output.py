"""Transcript writers: every format is parsed back by an independent reader.

SRT by the ``srt`` package, WebVTT by ``webvtt-py``, RTTM by a strict parser of the NIST field
layout written here from the spec (md-eval's), JSON lines by :mod:`json`; segments come from
hypothesis, with hostile text (newlines, ``-->``, ``<``, ``&``, non-ASCII).
"""

from __future__ import annotations

import datetime
import html
import io
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdiarize import ConfigurationError, Segment, Word
from streamdiarize.output import FORMATS, clock, make_writer

srt = pytest.importorskip("srt")
webvtt = pytest.importorskip("webvtt")

_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\n\t<>&-"),
    min_size=1,
    max_size=60,
).filter(lambda t: t.strip() != "")
_SPEAKER = st.sampled_from(["Speaker 1", "Speaker 12", "Guest-2", "Unknown", "A <b> & c"])
_TIME = st.integers(0, 36_000_000).map(lambda ms: ms / 1000)  # up to 10 h, whole ms


@st.composite
def segments(draw: st.DrawFn, final: bool | None = True) -> Segment:
    offset = draw(_TIME)
    duration = draw(st.integers(0, 60_000)) / 1000
    words = tuple(
        Word(w, offset + i * 0.1, 0.1, draw(st.none() | st.floats(0, 1)))
        for i, w in enumerate(draw(st.lists(st.sampled_from(["hi", "there", "ok"]), max_size=3)))
    )
    return Segment(
        speaker=draw(_SPEAKER),
        language=draw(st.sampled_from([None, "en", "en-US", "es-ES"])),
        text=draw(_TEXT),
        offset=offset,
        duration=duration,
        final=draw(st.booleans()) if final is None else final,
        words=words,
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


def write_all(fmt: str, items: list[Segment], **kwargs: object) -> str:
    out = io.StringIO()
    writer = make_writer(fmt, out, **kwargs)  # type: ignore[arg-type]
    for segment in items:
        writer.write(segment)
    writer.close()
    return out.getvalue()


def ms(seconds: float) -> int:
    return round(seconds * 1000)


@given(st.integers(0, 360_000_000))
def test_clock_round_trips_every_millisecond(milliseconds: int) -> None:
    for separator in (".", ","):
        text = clock(milliseconds / 1000, separator=separator)
        h, m, rest = text.split(":")
        s, frac = rest.split(separator)
        assert len(m) == len(s) == 2
        assert len(frac) == 3
        assert ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(frac) == milliseconds


def test_clock_rounds_and_clamps() -> None:
    assert clock(59.9996) == "00:01:00.000"
    assert clock(-0.2) == "00:00:00.000"
    assert clock(3725.25, separator=",") == "01:02:05,250"
    assert clock(65.5, hours=False) == "01:05.500"
    assert clock(3600, hours=False) == "01:00:00.000"


@settings(max_examples=60, deadline=None)
@given(st.lists(segments(), max_size=8))
def test_srt_parses_back(items: list[Segment]) -> None:
    cues = list(srt.parse(write_all("srt", items)))
    assert len(cues) == len(items)
    in_time = sorted(items, key=lambda s: s.offset)  # a document: cues in time order
    for index, (cue, segment) in enumerate(zip(cues, in_time, strict=True), 1):
        assert cue.index == index
        assert cue.start == datetime.timedelta(milliseconds=ms(segment.offset))
        assert cue.end == datetime.timedelta(
            milliseconds=max(ms(segment.offset) + 1, ms(segment.end))
        )
        assert cue.content == f"{segment.speaker}: {one_line(segment.text)}"


@settings(max_examples=60, deadline=None)
@given(st.lists(segments(), max_size=8))
def test_webvtt_parses_back_with_voices(items: list[Segment]) -> None:
    text = write_all("vtt", items)
    assert text.startswith("WEBVTT\n\n")
    captions = webvtt.from_buffer(io.StringIO(text)).captions
    assert len(captions) == len(items)
    for caption, segment in zip(captions, sorted(items, key=lambda s: s.offset), strict=True):
        assert caption.start_time.in_milliseconds() == ms(segment.offset)
        assert caption.end_time.in_milliseconds() == max(ms(segment.offset) + 1, ms(segment.end))
        assert html.unescape(caption.voice) == segment.speaker
        spoken = re.sub(r"^<v [^>]*>", "", caption.raw_text)
        assert "<" not in spoken  # markup-free: every < of the text is escaped
        assert html.unescape(spoken) == one_line(segment.text)


def test_empty_webvtt_is_still_a_webvtt_file() -> None:
    text = write_all("vtt", [])
    assert text == "WEBVTT\n\n"
    assert webvtt.from_buffer(io.StringIO(text)).captions == []


_RTTM_FIELDS = (
    "type",
    "file",
    "channel",
    "start",
    "duration",
    "ortho",
    "stype",
    "name",
    "conf",
    "slat",
)


def parse_rttm(text: str) -> list[dict[str, str]]:
    """A strict RTTM reader: ten whitespace-free fields per line, <NA> where unused."""
    rows = []
    for line in text.splitlines():
        fields = line.split(" ")
        assert len(fields) == 10, line
        row = dict(zip(_RTTM_FIELDS, fields, strict=True))
        assert row["type"] == "SPEAKER"
        assert row["channel"] == "1"
        assert row["ortho"] == row["stype"] == row["conf"] == row["slat"] == "<NA>"
        assert re.fullmatch(r"\d+\.\d{3}", row["start"])
        assert re.fullmatch(r"\d+\.\d{3}", row["duration"])
        assert float(row["duration"]) > 0
        rows.append(row)
    return rows


@settings(max_examples=60, deadline=None)
@given(st.lists(segments(), max_size=8), st.sampled_from(["talk", "my talk", "a\tb"]))
def test_rttm_lines_follow_the_nist_layout(items: list[Segment], file_id: str) -> None:
    rows = parse_rttm(write_all("rttm", items, file_id=file_id))
    spoken = sorted((s for s in items if s.duration > 0), key=lambda s: s.offset)
    assert len(rows) == len(spoken)
    for row, segment in zip(rows, spoken, strict=True):
        assert row["file"] == "_".join(file_id.split())
        assert float(row["start"]) == pytest.approx(segment.offset, abs=5e-4)
        assert float(row["duration"]) == pytest.approx(segment.duration, abs=5e-4)
        assert row["name"] == "_".join(segment.speaker.split())


@settings(max_examples=60, deadline=None)
@given(st.lists(segments(final=None), max_size=8), st.booleans())
def test_jsonl_objects_and_interim_opt_in(items: list[Segment], interim: bool) -> None:
    lines = write_all("jsonl", items, interim=interim).splitlines()
    shown = [s for s in items if s.final or interim]
    assert len(lines) == len(shown)
    for line, segment in zip(lines, shown, strict=True):
        obj = json.loads(line)
        assert set(obj) == {
            "speaker",
            "language",
            "text",
            "offset",
            "duration",
            "final",
            "revision",
            "words",
        }
        assert obj["revision"] == segment.revision
        assert (obj["speaker"], obj["language"], obj["text"], obj["final"]) == (
            segment.speaker,
            segment.language,
            segment.text,
            segment.final,
        )
        assert obj["offset"] == pytest.approx(segment.offset, abs=5e-4)
        assert obj["duration"] == pytest.approx(segment.duration, abs=5e-4)
        assert [w["text"] for w in obj["words"]] == [w.text for w in segment.words]
        for got, word in zip(obj["words"], segment.words, strict=True):
            assert got["offset"] == pytest.approx(word.offset, abs=5e-4)
            if word.confidence is None:
                assert got["confidence"] is None
            else:
                assert got["confidence"] == pytest.approx(word.confidence, abs=5e-5)


_TEXT_LINE = re.compile(r"\[(\d\d):(\d\d)\.(\d\d)\] (.+?)(?: \(([\w-]+)\))?: (.*)")


@settings(max_examples=60, deadline=None)
@given(st.lists(segments(final=None), max_size=8))
def test_text_lines(items: list[Segment]) -> None:
    lines = write_all("text", items, interim=True).splitlines()
    finals = [s for s in items if s.final]
    assert len(lines) == len(finals)  # interim hypotheses never reach a text transcript
    for line, segment in zip(lines, finals, strict=True):
        match = _TEXT_LINE.fullmatch(line)
        if segment.offset >= 3600:
            assert line.startswith(f"[{int(segment.offset // 3600):02d}:")
            continue
        assert match is not None, line
        minutes, seconds, centis, speaker, language, text = match.groups()
        shown = int(minutes) * 60 + int(seconds) + int(centis) / 100
        assert segment.offset - 0.0105 <= shown <= segment.offset + 0.0005
        assert (speaker, language, text) == (
            segment.speaker,
            segment.language,
            one_line(segment.text),
        )


def test_text_line_example() -> None:
    segment = Segment("Speaker 1", "en", "Good  morning.\n", 1.2, 1.0)
    assert write_all("text", [segment]) == "[00:01.20] Speaker 1 (en): Good morning.\n"


def test_blank_final_segments_are_skipped() -> None:
    blank = Segment("Speaker 1", "en", "  ", 1.0, 1.0)
    for fmt in FORMATS:
        assert write_all(fmt, [blank]) == ("WEBVTT\n\n" if fmt == "vtt" else "")


def test_text_and_jsonl_write_each_segment_at_once() -> None:
    """Live output: the line is in the stream before the next segment exists."""
    for fmt in ("text", "jsonl"):
        out = io.StringIO()
        writer = make_writer(fmt, out)
        writer.write(Segment("Speaker 1", "en", "Hello there.", 0.5, 1.0))
        assert "Hello" in out.getvalue()
        assert out.getvalue().endswith("\n")


def test_a_speaker_correction_is_one_more_line_in_live_formats() -> None:
    first = Segment("Speaker 1", "en", "Thanks.", 4.2, 1.0)
    fixed = Segment("Speaker 2", "en", "Thanks.", 4.2, 1.0, revision=1)
    text = write_all("text", [first, fixed]).splitlines()
    assert text == [
        "[00:04.20] Speaker 1 (en): Thanks.",
        "[00:04.20] Speaker 2 (en) (speaker corrected): Thanks.",
    ]
    rows = [json.loads(line) for line in write_all("jsonl", [first, fixed]).splitlines()]
    assert [(r["speaker"], r["revision"]) for r in rows] == [("Speaker 1", 0), ("Speaker 2", 1)]


@pytest.mark.parametrize("fmt", ["srt", "vtt", "rttm"])
def test_documents_are_written_at_close_with_corrections_applied(fmt: str) -> None:
    out = io.StringIO()
    writer = make_writer(fmt, out)
    writer.write(Segment("Ann", "en", "Good morning.", 0.5, 1.0))
    writer.write(Segment("Ann", "en", "Thanks.", 4.2, 1.0))
    writer.write(Segment("Ann", "en", "Thanks again.", 4.2, 0.5))  # same offset, new
    writer.write(Segment("Bob", "en", "Thanks.", 4.2, 1.0, revision=1))
    assert out.getvalue() in ("", "WEBVTT\n\n")
    writer.close()
    text = out.getvalue()
    assert text.count("Bob") == 1
    assert text.count("Ann") == 2  # the first line, and "Thanks again." (not replaced)
    assert text.index("Bob") < text.rindex("Ann")  # the corrected one, in place


def test_unknown_format() -> None:
    with pytest.raises(ConfigurationError, match="unknown output format 'xml'"):
        make_writer("xml", io.StringIO())
