#!/usr/bin/env python3
"""Convert Resemblyzer's GE2E speaker encoder weights to a torch-free ``.npz``.

Resemblyzer 0.1.4 (Apache-2.0, Corentin Jemine / Resemble AI) ships ``resemblyzer/pretrained.pt``,
a *legacy* (pre-1.6, non-zip) ``torch.save`` file. That format is five pickles in a row (magic
number, protocol version, system info, the checkpoint object, the list of storage keys) followed
by each storage's raw bytes (an int64 element count, then the data) in the order of that list.
Tensors inside the checkpoint are references to those storages (``persistent_load``) rebuilt
through ``torch._utils._rebuild_tensor_v2``. This script reads all that with a restricted
unpickler and numpy only, so neither torch nor the resemblyzer package is needed, and writes
the model parameters (not the optimizer state) as float32 arrays.

Reproduce the shipped file::

    pip download --no-deps resemblyzer==0.1.4 -d /tmp/rz
    python scripts/convert_resemblyzer.py /tmp/rz/Resemblyzer-0.1.4-py3-none-any.whl

It writes ``src/streamdiarize/transcribers/local/ge2e.npz`` (about 5.7 MB) and prints the SHA-256
of the wheel and of each array so a reviewer can check the conversion.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import pickle
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WHEEL_MEMBER = "resemblyzer/pretrained.pt"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/streamdiarize/transcribers/local/ge2e.npz"

#: torch legacy storage class name -> numpy dtype of its elements.
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

#: The parameters of Resemblyzer's ``VoiceEncoder`` (3-layer LSTM 40 -> 256, linear 256 -> 256).
MODEL_SHAPES = {
    **{
        name: shape
        for layer in range(3)
        for name, shape in (
            (f"lstm.weight_ih_l{layer}", (1024, 40 if layer == 0 else 256)),
            (f"lstm.weight_hh_l{layer}", (1024, 256)),
            (f"lstm.bias_ih_l{layer}", (1024,)),
            (f"lstm.bias_hh_l{layer}", (1024,)),
        )
    },
    "linear.weight": (256, 256),
    "linear.bias": (256,),
}


@dataclass
class StorageRef:
    """A storage the pickle refers to; its bytes come after the pickles."""

    key: str
    dtype: np.dtype[Any]
    size: int
    data: np.ndarray[Any, Any] | None = None


@dataclass
class TensorRef:
    """A tensor view of a storage, materialised once every storage has been read."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray[Any, Any]:
        assert self.storage.data is not None, f"storage {self.storage.key} was never read"
        itemsize = self.storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :],
            shape=self.shape,
            strides=tuple(s * itemsize for s in self.stride),
        )
        return np.array(view)  # copy: detach from the storage buffer


def _rebuild_tensor_v2(
    storage: StorageRef,
    offset: int,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    *_ignored: Any,
) -> TensorRef:
    return TensorRef(storage, offset, tuple(shape), tuple(stride))


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. inside the pickle."""

    def __init__(self, name: str) -> None:
        if name not in STORAGE_DTYPES:
            raise ValueError(f"unsupported storage type torch.{name}")
        self.dtype = STORAGE_DTYPES[name]


class _LegacyUnpickler(pickle.Unpickler):
    """Resolves only the few globals a torch checkpoint needs; refuses everything else."""

    def __init__(self, file: io.BufferedIOBase, storages: dict[str, StorageRef]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid: Any) -> StorageRef:
        kind, storage_type, key, _location, size, view_metadata = pid
        if kind != "storage" or view_metadata is not None:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        if key not in self._storages:
            self._storages[key] = StorageRef(key, storage_type.dtype, int(size))
        return self._storages[key]


def load_legacy_checkpoint(data: bytes) -> Any:
    """Load a legacy ``torch.save`` byte string; tensors come back as numpy arrays."""
    f = io.BytesIO(data)
    storages: dict[str, StorageRef] = {}
    if pickle.load(f) != LEGACY_MAGIC:
        raise ValueError("not a legacy torch file (bad magic number)")
    if pickle.load(f) != LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy torch protocol version")
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", False):
        raise ValueError("big-endian checkpoints are not supported")
    obj = _LegacyUnpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack("<q", f.read(8))
        if count != storage.size:
            raise ValueError(f"storage {key}: {count} elements on disk, {storage.size} declared")
        raw = f.read(count * storage.dtype.itemsize)
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if f.read(1):
        raise ValueError("trailing bytes after the last storage")
    return _materialise(obj)


def _materialise(obj: Any) -> Any:
    if isinstance(obj, TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="Resemblyzer-0.1.4-py3-none-any.whl")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    wheel_bytes = args.wheel.read_bytes()
    print(f"wheel sha256 {hashlib.sha256(wheel_bytes).hexdigest()}")
    with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as zf:
        checkpoint = load_legacy_checkpoint(zf.read(WHEEL_MEMBER))
    state = checkpoint["model_state"]
    weights: dict[str, np.ndarray[Any, Any]] = {}
    for name, shape in MODEL_SHAPES.items():
        array = np.ascontiguousarray(state[name], dtype=np.float32)
        if array.shape != shape:
            raise ValueError(f"{name}: shape {array.shape}, expected {shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name}: non-finite values")
        weights[name] = array
    skipped = sorted(set(state) - set(MODEL_SHAPES))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **weights)  # type: ignore[arg-type]
    total = sum(a.size for a in weights.values())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {total} parameters)")
    print(f"training step {checkpoint.get('step')}; left out: {skipped} and the optimizer state")
    for name, array in weights.items():
        print(f"  {name:22s} {array.shape!s:12s} {hashlib.sha256(array.tobytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
