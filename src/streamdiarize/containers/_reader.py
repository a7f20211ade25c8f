"""A byte buffer whose readers are generators that suspend while bytes are missing.

This is the ``websockets``/h11 sans-I/O shape: a parser is a generator composed with
``yield from buffer.read_exact(n)``; :meth:`ByteBuffer.feed` appends bytes, and the demuxer
steps the parser until it suspends. Only the bytes of the element being read are buffered;
:meth:`ByteBuffer.skip` discards large unwanted payloads as they arrive without holding them.
"""

from __future__ import annotations

from collections.abc import Generator

from .._exceptions import CorruptStreamError, LimitExceededError

__all__ = ["ByteBuffer"]


class ByteBuffer:
    """Bytes fed but not yet consumed, with suspending readers.

    Args:
        max_buffered: cap on bytes held at once (one element plus one fed chunk); past it
            :meth:`read_exact` raises :class:`LimitExceededError`.
    """

    __slots__ = ("_buf", "_pos", "eof", "max_buffered", "offset")

    def __init__(self, max_buffered: int) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.eof = False
        self.max_buffered = max_buffered
        #: Absolute stream offset of the next unread byte (for error messages).
        self.offset = 0

    def __len__(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        """Append bytes; compacts consumed space first so memory stays bounded."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        self.offset += n
        return out

    def peek(self, n: int) -> bytes:
        """Up to ``n`` unread bytes, without consuming them."""
        return bytes(self._buf[self._pos : self._pos + n])

    def take(self, n: int) -> bytes:
        """Consume and return ``n`` bytes that are already buffered (see :meth:`ensure`)."""
        if n > len(self):
            raise ValueError(f"take({n}) with only {len(self)} bytes buffered")
        return self._take(n)

    def discard(self, n: int) -> None:
        """Drop ``n`` bytes that are already buffered, without copying them."""
        if n > len(self):
            raise ValueError(f"discard({n}) with only {len(self)} bytes buffered")
        self._pos += n
        self.offset += n

    def ensure(self, n: int, what: str = "element") -> Generator[None, None, None]:
        """Suspend until ``n`` bytes are buffered, consuming none (peek at them afterwards).

        Raises:
            LimitExceededError: ``n`` exceeds ``max_buffered``.
            CorruptStreamError: end of stream (``eof``) came first.
        """
        if n > self.max_buffered:
            raise LimitExceededError(
                f"{what} of {n} bytes at offset {self.offset} exceeds the buffer limit "
                f"of {self.max_buffered} bytes"
            )
        while len(self) < n:
            if self.eof:
                raise CorruptStreamError(
                    f"stream ends inside a {what} at offset {self.offset}: "
                    f"{len(self)} of {n} bytes present"
                )
            yield

    def read_exact(self, n: int, what: str = "element") -> Generator[None, None, bytes]:
        """Suspend until ``n`` bytes are available, then consume and return them.

        Raises:
            LimitExceededError: ``n`` exceeds ``max_buffered``.
            CorruptStreamError: end of stream (``eof``) came first.
        """
        yield from self.ensure(n, what)
        return self._take(n)

    def skip(self, n: int, what: str = "element") -> Generator[None, None, None]:
        """Consume and drop ``n`` bytes as they arrive, holding none of them."""
        while n > 0:
            if not len(self):
                if self.eof:
                    raise CorruptStreamError(
                        f"stream ends inside a {what} at offset {self.offset}: {n} bytes missing"
                    )
                yield
                continue
            step = min(n, len(self))
            self._pos += step
            self.offset += step
            n -= step

    def read_some(self, limit: int) -> Generator[None, None, bytes]:
        """Suspend until at least one byte is available, then return up to ``limit`` bytes.

        Returns ``b""`` only at end of stream.
        """
        while not len(self):
            if self.eof:
                return b""
            yield
        return self._take(min(limit, len(self)))

    def at_end(self) -> Generator[None, None, bool]:
        """Suspend until a byte is available or the stream ended; True at end of stream."""
        while not len(self):
            if self.eof:
                return True
            yield
        return False
