"""Helpers shared by the tests: feed a stream in pieces, load browser captures and the dialog.

``feed_in_pieces`` is how every container test replays a byte stream with a chosen split;
``capture_messages`` rebuilds a capture's WebSocket messages exactly as they arrived;
``piece_sizes`` is the hypothesis strategy for arbitrary splits (0-byte pieces included);
``dialog`` is the captures' spoken dialog as 16 kHz PCM with its script, and
``dialog_script`` the emulator's recognizer for it;
``edit_lists``/``mutate``/``assert_only_typed_errors`` are the mutation fuzzing every demuxer
and the whole path share; ``whole_frames_audio`` checks PCM packets; ``WritePipe`` is a
non-seekable sink for FFmpeg.
"""

from __future__ import annotations

import itertools
import json
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st
from numpy.typing import NDArray

from streamdiarize import StreamDiarizeError
from streamdiarize.containers import Demuxer, EndOfStream, Event, Packet
from streamdiarize.testing import ScriptedRecognizer

__all__ = [
    "CAPTURES",
    "WritePipe",
    "assert_only_typed_errors",
    "capture_dir",
    "capture_messages",
    "dialog",
    "dialog_script",
    "edit_lists",
    "feed_in_pieces",
    "mutate",
    "ncc_near_zero_lag",
    "piece_sizes",
    "reference_pcm",
    "whole_frames_audio",
]

#: Where the browser captures live (see README.md there).
CAPTURES = Path(__file__).parent / "data" / "captures"


