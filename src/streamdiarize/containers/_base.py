"""The sans-I/O demuxer shape shared by every container: feed bytes, get events back."""

from __future__ import annotations

import abc
from collections.abc import Generator

from .._exceptions import CorruptStreamError, InputError
from ._events import EndOfStream, Event
from ._reader import ByteBuffer

__all__ = ["DEFAULT_MAX_BUFFERED", "Demuxer"]

#: Default cap on bytes a demuxer holds at once (one element plus the chunk being fed).
DEFAULT_MAX_BUFFERED = 16 * 1024 * 1024


class Demuxer(abc.ABC):
    """Incremental demuxer: no I/O, no threads; correct for any split of the byte stream.

    Subclasses write one generator, :meth:`_parse`, that reads with
    ``yield from self._buffer.read_exact(n)`` and appends events with :meth:`_emit`.
    After an :class:`~streamdiarize.InputError` the demuxer stays failed: every later call
    raises the same error (h11's ERROR state). Events parsed before the fault stay available
    from :meth:`events_received`.

    Args:
        max_buffered: cap on buffered bytes; a larger element raises
            :class:`~streamdiarize.LimitExceededError`.
    """

    def __init__(self, *, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        self._buffer = ByteBuffer(max_buffered)
        self._events: list[Event] = []
        self._error: InputError | None = None
        self._finished = False
        self._ended = False  # the last event emitted is an EndOfStream (e.g. an Ogg EOS page)
        self._parser = self._parse()

    @abc.abstractmethod
    def _parse(self) -> Generator[None, None, None]:
        """The format's parser: suspends (``yield``) whenever it needs more bytes."""

    def _emit(self, event: Event) -> None:
        self._events.append(event)
        self._ended = isinstance(event, EndOfStream)

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data`` (any slice of the stream, may be empty) and return complete events.

        Raises:
            CorruptStreamError: the bytes break the format; later calls raise it again.
            UnsupportedFormatError: the stream uses a codec or feature we cannot decode.
        """
        self._raise_if_failed()
        if data:
            if self._finished:
                self._fail(CorruptStreamError(f"{len(data)} bytes after the end of the stream"))
            self._buffer.feed(data)
            self._step()
        return self.events_received()

    def flush(self) -> list[Event]:
        """Signal end of input and return the last events, ending with :class:`EndOfStream`.

        Idempotent. Raises :class:`CorruptStreamError` when the stream stops mid-element.
        """
        self._raise_if_failed()
        if not self._buffer.eof:
            self._buffer.eof = True
            if not self._finished:
                self._step()
            if not self._ended:  # no second EndOfStream after the container's own
                self._emit(EndOfStream())
        return self.events_received()

    def events_received(self) -> list[Event]:
        """Drain and return the events parsed so far (also after a failure)."""
        events, self._events = self._events, []
        return events

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet parsed: the incomplete element or frame being waited for."""
        return len(self._buffer)

    @property
    def failed(self) -> bool:
        """True once the demuxer raised; it will not parse again."""
        return self._error is not None

    def _step(self) -> None:
        try:
            next(self._parser)
        except StopIteration:
            self._finished = True
        except InputError as exc:
            self._fail(exc)

    def _fail(self, exc: InputError) -> None:
        self._error = exc
        raise exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise type(self._error)(str(self._error))
