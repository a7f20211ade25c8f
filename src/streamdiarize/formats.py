"""What a stream of browser audio bytes is: :class:`AudioFormat` and :func:`detect_format`.

Containers announce themselves with magic bytes (EBML ``1A 45 DF A3``, ``OggS``,
``RIFF....WAVE``, ``....ftyp``). Raw sample frames have no header, so their sample format and
rate must be declared (``format=`` or a ``audio/pcm;rate=...;encoding=...`` MIME string); when
only the rate is known, :func:`guess_raw_sample_format` tells float32 from int16 by looking at
the values, and refuses to guess on too little or all-silent data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

import numpy as np

from ._exceptions import ConfigurationError, UnsupportedFormatError

__all__ = [
    "MAGIC_BYTES_NEEDED",
    "AudioFormat",
    "Container",
    "SampleFormat",
    "detect_format",
    "guess_raw_sample_format",
    "parse_mime",
    "sample_format_named",
    "sniff_container",
]

#: Bytes :func:`detect_format` needs to recognise every container by its magic.
MAGIC_BYTES_NEEDED = 12


class Container(str, enum.Enum):
    """How samples are packaged in the byte stream."""

    RAW = "raw"  #: bare sample frames, no header (ScriptProcessor / AudioWorklet pages)
    WAV = "wav"  #: RIFF/WAVE
    WEBM = "webm"  #: WebM or Matroska (Chromium / Edge MediaRecorder)
    OGG = "ogg"  #: Ogg (Firefox MediaRecorder)
    MP4 = "mp4"  #: fragmented MP4 (Safari MediaRecorder)


class SampleFormat(str, enum.Enum):
    """Sample encoding of raw frames."""

    FLOAT32 = "float32"  #: little-endian IEEE float, nominal range [-1, 1]
    INT16 = "int16"  #: little-endian signed 16-bit

    @property
    def itemsize(self) -> int:
        """Bytes per sample."""
        return 4 if self is SampleFormat.FLOAT32 else 2


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A description of an incoming byte stream.

    Only :attr:`container` is always known. For containers the rest is learned from the stream
    itself; for :attr:`Container.RAW` frames, :attr:`sample_format` and :attr:`sample_rate` must
    be declared (see :meth:`raw`) because raw bytes carry no header.

    Attributes:
        container: how the samples are packaged.
        codec: codec name when known from the MIME type (``"opus"``, ``"pcm"``, ``"aac"``).
        sample_format: for raw frames, how each sample is encoded.
        sample_rate: for raw frames, frames per second.
        channels: for raw frames, interleaved channels per frame.
    """

    container: Container
    codec: str | None = None
    sample_format: SampleFormat | None = None
    sample_rate: int | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.sample_rate is not None and not 1000 <= self.sample_rate <= 384_000:
            raise ConfigurationError(f"sample rate {self.sample_rate} Hz is outside 1000-384000")
        if self.channels is not None and not 1 <= self.channels <= 32:
            raise ConfigurationError(f"channel count {self.channels} is outside 1-32")

    @classmethod
    def raw(
        cls,
        sample_rate: int | None,
        sample_format: SampleFormat | str | None = SampleFormat.FLOAT32,
        channels: int = 1,
    ) -> AudioFormat:
        """Raw interleaved frames, e.g. ``AudioFormat.raw(48000, "float32")``.

        Pass ``sample_format=None`` to let the heuristic of :func:`guess_raw_sample_format`
        decide between float32 and int16 once enough non-silent audio has arrived, and
        ``sample_rate=None`` to infer the rate from how fast a live stream arrives (see
        :mod:`streamdiarize.raw_detection`); :meth:`auto` is both.
        """
        fmt = None if sample_format is None else SampleFormat(sample_format)
        return cls(Container.RAW, "pcm", fmt, sample_rate, channels)

    @classmethod
    def auto(cls) -> AudioFormat:
        """Find out: a container by its magic bytes, else raw frames whose sample format and
        rate are told from the stream (see :mod:`streamdiarize.raw_detection`).

        What :class:`~streamdiarize.ChunkReassembler` does anyway when nothing is declared;
        pass it to say so explicitly.
        """
        return cls(Container.RAW, "pcm", None, None, 1)

    @property
    def mime(self) -> str:
        """A MIME string that :func:`parse_mime` maps back to this format."""
        if self.container is Container.RAW:
            parts = ["audio/pcm"]
            if self.sample_rate:
                parts.append(f"rate={self.sample_rate}")
            if self.sample_format:
                parts.append(f"encoding={self.sample_format.value}")
            if self.channels:
                parts.append(f"channels={self.channels}")
            return ";".join(parts)
        base = {
            Container.WAV: "audio/wav",
            Container.WEBM: "audio/webm",
            Container.OGG: "audio/ogg",
            Container.MP4: "audio/mp4",
        }[self.container]
        return f"{base};codecs={self.codec}" if self.codec else base