def dialog() -> tuple[NDArray[np.int16], list[dict[str, object]]]:
    """``dialog.wav`` (16 kHz int16 mono) and its utterances from ``dialog.json``."""
    with wave.open(str(CAPTURES / "dialog.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm, json.loads((CAPTURES / "dialog.json").read_text())["utterances"]


def dialog_script(**kwargs: Any) -> ScriptedRecognizer:
    """The emulator's recognizer for ``dialog.json`` (``kwargs`` as for ``from_utterances``)."""
    utterances = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]
    return ScriptedRecognizer.from_utterances(utterances, **kwargs)


def feed_in_pieces(
    demuxer: Demuxer, data: bytes, sizes: Iterable[int], *, flush: bool = True
) -> list[Event]:
    """Feed ``data`` in consecutive pieces of ``sizes`` bytes, then the rest, then flush.

    Returns every event, in order, ending with ``EndOfStream`` when ``flush`` is true. Sizes
    may be 0 (an empty WebSocket message) and may add up to less than ``len(data)``; the
    remainder is fed as one last piece.
    """
    events: list[Event] = []
    pos = 0
    for size in sizes:
        events += demuxer.feed(data[pos : pos + size])
        pos += size
    if pos < len(data):
        events += demuxer.feed(data[pos:])
    if flush:
        events += demuxer.flush()
    return events


def capture_dir(name: str) -> Path:
    """The directory of a capture, by full name or by its letter (``"A"``)."""
    if (CAPTURES / name).is_dir():
        return CAPTURES / name
    matches = sorted(CAPTURES.glob(f"{name}_*"))
    if len(matches) != 1:
        raise FileNotFoundError(f"no single capture named {name!r} in {CAPTURES}")
    return matches[0]


def capture_messages(name: str) -> list[bytes]:
    """The WebSocket messages of a capture (``stream.bin`` split by ``sizes.json``), in order.

    Empty messages are ``b""``. ``name`` is the directory name or its letter (``"G"``).
    """
    directory = capture_dir(name)
    data = (directory / "stream.bin").read_bytes()
    sizes = json.loads((directory / "sizes.json").read_text())
    ends = list(itertools.accumulate(sizes))
    if not ends or ends[-1] != len(data):
        raise ValueError(f"{directory}: sizes.json does not add up to stream.bin")
    return [data[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def piece_sizes(max_piece: int = 4096, max_pieces: int = 200) -> st.SearchStrategy[list[int]]:
    """Hypothesis strategy: a list of piece sizes for :func:`feed_in_pieces`.

    Biased towards tiny pieces (0, 1, 2 bytes) where parsers break, mixed with larger ones.
    """
    size = st.one_of(st.integers(0, 3), st.integers(0, 64), st.integers(0, max_piece))
    return st.lists(size, max_size=max_pieces)


def reference_pcm(name: str) -> NDArray[np.int16]:
    """A capture's FFmpeg reference decode (``reference.wav``, 16 kHz int16 mono)."""
    with wave.open(str(capture_dir(name) / "reference.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def ncc_near_zero_lag(a: NDArray[np.int16], b: NDArray[np.int16], max_lag: int = 16) -> float:
    """Best normalized cross-correlation within ±max_lag samples (16 = 1 ms at 16 kHz)."""
    x64 = a.astype(np.float64)
    y64 = b.astype(np.float64)
    n = min(len(x64), len(y64)) - 2 * max_lag
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x = x64[max_lag : max_lag + n]
        y = y64[max_lag + lag : max_lag + lag + n]
        best = max(best, float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y))))
    return best


#: One edit of :func:`mutate`: its kind, a position (taken modulo the length) and a blob.
Edit = tuple[str, int, bytes]


def edit_lists(
    kinds: Sequence[str], *, max_blob: int = 4, max_edits: int = 4
) -> st.SearchStrategy[list[Edit]]:
    """Hypothesis strategy: 1 to ``max_edits`` edits of the given :func:`mutate` kinds."""
    edit = st.tuples(
        st.sampled_from(list(kinds)),
        st.integers(0, 1 << 30),
        st.binary(min_size=1, max_size=max_blob),
    )
    return st.lists(edit, min_size=1, max_size=max_edits)


def mutate(data: bytes, edits: Iterable[Edit]) -> bytes:
    """Apply ``edits`` in order: the ways a hostile or broken stream differs from a good one.

    ``flip`` xors one byte, ``insert`` adds the blob, ``delete`` removes ``len(blob)`` bytes and
    ``cut`` eight times as many, ``ff`` overwrites with all-ones (unknown-size EBML, 4 GB boxes,
    255 lacing values), ``duplicate`` repeats up to ``64 * blob[0]`` bytes in place.
    """
    out = bytearray(data)
    for kind, where, blob in edits:
        pos = where % (len(out) + 1)
        if kind == "flip" and pos < len(out):
            out[pos] ^= blob[0] or 1
        elif kind == "insert":
            out[pos:pos] = blob
        elif kind == "delete":
            del out[pos : pos + len(blob)]
        elif kind == "cut":
            del out[pos : pos + 8 * len(blob)]
        elif kind == "ff":
            out[pos : pos + len(blob)] = b"\xff" * len(blob)
        elif kind == "duplicate":
            out[pos:pos] = out[pos : pos + 64 * blob[0]]
    return bytes(out)


def assert_only_typed_errors(demuxer: Demuxer, data: bytes, sizes: Iterable[int]) -> None:
    """Feed ``data`` in pieces: it either raises a :class:`StreamDiarizeError` or ends cleanly."""
    try:
        events = feed_in_pieces(demuxer, data, sizes)
    except StreamDiarizeError:
        return
    assert events[-1] == EndOfStream()


def whole_frames_audio(events: Iterable[Event], frame_size: int, rate: int) -> bytes:
    """Check that packets hold whole frames at contiguous pts; return their audio, joined."""
    packets = [e for e in events if isinstance(e, Packet)]
    done = 0
    for packet in packets:
        assert packet.data
        assert len(packet.data) % frame_size == 0
        assert packet.pts == pytest.approx(done / frame_size / rate)
        done += len(packet.data)
    return b"".join(p.data for p in packets)


class WritePipe:
    """A write-only, non-seekable file: FFmpeg then leaves sizes unknown (0xFFFFFFFF in WAV,
    an unknown-size Segment in WebM)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)
