"""MP4 sample tables, vectorised: where each sample lies and when it plays.

A fragmented stream describes its samples per ``moof`` (``tfhd``/``tfdt``/``trun``), a
progressive one once in the ``moov`` (``stsz``/``stco``/``stsc``/``stts``/``ctts``). Both are
turned into numpy arrays of absolute offsets, sizes and times here; ``mp4.py`` then reads the
payloads out of ``mdat`` as they stream in. Every count is capped before an array is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .._exceptions import CorruptStreamError, LimitExceededError, UnsupportedFormatError
from ._bmff import Box
from ._events import TrackInfo
from ._mp4_boxes import AudioConfig

__all__ = [
    "MAX_OFFSET",
    "Defaults",
    "FragmentContext",
    "Samples",
    "Track",
    "edit_shift",
    "pcm_packets",
    "read_timescale",
    "stbl_samples",
    "traf_samples",
    "trex_defaults",
]

MAX_OFFSET = 1 << 62  # offsets and times beyond this cannot come from a real stream

# tfhd flags (ISO 14496-12 §8.8.7) and trun flags (§8.8.8).
_TFHD_BASE_OFFSET, _TFHD_SDI, _TFHD_DURATION, _TFHD_SIZE, _TFHD_FLAGS = 0x1, 0x2, 0x8, 0x10, 0x20
_TFHD_BASE_IS_MOOF = 0x20000
_TRUN_DATA_OFFSET, _TRUN_FIRST_FLAGS = 0x1, 0x4
_TRUN_FIELDS = (0x100, 0x200, 0x400, 0x800)  # per-sample duration, size, flags, cts offset


@dataclass(frozen=True, slots=True)
class Defaults:
    """Per-track sample defaults from ``trex`` (overridden per fragment by ``tfhd``)."""

    description: int = 1
    duration: int = 0
    size: int | None = None


@dataclass(slots=True)
class Track:
    """The audio track being demuxed: its id, clock and decoder setup."""

    track_id: int
    timescale: int
    config: AudioConfig
    pts_shift: float  # seconds added to composition time (edit list)
    next_dts: int = 0  # decode time after the last fragment, for fragments without tfdt


@dataclass(slots=True)
class Samples:
    """Sample payload locations (absolute stream offsets, ascending) still to be read."""

    offsets: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    pts: list[float] = field(default_factory=list)
    next: int = 0

    def __len__(self) -> int:
        return len(self.offsets) - self.next

    def add(
        self, offsets: NDArray[np.int64], sizes: NDArray[np.int64], pts: NDArray[np.float64]
    ) -> None:
        """Queue more samples, keeping the unread ones, all ordered by offset."""
        n = self.next
        all_offsets = np.concatenate((np.asarray(self.offsets[n:], np.int64), offsets))
        order = np.argsort(all_offsets, kind="stable")
        self.offsets = all_offsets[order].tolist()
        self.sizes = np.concatenate((np.asarray(self.sizes[n:], np.int64), sizes))[order].tolist()
        self.pts = np.concatenate((np.asarray(self.pts[n:], np.float64), pts))[order].tolist()
        self.next = 0

    def clear(self) -> None:
        """Forget every queued sample."""
        self.offsets, self.sizes, self.pts, self.next = [], [], [], 0


def _exclusive_cumsum(values: NDArray[np.int64]) -> NDArray[np.int64]:
    out = np.zeros(len(values), np.int64)
    np.cumsum(values[:-1], out=out[1:])
    return out


def _expand_runs(
    counts: NDArray[np.int64], values: NDArray[np.int64], total: int
) -> NDArray[np.int64]:
    """``values`` repeated ``counts`` times, cut at ``total`` (tables may over-count)."""
    ends = np.minimum(np.cumsum(counts), total)
    clipped = np.diff(ends, prepend=0)
    return np.repeat(values, clipped)


@dataclass(frozen=True, slots=True)
class FragmentContext:
    """What reading a ``traf`` needs from the stream: trex defaults, origin and caps."""

    defaults: dict[int, Defaults]
    stream_start: int  # offset of this stream's ftyp: the origin of absolute offsets
    max_samples: int


def stbl_samples(
    stbl: Box, stream_start: int, max_samples: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Offsets, sizes, decode times and composition offsets of a progressive file's samples."""
    sizes = _sample_sizes(stbl, max_samples)
    count = len(sizes)
    if count == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    stco = stbl.find(b"stco") or stbl.find(b"co64")
    if stco is None:
        raise CorruptStreamError("MP4 sample table lacks its chunk offsets (stco/co64)")
    f = stco.fields()
    f.full_header()
    chunk_offsets = f.array(">u4" if stco.type == b"stco" else ">u8", f.u32())
    f = stbl.require(b"stsc").fields()
    f.full_header()
    stsc = f.array(">u4", 3 * f.u32()).reshape(-1, 3)
    first_chunk, per_chunk = stsc[:, 0], stsc[:, 1]
    if len(stsc) == 0 or first_chunk[0] != 1 or np.any(np.diff(first_chunk) <= 0):
        raise CorruptStreamError("MP4 sample-to-chunk table (stsc) is not in chunk order")
    chunk_numbers = np.arange(1, len(chunk_offsets) + 1)
    samples_per_chunk = per_chunk[np.searchsorted(first_chunk, chunk_numbers, side="right") - 1]
    chunk_of_sample = _expand_runs(samples_per_chunk, np.arange(len(chunk_offsets)), count)
    if len(chunk_of_sample) < count:
        raise CorruptStreamError(
            f"MP4 chunk tables place {len(chunk_of_sample)} of {count} samples"
        )
    within = _exclusive_cumsum(sizes)
    first_in_chunk = np.searchsorted(chunk_of_sample, chunk_of_sample)  # first sample index
    offsets = chunk_offsets[chunk_of_sample] + within - within[first_in_chunk]
    offsets = offsets + stream_start
    durations = _time_table(stbl.find(b"stts"), count)
    dts = _exclusive_cumsum(durations)
    cts = _signed32(_time_table(stbl.find(b"ctts"), count))
    return offsets, sizes, dts, cts


