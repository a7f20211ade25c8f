"""Incremental MP4 (ISO BMFF) demuxer for Safari MediaRecorder's ``audio/mp4``.

Safari writes fragmented MP4: ``ftyp``, a ``moov`` whose sample tables are empty (``mvex``
holds the per-track defaults), then a ``moof`` + ``mdat`` pair per fragment. ``moov`` and
``moof`` are read whole (up to ``max_box_size``); each ``moof`` says where its samples lie, so
``mdat`` payloads are streamed out sample by sample as their bytes arrive, never buffered
whole. A progressive MP4 whose ``moov`` (with ``stbl`` sample tables) precedes ``mdat`` is
demuxed the same way; one with ``mdat`` first cannot be streamed and is refused.

The first audio track is demuxed: AAC (``mp4a`` + ``esds``), Opus (``Opus`` + ``dOps``, handed
on as an OpusHead) or PCM (``ipcm``, ``fpcm``, ``lpcm``, ``sowt``, ``twos``, ...; contiguous
PCM samples are merged into packets of whole frames). ``pts`` is the sample's composition time
from ``tfdt``/``trun`` (or ``stts``/``ctts``) shifted by a simple edit list, in seconds. A new
``ftyp`` or ``moov`` after the first one (MediaRecorder ``stop()``/``start()``) yields
:class:`~streamdiarize.containers.StreamRestarted` and a new
:class:`~streamdiarize.containers.TrackInfo`; samples the old stream announced but never
delivered are dropped. Edit lists only shift ``pts``; end trimming is not reported.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .._exceptions import CorruptStreamError, LimitExceededError, UnsupportedFormatError
from ._base import DEFAULT_MAX_BUFFERED, Demuxer
from ._events import Packet, StreamRestarted, TrackInfo
from ._mp4_boxes import AudioConfig, Box, audio_config, fourcc

__all__ = [
    "DEFAULT_MAX_BOX_SIZE",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MAX_SAMPLE_SIZE",
    "DEFAULT_PCM_PACKET_SIZE",
    "MP4Demuxer",
]

#: Default cap on a box read whole (ftyp, moov, moof) or skipped unknown box.
DEFAULT_MAX_BOX_SIZE = 8 * 1024 * 1024
#: Default cap on one compressed sample (AAC and Opus packets are a few KB).
DEFAULT_MAX_SAMPLE_SIZE = 1024 * 1024
#: Default cap on samples described at once (one moof, or a progressive file's stbl).
DEFAULT_MAX_SAMPLES = 1 << 20

#: Default cap on one packet of merged PCM frames.
DEFAULT_PCM_PACKET_SIZE = 64 * 1024
_DISCARD_CHUNK = 64 * 1024  # read size while discarding a box that runs to the end
_READ_WHOLE = frozenset({b"ftyp", b"moov", b"moof"})
_PAYLOAD_BOXES = frozenset({b"mdat", b"free", b"skip", b"wide"})  # may be any size
_QUICKTIME_BRAND = b"qt  "
_MAX_OFFSET = 1 << 62  # offsets and times beyond this cannot come from a real stream

# tfhd flags (ISO 14496-12 §8.8.7) and trun flags (§8.8.8).
_TFHD_BASE_OFFSET, _TFHD_SDI, _TFHD_DURATION, _TFHD_SIZE, _TFHD_FLAGS = 0x1, 0x2, 0x8, 0x10, 0x20
_TFHD_BASE_IS_MOOF = 0x20000
_TRUN_DATA_OFFSET, _TRUN_FIRST_FLAGS = 0x1, 0x4
_TRUN_FIELDS = (0x100, 0x200, 0x400, 0x800)  # per-sample duration, size, flags, cts offset


@dataclass(frozen=True, slots=True)
class _Defaults:
    """Per-track sample defaults from ``trex`` (overridden per fragment by ``tfhd``)."""

    description: int = 1
    duration: int = 0
    size: int | None = None


@dataclass(slots=True)
class _Track:
    track_id: int
    timescale: int
    config: AudioConfig
    pts_shift: float  # seconds added to composition time (edit list)
    next_dts: int = 0  # decode time after the last fragment, for fragments without tfdt


@dataclass(slots=True)
class _Samples:
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


class MP4Demuxer(Demuxer):
    """Sans-I/O MP4 demuxer: ``feed(bytes) -> list[Event]``, then ``flush()`` at the end.

    Emits :class:`TrackInfo` when the ``moov`` is parsed, then one :class:`Packet` per sample
    (AAC access unit, Opus packet) or per run of whole PCM frames, as ``mdat`` bytes arrive.

    Args:
        max_box_size: cap on a ``moov``, ``moof`` or other box read or skipped whole.
        max_sample_size: cap on one compressed sample.
        max_samples: cap on samples one ``moof`` (or a progressive file's ``stbl``) describes.
        pcm_packet_size: contiguous PCM frames are merged into packets of at most this size.
        max_buffered: cap on bytes buffered at once (see :class:`Demuxer`).

    Exceeding a cap raises :class:`~streamdiarize.LimitExceededError`.
    """

    def __init__(
        self,
        *,
        max_box_size: int = DEFAULT_MAX_BOX_SIZE,
        max_sample_size: int = DEFAULT_MAX_SAMPLE_SIZE,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        pcm_packet_size: int = DEFAULT_PCM_PACKET_SIZE,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        self._pcm_packet_size = pcm_packet_size
        self._max_box_size = max_box_size
        self._max_sample_size = max_sample_size
        self._max_samples = max_samples
        self._track: _Track | None = None
        self._defaults: dict[int, _Defaults] = {}
        self._samples = _Samples()
        self._stream_start = 0  # offset of this stream's ftyp: the origin of absolute offsets
        self._quicktime = False
        self._announced = False  # a TrackInfo was emitted, so a new init segment is a restart
        self._restart_pending = False
        super().__init__(max_buffered=max_buffered)

    # --- top level: boxes as they stream in -------------------------------------------------

    def _parse(self) -> Generator[None, None, None]:
        while not (yield from self._buffer.at_end()):
            start = self._buffer.offset
            box_type, size, header = yield from self._read_box_header()
            if box_type == b"mdat":
                yield from self._on_mdat(start, header, size)
            elif box_type in _READ_WHOLE:
                if size is None:
                    raise UnsupportedFormatError(
                        f"MP4 box {fourcc(box_type)} at offset {start} extends to the end of "
                        "the stream (size 0), which cannot be streamed"
                    )
                self._check_box_size(box_type, size, start)
                body = yield from self._buffer.read_exact(size - header, f"{fourcc(box_type)} box")
                if box_type == b"ftyp":
                    self._on_ftyp(start, body)
                elif box_type == b"moov":
                    self._on_moov(body)
                else:
                    self._on_moof(start, body)
            elif size is None:
                while (yield from self._buffer.read_some(_DISCARD_CHUNK)):
                    pass
            else:
                if box_type not in _PAYLOAD_BOXES:
                    self._check_box_size(box_type, size, start)
                yield from self._buffer.skip(size - header, f"{fourcc(box_type)} box")
        if self._samples:
            raise CorruptStreamError(
                f"the MP4 stream ends before the media data of {len(self._samples)} samples "
                "its last movie fragment announced"
            )

    def _read_box_header(self) -> Generator[None, None, tuple[bytes, int | None, int]]:
        """Type, total size (``None``: to the end of the stream) and header length of a box."""
        start = self._buffer.offset
        size, box_type = struct.unpack(
            ">I4s", (yield from self._buffer.read_exact(8, "box header"))
        )
        if not all(0x20 <= c < 0x7F or c == 0xA9 for c in box_type):
            raise CorruptStreamError(
                f"no MP4 box at offset {start}: type {box_type!r} is not a four-character code"
            )
        if size == 1:
            (large,) = struct.unpack(">Q", (yield from self._buffer.read_exact(8, "box size")))
            if large < 16 or large >= _MAX_OFFSET:
                raise CorruptStreamError(
                    f"MP4 box {fourcc(box_type)} at offset {start} has 64-bit size {large}"
                )
            return box_type, large, 16
        if size == 0:
            return box_type, None, 8
        if size < 8:
            raise CorruptStreamError(
                f"MP4 box {fourcc(box_type)} at offset {start} has size {size}"
            )
        return box_type, size, 8

    def _check_box_size(self, box_type: bytes, size: int, start: int) -> None:
        if size > self._max_box_size:
            raise LimitExceededError(
                f"MP4 box {fourcc(box_type)} at offset {start} is {size} bytes, over "
                f"max_box_size={self._max_box_size}"
            )

    def _on_ftyp(self, start: int, body: bytes) -> None:
        if self._announced:
            self._restart_pending = True
        self._track = None
        self._samples.clear()
        self._stream_start = start
        brands = [body[i : i + 4] for i in range(0, len(body) - 3, 4) if i != 4]  # skip minor
        self._quicktime = _QUICKTIME_BRAND in brands

    # --- moov: the track and its codec ------------------------------------------------------

    def _on_moov(self, body: bytes) -> None:
        if self._announced:
            self._restart_pending = True
        self._samples.clear()
        moov = Box.root(b"moov", body)
        mvhd = moov.find(b"mvhd")
        movie_timescale = _timescale(mvhd) if mvhd is not None else 0
        defaults = _track_defaults(moov)
        first_error: UnsupportedFormatError | None = None
        for trak in moov.children():
            if trak.type != b"trak":
                continue
            mdia = trak.require(b"mdia")
            hdlr = mdia.find(b"hdlr")
            if hdlr is None or hdlr.fields(8).take(4) != b"soun":
                continue
            try:
                track, stbl = self._audio_track(trak, mdia, movie_timescale)
            except UnsupportedFormatError as exc:
                first_error = first_error or exc
                continue
            track_defaults = defaults.get(track.track_id, _Defaults())
            if track_defaults.description != 1:
                raise UnsupportedFormatError(
                    f"MP4 track {track.track_id} uses sample description "
                    f"{track_defaults.description}; only the first is supported"
                )
            self._track = track
            self._defaults = defaults
            if stbl is not None:
                self._queue(track, *self._stbl_samples(stbl))
            if self._restart_pending:
                self._emit(StreamRestarted())
                self._restart_pending = False
            self._announced = True
            self._emit(track.config.info)
            return
        raise first_error or UnsupportedFormatError("the MP4 stream has no audio track")

    def _audio_track(self, trak: Box, mdia: Box, movie_timescale: int) -> tuple[_Track, Box | None]:
        tkhd = trak.require(b"tkhd").fields()
        version, _ = tkhd.full_header()
        tkhd.skip(16 if version == 1 else 8)
        track_id = tkhd.u32()
        timescale = _timescale(mdia.require(b"mdhd"))
        stbl = mdia.require(b"minf").require(b"stbl")
        entry = next(stbl.require(b"stsd").children(8), None)  # after version, flags, count
        if entry is None:
            raise CorruptStreamError(f"MP4 track {track_id} has no sample description")
        config = audio_config(entry, self._quicktime)
        shift = _edit_shift(trak.find(b"edts"), movie_timescale, timescale)
        has_table = stbl.find(b"stsz") is not None or stbl.find(b"stz2") is not None
        return _Track(track_id, timescale, config, shift), stbl if has_table else None

    def _stbl_samples(
        self, stbl: Box
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Offsets, sizes, decode times and composition offsets of a progressive file's samples."""
        sizes = _sample_sizes(stbl, self._max_samples)
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
        offsets = offsets + self._stream_start
        durations = _time_table(stbl.find(b"stts"), count)
        dts = _exclusive_cumsum(durations)
        cts = _signed32(_time_table(stbl.find(b"ctts"), count))
        return offsets, sizes, dts, cts

    # --- moof: where this fragment's samples are --------------------------------------------

    def _on_moof(self, start: int, body: bytes) -> None:
        track = self._track
        if track is None:
            raise CorruptStreamError(
                f"MP4 movie fragment (moof) at offset {start} comes before the movie header "
                "(moov): the init segment is missing"
            )
        parts: list[tuple[NDArray[np.int64], ...]] = []
        total = 0
        data_end: int | None = start  # where the previous traf's data ended
        for traf in Box.root(b"moof", body).children():
            if traf.type != b"traf":
                continue
            runs, data_end = self._traf_samples(traf, start, data_end, track)
            for run in runs:
                total += len(run[0])
                if total > self._max_samples:
                    raise LimitExceededError(
                        f"MP4 movie fragment at offset {start} describes more than "
                        f"max_samples={self._max_samples} samples"
                    )
            parts.extend(runs)
        if parts:
            offsets, sizes, dts, cts = (
                np.concatenate(column) for column in zip(*parts, strict=True)
            )
            self._queue(track, offsets, sizes, dts, cts)

    def _traf_samples(
        self, traf: Box, moof_start: int, prev_end: int | None, track: _Track
    ) -> tuple[list[tuple[NDArray[np.int64], ...]], int | None]:
        """One track fragment's runs (ours only) and where its data ends (for the next traf)."""
        f = traf.require(b"tfhd").fields()
        _, flags = f.full_header()
        track_id = f.u32()
        defaults = self._defaults.get(track_id, _Defaults())
        base = f.u64() if flags & _TFHD_BASE_OFFSET else None
        description = f.u32() if flags & _TFHD_SDI else defaults.description
        duration = f.u32() if flags & _TFHD_DURATION else defaults.duration
        size = f.u32() if flags & _TFHD_SIZE else defaults.size
        ours = track_id == track.track_id
        if base is not None:
            if base >= _MAX_OFFSET:
                raise CorruptStreamError(f"MP4 tfhd base data offset {base} is implausible")
            data_start: int | None = self._stream_start + base
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
            if dts_start >= _MAX_OFFSET:
                raise CorruptStreamError(f"MP4 tfdt decode time {dts_start} is implausible")
        runs: list[tuple[NDArray[np.int64], ...]] = []
        data_end = data_start
        for trun in traf.children():
            if trun.type != b"trun":
                continue
            data_offset, durations, sizes, cts = self._parse_trun(trun, duration, size)
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
        self, trun: Box, duration: int, size: int | None
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
        if count > self._max_samples:
            raise LimitExceededError(
                f"MP4 track run claims {count} samples, over max_samples={self._max_samples}"
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

    def _queue(
        self,
        track: _Track,
        offsets: NDArray[np.int64],
        sizes: NDArray[np.int64],
        dts: NDArray[np.int64],
        cts: NDArray[np.int64],
    ) -> None:
        """Turn samples into the packets to read (PCM merged into runs) and queue them."""
        keep = sizes > 0
        offsets, sizes = offsets[keep], sizes[keep]
        pts = (dts[keep] + cts[keep]) / track.timescale + track.pts_shift
        order = np.argsort(offsets, kind="stable")
        offsets, sizes, pts = offsets[order], sizes[order], pts[order]
        frame = track.config.pcm_frame_bytes
        if frame:
            offsets, sizes, pts = _pcm_packets(
                offsets, sizes, pts, frame, track.config.info, self._pcm_packet_size
            )
        elif len(sizes) and int(sizes.max()) > self._max_sample_size:
            raise LimitExceededError(
                f"MP4 sample of {int(sizes.max())} bytes exceeds "
                f"max_sample_size={self._max_sample_size}"
            )
        self._samples.add(offsets, sizes, pts)

    # --- mdat: stream the samples out -------------------------------------------------------

    def _on_mdat(self, start: int, header: int, size: int | None) -> Generator[None, None, None]:
        if self._track is None:
            raise UnsupportedFormatError(
                f"MP4 media data (mdat) at offset {start} comes before the movie header "
                "(moov): this file cannot be streamed; write it fragmented or with the moov first "
                "(ffmpeg -movflags +faststart)"
            )
        pos = start + header
        end = None if size is None else start + size
        samples = self._samples
        while samples:
            i = samples.next
            offset, length = samples.offsets[i], samples.sizes[i]
            if offset < pos:
                raise CorruptStreamError(
                    f"MP4 sample data at offset {offset} lies before the mdat payload at {pos} "
                    "or overlaps the previous sample"
                )
            if end is not None and offset + length > end:
                if offset < end:
                    raise CorruptStreamError(
                        f"MP4 sample at offset {offset} ({length} bytes) runs past the end of "
                        f"its mdat at {end}"
                    )
                break  # lies in a later mdat
            yield from self._buffer.skip(offset - pos, "mdat box")
            data = yield from self._buffer.read_exact(length, "MP4 sample")
            samples.next += 1
            self._emit(Packet(data, samples.pts[i]))
            pos = offset + length
        if end is not None:
            yield from self._buffer.skip(end - pos, "mdat box")
        else:
            while (yield from self._buffer.read_some(_DISCARD_CHUNK)):
                pass


def _timescale(box: Box) -> int:
    """The timescale of an ``mvhd`` or ``mdhd`` box."""
    f = box.fields()
    version, _ = f.full_header()
    f.skip(16 if version == 1 else 8)
    timescale = f.u32()
    if timescale == 0:
        raise CorruptStreamError(f"MP4 box {box.name} declares a timescale of 0")
    return timescale


def _track_defaults(moov: Box) -> dict[int, _Defaults]:
    """Per-track sample defaults from ``mvex``/``trex``."""
    out: dict[int, _Defaults] = {}
    mvex = moov.find(b"mvex")
    for trex in mvex.children() if mvex is not None else ():
        if trex.type == b"trex":
            f = trex.fields()
            f.full_header()
            track_id, description, duration, size = f.u32(), f.u32(), f.u32(), f.u32()
            out[track_id] = _Defaults(description, duration, size)
    return out


def _edit_shift(edts: Box | None, movie_timescale: int, media_timescale: int) -> float:
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


def _pcm_packets(
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
