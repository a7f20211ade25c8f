"""MP4 audio sample entries turned into a :class:`TrackInfo`: AAC via esds, Opus via dOps, PCM.

The box reader itself is :mod:`._bmff` (``Box``, ``Fields`` and ``fourcc`` are re-exported
here for the demuxer and the tests).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._exceptions import CorruptStreamError, UnsupportedFormatError
from ._bmff import MAX_DEPTH, Box, Fields, fourcc
from ._events import TrackInfo
from ._opus_toc import OPUS_RATE, opus_head_from_dops, parse_opus_head
from ._pcm import check_audio_params

__all__ = [
    "MAX_DEPTH",
    "AudioConfig",
    "Box",
    "Fields",
    "audio_config",
    "fourcc",
    "parse_audio_specific_config",
]


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """A decodable audio sample entry.

    Attributes:
        info: what the decoder needs.
        pcm_frame_bytes: bytes per interleaved frame for PCM codecs; 0 for compressed ones.
    """

    info: TrackInfo
    pcm_frame_bytes: int = 0


# ISO 14496-3 Table 1.18 (indices 13 and 14 are reserved) and channelConfiguration → channels.
_AAC_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
_AAC_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}
# Object types FFmpeg's AAC decoder handles: Main, LC, LTP, SBR, ER-LD, PS, ER-ELD, USAC.
_AAC_OBJECT_TYPES = frozenset({1, 2, 4, 5, 23, 29, 39, 42})
_AAC_OTIS = frozenset({0x40, 0x66, 0x67, 0x68})  # MPEG-4 audio, MPEG-2 AAC Main/LC/SSR
_OTHER_OTIS = {0x69: "MP3", 0x6B: "MP3", 0xA5: "AC-3", 0xA6: "E-AC-3", 0xA9: "DTS", 0xDD: "Vorbis"}


class _Bits:
    """MSB-first bit reader over a short byte string (an AudioSpecificConfig)."""

    __slots__ = ("_n", "_pos", "_value")

    def __init__(self, data: bytes) -> None:
        self._value, self._n, self._pos = int.from_bytes(data, "big"), len(data) * 8, 0

    def read(self, bits: int) -> int:
        if self._pos + bits > self._n:
            raise CorruptStreamError(f"AAC AudioSpecificConfig is truncated ({self._n // 8} bytes)")
        self._pos += bits
        return (self._value >> (self._n - self._pos)) & ((1 << bits) - 1)

    def object_type(self) -> int:
        aot = self.read(5)
        return 32 + self.read(6) if aot == 31 else aot

    def rate(self) -> int:
        index = self.read(4)
        if index == 15:
            return self.read(24)
        if index >= len(_AAC_RATES):
            raise CorruptStreamError(f"AAC sampling frequency index {index} is reserved")
        return _AAC_RATES[index]


def parse_audio_specific_config(asc: bytes) -> tuple[int, int]:
    """Output sample rate and channel count from an AAC AudioSpecificConfig (ISO 14496-3 1.6.2.1).

    An explicitly signalled SBR/PS extension gives the doubled output rate, and PS turns mono
    into stereo; implicit SBR cannot be seen here (the decoder finds it). Channels are 0 when
    the configuration defers to a program config element.

    Raises:
        UnsupportedFormatError: an object type FFmpeg's AAC decoder does not handle.
        CorruptStreamError: a truncated config or a reserved rate index.
    """
    bits = _Bits(asc)
    aot = bits.object_type()
    rate = bits.rate()
    channels = _AAC_CHANNELS.get(bits.read(4), 0)
    if aot in (5, 29):  # explicit hierarchical SBR (and PS): extension rate, then the core type
        if aot == 29 and channels == 1:
            channels = 2
        rate = bits.rate()
        aot = bits.object_type()
    if aot not in _AAC_OBJECT_TYPES:
        raise UnsupportedFormatError(f"MPEG-4 audio object type {aot} is not supported (AAC only)")
    if not 1 <= rate <= 384_000:
        raise CorruptStreamError(f"AAC AudioSpecificConfig declares a sample rate of {rate} Hz")
    return rate, channels


def _descriptor(f: Fields) -> tuple[int, int]:
    """An MPEG-4 descriptor's tag and its expandable size (ISO 14496-1 §8.3.3)."""
    tag, size = f.u8(), 0
    for _ in range(4):
        byte = f.u8()
        size = size << 7 | byte & 0x7F
        if not byte & 0x80:
            break
    return tag, min(size, f.remaining)


def _parse_esds(esds: Box) -> tuple[int, bytes]:
    """objectTypeIndication and DecoderSpecificInfo bytes from an ``esds`` box."""
    f = esds.fields()
    f.full_header()
    tag, _ = _descriptor(f)
    if tag != 0x03:
        raise CorruptStreamError(f"esds box starts with descriptor tag {tag}, not ES_Descriptor")
    f.skip(2)  # ES_ID
    es_flags = f.u8()
    if es_flags & 0x80:
        f.skip(2)  # dependsOn_ES_ID
    if es_flags & 0x40:
        f.skip(f.u8())  # URL
    if es_flags & 0x20:
        f.skip(2)  # OCR_ES_Id
    tag, _ = _descriptor(f)
    if tag != 0x04:
        raise CorruptStreamError(f"esds lacks its DecoderConfigDescriptor (found tag {tag})")
    oti = f.u8()
    f.skip(12)  # streamType, bufferSizeDB, maxBitrate, avgBitrate
    if f.remaining < 2:
        return oti, b""
    tag, size = _descriptor(f)
    return oti, f.take(size) if tag == 0x05 else b""


