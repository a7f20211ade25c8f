"""No thread, socket, memory or SDK object leaks across many sessions (real SDK, emulator).

The emulator runs in its own process (``python -m streamdiarize.testing``) so that only this
process's resources — the sessions, the SDK, our threads — are measured.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator

import numpy as np
import psutil
import pytest

import streamdiarize as sd
from _feeding import CAPTURES

with wave.open(str(CAPTURES / "dialog.wav")) as _w:
    # The first utterance: 3.8 s with its leading silence.
    UTTERANCE = np.frombuffer(_w.readframes(_w.getnframes()), dtype=np.int16)[: 16000 * 38 // 10]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """``python -m streamdiarize.testing`` in a child process; yields its host URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "streamdiarize.testing", "--script", str(CAPTURES / "dialog.json")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        host = process.stdout.readline().strip()
        assert host.startswith("ws://127.0.0.1:"), host
        yield host
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the emulator stops when its stdin closes
        process.wait(10)


async def _session(transcriber: sd.Transcriber) -> list[sd.Segment]:
    async with sd.TranscriptionSession(
        transcriber, mime="audio/pcm;rate=16000;encoding=int16"
    ) as session:
        collected = asyncio.create_task(session.segments())
        for start in range(0, len(UTTERANCE), 1600):
            await session.send(UTTERANCE[start : start + 1600].tobytes())
        await session.close()
        return await collected


def _usage() -> tuple[int, int, float, int]:
    gc.collect()
    process = psutil.Process()
    return (
        threading.active_count(),
        process.num_threads(),
        process.memory_info().rss / 2**20,
        process.num_fds(),
    )


async def test_sequential_and_concurrent_sessions_leave_resources_flat(emulator: str) -> None:
    transcriber = sd.AzureTranscriber(
        ["en-US"],
        host=emulator,
        key="k",
        properties={"SPEECH-TransmitLengthBeforeThrottleMs": "100000000"},
    )
    # Warm up: SDK libraries, the executor's worker threads (bounded by its max_workers), the
    # allocator's arenas at the high-water mark of 50 concurrent sessions.
    for _ in range(20):
        assert len(await _session(transcriber)) == 1
    await asyncio.gather(*(_session(transcriber) for _ in range(50)))
    py_threads, os_threads, rss, fds = _usage()

    for _ in range(200):
        segments = await _session(transcriber)
        assert [s.text for s in segments] == [
            "Good morning, the quarterly report is finally ready."
        ]
    after_sequential = _usage()

    for _ in range(2):
        results = await asyncio.gather(*(_session(transcriber) for _ in range(50)))
        assert all(len(r) == 1 for r in results)
    after_concurrent = _usage()

    for label, (now_py, now_os, now_rss, now_fds) in (
        ("200 sequential", after_sequential),
        ("2 × 50 concurrent", after_concurrent),
    ):
        assert now_py <= py_threads + 2, f"{label}: Python threads {py_threads} -> {now_py}"
        assert now_os <= os_threads + 4, f"{label}: OS threads {os_threads} -> {now_os}"
        assert now_fds <= fds + 4, f"{label}: file descriptors {fds} -> {now_fds}"
        assert now_rss - rss < 20, f"{label}: RSS {rss:.0f} -> {now_rss:.0f} MiB"