_MIME_CONTAINERS = {
    "audio/webm": Container.WEBM,
    "video/webm": Container.WEBM,
    "audio/x-matroska": Container.WEBM,
    "audio/matroska": Container.WEBM,
    "audio/ogg": Container.OGG,
    "application/ogg": Container.OGG,
    "audio/opus": Container.OGG,
    "audio/mp4": Container.MP4,
    "video/mp4": Container.MP4,
    "audio/x-m4a": Container.MP4,
    "audio/aac": Container.MP4,
    "audio/wav": Container.WAV,
    "audio/wave": Container.WAV,
    "audio/x-wav": Container.WAV,
    "audio/vnd.wave": Container.WAV,
    "audio/pcm": Container.RAW,
    "audio/l16": Container.RAW,
    "audio/raw": Container.RAW,
}

_ENCODINGS = {
    "float32": SampleFormat.FLOAT32,
    "f32": SampleFormat.FLOAT32,
    "f32le": SampleFormat.FLOAT32,
    "float": SampleFormat.FLOAT32,
    "int16": SampleFormat.INT16,
    "s16": SampleFormat.INT16,
    "s16le": SampleFormat.INT16,
    "pcm_s16le": SampleFormat.INT16,
    "linear16": SampleFormat.INT16,
}


def sample_format_named(name: str) -> SampleFormat:
    """The sample format a name stands for: ``float32``/``f32``/``f32le``/``float`` or
    ``int16``/``s16``/``s16le``/``pcm_s16le``/``linear16`` (any case).

    Raises:
        UnsupportedFormatError: no such name.
    """
    found = _ENCODINGS.get(name.strip().lower())
    if found is None:
        raise UnsupportedFormatError(f"raw sample encoding {name!r} is not float32 or int16")
    return found


def parse_mime(mime: str) -> AudioFormat:
    """Map a MIME string, as ``MediaRecorder.mimeType`` reports it, to an :class:`AudioFormat`.

    Raw PCM is written ``audio/pcm;rate=48000;encoding=float32;channels=1`` (``encoding`` is
    ``float32`` or ``int16``); ``audio/L16;rate=16000`` means int16.

    Raises:
        UnsupportedFormatError: the MIME type names no container or codec we decode.
    """
    base, *params = (part.strip() for part in mime.split(";"))
    base = base.lower()
    container = _MIME_CONTAINERS.get(base)
    if container is None:
        raise UnsupportedFormatError(f"MIME type {mime!r} is not a supported audio format")
    values: dict[str, str] = {}
    for param in params:
        key, _, value = param.partition("=")
        values[key.strip().lower()] = value.strip().strip('"').strip()
    codec = values.get("codecs", "").split(",")[0].strip().lower() or None
    if codec is not None and codec.startswith("mp4a"):
        codec = "aac"
    if codec in {"pcm", "opus", "aac", "vorbis", "flac", None} or container is Container.RAW:
        pass
    else:
        raise UnsupportedFormatError(f"codec {codec!r} in MIME type {mime!r} is not supported")
    if container is not Container.RAW:
        if base == "audio/opus":
            codec = "opus"
        return AudioFormat(container, codec)
    encoding = values.get("encoding") or values.get("format")
    sample_format = sample_format_named(encoding) if encoding else None
    if base == "audio/l16":
        sample_format = SampleFormat.INT16
    try:
        rate = int(values["rate"]) if "rate" in values else None
        channels = int(values["channels"]) if "channels" in values else None
    except ValueError as exc:
        raise UnsupportedFormatError(f"bad number in MIME type {mime!r}") from exc
    try:
        return AudioFormat(Container.RAW, "pcm", sample_format, rate, channels)
    except ConfigurationError as exc:
        raise UnsupportedFormatError(f"MIME type {mime!r}: {exc}") from exc


def sniff_container(data: bytes) -> Container | None:
    """The container whose magic bytes ``data`` starts with, or ``None`` (raw frames or too few)."""
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return Container.WEBM
    if data[:4] == b"OggS":
        return Container.OGG
    if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return Container.WAV
    if data[4:8] in (b"ftyp", b"styp"):
        return Container.MP4
    return None


def could_still_be_container(data: bytes) -> bool:
    """True while ``data`` is a prefix that more bytes could turn into a magic match."""
    if len(data) >= MAGIC_BYTES_NEEDED:
        return False
    head = data[:4]
    prefixes = (b"\x1a\x45\xdf\xa3", b"OggS", b"RIFF", b"RF64")
    return any(p.startswith(head) for p in prefixes) or len(data) < 8


