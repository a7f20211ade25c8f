"""Matroska block lacing (several frames in one block): Xiph, fixed-size and EBML lacing.

Sizes are checked against the block, so a block of ``n`` bytes never yields more than ``n``
frames however its lace header lies (no lacing bombs).
"""

from __future__ import annotations

from .._exceptions import CorruptStreamError
from . import _ebml as ebml

__all__ = ["EBML_LACING", "FIXED_LACING", "NO_LACING", "XIPH_LACING", "unlace"]

NO_LACING, XIPH_LACING, FIXED_LACING, EBML_LACING = 0, 2, 4, 6


def unlace(data: bytes, pos: int, lacing: int, offset: int) -> list[bytes]:
    """Split a laced block's payload (``data[pos:]``) into frames.

    Every frame must have at least one byte and all must fit the block, so a block of ``n``
    bytes never yields more than ``n`` frames (no lacing bombs).
    """
    end = len(data)
    if pos >= end:
        raise CorruptStreamError(f"laced block at offset {offset} has no frame count")
    count = data[pos] + 1
    pos += 1
    if lacing == FIXED_LACING:
        size, rest = divmod(end - pos, count)
        if rest or not size:
            raise CorruptStreamError(
                f"fixed-size laced block at offset {offset}: {end - pos} bytes do not split "
                f"into {count} equal frames"
            )
        return [data[pos + i * size : pos + (i + 1) * size] for i in range(count)]
    sizes: list[int] = []
    what = f"laced block at offset {offset}"
    if lacing == XIPH_LACING:
        for _ in range(count - 1):
            size = 0
            while True:
                if pos >= end:
                    raise CorruptStreamError(f"{what}: lace sizes run past the block")
                byte = data[pos]
                pos += 1
                size += byte
                if byte != 255:
                    break
            sizes.append(size)
    else:
        size, length = ebml.vint(data, pos, what)
        pos += length
        sizes.append(size)
        for _ in range(count - 2):
            delta, length = ebml.vint(data, pos, what)
            pos += length
            size += delta - ((1 << (7 * length - 1)) - 1)
            sizes.append(size)
    sizes.append(end - pos - sum(sizes[: count - 1]))
    if min(sizes) <= 0:
        raise CorruptStreamError(
            f"{what}: {count} frames of sizes {sizes[:8]}{'...' if count > 8 else ''} do not "
            f"fit its {end - pos} bytes of frame data"
        )
    frames = []
    for size in sizes:
        frames.append(data[pos : pos + size])
        pos += size
    return frames
