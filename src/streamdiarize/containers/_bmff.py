"""ISO BMFF boxes held in memory (moov, moof): bounded box walking and big-endian fields.

Every read is bounds-checked against its box, so a lying size or a truncated field raises
:class:`~streamdiarize.CorruptStreamError` naming the box, never ``struct.error``. The
streaming side (box headers as bytes arrive) is ``mp4.py``'s; this reads what is buffered whole.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .._exceptions import CorruptStreamError, LimitExceededError

__all__ = ["MAX_DEPTH", "Box", "Fields", "fourcc"]

#: Deepest box nesting walked (moov/trak/mdia/minf/stbl/stsd/entry/wave/esds is 9).
MAX_DEPTH = 16

_U16, _U32, _U64 = struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">Q")


def fourcc(box_type: bytes) -> str:
    """A box type for messages: ``'mp4a'``, or its escaped bytes when not printable."""
    text = box_type.decode("latin-1")
    return repr(text) if text.isprintable() else repr(box_type)


class Fields:
    """A big-endian cursor over one box body; running past its end is a corrupt box."""

    __slots__ = ("_data", "_end", "_name", "pos")

    def __init__(self, data: bytes, start: int, end: int, name: str) -> None:
        self._data, self.pos, self._end, self._name = data, start, end, name

    @property
    def remaining(self) -> int:
        """Bytes left in the box."""
        return self._end - self.pos

    def _advance(self, n: int) -> int:
        if n < 0 or n > self._end - self.pos:
            raise CorruptStreamError(
                f"MP4 box {self._name} is truncated: needs {n} more bytes, has {self.remaining}"
            )
        pos = self.pos
        self.pos += n
        return pos

    def skip(self, n: int) -> None:
        """Step over ``n`` bytes."""
        self._advance(n)

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes."""
        pos = self._advance(n)
        return self._data[pos : pos + n]

    def u8(self) -> int:
        """An unsigned byte."""
        return self._data[self._advance(1)]

    def u16(self) -> int:
        """A big-endian unsigned 16-bit integer."""
        return int(_U16.unpack_from(self._data, self._advance(2))[0])

    def u24(self) -> int:
        """A big-endian unsigned 24-bit integer."""
        return int.from_bytes(self.take(3), "big")

    def u32(self) -> int:
        """A big-endian unsigned 32-bit integer."""
        return int(_U32.unpack_from(self._data, self._advance(4))[0])

    def u64(self) -> int:
        """A big-endian unsigned 64-bit integer."""
        return int(_U64.unpack_from(self._data, self._advance(8))[0])

    def signed(self, bits: int) -> int:
        """A big-endian two's-complement integer of ``bits`` (16, 32 or 64) bits."""
        return int.from_bytes(self.take(bits // 8), "big", signed=True)

    def full_header(self) -> tuple[int, int]:
        """A FullBox's version and flags."""
        return self.u8(), self.u24()

    def array(self, dtype: str, count: int) -> NDArray[np.int64]:
        """``count`` big-endian integers of ``dtype`` (``">u4"``...) as int64, vectorised."""
        item = np.dtype(dtype).itemsize
        pos = self._advance(count * item)
        return np.frombuffer(self._data, dtype=dtype, count=count, offset=pos).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Box:
    """A box whose bytes are in memory: ``data[start:end]`` is its body (after the header)."""

    type: bytes
    data: bytes
    start: int
    end: int
    depth: int = 0

    @classmethod
    def root(cls, box_type: bytes, body: bytes) -> Box:
        """A top-level box from its body bytes."""
        return cls(box_type, body, 0, len(body))

    @property
    def name(self) -> str:
        """The type for messages, e.g. ``'trun'``."""
        return fourcc(self.type)

    def fields(self, skip: int = 0) -> Fields:
        """A cursor over the body, ``skip`` bytes in."""
        cursor = Fields(self.data, self.start, self.end, self.name)
        cursor.skip(skip)
        return cursor

    def children(self, skip: int = 0) -> Iterator[Box]:
        """The boxes inside the body, which begin ``skip`` bytes in (after fixed fields).

        Raises:
            LimitExceededError: nested deeper than :data:`MAX_DEPTH`.
            CorruptStreamError: a child's size overflows this box.
        """
        if self.depth >= MAX_DEPTH:
            raise LimitExceededError(f"MP4 boxes nested deeper than {MAX_DEPTH} levels")
        pos, end, data = self.start + skip, self.end, self.data
        while pos < end:
            if end - pos < 8:
                raise CorruptStreamError(f"MP4 box {self.name} ends inside a child box header")
            size, child_type = struct.unpack_from(">I4s", data, pos)
            header = 8
            if size == 1:
                if end - pos < 16:
                    raise CorruptStreamError(f"MP4 box {self.name} ends inside a 64-bit size")
                (size,), header = _U64.unpack_from(data, pos + 8), 16
            elif size == 0:
                size = end - pos
            if size < header or size > end - pos:
                raise CorruptStreamError(
                    f"MP4 box {fourcc(child_type)} of {size} bytes does not fit in its parent "
                    f"{self.name} ({end - pos} bytes left)"
                )
            yield Box(child_type, data, pos + header, pos + size, self.depth + 1)
            pos += size

    def find(self, box_type: bytes, skip: int = 0) -> Box | None:
        """The first child of ``box_type``, if any."""
        return next((c for c in self.children(skip) if c.type == box_type), None)

    def require(self, box_type: bytes, skip: int = 0) -> Box:
        """The first child of ``box_type``; its absence makes the stream corrupt."""
        child = self.find(box_type, skip)
        if child is None:
            raise CorruptStreamError(f"MP4 box {self.name} lacks its {fourcc(box_type)} box")
        return child

    def body(self) -> bytes:
        """The body bytes."""
        return self.data[self.start : self.end]
