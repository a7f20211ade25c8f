"""Packet decoders against FFmpeg's own decode of the same streams."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

import streamdiarize as sd
from streamdiarize.codecs import OpusDecoder, PcmDecoder, make_decoder
from streamdiarize.containers import TrackInfo

CAPTURES = Path(__file__).parent / "data" / "captures"


def _ffmpeg_packets_and_pcm(path: Path) -> tuple[bytes, list[bytes], np.ndarray]:
    """Packets and a float32 mono decode, both by FFmpeg's container API (the reference)."""
    data = path.read_bytes()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        extradata = bytes(stream.codec_context.extradata or b"")
        packets = [bytes(p) for p in container.demux(stream) if p.size]
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray().astype(np.float64).mean(axis=0) for f in container.decode(audio=0)]
    return extradata, packets, np.concatenate(frames)


@pytest.mark.parametrize(
    "capture",
    ["A_chromium_mediarecorder_webm_opus_ts100", "G_firefox_mediarecorder_ogg_opus_ts100"],
)
def test_opus_decoder_matches_ffmpeg(capture: str) -> None:
    head, packets, reference = _ffmpeg_packets_and_pcm(CAPTURES / capture / "stream.bin")
    channels = head[9]
    decoder = make_decoder(TrackInfo("opus", 48000, channels, head))
    assert isinstance(decoder, OpusDecoder)
    ours = np.concatenate([decoder.decode(p) for p in packets] + [decoder.flush()])
    assert ours.dtype == np.float32
    # Pre-skip is applied once, like FFmpeg; FFmpeg's demuxer also trims the end by the Ogg
    # EOS granule, which the bare decoder cannot know (the demuxer's discard_padding does).
    assert 0 <= len(ours) - len(reference) < 960
    ours = ours[: len(reference)]
    # Stereo is averaged like FFmpeg's -ac 1.
    np.testing.assert_allclose(ours, reference, atol=2e-3)
    corr = np.dot(ours, reference) / np.sqrt(np.dot(ours, ours) * np.dot(reference, reference))
    assert corr > 0.9999


def test_opus_garbage_packet_is_a_typed_error() -> None:
    decoder = OpusDecoder(b"", channels=1)
    assert decoder.decode(b"").size == 0  # empty = nothing, not FFmpeg's "drain" signal
    with pytest.raises(sd.CorruptStreamError, match="undecodable opus packet"):
        decoder.decode(b"\xff")  # code 3 without its frame-count byte (RFC 6716 §3.4 R6)
    assert decoder.decode(b"\xfc\xff\xfe").size == 960  # the decoder still works


def test_opus_head_validation() -> None:
    with pytest.raises(sd.CorruptStreamError, match="OpusHead"):
        OpusDecoder(b"NotOpusHeadAtAll!!!!", channels=2)


@pytest.mark.parametrize(
    ("codec", "dtype", "scale"),
    [
        ("pcm_s16le", "<i2", 32768),
        ("pcm_s32le", "<i4", 2**31),
        ("pcm_f32le", "<f4", 1),
        ("pcm_f64le", "<f8", 1),
        ("pcm_s16be", ">i2", 32768),
    ],
)
def test_pcm_layouts_downmix_stereo(codec: str, dtype: str, scale: float) -> None:
    rng = np.random.default_rng(1)
    stereo = rng.uniform(-0.5, 0.5, size=(100, 2))
    raw = (stereo * scale).astype(dtype)
    decoded = PcmDecoder(codec, 44100, 2).decode(raw.tobytes())
    expected = raw.astype(np.float64).mean(axis=1) / scale
    np.testing.assert_allclose(decoded, expected, atol=1e-6)


def test_pcm_s24le() -> None:
    values = np.array([0, 1, -1, 2**23 - 1, -(2**23)], dtype=np.int32)
    packed = b"".join(int(v & 0xFFFFFF).to_bytes(3, "little") for v in values)
    decoded = PcmDecoder("pcm_s24le", 48000, 1).decode(packed)
    np.testing.assert_allclose(decoded, values / 2**23, atol=1e-7)


def test_pcm_partial_frame_and_nan_are_typed_errors() -> None:
    with pytest.raises(sd.CorruptStreamError, match="whole number"):
        PcmDecoder("pcm_f32le", 48000, 2).decode(b"\x00" * 6)
    bad = np.array([0.1, np.nan, 0.2, np.inf], dtype="<f4").tobytes()
    with pytest.raises(sd.CorruptStreamError, match="2 NaN/infinite"):
        PcmDecoder("pcm_f32le", 48000, 1).decode(bad)


def test_unknown_codec() -> None:
    with pytest.raises(sd.UnsupportedFormatError, match="speex"):
        make_decoder(TrackInfo("speex", 16000, 1))
