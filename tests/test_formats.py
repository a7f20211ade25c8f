"""Format detection: magic bytes, MIME hints, the raw float32/int16 heuristic."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamdiarize as sd
from streamdiarize.formats import guess_raw_sample_format, parse_mime

CAPTURES = Path(__file__).parent / "data" / "captures"


def _capture_head(name: str, n: int = 64) -> bytes:
    return (CAPTURES / name / "stream.bin").read_bytes()[:n]


@pytest.mark.parametrize(
    ("capture", "container"),
    [
        ("A_chromium_mediarecorder_webm_opus_ts100", sd.Container.WEBM),
        ("C_chromium_mediarecorder_webm_pcm_ts100", sd.Container.WEBM),
        ("G_firefox_mediarecorder_ogg_opus_ts100", sd.Container.OGG),
    ],
)
def test_real_browser_streams_are_recognised_by_magic(
    capture: str, container: sd.Container
) -> None:
    meta = json.loads((CAPTURES / capture / "meta.json").read_text())
    assert sd.detect_format(_capture_head(capture)).container is container
    with_hint = sd.detect_format(_capture_head(capture), mime=meta["mimeType"])
    assert with_hint.container is container
    assert with_hint.codec == meta["mimeType"].split("codecs=")[1]


def test_wav_and_mp4_magic() -> None:
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "
    assert sd.detect_format(wav).container is sd.Container.WAV
    mp4 = b"\x00\x00\x00\x1cftypiso5\x00\x00\x02\x00"
    assert sd.detect_format(mp4).container is sd.Container.MP4


def test_magic_wins_over_a_wrong_container_hint() -> None:
    fmt = sd.detect_format(_capture_head("G_firefox_mediarecorder_ogg_opus_ts100"), "audio/webm")
    assert fmt.container is sd.Container.OGG


def test_too_few_bytes_is_an_error_not_a_guess() -> None:
    with pytest.raises(sd.UnsupportedFormatError, match="need 12 bytes"):
        sd.detect_format(b"\x1a\x45")


def test_headerless_bytes_without_declaration_explain_what_to_do() -> None:
    with pytest.raises(sd.UnsupportedFormatError, match="declare the format"):
        sd.detect_format(bytes(range(40, 80)))


def test_hint_for_a_container_whose_header_is_missing() -> None:
    with pytest.raises(sd.UnsupportedFormatError, match="header"):
        sd.detect_format(bytes(range(40, 80)), mime="audio/webm;codecs=opus")


@pytest.mark.parametrize(
    ("mime", "expected"),
    [
        (
            "audio/pcm;rate=48000;encoding=float32",
            sd.AudioFormat(sd.Container.RAW, "pcm", sd.SampleFormat.FLOAT32, 48000, None),
        ),
        (
            "audio/pcm;rate=44100;encoding=int16;channels=2",
            sd.AudioFormat(sd.Container.RAW, "pcm", sd.SampleFormat.INT16, 44100, 2),
        ),
        (
            "audio/L16;rate=16000",
            sd.AudioFormat(sd.Container.RAW, "pcm", sd.SampleFormat.INT16, 16000),
        ),
        ("audio/webm;codecs=opus", sd.AudioFormat(sd.Container.WEBM, "opus")),
        ("audio/webm;codecs=pcm", sd.AudioFormat(sd.Container.WEBM, "pcm")),
        ("audio/ogg; codecs=opus", sd.AudioFormat(sd.Container.OGG, "opus")),
        ('audio/mp4; codecs="mp4a.40.2"', sd.AudioFormat(sd.Container.MP4, "aac")),
        ("audio/mp4", sd.AudioFormat(sd.Container.MP4)),
        ("audio/wav", sd.AudioFormat(sd.Container.WAV)),
    ],
)
def test_parse_mime(mime: str, expected: sd.AudioFormat) -> None:
    assert parse_mime(mime) == expected


@pytest.mark.parametrize(
    "mime",
    [
        "video/x-msvideo",
        "audio/webm;codecs=speex",
        "audio/pcm;rate=abc",
        "audio/pcm;encoding=mulaw",
        "audio/pcm;rate=5",
        "audio/pcm;rate=48000;channels=1000",
    ],
)
def test_unsupported_mime_is_a_typed_error(mime: str) -> None:
    with pytest.raises(sd.UnsupportedFormatError):
        parse_mime(mime)


@pytest.mark.slow
@given(st.text(max_size=60))
def test_parse_mime_never_raises_anything_untyped(mime: str) -> None:
    with contextlib.suppress(sd.UnsupportedFormatError):
        parse_mime(mime)


def test_mime_round_trip() -> None:
    for fmt in [
        sd.AudioFormat.raw(48000, "float32", 2),
        sd.AudioFormat.raw(16000, "int16"),
        sd.AudioFormat(sd.Container.OGG, "opus"),
    ]:
        assert parse_mime(fmt.mime) == fmt


def _speech_like(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    return (
        0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        + 0.01 * rng.standard_normal(n)
    ).astype(np.float32)


def test_heuristic_tells_float32_from_int16_on_real_captures() -> None:
    d = (CAPTURES / "D_chromium_scriptprocessor_f32_1024" / "stream.bin").read_bytes()
    f = (CAPTURES / "F_chromium_audioworklet_s16_128" / "stream.bin").read_bytes()
    assert guess_raw_sample_format(d[:200_000]) is sd.SampleFormat.FLOAT32
    assert guess_raw_sample_format(f[:200_000]) is sd.SampleFormat.INT16


def test_heuristic_on_synthetic_signals() -> None:
    x = _speech_like(8000)
    assert guess_raw_sample_format(x.tobytes()) is sd.SampleFormat.FLOAT32
    assert guess_raw_sample_format((x * 32767).astype("<i2").tobytes()) is sd.SampleFormat.INT16


def test_quiet_float32_with_decaying_tails_is_still_float32() -> None:
    """Firefox's microphone on a loaded machine: speech, then filter tails that decay through
    1e-10 and 1e-19 into silence, a fifth of the non-zero words below 1e-7."""
    speech = _speech_like(6000)
    tail = (0.3 * np.exp(-np.linspace(0, 45, 3000))).astype(np.float32)  # 0.3 down to 1e-20
    stream = np.concatenate([speech, tail, np.zeros(4000, np.float32)])
    assert np.mean(np.abs(stream[stream != 0]) < 1e-7) > 0.2
    assert guess_raw_sample_format(stream.tobytes()) is sd.SampleFormat.FLOAT32
    for gain in (100, 1000, 8000, 32767):  # int16 at any level is never read as float32
        quiet = np.clip(np.rint(stream * gain), -32768, 32767).astype("<i2").tobytes()
        assert guess_raw_sample_format(quiet) is not sd.SampleFormat.FLOAT32


def test_heuristic_refuses_silence_and_tiny_inputs() -> None:
    assert guess_raw_sample_format(bytes(100_000)) is None
    assert guess_raw_sample_format(_speech_like(100).tobytes()) is None