def traf_samples(
    traf: Box, moof_start: int, prev_end: int | None, track: Track, fragment: FragmentContext
) -> tuple[list[tuple[NDArray[np.int64], ...]], int | None]:
    """One track fragment's runs (ours only) and where its data ends (for the next traf)."""
    f = traf.require(b"tfhd").fields()
    _, flags = f.full_header()
    track_id = f.u32()
    defaults = fragment.defaults.get(track_id, Defaults())
    base = f.u64() if flags & _TFHD_BASE_OFFSET else None
    description = f.u32() if flags & _TFHD_SDI else defaults.description
    duration = f.u32() if flags & _TFHD_DURATION else defaults.duration
    size = f.u32() if flags & _TFHD_SIZE else defaults.size
    ours = track_id == track.track_id
    if base is not None:
        if base >= MAX_OFFSET:
            raise CorruptStreamError(f"MP4 tfhd base data offset {base} is implausible")
        data_start: int | None = fragment.stream_start + base
    elif flags & _TFHD_BASE_IS_MOOF:
        data_start = moof_start
    else:
        data_start = prev_end
    if ours and description != 1:
        raise UnsupportedFormatError(
            f"MP4 fragment uses sample description {description}; only the first is supported"
        )
    dts_start = track.next_dts
    tfdt = traf.find(b"tfdt")
    if ours and tfdt is not None:
        tf = tfdt.fields()
        version, _ = tf.full_header()
        dts_start = tf.u64() if version == 1 else tf.u32()
        if dts_start >= MAX_OFFSET:
            raise CorruptStreamError(f"MP4 tfdt decode time {dts_start} is implausible")
    runs: list[tuple[NDArray[np.int64], ...]] = []
    data_end = data_start
    for trun in traf.children():
        if trun.type != b"trun":
            continue
        data_offset, durations, sizes, cts = _parse_trun(trun, duration, size, fragment.max_samples)
        if data_offset is not None and data_start is not None:
            run_start: int | None = data_start + data_offset
        elif data_offset is None:
            run_start = data_end
        else:
            run_start = None
        if sizes is None or run_start is None:
            if ours:
                raise CorruptStreamError(
                    "MP4 fragment does not say "
                    + ("how large its samples are" if sizes is None else "where its data is")
                )
            data_end = None
            continue
        data_end = run_start + int(sizes.sum())
        if ours:
            dts = dts_start + _exclusive_cumsum(durations)
            dts_start += int(durations.sum())
            runs.append((run_start + _exclusive_cumsum(sizes), sizes, dts, cts))
    if ours:
        track.next_dts = dts_start
    return runs, data_end


