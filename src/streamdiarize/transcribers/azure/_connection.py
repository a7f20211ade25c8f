"""One connection attempt of an Azure stream: its SDK objects, audio source and time base."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ._sdk import Recognition
from ._source import AudioSource

__all__ = ["Connection"]

log = logging.getLogger("streamdiarize.azure")


class Connection:
    """The SDK objects of one connection attempt, and where its audio starts in the stream.

    Args:
        generation: the attempt's number; events of older attempts are ignored.
        recognition: the recognizer, its audio stream and its ``Connection``.
        source: the audio the recognizer pulls.
        base: stream seconds at this recognizer's first sample.
    """

    def __init__(
        self, generation: int, recognition: Recognition, source: AudioSource, base: float
    ) -> None:
        self.generation = generation
        self.recognizer: Any = recognition.recognizer
        self.audio_stream: Any = recognition.audio_stream
        self.sdk_connection: Any = recognition.connection
        self.source = source
        self.base = base
        #: The SDK cancelled with an error: stopping it would only wait for timeouts.
        self.errored = False

    def close_input(self) -> None:
        """End the audio the recognizer reads (it then finishes, or writers wake up)."""
        self.source.close_input()

    def release(self) -> None:
        """Drop every callback and SDK reference so the native objects are freed now.

        A recognizer still alive at interpreter exit can abort the process in the SDK's
        native teardown; releasing it here, while the loop runs, avoids that.
        """
        for signal in ("transcribed", "transcribing", "canceled", "session_stopped"):
            with contextlib.suppress(Exception):
                getattr(self.recognizer, signal).disconnect_all()
        with contextlib.suppress(Exception):
            self.sdk_connection.connected.disconnect_all()
        self.recognizer = self.audio_stream = self.sdk_connection = None

    async def dispose(self, timeout: float) -> None:
        """Stop the recognizer (unless it errored) and free its SDK objects, in a worker thread.

        Freeing a recognizer can block for seconds (its native destructor closes the
        connection), so the last reference is dropped off the event loop too; past
        ``timeout`` seconds the thread is left to finish alone.
        """

        def stop_and_release() -> None:
            with contextlib.suppress(Exception):
                self.close_input()
            if not self.errored:  # after an error, stopping only waits for timeouts
                with contextlib.suppress(Exception):
                    self.recognizer.stop_transcribing_async().get()
            self.release()

        try:
            await asyncio.wait_for(asyncio.shield(asyncio.to_thread(stop_and_release)), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            log.warning("Azure recognizer did not stop within %.0f s", timeout)
