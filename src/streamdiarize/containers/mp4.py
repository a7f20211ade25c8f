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

import numpy as np
from numpy.typing import NDArray

from .._exceptions import CorruptStreamError, LimitExceededError, UnsupportedFormatError
from ._base import DEFAULT_MAX_BUFFERED, Demuxer
from ._bmff import Box, fourcc
from ._events import Packet, StreamRestarted
from ._mp4_boxes import audio_config
from ._mp4_tables import (
    MAX_OFFSET,
    Defaults,
    FragmentContext,
    Samples,
    Track,
    edit_shift,
    pcm_packets,
    read_timescale,
    stbl_samples,
    traf_samples,
    trex_defaults,
)

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
        self._track: Track | None = None
        self._defaults: dict[int, Defaults] = {}
        self._samples = Samples()
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
            if large < 16 or large >= MAX_OFFSET:
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
        movie_timescale = read_timescale(mvhd) if mvhd is not None else 0
        defaults = trex_defaults(moov)
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
            track_defaults = defaults.get(track.track_id, Defaults())
            if track_defaults.description != 1:
                raise UnsupportedFormatError(
                    f"MP4 track {track.track_id} uses sample description "
                    f"{track_defaults.description}; only the first is supported"
                )
            self._track = track
            self._defaults = defaults
            if stbl is not None:
                self._queue(track, *stbl_samples(stbl, self._stream_start, self._max_samples))
            if self._restart_pending:
                self._emit(StreamRestarted())
                self._restart_pending = False
            self._announced = True
            self._emit(track.config.info)
            return
        raise first_error or UnsupportedFormatError("the MP4 stream has no audio track")

    def _audio_track(self, trak: Box, mdia: Box, movie_timescale: int) -> tuple[Track, Box | None]:
        tkhd = trak.require(b"tkhd").fields()
        version, _ = tkhd.full_header()
        tkhd.skip(16 if version == 1 else 8)
        track_id = tkhd.u32()
        media_timescale = read_timescale(mdia.require(b"mdhd"))
        stbl = mdia.require(b"minf").require(b"stbl")
        entry = next(stbl.require(b"stsd").children(8), None)  # after version, flags, count
        if entry is None:
            raise CorruptStreamError(f"MP4 track {track_id} has no sample description")
        config = audio_config(entry, self._quicktime)
        shift = edit_shift(trak.find(b"edts"), movie_timescale, media_timescale)
        has_table = stbl.find(b"stsz") is not None or stbl.find(b"stz2") is not None
        return Track(track_id, media_timescale, config, shift), stbl if has_table else None

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
        fragment = FragmentContext(self._defaults, self._stream_start, self._max_samples)
        for traf in Box.root(b"moof", body).children():
            if traf.type != b"traf":
                continue
            runs, data_end = traf_samples(traf, start, data_end, track, fragment)
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

    def _queue(
        self,
        track: Track,
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
            offsets, sizes, pts = pcm_packets(
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
