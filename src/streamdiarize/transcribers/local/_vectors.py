"""Unit-length rows: how both speaker embedders hand out their embeddings."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]


def l2_normalize(x: FloatArray) -> FloatArray:
    """``x`` with each row (last axis) scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    result: FloatArray = (x / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return result