def _aac_config(entry: Box, skip: int, channels: int) -> AudioConfig:
    esds = entry.find(b"esds", skip)
    if esds is None:  # QuickTime keeps it inside a 'wave' box
        wave = entry.find(b"wave", skip)
        esds = wave.find(b"esds") if wave is not None else None
    if esds is None:
        raise CorruptStreamError("MP4 'mp4a' sample entry lacks its esds box")
    oti, asc = _parse_esds(esds)
    if oti not in _AAC_OTIS:
        name = _OTHER_OTIS.get(oti, f"objectTypeIndication {oti:#04x}")
        raise UnsupportedFormatError(f"MP4 'mp4a' track carries {name}; only AAC is supported")
    if not asc:
        raise CorruptStreamError("MP4 AAC track lacks its AudioSpecificConfig")
    rate, asc_channels = parse_audio_specific_config(asc)
    return AudioConfig(TrackInfo("aac", rate, asc_channels or channels, asc))


def _opus_config(entry: Box, skip: int) -> AudioConfig:
    dops = entry.find(b"dOps", skip)
    if dops is None:
        raise CorruptStreamError("MP4 'Opus' sample entry lacks its dOps box")
    head = opus_head_from_dops(dops.body())
    return AudioConfig(TrackInfo("opus", OPUS_RATE, parse_opus_head(head).channels, head))


def _pcm(kind: str, bits: int, little: bool, rate: int, channels: int, fmt: str) -> AudioConfig:
    valid = (32, 64) if kind == "f" else (8, 16, 24, 32)
    if bits not in valid:
        raise UnsupportedFormatError(
            f"MP4 {fmt} PCM with {bits}-bit samples, {channels} channels at {rate} Hz "
            "is not supported"
        )
    check_audio_params(rate, channels, f"the MP4 {fmt} PCM track")
    codec = f"pcm_{kind}8" if bits == 8 else f"pcm_{kind}{bits}{'le' if little else 'be'}"
    return AudioConfig(TrackInfo(codec, rate, channels), channels * bits // 8)


# QuickTime PCM fourccs: (kind, bits, little-endian unless an 'enda' box says otherwise).
_QT_PCM = {
    b"sowt": ("s", 16, True),
    b"twos": ("s", 16, False),
    b"raw ": ("u", 8, False),
    b"in24": ("s", 24, False),
    b"in32": ("s", 32, False),
    b"fl32": ("f", 32, False),
    b"fl64": ("f", 64, False),
}
_LPCM_FLOAT, _LPCM_BIG_ENDIAN = 0x1, 0x2


def _qt_little_endian(entry: Box, skip: int, default: bool) -> bool:
    wave = entry.find(b"wave", skip)
    enda = wave.find(b"enda") if wave is not None else entry.find(b"enda", skip)
    if enda is None:
        return default
    f = enda.fields()
    return bool(f.u16() if f.remaining >= 2 else f.u8())


def audio_config(entry: Box, quicktime: bool) -> AudioConfig:
    """The decoder setup of an audio sample entry (the first box of ``stsd``).

    Args:
        entry: the sample entry box (``mp4a``, ``Opus``, ``ipcm``, ``fpcm``, ``lpcm``, ...).
        quicktime: the file is QuickTime (``ftyp`` brand ``qt``), where version 1 and 2 sound
            descriptions carry extra fields.

    Raises:
        UnsupportedFormatError: a codec we cannot decode, named by its fourcc.
        CorruptStreamError: the entry or its configuration box is malformed.
    """
    f = entry.fields()
    f.skip(8)  # reserved, data_reference_index
    version = f.u16()
    f.skip(6)  # revision, vendor
    channels, sample_bits = f.u16(), f.u16()
    f.skip(4)  # compression id, packet size
    rate = f.u32() >> 16
    lpcm_flags = 0
    if version == 1 and quicktime:
        f.skip(16)  # samples per packet, bytes per packet/frame/sample
    elif version == 2:
        f.skip(4)
        (rate_f,) = struct.unpack(">d", f.take(8))
        rate = int(rate_f) if 1 <= rate_f <= 1e7 else 0
        channels = f.u32()
        f.skip(4)
        sample_bits, lpcm_flags = f.u32(), f.u32()
        f.skip(8)
    skip = f.pos - entry.start
    kind = entry.type
    if kind == b"mp4a":
        return _aac_config(entry, skip, channels)
    if kind == b"Opus":
        return _opus_config(entry, skip)
    srat = entry.find(b"srat", skip)
    if srat is not None:  # ISO sample entry v1: rates above 65535 Hz
        sf = srat.fields()
        sf.full_header()
        rate = sf.u32()
    if kind in (b"ipcm", b"fpcm"):
        pcmc = entry.require(b"pcmC", skip).fields()
        pcmc.full_header()
        little = bool(pcmc.u8() & 1)
        bits = pcmc.u8()
        return _pcm("f" if kind == b"fpcm" else "s", bits, little, rate, channels, fourcc(kind))
    if kind == b"lpcm":
        pcm_kind = "f" if lpcm_flags & _LPCM_FLOAT else "s"
        little = not lpcm_flags & _LPCM_BIG_ENDIAN
        return _pcm(pcm_kind, sample_bits, little, rate, channels, "'lpcm'")
    if kind in _QT_PCM:
        pcm_kind, bits, little = _QT_PCM[kind]
        if kind in (b"twos", b"sowt") and sample_bits == 8:
            bits = 8
        little = _qt_little_endian(entry, skip, little)
        return _pcm(pcm_kind, bits, little, rate, channels, fourcc(kind))
    if kind == b"enca":
        raise UnsupportedFormatError("the MP4 audio track is encrypted ('enca')")
    raise UnsupportedFormatError(
        f"MP4 audio codec {fourcc(kind)} is not supported (AAC 'mp4a', 'Opus' and PCM are)"
    )
