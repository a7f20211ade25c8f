"""Service faults through the emulator: typed errors or transparent recovery, no lost segments.

Every fault runs the real Azure SDK against FakeSpeechService. Whatever happens, the segments
produced before the fault reach the user exactly once, in order, with correct offsets.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import wave
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

import streamdiarize as sd
from _feeding import CAPTURES
from streamdiarize.testing import FakeSpeechService, Fault, ScriptedRecognizer
from streamdiarize.transcribers.azure import AzureTranscriber

# slow: the real Azure Speech SDK meets injected faults and waits out real timeouts
pytestmark = pytest.mark.slow

UTTERANCES = json.loads((CAPTURES / "dialog.json").read_text())["utterances"]

with wave.open(str(CAPTURES / "dialog.wav")) as _w:
    DIALOG = np.frombuffer(_w.readframes(_w.getnframes()), dtype=np.int16)


def _messages(step: int = 1600) -> list[bytes]:
    """The dialog as 100 ms int16 messages, like an AudioWorklet page."""
    return [DIALOG[i : i + step].tobytes() for i in range(0, len(DIALOG), step)]


async def _run(
    faults: Iterable[Fault | None], *, pace: float = 0.0, **options: Any
) -> tuple[list[sd.Segment], BaseException | None, FakeSpeechService]:
    """Stream the dialog through a session; return its segments and the error that ended it."""
    recognizer = ScriptedRecognizer.from_utterances(UTTERANCES, reference=DIALOG)
    segments: list[sd.Segment] = []
    error: BaseException | None = None
    with FakeSpeechService(recognizer, faults=faults) as svc:
        transcriber = AzureTranscriber(
            ["en-US"], host=svc.host, key="k", pace_audio=False, **options
        )
        session = sd.TranscriptionSession(transcriber, mime="audio/pcm;rate=16000;encoding=int16")
        try:
            await session.start()
        except sd.TranscriberError as exc:  # refused at connection time (credentials, quota)
            return segments, exc, svc
        async with session:

            async def consume() -> None:
                nonlocal error
                try:
                    async for segment in session:
                        segments.append(segment)
                except sd.TranscriberError as exc:
                    error = exc

            consumer = asyncio.create_task(consume())
            try:
                for message in _messages():
                    await session.send(message)
                    if pace:
                        await asyncio.sleep(pace)
            except sd.TranscriberError:
                pass  # send() raises the backend's error too; iteration reports it
            await session.close()
            await asyncio.wait_for(consumer, 60)
    return segments, error, svc


def _assert_prefix_of_the_dialog(segments: list[sd.Segment], complete: bool) -> None:
    """Segments are the dialog's phrases in order, each once, with their true offsets."""
    expected = UTTERANCES if complete else UTTERANCES[: len(segments)]
    assert [s.text for s in segments] == [u["text"] for u in expected]
    for segment, utterance in zip(segments, expected, strict=True):
        assert segment.offset == pytest.approx(utterance["start_s"], abs=0.05)
        assert segment.end == pytest.approx(utterance["end_s"], abs=0.05)


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_credentials(status: int) -> None:
    segments, error, _ = await _run([Fault.reject_auth(status)])  # type: ignore[arg-type]
    assert isinstance(error, sd.AuthenticationError)
    assert f"({status})" in str(error)
    assert segments == []


async def test_throttled_on_every_attempt() -> None:
    segments, error, svc = await _run(itertools.repeat(Fault.throttle()), max_reconnects=0)
    assert isinstance(error, sd.QuotaExceededError)
    assert segments == []
    assert len(svc.connections) >= 2  # the SDK retried before giving up


async def test_one_throttled_upgrade_is_absorbed() -> None:
    segments, error, _ = await _run([Fault.throttle()])
    assert error is None
    _assert_prefix_of_the_dialog(segments, complete=True)


async def test_quota_exceeded_mid_stream_delivers_earlier_segments_first() -> None:
    segments, error, _ = await _run([Fault.quota_exceeded(after=8.0)], pace=0.01)
    assert isinstance(error, sd.QuotaExceededError)
    assert "Quota" in str(error)
    assert 1 <= len(segments) < len(UTTERANCES)
    _assert_prefix_of_the_dialog(segments, complete=False)