def detect_format(data: bytes, mime: str | None = None) -> AudioFormat:
    """Tell what ``data`` (the first bytes of a stream) is, from its magic bytes and/or a MIME hint.

    Magic bytes win over a container hint (browsers mislabel, pages hard-code MIME types); the
    hint supplies what bytes cannot show (the codec). A raw ``audio/pcm`` hint is taken as
    declared, since raw frames carry no magic to check it against. Without a hint, bytes that match
    no magic are raw frames of unknown rate: use :meth:`AudioFormat.raw` or a MIME string.

    Args:
        data: the first bytes of the stream; :data:`MAGIC_BYTES_NEEDED` suffice for containers.
        mime: optional ``MediaRecorder.mimeType`` or ``audio/pcm;rate=...`` string.

    Raises:
        UnsupportedFormatError: the bytes are too few to tell, or match nothing and no usable
            hint was given. The message says which.
    """
    hinted = parse_mime(mime) if mime else None
    if hinted is not None and hinted.container is Container.RAW:
        return hinted  # raw frames have no magic that could contradict the page's declaration
    sniffed = sniff_container(bytes(data[:MAGIC_BYTES_NEEDED]))
    if sniffed is not None:
        if hinted is not None and hinted.container is sniffed:
            return hinted
        return AudioFormat(sniffed)
    if hinted is not None:
        if could_still_be_container(bytes(data)):
            raise UnsupportedFormatError(
                f"need {MAGIC_BYTES_NEEDED} bytes to confirm {hinted.mime}, got {len(data)}"
            )
        raise UnsupportedFormatError(
            f"bytes start with {bytes(data[:8]).hex(' ')}, not a {hinted.container.value} header "
            f"as MIME type {mime!r} says; was the first message (the header) lost?"
        )
    if could_still_be_container(bytes(data)):
        raise UnsupportedFormatError(
            f"need {MAGIC_BYTES_NEEDED} bytes to detect the format, got {len(data)}"
        )
    raise UnsupportedFormatError(
        f"bytes start with {bytes(data[:8]).hex(' ')}: no WebM, Ogg, WAV or MP4 header; for raw "
        "PCM frames declare the format, e.g. mime='audio/pcm;rate=48000;encoding=float32'"
    )


#: Non-zero samples :func:`guess_raw_sample_format` wants before it decides.
GUESS_MIN_NONZERO_SAMPLES = 512


def guess_raw_sample_format(data: bytes) -> SampleFormat | None:
    """Heuristic: are these raw little-endian frames float32 or int16? ``None`` = can't tell yet.

    Read as float32, real float audio has nearly all non-zero values between 1e-7 and 16 in
    magnitude; int16 audio read as float32 gives mostly denormal-tiny or astronomically large
    values (the high sample's bits land in the exponent). Read as int16, real int16 audio sits
    mostly near zero (median magnitude under a quarter of full scale), while float32 audio read
    as int16 does not (every other value holds a float's sign and exponent, about ±16000), nor do
    random bytes (uniform: median 16384) or text. Quiet float audio may hold many tinier values
    (Firefox's filter tails decay through 1e-10 and 1e-19 into silence), but never one above
    16 or a NaN, which int16 read as float32 gives in about half its words (the negative
    samples); so fewer plausible values do when none is wild. The guess needs at least
    :data:`GUESS_MIN_NONZERO_SAMPLES` non-zero float32 words and a clear majority (95 % / 50 %)
    either way; digital silence decides nothing, and bytes that fit neither reading decide
    nothing either.
    """
    usable = len(data) - len(data) % 4
    words = np.frombuffer(data[:usable], dtype="<f4")
    nonzero = words[words != 0]
    if nonzero.size < GUESS_MIN_NONZERO_SAMPLES:
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        magnitude = np.abs(nonzero.astype(np.float64))
    plausible = float(np.mean((magnitude >= 1e-7) & (magnitude <= 16.0)))
    wild = float(np.mean(~(magnitude <= 16.0)))  # above 16, infinite or NaN
    if plausible >= 0.95 or (plausible >= _QUIET_PLAUSIBLE and wild <= _FLOAT_MAX_WILD):
        return SampleFormat.FLOAT32
    if plausible <= 0.5 and _looks_like_int16_audio(data[:usable]):
        return SampleFormat.INT16
    return None


#: Plausible float32 words enough when (almost) none is wild: above 16, infinite or NaN.
_QUIET_PLAUSIBLE = 0.5
_FLOAT_MAX_WILD = 0.001

#: Median magnitude of non-zero int16 audio stays below this (a quarter of full scale).
_INT16_MEDIAN_LIMIT = 8192


def _looks_like_int16_audio(data: bytes) -> bool:
    """Read as int16, are the non-zero values concentrated near zero, as audio's are?"""
    samples = np.frombuffer(data, dtype="<i2").astype(np.int32)
    nonzero = np.abs(samples[samples != 0])
    return bool(nonzero.size) and float(np.median(nonzero)) <= _INT16_MEDIAN_LIMIT


def with_raw_defaults(fmt: AudioFormat, hints: AudioFormat) -> AudioFormat:
    """Fill a raw format's missing sample format, rate and channels from ``hints``."""
    if fmt.container is not Container.RAW:
        return fmt
    return replace(
        fmt,
        sample_format=fmt.sample_format or hints.sample_format,
        sample_rate=fmt.sample_rate or hints.sample_rate,
        channels=fmt.channels or hints.channels,
    )
