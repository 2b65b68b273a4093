"""ONNX nodes read as barenet layers: one function per operator, collecting each layer's
class, config and arrays into a ``Reader`` as ``barenet.export.onnx_import`` walks the graph.

Each refuses, naming the node, what barenet's layer cannot represent (transposed inputs,
groups, dilation, uneven padding, training-mode nodes, ...). The ``onnx`` package is
imported only inside the functions that need it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from barenet.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from barenet.conv import Conv2D
from barenet.errors import ModelFileError
from barenet.layers import Dense, Dropout, Flatten, Layer
from barenet.normalization import BatchNorm
from barenet.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D

__all__ = ["IMPORTERS", "MAX_ELEMENTS", "Reader", "attrs"]

#: Most elements one tensor of a file may hold.
MAX_ELEMENTS = 2**28


def _float32_text(value: float) -> float:
    """The shortest decimal that a float32 attribute stands for (1e-05, not 9.99999974e-06)."""
    return float(str(np.float32(value)))


class Reader:
    """Walks an ONNX graph node by node and collects layers (class, config, arrays)."""

    def __init__(self, onnx: Any, path: Path, proto: Any) -> None:
        self.onnx, self.path, self.graph = onnx, path, proto.graph
        self.consts: dict[str, np.ndarray] = {}
        self.specs: list[dict[str, Any]] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.shape_error = ""
        self.shapes = self._inferred_shapes(proto)
        self.squeezed = False  # after GlobalAveragePool: barenet holds (N, C), ONNX (N, C, 1, 1)
        self.dtype = "float32"
        self.opset = 0

    def fail(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    def _inferred_shapes(self, proto: Any) -> dict[str, list[int | None]]:
        """Every tensor's shape that ONNX shape inference finds (None for unknown axes).
        Shapes that do not fit together are reported once every node is known to be one
        barenet reads, so an unsupported node is named first."""
        try:
            inferred = self.onnx.shape_inference.infer_shapes(proto, strict_mode=True).graph
        except Exception as e:  # onnx raises several kinds
            self.shape_error = " ".join(str(e).split())[:300]
            return {}
        shapes = {}
        for info in [*inferred.input, *inferred.value_info, *inferred.output]:
            t = info.type.tensor_type
            if t.HasField("shape"):
                shapes[info.name] = [
                    d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim
                ]
        return shapes

    def array(self, tensor: Any) -> np.ndarray:
        from onnx import numpy_helper

        if tensor.data_location == self.onnx.TensorProto.EXTERNAL:
            raise self.fail(f"tensor {tensor.name!r} keeps its data in another file; not read")
        count = math.prod(tensor.dims)
        if any(d < 0 for d in tensor.dims) or count > MAX_ELEMENTS:
            raise self.fail(
                f"tensor {tensor.name!r} has a bad or too large shape {list(tensor.dims)}"
            )
        try:
            return numpy_helper.to_array(tensor)
        except (ValueError, TypeError) as e:
            raise self.fail(f"tensor {tensor.name!r} cannot be read ({e})") from None

    def const(self, node: Any, index: int, default: np.ndarray | None = None) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            if default is None:
                raise self.fail(f"{self.describe(node)} lacks input {index}")
            return default
        if name not in self.consts:
            raise self.fail(f"{self.describe(node)} reads {name!r}, which is not a constant")
        return self.consts[name]

    @staticmethod
    def describe(node: Any) -> str:
        return f"node {node.name or '(unnamed)'!r} ({node.op_type})"

    def add(self, layer_class: type[Layer], config: dict[str, Any], **arrays: np.ndarray) -> None:
        i = len(self.specs)
        if self.dtype != "float32" and layer_class in (Dense, Conv2D, BatchNorm):
            config["dtype"] = self.dtype
        self.specs.append({"class": layer_class.__name__, "config": config})
        for name, value in arrays.items():
            group = "state" if name.startswith("running_") else "param"
            self.arrays[f"{group}/{i}/{name}"] = value

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)


def attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_gemm(r: Reader, node: Any, a: dict[str, Any]) -> None:
    if a.get("transA", 0):
        raise r.fail(f"{r.describe(node)} transposes its input (transA); not supported")
    w = r.const(node, 1)
    if w.ndim != 2:
        raise r.fail(f"{r.describe(node)} has a {w.ndim}-D weight")
    w = w if a.get("transB", 0) else w.T
    w = w * w.dtype.type(a.get("alpha", 1.0)) if a.get("alpha", 1.0) != 1.0 else w
    out, features = w.shape
    b = r.const(node, 2, np.zeros(out, dtype=w.dtype))
    b = b * b.dtype.type(a.get("beta", 1.0)) if a.get("beta", 1.0) != 1.0 else b
    if b.size not in (1, out) or b.ndim > 2:
        raise r.fail(f"{r.describe(node)} has a bias of shape {list(b.shape)}, not ({out},)")
    r.add(
        Dense,
        {"in_features": features, "out_features": out},
        weight=np.ascontiguousarray(w),
        bias=np.broadcast_to(b.reshape(-1), (out,)).copy(),
    )


def _read_matmul(r: Reader, node: Any, a: dict[str, Any]) -> None:
    w = r.const(node, 1)
    if w.ndim != 2:
        raise r.fail(f"{r.describe(node)} multiplies by a {w.ndim}-D constant")
    r.add(
        Dense,
        {"in_features": w.shape[0], "out_features": w.shape[1]},
        weight=np.ascontiguousarray(w.T),
        bias=np.zeros(w.shape[1], dtype=w.dtype),
    )


def _read_add(r: Reader, node: Any, a: dict[str, Any]) -> None:
    """The bias of a MatMul just before (MatMul + Add is a Dense layer)."""
    i = len(r.specs) - 1
    key = f"param/{i}/bias"
    names = [n for n in node.input if n in r.consts]
    if i < 0 or r.specs[i]["class"] != "Dense" or len(names) != 1 or np.any(r.arrays[key]):
        raise r.fail(f"{r.describe(node)} is not the bias of a MatMul before it; not supported")
    b = r.consts[names[0]]
    out = r.arrays[key].shape[0]
    if b.size != out or b.ndim > 2:
        raise r.fail(f"{r.describe(node)} adds a constant of shape {list(b.shape)}, not ({out},)")
    r.arrays[key] = b.reshape(out).astype(b.dtype, copy=True)


def _read_conv_padding(
    r: Reader, node: Any, a: dict[str, Any], kernel: tuple[int, int]
) -> int | str:
    kh, kw = kernel
    stride = a.get("strides", [1, 1])
    auto = _text(a.get("auto_pad", "NOTSET"))
    same = ((kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2)  # ONNX order: begins, then ends
    odd = kh % 2 == 1 and kw % 2 == 1
    if auto == "VALID":
        return 0
    if auto in ("SAME_UPPER", "SAME_LOWER") and stride == [1, 1] and (auto == "SAME_UPPER" or odd):
        return "same"
    if auto != "NOTSET":
        raise r.fail(f"{r.describe(node)} has auto_pad={auto} with strides {stride}; not supported")
    pads = tuple(a.get("pads", [0, 0, 0, 0]))
    equal = len(pads) == 4 and len(set(pads)) == 1
    if stride == [1, 1] and pads == same and (not equal or "padding='same'" in node.doc_string):
        return "same"
    if equal:
        return int(pads[0])
    raise r.fail(
        f"{r.describe(node)} pads {list(pads)} (top, left, bottom, right): barenet pads every "
        "side alike, or as padding='same' at stride 1"
    )


def _read_conv(r: Reader, node: Any, a: dict[str, Any]) -> None:
    w = r.const(node, 1)
    if w.ndim != 4:
        raise r.fail(f"{r.describe(node)} is not a 2-D convolution (weight {list(w.shape)})")
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise r.fail(f"{r.describe(node)} uses groups or dilation; not supported")
    strides = a.get("strides", [1, 1])
    if len(set(strides)) != 1:
        raise r.fail(f"{r.describe(node)} has unequal strides {strides}; not supported")
    kernel = (int(w.shape[2]), int(w.shape[3]))
    padding = _read_conv_padding(r, node, a, kernel)
    b = r.const(node, 2, np.zeros(w.shape[0], dtype=w.dtype))
    config = {
        "in_channels": int(w.shape[1]),
        "out_channels": int(w.shape[0]),
        "kernel_size": list(kernel),
        "stride": int(strides[0]),
        "padding": padding,
    }
    r.add(Conv2D, config, weight=w, bias=b.reshape(-1))


def _read_pool(r: Reader, node: Any, a: dict[str, Any]) -> None:
    kernel = list(a.get("kernel_shape", []))
    strides = list(a.get("strides", [1] * len(kernel)))
    plain = (
        len(kernel) == 2
        and not any(a.get("pads", []))
        and not a.get("ceil_mode", 0)
        and all(d == 1 for d in a.get("dilations", [1, 1]))
        and _text(a.get("auto_pad", "NOTSET")) in ("NOTSET", "VALID")
        and a.get("storage_order", 0) == 0
        and len([o for o in node.output if o]) == 1
    )
    if not plain or (strides != kernel and len(set(strides)) != 1):
        raise r.fail(
            f"{r.describe(node)} with {a}: barenet pools 2-D windows without padding, "
            "dilation or ceil_mode, with one stride for both axes"
        )
    layer = MaxPool2D if node.op_type == "MaxPool" else AvgPool2D
    stride = strides[0] if strides != kernel or f"stride={strides[0]})" in node.doc_string else None
    r.add(layer, {"kernel_size": kernel, "stride": stride})


def _read_global_pool(r: Reader, node: Any, a: dict[str, Any]) -> None:
    r.add(GlobalAvgPool2D, {})
    r.squeezed = True


def _read_batchnorm(r: Reader, node: Any, a: dict[str, Any]) -> None:
    if a.get("training_mode", 0) or len([o for o in node.output if o]) != 1:
        raise r.fail(f"{r.describe(node)} is in training mode; barenet reads the inference form")
    weight, bias, mean, var = (r.const(node, k) for k in range(1, 5))
    momentum = _float32_text(1.0 - _float32_text(a.get("momentum", 0.9)))
    eps = _float32_text(a.get("epsilon", 1e-5))
    config: dict[str, Any] = {"num_features": int(weight.size)}
    if 0 < momentum <= 1 and momentum != 0.1:
        config["momentum"] = momentum
    if eps != 1e-5:
        config["eps"] = eps
    r.add(
        BatchNorm,
        config,
        weight=weight.reshape(-1),
        bias=bias.reshape(-1),
        running_mean=mean.reshape(-1),
        running_var=var.reshape(-1),
    )


def _read_softmax(r: Reader, node: Any, a: dict[str, Any]) -> None:
    rank = r.rank(node.input[0]) or 2
    axis = a.get("axis", 1 if r.opset < 13 else -1)
    if (axis + rank if axis < 0 else axis) != 1:
        raise r.fail(
            f"{r.describe(node)} over axis {axis} of a {rank}-D tensor; barenet's is axis 1"
        )
    r.add(Softmax, {})


def _read_leaky(r: Reader, node: Any, a: dict[str, Any]) -> None:
    slope = _float32_text(a.get("alpha", 0.01))
    if not 0 <= slope < 1:
        raise r.fail(f"{r.describe(node)} has slope {slope}; barenet's LeakyReLU takes [0, 1)")
    r.add(LeakyReLU, {"negative_slope": slope})


def _read_flatten(r: Reader, node: Any, a: dict[str, Any]) -> None:
    if a.get("axis", 1) != 1:
        raise r.fail(f"{r.describe(node)} flattens from axis {a['axis']}; barenet's from axis 1")
    _rows(r)


def _rows(r: Reader) -> None:
    if r.squeezed:  # GlobalAvgPool2D already gave (N, C)
        r.squeezed = False
    else:
        r.add(Flatten, {})


def _read_reshape(r: Reader, node: Any, a: dict[str, Any]) -> None:
    """A Reshape to (N, features) is a Flatten."""
    shape = [int(d) for d in r.const(node, 1).reshape(-1)]
    before = r.shapes.get(node.input[0]) or []
    rest = math.prod(d or 0 for d in before[1:]) if len(before) > 1 else 0
    flattens = len(shape) == 2 and (
        (shape[0] == 0 and shape[1] in (-1, rest))
        or (shape[0] == -1 and shape[1] == rest > 0)
        or (shape[0] == (before[0] if before else None) and shape[1] in (-1, rest))
    )
    if not flattens:
        raise r.fail(f"{r.describe(node)} to {shape} is not a flatten to (N, features)")
    _rows(r)


def _read_dropout(r: Reader, node: Any, a: dict[str, Any]) -> None:
    rate = float(r.const(node, 1, np.array(a.get("ratio", 0.5))))
    training = bool(r.const(node, 2, np.array(False)))
    if training or not 0 <= rate < 1:
        raise r.fail(f"{r.describe(node)} is in training mode or has rate {rate}")
    r.add(Dropout, {"rate": _float32_text(rate)})


IMPORTERS: dict[str, Callable[[Reader, Any, dict[str, Any]], None]] = {
    "Gemm": _read_gemm,
    "MatMul": _read_matmul,
    "Add": _read_add,
    "Conv": _read_conv,
    "MaxPool": _read_pool,
    "AveragePool": _read_pool,
    "GlobalAveragePool": _read_global_pool,
    "BatchNormalization": _read_batchnorm,
    "Relu": lambda r, node, a: r.add(ReLU, {}),
    "LeakyRelu": _read_leaky,
    "Sigmoid": lambda r, node, a: r.add(Sigmoid, {}),
    "Tanh": lambda r, node, a: r.add(Tanh, {}),
    "Softmax": _read_softmax,
    "Flatten": _read_flatten,
    "Reshape": _read_reshape,
    "Dropout": _read_dropout,
    "Identity": lambda r, node, a: None,
}