@pytest.mark.parametrize("abrupt", [True, False])
async def test_dropped_connection_recovers_transparently(abrupt: bool) -> None:
    """The SDK reconnects and re-sends unacknowledged audio: nothing lost, nothing doubled."""
    segments, error, svc = await _run([Fault.drop(after=6.0, abrupt=abrupt)], pace=0.005)
    assert error is None
    assert len(svc.connections) == 2
    _assert_prefix_of_the_dialog(segments, complete=True)


async def test_our_reconnect_after_the_sdk_gives_up() -> None:
    """Six drops in a row exhaust the SDK's retries; our fresh recognizer replays the audio."""
    faults = [Fault.drop(after=6.0)] + [Fault.drop(after=0.0)] * 5
    segments, error, svc = await _run(faults, pace=0.005, max_reconnects=2)
    assert error is None
    assert len(svc.connections) >= 7
    _assert_prefix_of_the_dialog(segments, complete=True)


async def test_service_that_keeps_failing_ends_with_connection_lost() -> None:
    faults = itertools.chain([Fault.drop(after=6.0)], itertools.repeat(Fault.drop(after=0.0)))
    segments, error, _ = await _run(faults, pace=0.005, max_reconnects=1)
    assert isinstance(error, sd.ConnectionLostError)
    assert "reconnect" in str(error)
    assert 1 <= len(segments) < len(UTTERANCES)
    _assert_prefix_of_the_dialog(segments, complete=False)


async def test_stall_is_detected_and_recovered() -> None:
    """A service that stops answering: the watchdog replaces the connection, audio replayed."""
    segments, error, svc = await _run(
        [Fault.stall(after=5.0, duration=60.0)], pace=0.01, stall_timeout=2.0
    )
    assert error is None
    assert len(svc.connections) >= 2
    _assert_prefix_of_the_dialog(segments, complete=True)


async def test_stall_at_close_times_out_with_a_typed_error() -> None:
    segments, error, _ = await _run(
        [Fault.stall(after=12.0, duration=60.0)],
        stall_timeout=None,
        finish_timeout=2.0,
    )
    assert isinstance(error, sd.ServiceError)
    _assert_prefix_of_the_dialog(segments, complete=False)


@pytest.mark.parametrize("kind", ["bad_json", "no_path", "unknown_path"])
async def test_malformed_service_messages_are_survived(kind: str) -> None:
    segments, error, _ = await _run([Fault.malformed_message(kind, after=6.0)], pace=0.005)  # type: ignore[arg-type]
    assert error is None
    _assert_prefix_of_the_dialog(segments, complete=True)


async def test_rejected_credentials_fail_at_start_before_any_audio() -> None:
    """A server can answer its client before accepting audio: start() raises the typed error."""
    with FakeSpeechService(faults=[Fault.reject_auth(401)]) as svc:
        secret = "not-the-right-key-0123456789abcdef"
        session = sd.TranscriptionSession(
            AzureTranscriber(["en-US"], host=svc.host, key=secret), mime="audio/webm"
        )
        with pytest.raises(sd.AuthenticationError) as info:
            await session.start()
        assert secret not in str(info.value)
        await session.close()  # does not raise; iteration reports the error again
        with pytest.raises(sd.AuthenticationError):
            await session.__anext__()


async def test_unanswered_audio_is_bounded_by_what_a_reconnect_can_replay() -> None:
    """A service that stops answering: send() waits at max_replay_seconds of unanswered audio,
    so everything the SDK may drop can still be re-sent; after recovery nothing is missing."""
    recognizer = ScriptedRecognizer.from_utterances(UTTERANCES, reference=DIALOG)
    with FakeSpeechService(recognizer, faults=[Fault.stall(after=4.5, duration=60.0)]) as svc:
        transcriber = AzureTranscriber(
            ["en-US"],
            host=svc.host,
            key="k",
            pace_audio=False,
            max_replay_seconds=6.0,
            stall_timeout=2.0,
        )
        async with sd.TranscriptionSession(
            transcriber, mime="audio/pcm;rate=16000;encoding=int16"
        ) as session:
            collected = asyncio.create_task(session.segments())
            for message in _messages():  # without that bound, the audio sent into the stall
                await session.send(message)  # beyond 6 s could not be replayed: phrases lost
            await session.close()
            segments = await collected
        assert len(svc.connections) >= 2  # the stall was detected and the audio replayed
    _assert_prefix_of_the_dialog(segments, complete=True)
