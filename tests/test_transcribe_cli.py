"""``transcribe_file()`` and ``streamdiarize transcribe``: chunking, pacing, errors, the sample.

The chunking and pacing tests use a recording test double as the backend (the thing under
test is how bytes are cut and sent, not speech recognition); the command is run as a real
subprocess, the README's first command included, on the bundled sample with the local engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamdiarize as sd
from streamdiarize.engines import open_engine
from streamdiarize.segment import Segment
from streamdiarize.transcribe import (
    FIRST_CHUNK_BYTES,
    ChunkPlanner,
    Progress,
    sample_path,
    transcribe_file,
)
from streamdiarize.transcribers import SegmentSink, TranscriberStream

pytestmark = pytest.mark.slow  # runs the CLI as child processes, some with Whisper

RATE = 16_000
SAMPLE_SCRIPT = json.loads((sample_path().parent / "sample.json").read_text())


# -- a recording backend ---------------------------------------------------------------------


class Recording(sd.Transcriber):
    """Keeps every PCM write and its time; reports one segment per write when ``echo``,
    else one spanning the whole stream at finish."""

    def __init__(self, *, echo: bool = False) -> None:
        self.echo = echo
        self.writes: list[tuple[float, np.ndarray]] = []
        self.closed = False

    @property
    def pcm(self) -> np.ndarray:
        return np.concatenate([p for _, p in self.writes]) if self.writes else np.zeros(0)

    async def open(self, sink: SegmentSink, *, interim_results: bool = False) -> TranscriberStream:
        return _RecordingStream(self, sink)


class _RecordingStream(TranscriberStream):
    def __init__(self, owner: Recording, sink: SegmentSink) -> None:
        self.owner, self.sink, self.samples = owner, sink, 0

    async def write(self, pcm: np.ndarray) -> None:
        self.owner.writes.append((time.perf_counter(), pcm.copy()))
        if self.owner.echo:
            self.sink.put_segment(Segment("Speaker 1", "en", "x", self.samples / RATE, 0.1))
        self.samples += len(pcm)

    async def finish(self) -> None:
        self.sink.put_segment(Segment("Speaker 1", "en", "all", 0.0, self.samples / RATE))

    async def aclose(self) -> None:
        self.owner.closed = True


def make_wav(path: Path, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return pcm


async def run(
    source: object, backend: sd.Transcriber, **kwargs: object
) -> tuple[list[Segment], list[Progress]]:
    progress: list[Progress] = []
    segments = [
        s
        async for s in transcribe_file(
            source,  # type: ignore[arg-type]
            backend,
            progress=progress.append,
            **kwargs,  # type: ignore[arg-type]
        )
    ]
    return segments, progress


def steps(progress: Sequence[Progress]) -> np.ndarray:
    return np.diff([0, *(p.bytes_sent for p in progress)])


# -- ChunkPlanner ------------------------------------------------------------------------------


def test_planner_learns_the_byte_rate() -> None:
    planner = ChunkPlanner(0.1)
    assert planner.next_size() == FIRST_CHUNK_BYTES
    assert planner.audio_time(5000) == 0.0
    planner.update(1024, 0.0)  # a header: no audio yet
    assert planner.next_size() == FIRST_CHUNK_BYTES
    planner.update(32_000, 1.0)  # 16 kHz int16
    assert planner.next_size() == 3200
    assert planner.audio_time(48_000) == pytest.approx(1.5)


def test_planner_does_not_count_the_header_as_audio() -> None:
    planner = ChunkPlanner(0.1)
    planner.update(1024, 980 / 32_000)  # WAV: 44-byte header + 980 bytes of samples
    planner.update(1024 + 3200, 980 / 32_000 + 0.1)
    assert planner.byte_rate == pytest.approx(32_000)
    assert planner.next_size() == 3200
    assert planner.audio_time(1024 + 6400) == pytest.approx(980 / 32_000 + 0.2)


def test_planner_sizes_opus_and_caps_huge_rates() -> None:
    opus = ChunkPlanner(0.1)
    opus.update(900, 0.0)  # OpusHead + OpusTags
    opus.update(1400, 0.2)  # the first 200 ms page
    opus.update(1900, 0.4)
    assert opus.next_size() == 250  # 20 kbit/s
    huge = ChunkPlanner(1.0)
    huge.update(10, 0.1)
    huge.update(10 + 10**9, 1.1)
    assert huge.next_size() == 1 << 20
    with pytest.raises(sd.ConfigurationError):
        ChunkPlanner(0)


# -- transcribe_file -------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_ms", [100, 20])
async def test_wav_goes_in_chunks_of_chunk_ms(tmp_path: Path, chunk_ms: int) -> None:
    pcm = make_wav(tmp_path / "a.wav", 2.0)
    backend = Recording()
    segments, progress = await run(tmp_path / "a.wav", backend, chunk_ms=chunk_ms)
    np.testing.assert_array_equal(backend.pcm, pcm)  # every sample, exactly once
    assert segments == [Segment("Speaker 1", "en", "all", 0.0, 2.0)]
    sizes = steps(progress)
    assert sizes[0] == FIRST_CHUNK_BYTES
    expected = 2 * RATE * chunk_ms / 1000  # bytes of 16 kHz int16 per chunk
    assert np.all(np.abs(sizes[2:-1] - expected) <= 0.02 * expected), sizes
    assert progress[-1] == Progress(44 + 2 * len(pcm), 44 + 2 * len(pcm), 2.0)


async def test_sample_goes_in_chunks_of_100_ms_of_opus() -> None:
    backend = Recording()
    _, progress = await run(sample_path(), backend)
    duration = SAMPLE_SCRIPT["duration_s"]
    # Ogg pages hold 200 ms, so audio comes out in steps; the chunks still average 100 ms.
    assert len(progress) == pytest.approx(duration / 0.1, rel=0.15)
    assert abs(len(backend.pcm) / RATE - duration) < 0.03
    assert progress[-1].bytes_sent == progress[-1].total_bytes == sample_path().stat().st_size


@settings(max_examples=15, deadline=None)
@given(st.floats(0.5, 3000))
def test_any_chunk_length_gives_the_same_audio(chunk_ms: float) -> None:
    """However the bytes are cut, the backend gets what one whole-file decode gives."""
    data = sample_path().read_bytes()
    reassembler = sd.ChunkReassembler()
    whole = np.concatenate([reassembler.feed(data), reassembler.flush()])
    backend = Recording()
    asyncio.run(run(sample_path(), backend, chunk_ms=chunk_ms))
    np.testing.assert_array_equal(backend.pcm, whole)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
async def test_sample_decodes_like_ffmpeg() -> None:
    backend = Recording()
    await run(sample_path(), backend)
    decode = ["ffmpeg", "-v", "error", "-i", str(sample_path()), "-ac", "1", "-ar", "16000"]
    done = await asyncio.to_thread(
        subprocess.run, [*decode, "-f", "s16le", "-"], check=True, capture_output=True
    )
    reference = np.frombuffer(done.stdout, dtype=np.int16)
    ours = backend.pcm.astype(np.float64)
    theirs = reference.astype(np.float64)
    n = min(len(ours), len(theirs))
    assert abs(len(ours) - len(theirs)) <= 0.01 * RATE
    error = ours[:n] - theirs[:n]
    snr = 10 * np.log10(np.sum(theirs[:n] ** 2) / np.sum(error**2))
    assert snr > 25, snr  # different resamplers; a lost or shifted packet gives < 5 dB


async def test_realtime_is_never_ahead_of_the_audio(tmp_path: Path) -> None:
    make_wav(tmp_path / "a.wav", 1.2)
    start = time.perf_counter()
    backend = Recording()
    await run(tmp_path / "a.wav", backend, realtime=True)
    wall = time.perf_counter() - start
    assert 1.0 <= wall <= 2.5
    written = 0
    for at, pcm in backend.writes:
        written += len(pcm)
        # A chunk is sent once the wall clock reaches the end of its audio (first chunk:
        # rate unknown yet, sent at once).
        assert at - start >= written / RATE - 0.1 - (1024 - 44) / 2 / RATE


async def test_a_pipe_is_read_as_it_fills(tmp_path: Path) -> None:
    pcm = make_wav(tmp_path / "a.wav", 1.0)
    data = (tmp_path / "a.wav").read_bytes()
    read_end, write_end = os.pipe()

    def producer() -> None:
        with os.fdopen(write_end, "wb", buffering=0) as w:
            for i in range(0, len(data), 7000):
                w.write(data[i : i + 7000])
                time.sleep(0.01)

    thread = threading.Thread(target=producer)
    thread.start()
    backend = Recording()
    with os.fdopen(read_end, "rb") as r:
        _, progress = await run(r, backend)
    thread.join()
    np.testing.assert_array_equal(backend.pcm, pcm)
    assert progress[-1].total_bytes is None


async def test_stopping_while_a_pipe_is_silent_leaves_nothing_waiting(tmp_path: Path) -> None:
    """Ctrl+C while stdin sends nothing: the read is abandoned, the loop can close at once
    (a read on asyncio's default executor would make ``asyncio.run`` wait for the pipe)."""
    make_wav(tmp_path / "a.wav", 1.0)
    read_end, write_end = os.pipe()
    os.write(write_end, (tmp_path / "a.wav").read_bytes()[:20_000])  # then silence
    backend = Recording(echo=True)
    try:
        with os.fdopen(read_end, "rb") as r:
            agen = transcribe_file(r, backend)
            await asyncio.wait_for(anext(agen), 5)
            reader = asyncio.ensure_future(anext(agen))
            await asyncio.sleep(0.3)  # the pump now waits for the pipe
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await asyncio.wait_for(agen.aclose(), 2)
        assert backend.closed
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.shutdown_default_executor(), 2)
    finally:
        os.close(write_end)  # ends the abandoned read


