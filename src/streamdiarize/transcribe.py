"""Transcribe a recording by streaming it the way a browser would: ``transcribe_file()``.

The file's bytes go through the same path as a live WebSocket client's messages
(:class:`~streamdiarize.TranscriptionSession`, hence :class:`~streamdiarize.ChunkReassembler`),
in chunks that each carry about ``chunk_ms`` of audio::

    async for segment in transcribe_file("meeting.webm", LocalTranscriber()):
        print(segment.speaker, segment.text)

**Chunk sizes.** A container's bytes per second are not known before it is decoded, so the
first chunks are :data:`FIRST_CHUNK_BYTES` long; once audio comes out, every next chunk is
``chunk_ms`` times the byte rate seen so far (bytes per second of decoded audio, counted from
the first chunk that gave audio, so the header does not count).
Uncompressed WAV at 16 kHz then goes in 3,200-byte chunks, 20 kbit/s Opus in ≈ 250-byte
ones, like a MediaRecorder's ``timeslice``. The same rule works for pipes, whose length is
unknown. ``realtime=True`` holds each chunk back until the wall clock reaches the end of the
audio it is estimated to carry, so a backend sees the pace of a live microphone.

:func:`~streamdiarize.engines.open_engine` builds the backends the ``streamdiarize
transcribe`` command offers (:data:`ENGINES`): ``azure``, ``local`` and ``fake`` (the real
Azure SDK against :class:`~streamdiarize.testing.FakeSpeechService` answering with the local
engine); its ``transcriber`` is what :func:`transcribe_file` takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import os
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._exceptions import ConfigurationError, InputError, UnsupportedFormatError
from .engines import ENGINES
from .segment import Segment
from .session import TranscriptionSession
from .transcribers import Transcriber

__all__ = [
    "ENGINES",
    "FIRST_CHUNK_BYTES",
    "ChunkPlanner",
    "Progress",
    "sample_path",
    "transcribe_file",
]

#: Bytes per chunk until the first audio is decoded (then the byte rate sets the size).
FIRST_CHUNK_BYTES = 1024
#: Largest chunk, whatever the byte rate (a 48 kHz float32 stereo second is 384 KB).
MAX_CHUNK_BYTES = 1 << 20
#: Bytes read from the source at a time (pipes: whatever is there, up to this).
_READ_SIZE = 1 << 16

_FILE_CLOSE = 300.0  # seconds a file job waits at the end for the backend's last results


def sample_path() -> Path:
    """The bundled sample: a 27 s Ogg/Opus dialog of two synthetic voices (``sample.json``
    beside it holds the script: text, speaker and times of each utterance)."""
    return Path(
        str(importlib.resources.files("streamdiarize").joinpath("data").joinpath("sample.ogg"))
    )


@dataclass(frozen=True, slots=True)
class Progress:
    """How far :func:`transcribe_file` is.

    Attributes:
        bytes_sent: bytes of the source sent to the session so far.
        total_bytes: the source's size when it can seek (a file); ``None`` for pipes.
        audio_seconds: seconds of audio decoded from those bytes.
    """

    bytes_sent: int
    total_bytes: int | None
    audio_seconds: float


class ChunkPlanner:
    """Chooses chunk sizes that carry about ``chunk_seconds`` of audio, and when to send them.

    Feed it the running totals with :meth:`update` after each chunk. The byte rate is measured
    from the first chunk that produced audio onwards, so a container's header does not count
    as audio; :meth:`next_size` and :meth:`audio_time` use it.
    """

    def __init__(self, chunk_seconds: float) -> None:
        if not chunk_seconds > 0:
            raise ConfigurationError(f"the chunk length must be > 0 ms, got {chunk_seconds * 1e3}")
        self.chunk_seconds = chunk_seconds
        self._bytes = 0
        self._seconds = 0.0
        self._origin: tuple[int, float] | None = None  # totals after the first audio

    def update(self, bytes_sent: int, audio_seconds: float) -> None:
        """Record the totals after a chunk: bytes sent and seconds of audio decoded."""
        self._bytes, self._seconds = bytes_sent, audio_seconds
        if self._origin is None and audio_seconds > 0:
            self._origin = (bytes_sent, audio_seconds)

    def _reference(self) -> tuple[int, float]:
        """The point rates are measured from: the first audio, once more audio followed."""
        if self._origin is not None and self._seconds > self._origin[1]:
            return self._origin
        return (0, 0.0)

    @property
    def byte_rate(self) -> float | None:
        """Bytes per second of audio, or ``None`` before any audio was decoded."""
        start_bytes, start_seconds = self._reference()
        if self._seconds <= start_seconds:
            return None
        return (self._bytes - start_bytes) / (self._seconds - start_seconds)

    def next_size(self) -> int:
        """Bytes for the next chunk."""
        rate = self.byte_rate
        if rate is None or rate <= 0:
            return FIRST_CHUNK_BYTES
        return min(MAX_CHUNK_BYTES, max(1, round(rate * self.chunk_seconds)))

    def audio_time(self, end_byte: int) -> float:
        """Estimated seconds of audio in the first ``end_byte`` bytes (0 before any audio)."""
        rate = self.byte_rate
        if not rate:
            return 0.0
        start_bytes, start_seconds = self._reference()
        return max(0.0, start_seconds + (end_byte - start_bytes) / rate)


class _Reader:
    """Reads a file or pipe in large blocks and hands out pieces of any size.

    A seekable file is read on the event loop (a block from the page cache takes
    microseconds). A pipe, terminal or socket may stay silent for ever, so the loop waits for
    its descriptor to become readable and then reads it with ``os.read`` (bypassing the file
    object's buffer): stopping the transcription (Ctrl+C) leaves no blocked thread behind, and
    the file can be closed at once. Where the loop cannot watch descriptors (Windows) or the
    object has none, each block is read on a daemon thread instead.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._buffer = bytearray()
        self._eof = False
        #: Bytes from the current position to the end, when the source can seek (files,
        #: stdin redirected from a file, BytesIO); ``None`` for pipes and sockets.
        self.total: int | None = None
        try:
            if file.seekable():
                here = file.tell()
                self.total = file.seek(0, os.SEEK_END) - here
                file.seek(here)
        except (OSError, ValueError):
            self.total = None
        read1 = getattr(file, "read1", None)
        self._read_block: Callable[[int], bytes] = read1 if callable(read1) else file.read

    async def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the source, ``b""`` after it."""
        while len(self._buffer) < size and not self._eof:
            data = await self._next_block()
            self._eof = not data
            self._buffer += data
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    async def _next_block(self) -> bytes:
        if self.total is not None:
            return self._read_block(_READ_SIZE)
        try:
            fd = self._file.fileno()
        except (OSError, AttributeError, ValueError):
            fd = None
        if fd is not None:
            with contextlib.suppress(NotImplementedError):  # loops that cannot watch fds
                await _readable(fd)
                return os.read(fd, _READ_SIZE)
        return await _in_daemon_thread(self._read_block, _READ_SIZE)


async def _readable(fd: int) -> None:
    """Wait until ``fd`` has data or is at its end."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _in_daemon_thread(function: Callable[[int], bytes], argument: int) -> bytes:
    """``function(argument)`` on a daemon thread; cancelling the await abandons the thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bytes] = loop.create_future()

    def settle(result: bytes | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)

    def work() -> None:
        try:
            result, error = function(argument), None
        except BaseException as exc:  # handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="streamdiarize-read", daemon=True).start()
    return await future


def _open(source: str | os.PathLike[str]) -> BinaryIO:
    try:
        return Path(source).open("rb")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {source}: {exc.strerror or exc}") from exc


async def transcribe_file(
    source: str | os.PathLike[str] | BinaryIO,
    transcriber: Transcriber | None = None,
    *,
    mime: str | None = None,
    chunk_ms: float = 100.0,
    realtime: bool = False,
    interim_results: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> AsyncGenerator[Segment, None]:
    """Stream a recording through a :class:`TranscriptionSession` and yield its segments.

    Args:
        source: a path, or a binary file object (``sys.stdin.buffer``, a socket file, …),
            read to its end but not closed.
        transcriber: the backend; ``None``: Azure when ``SPEECH_KEY`` and ``SPEECH_REGION``
            are set, else the local engine.
        mime: the format when the bytes cannot tell it (raw frames:
            ``audio/pcm;rate=48000;encoding=float32``); containers are recognised.
        chunk_ms: milliseconds of audio per chunk sent (see the module docstring).
        realtime: pace the chunks to the wall clock, as a live client would send them.
        interim_results: also yield interim hypotheses (``segment.final is False``).
        progress: called after every chunk with a :class:`Progress`.

    Raises:
        ConfigurationError: the file cannot be opened, or a bad argument.
        InputError: the bytes are not audio we decode (raised after the segments of the
            audio decoded before the fault).
        TranscriberError: the backend failed.

    Use it in ``async for``; leaving the loop early stops the session at once. The bytes
    are decoded here even for a backend that takes them as they are
    (``AzureTranscriber(passthrough=True)``), so chunk sizes, pacing and progress are the same.
    """
    planner = ChunkPlanner(chunk_ms / 1000)
    if isinstance(source, (str, os.PathLike)):
        file, name, owned = _open(source), str(source), True
    else:
        file, name, owned = source, str(getattr(source, "name", "the input")), False
    try:
        reader = _Reader(file)
        # A file is not a live client: wait for the backend's last results as long as it
        # needs (the emulated engine may still be transcribing the audio sent at full speed).
        session = TranscriptionSession(
            transcriber, mime=mime, interim_results=interim_results, close_timeout=_FILE_CLOSE
        )
        async with session:
            pump = _pump(session, reader, planner, name, realtime=realtime, progress=progress)
            sender = asyncio.create_task(_send_all(session, pump))
            try:
                async for segment in session:
                    yield segment
                await sender  # its input error, after every segment decoded before it
            finally:
                if not sender.done():
                    sender.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sender
    finally:
        if owned:
            file.close()


async def _send_all(session: TranscriptionSession, pump: Awaitable[None]) -> None:
    """Run the pump, then close the session (also after an input error: flush what decoded)."""
    try:
        await pump
    except asyncio.CancelledError:
        raise
    except BaseException:
        await session.close()
        raise
    await session.close()


async def _pump(
    session: TranscriptionSession,
    reader: _Reader,
    planner: ChunkPlanner,
    name: str,
    *,
    realtime: bool,
    progress: Callable[[Progress], None] | None,
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while True:
        try:
            chunk = await reader.read(planner.next_size())
        except OSError as exc:
            raise InputError(f"cannot read {name}: {exc.strerror or exc}") from exc
        if not chunk:
            if session.reassembler.format is None:
                # Too few bytes to tell: the reassembler would only say so at flush, quietly.
                what = f"its {sent} bytes are too few" if sent else "it is empty"
                raise UnsupportedFormatError(f"{name} is not audio we can decode: {what}")
            return
        delay = start + planner.audio_time(sent + len(chunk)) - loop.time() if realtime else 0
        await asyncio.sleep(max(0.0, delay))  # also lets the consumer run between chunks
        await session.send(chunk)
        sent += len(chunk)
        planner.update(sent, session.audio_seconds)
        if progress is not None:
            progress(Progress(sent, reader.total, session.audio_seconds))