def _parse_trun(
    trun: Box, duration: int, size: int | None, max_samples: int
) -> tuple[int | None, NDArray[np.int64], NDArray[np.int64] | None, NDArray[np.int64]]:
    """A track run's data offset and per-sample durations, sizes and composition offsets."""
    f = trun.fields()
    _, flags = f.full_header()
    count = f.u32()
    data_offset = f.signed(32) if flags & _TRUN_DATA_OFFSET else None
    if flags & _TRUN_FIRST_FLAGS:
        f.skip(4)
    present = [bool(flags & bit) for bit in _TRUN_FIELDS]
    width = 4 * sum(present)
    if count > max_samples:
        raise LimitExceededError(
            f"MP4 track run claims {count} samples, over max_samples={max_samples}"
        )
    if width and count * width > f.remaining:
        raise CorruptStreamError(
            f"MP4 track run claims {count} samples but holds entries for {f.remaining // width}"
        )
    table = f.array(">u4", count * (width // 4)).reshape(count, width // 4)
    columns = iter(table.T)
    durations, sizes, _, cts = (next(columns) if has else None for has in present)
    if durations is None:
        durations = np.full(count, duration, np.int64)
    if sizes is None and size is not None:
        sizes = np.full(count, size, np.int64)
    # Composition offsets are signed in version 1; like FFmpeg, read version 0 the same way.
    cts = np.zeros(count, np.int64) if cts is None else _signed32(cts)
    return data_offset, durations, sizes, cts


def read_timescale(box: Box) -> int:
    """The timescale of an ``mvhd`` or ``mdhd`` box."""
    f = box.fields()
    version, _ = f.full_header()
    f.skip(16 if version == 1 else 8)
    timescale = f.u32()
    if timescale == 0:
        raise CorruptStreamError(f"MP4 box {box.name} declares a timescale of 0")
    return timescale


def trex_defaults(moov: Box) -> dict[int, Defaults]:
    """Per-track sample defaults from ``mvex``/``trex``."""
    out: dict[int, Defaults] = {}
    mvex = moov.find(b"mvex")
    for trex in mvex.children() if mvex is not None else ():
        if trex.type == b"trex":
            f = trex.fields()
            f.full_header()
            track_id, description, duration, size = f.u32(), f.u32(), f.u32(), f.u32()
            out[track_id] = Defaults(description, duration, size)
    return out


def edit_shift(edts: Box | None, movie_timescale: int, media_timescale: int) -> float:
    """Seconds to add to media time from a simple edit list (empty edits, then one edit).

    ISO BMFF and the MSE byte-stream format use it to hide encoder delay (AAC priming, Opus
    pre-skip). Lists with rate changes or several media edits are ignored.
    """
    elst = edts.find(b"elst") if edts is not None else None
    if elst is None:
        return 0.0
    f = elst.fields()
    version, _ = f.full_header()
    delay = 0
    for _ in range(min(f.u32(), 16)):
        duration = f.u64() if version == 1 else f.u32()
        media_time = f.signed(64 if version == 1 else 32)
        rate = f.u32()
        if media_time == -1:
            delay += duration
            continue
        if rate != 0x10000 or movie_timescale == 0:
            return 0.0
        return delay / movie_timescale - media_time / media_timescale
    return 0.0


def _sample_sizes(stbl: Box, max_samples: int) -> NDArray[np.int64]:
    """Every sample's size from ``stsz`` or ``stz2`` (vectorised)."""
    stsz = stbl.find(b"stsz")
    f = (stsz or stbl.require(b"stz2")).fields()
    f.full_header()
    if stsz is not None:
        constant, count = f.u32(), f.u32()
    else:
        f.skip(3)
        constant, field_size, count = 0, f.u8(), f.u32()
    if count > max_samples:
        raise LimitExceededError(
            f"MP4 sample table lists {count} samples, over max_samples={max_samples}"
        )
    if constant:
        return np.full(count, constant, np.int64)
    if stsz is not None:
        return f.array(">u4", count)
    if field_size == 16:
        return f.array(">u2", count)
    if field_size == 8:
        return f.array(">u1", count)
    if field_size == 4:
        packed = f.array(">u1", (count + 1) // 2)
        return np.stack((packed >> 4, packed & 0xF), axis=1).reshape(-1)[:count]
    raise CorruptStreamError(f"MP4 stz2 field size {field_size} is not 4, 8 or 16")


def _signed32(values: NDArray[np.int64]) -> NDArray[np.int64]:
    """Reinterpret unsigned 32-bit values as two's-complement."""
    return np.where(values >= 1 << 31, values - (1 << 32), values)


def _time_table(box: Box | None, count: int) -> NDArray[np.int64]:
    """Per-sample values from a run-length table (``stts`` durations, ``ctts`` offsets)."""
    if box is None:
        return np.zeros(count, np.int64)
    f = box.fields()
    f.full_header()
    table = f.array(">u4", 2 * f.u32()).reshape(-1, 2)
    values = table[:, 1]
    out = _expand_runs(table[:, 0], values, count)
    pad = values[-1] if len(values) else 0
    return np.concatenate((out, np.full(count - len(out), pad, np.int64)))


def pcm_packets(
    offsets: NDArray[np.int64],
    sizes: NDArray[np.int64],
    pts: NDArray[np.float64],
    frame: int,
    info: TrackInfo,
    packet_size: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Merge contiguous PCM samples into runs and cut them into packets of whole frames."""
    if not len(offsets):
        return offsets, sizes, pts
    run_first = np.flatnonzero(np.r_[True, offsets[1:] != offsets[:-1] + sizes[:-1]])
    run_start, run_pts = offsets[run_first], pts[run_first]
    run_len = np.add.reduceat(sizes, run_first)
    if np.any(run_len % frame):
        raise CorruptStreamError(
            f"MP4 PCM samples are not whole {frame}-byte frames ({info.codec}, "
            f"{info.channels} channels)"
        )
    piece = max(packet_size // frame, 1) * frame
    pieces = -(-run_len // piece)
    run = np.repeat(np.arange(len(run_first)), pieces)
    k = np.arange(len(run)) - np.repeat(_exclusive_cumsum(pieces), pieces)
    skipped = k * piece
    out_sizes = np.minimum(piece, run_len[run] - skipped)
    out_pts = run_pts[run] + skipped // frame / info.sample_rate
    return run_start[run] + skipped, out_sizes, out_pts