async def test_leaving_the_loop_early_stops_the_session(tmp_path: Path) -> None:
    make_wav(tmp_path / "a.wav", 3.0)
    backend = Recording(echo=True)

    async def first() -> Segment:
        agen = transcribe_file(tmp_path / "a.wav", backend)
        async with contextlib.aclosing(agen):
            async for segment in agen:
                return segment
        raise AssertionError("no segment")

    await asyncio.wait_for(first(), 5)
    assert backend.closed
    assert len(backend.pcm) < 3 * RATE


async def test_corrupt_tail_raises_after_the_audio_before_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ogg"
    broken.write_bytes(sample_path().read_bytes()[:30_000] + bytes(5000))
    backend = Recording()
    segments = transcribe_file(broken, backend)
    first = await anext(segments)
    assert first.duration > 12  # the pages before the fault were transcribed
    with pytest.raises(sd.CorruptStreamError, match="CRC"):
        await anext(segments)


async def test_missing_empty_and_tiny_inputs(tmp_path: Path) -> None:
    with pytest.raises(sd.ConfigurationError, match="No such file"):
        await run(tmp_path / "nope.webm", Recording())
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(sd.UnsupportedFormatError, match="empty"):
        await run(tmp_path / "empty", Recording())
    (tmp_path / "tiny").write_bytes(b"hello\n")
    with pytest.raises(sd.UnsupportedFormatError, match="6 bytes are too few"):
        await run(tmp_path / "tiny", Recording())


async def test_raw_frames_need_and_take_a_mime(tmp_path: Path) -> None:
    pcm = (np.sin(np.arange(48_000) / 10) * 0.25).astype("<f4")
    (tmp_path / "a.raw").write_bytes(pcm.tobytes())
    backend = Recording()
    await run(tmp_path / "a.raw", backend, mime="audio/pcm;rate=48000;encoding=float32")
    assert len(backend.pcm) == pytest.approx(RATE, abs=2)


# -- open_engine -------------------------------------------------------------------------------


def test_engine_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPEECH_KEY", "SPEECH_REGION", "SPEECH_ENDPOINT", "SPEECH_HOST"):
        monkeypatch.delenv(name, raising=False)
    with open_engine() as engine:
        assert type(engine.transcriber).__name__ == "LocalTranscriber"
    with pytest.raises(sd.ConfigurationError, match="SPEECH_KEY"), open_engine("azure"):
        pass
    monkeypatch.setenv("SPEECH_KEY", "k")
    monkeypatch.setenv("SPEECH_REGION", "westeurope")
    with open_engine() as engine:
        assert isinstance(engine.transcriber, sd.AzureTranscriber)
    with (
        pytest.raises(sd.ConfigurationError, match="Azure finds"),
        open_engine("azure", max_speakers=2),
    ):
        pass
    with (
        pytest.raises(sd.ConfigurationError, match="English-only"),
        open_engine("local", languages=["en-US", "de-DE"]),
    ):
        pass
    with pytest.raises(sd.ConfigurationError, match="unknown engine"), open_engine("x"):
        pass


# -- the command -----------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEECH_")}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def cli(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streamdiarize.cli", "transcribe", *map(str, args)],
        input=stdin,
        capture_output=True,
        env=clean_env(),
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.wav"], "cannot read nope.wav: No such file or directory"),
        (["--format", "xml"], "unknown output format 'xml'"),
        (["--engine", "watson"], "unknown engine 'watson'"),
        (["--chunk-ms", "0"], "--chunk-ms must be > 0"),
        (["--engine", "azure"], "no Azure Speech credentials"),
        (["--max-speakers", "0"], "--max-speakers must be at least 1"),
        (["--language", "fr-FR"], "English-only"),
        (["-"], "is not audio we can decode: its 6 bytes are too few"),
        (["--sample", "x.wav"], "either FILE or --sample"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = cli(*args, stdin=b"hello\n")
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("streamdiarize: error: ")
    assert message in stderr
    assert result.stdout == b""


def test_not_audio_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("These are meeting notes, not audio. " * 20)
    result = cli(tmp_path / "notes.txt", "-o", tmp_path / "out.txt")
    assert result.returncode == 2
    assert "is not audio we can decode" in result.stderr.decode()
    assert result.stderr.decode().count("\n") == 1


def test_no_output_file_is_left_by_a_missing_key(tmp_path: Path) -> None:
    result = cli(sample_path(), "--engine", "azure", "-o", tmp_path / "out.srt")
    assert result.returncode == 2
    assert not (tmp_path / "out.srt").exists()


def parse_text_transcript(text: str) -> list[tuple[float, str, str]]:
    rows = []
    for line in text.splitlines():
        stamp, rest = line[1:].split("] ", 1)
        speaker_language, words = rest.split(": ", 1)
        minutes, seconds = stamp.split(":")
        rows.append((int(minutes) * 60 + float(seconds), speaker_language, words))
    return rows


def wer(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    jiwer = pytest.importorskip("jiwer")
    from streamdiarize.transcribers.local.metrics import normalize_text

    return float(
        jiwer.wer(normalize_text(" ".join(reference)), normalize_text(" ".join(hypothesis)))
    )


@pytest.mark.slow
def test_the_readme_command_transcribes_the_bundled_sample() -> None:
    """``streamdiarize transcribe`` with no key and no file: the local engine on the sample."""
    pytest.importorskip("faster_whisper")
    result = cli()
    assert result.returncode == 0, result.stderr.decode()
    assert "transcribing the bundled sample" in result.stderr.decode()
    rows = parse_text_transcript(result.stdout.decode())
    utterances = SAMPLE_SCRIPT["utterances"]
    # Every utterance has rows (a turn may be cut in two), all of its speaker's one label.
    labels: dict[str, set[str]] = {}
    for start, label, _ in rows:
        inside = [u for u in utterances if u["start_s"] - 0.15 <= start < u["end_s"]]
        assert inside, f"a row at {start} s outside every utterance"
        labels.setdefault(inside[-1]["speaker"], set()).add(label)
        assert label.endswith("(en)")
    assert len(rows) >= len(utterances)
    assert {k: len(v) for k, v in labels.items()} == {"spk1": 1, "spk2": 1}, labels
    assert labels["spk1"] != labels["spk2"]
    assert wer([u["text"] for u in utterances], [text for _, _, text in rows]) <= 0.10


@pytest.mark.slow
def test_fake_engine_reads_stdin_and_writes_srt(tmp_path: Path) -> None:
    """stdin → the real Azure SDK → the emulator with the local engine → an SRT file."""
    pytest.importorskip("faster_whisper")
    srt = pytest.importorskip("srt")
    out = tmp_path / "call.srt"
    result = cli("-", "--engine", "fake", "--format", "srt", "-o", out,
                 stdin=sample_path().read_bytes())  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""
    cues = list(srt.parse(out.read_text()))
    utterances = SAMPLE_SCRIPT["utterances"]
    assert len(cues) >= len(utterances)  # a turn may be cut in two, never two turns in one
    for cue in cues:
        start, end = cue.start.total_seconds(), cue.end.total_seconds()
        inside = [u for u in utterances if u["start_s"] - 0.15 <= start < u["end_s"]]
        assert inside, f"a cue at {start} s outside every utterance"
        assert end <= inside[-1]["end_s"] + 0.15
        expected = "Guest-1" if inside[-1]["speaker"] == "spk1" else "Guest-2"
        assert cue.content.split(": ", 1)[0] == expected
    texts = [c.content.split(": ", 1)[1] for c in cues]
    assert wer([u["text"] for u in utterances], texts) <= 0.10


def _silence(tmp_path: Path) -> Path:
    path = tmp_path / "quiet.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(2 * RATE))
    return path


def test_no_progress_bar_in_a_pipe(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    result = cli(_silence(tmp_path), "--format", "jsonl")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert result.stdout == b""  # silence: no segments


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("tqdm")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with subprocess.Popen(
        [sys.executable, "-m", "streamdiarize.cli", "transcribe", str(_silence(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=clean_env(),
    ) as process:
        os.close(follower)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the child closed the terminal
            while chunk := os.read(leader, 4096):
                shown += chunk
        assert process.wait(timeout=60) == 0
        assert process.stdout is not None
        assert process.stdout.read() == b""
    os.close(leader)
    assert b"quiet:" in shown
    assert b"100%" in shown
    assert b"1.0 s audio" in shown
