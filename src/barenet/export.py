"""ONNX: write a model as an ONNX graph, and read back the graphs barenet can represent.

Each layer becomes its ONNX operator: ``Dense`` -> ``Gemm`` (weight as stored, ``transB=1``),
``Conv2D`` -> ``Conv`` (explicit pads, so "same" with an even kernel pads one more row and
column at the bottom and right, as barenet and PyTorch do), ``MaxPool2D`` / ``AvgPool2D`` /
``GlobalAvgPool2D`` -> ``MaxPool`` / ``AveragePool`` / ``GlobalAveragePool`` + ``Flatten``,
``BatchNorm`` -> ``BatchNormalization`` (inference form: running statistics), the
activations and ``Flatten`` to theirs; ``Dropout`` (identity at inference) vanishes. A
classifier that outputs logits gets the ``Softmax`` (``Sigmoid``) that ``predict_proba``
applies, so the graph's output is what ``predict_proba`` returns.

The graph's input is ``(N, features)`` or NCHW float32 (float64 for a float64 model) with
a dynamic batch axis ``N``; a model that reads (N, H, W) images takes (N, 1, H, W). The
loss, optimizer settings, input shape and metadata (classes, preprocessing, ...) ride in
``metadata_props``, so ``from_onnx`` gives back the model that was exported, less its
dropout layers.

Reading accepts a plain chain of those operators, from barenet or from
``torch.onnx.export`` of an equivalent ``nn.Sequential`` (which folds an inference
BatchNorm into the convolution before it, and may alias equal initializers through
``Identity``). The graph is turned into a layer list and named arrays, then checked and
assembled by ``barenet.io`` like any model file. No code in the file runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet import io
from barenet.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from barenet.conv import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D
from barenet.errors import ArgumentError, BarenetError, ModelFileError, check_int
from barenet.files import atomic_write
from barenet.layers import Dense, Dropout, Flatten, Layer
from barenet.normalization import BatchNorm
from barenet.optional import require

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "from_onnx", "read_onnx", "to_onnx"]

#: Written unless asked otherwise: read by every ONNX Runtime of the last few years.
DEFAULT_OPSET = 17
#: Softmax over one axis (rather than over everything after it) arrived in opset 13.
MIN_OPSET = 13
#: Bounds on what a file may ask the reader to hold.
MAX_FILE_BYTES = 2**31
MAX_NODES = 10_000
MAX_ELEMENTS = 2**28

_FORMAT = "barenet-onnx"


def _onnx(feature: str) -> Any:
    return require("onnx", "onnx", feature)


# ---- export -----------------------------------------------------------------------------
@dataclass
class _Graph:
    """Nodes and initializers collected while the layers are translated, in order."""

    helper: Any
    numpy_helper: Any
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, doc: str = "", **attrs: Any) -> str:
        out = f"{name}_out"
        node = self.helper.make_node(op, inputs, [out], name=name, doc_string=doc, **attrs)
        self.nodes.append(node)
        return out


def _dense(g: _Graph, layer: Dense, x: str, name: str) -> str:
    w = g.const(f"{name}.weight", layer.params["weight"])
    b = g.const(f"{name}.bias", layer.params["bias"])
    return g.node("Gemm", [x, w, b], name, transB=1)


def _conv(g: _Graph, layer: Conv2D, x: str, name: str) -> str:
    top, bottom, left, right = layer._pads
    w = g.const(f"{name}.weight", layer.params["weight"])
    b = g.const(f"{name}.bias", layer.params["bias"])
    return g.node(
        "Conv",
        [x, w, b],
        name,
        kernel_shape=list(layer.kernel_size),
        strides=[layer.stride, layer.stride],
        pads=[top, left, bottom, right],
        doc=repr(layer),  # tells padding="same" from the equal pads an odd kernel gets
    )


def _pool(g: _Graph, layer: MaxPool2D | AvgPool2D, x: str, name: str) -> str:
    strides = list(layer.kernel_size) if layer.stride is None else [layer.stride] * 2
    op = "MaxPool" if isinstance(layer, MaxPool2D) else "AveragePool"
    kernel = list(layer.kernel_size)  # the repr tells stride=None from stride=kernel
    return g.node(op, [x], name, repr(layer), kernel_shape=kernel, strides=strides)


def _global_pool(g: _Graph, layer: GlobalAvgPool2D, x: str, name: str) -> str:
    # GlobalAveragePool keeps (N, C, 1, 1); barenet's layer gives (N, C).
    pooled = g.node("GlobalAveragePool", [x], name)
    return g.node("Flatten", [pooled], f"{name}_squeeze", axis=1)


def _batchnorm(g: _Graph, layer: BatchNorm, x: str, name: str) -> str:
    inputs = [x] + [
        g.const(f"{name}.{key}", value)
        for key, value in (
            ("weight", layer.params["weight"]),
            ("bias", layer.params["bias"]),
            ("running_mean", layer.running_mean),
            ("running_var", layer.running_var),
        )
    ]
    # ONNX weighs the old statistics by ``momentum``; barenet (like PyTorch) the new batch.
    return g.node(
        "BatchNormalization", inputs, name, epsilon=layer.eps, momentum=1.0 - layer.momentum
    )


def _simple(op: str, **attrs: Any) -> Callable[[_Graph, Any, str, str], str]:
    return lambda g, layer, x, name: g.node(op, [x], name, **attrs)


_EXPORTERS: dict[type[Layer], Callable[[_Graph, Any, str, str], str]] = {
    Dense: _dense,
    Conv2D: _conv,
    MaxPool2D: _pool,
    AvgPool2D: _pool,
    GlobalAvgPool2D: _global_pool,
    BatchNorm: _batchnorm,
    ReLU: _simple("Relu"),
    Sigmoid: _simple("Sigmoid"),
    Tanh: _simple("Tanh"),
    Softmax: _simple("Softmax", axis=1),
    Flatten: _simple("Flatten", axis=1),
    LeakyReLU: lambda g, layer, x, name: g.node("LeakyRelu", [x], name, alpha=layer.negative_slope),
}


def _input_dims(model: Sequential, input_shape: Any) -> list[int | str]:
    """One sample's input shape as the graph declares it: (features,) or (C, H, W)."""
    shape = input_shape if input_shape is not None else model.input_shape
    if shape is None:
        first = model.layers[0] if model.layers else None
        if isinstance(first, Dense):
            return [first.in_features]
        if isinstance(first, Conv2D):
            return [first.in_channels, "H", "W"]
        raise ArgumentError(
            "the model does not know its input shape: pass input_shape=(features,) or (C, H, W)"
        )
    dims = [check_int("input_shape", d) for d in shape]
    if len(dims) == 2:  # (H, W) images are one channel
        dims = [1, *dims]
    if len(dims) not in (1, 3):
        raise ArgumentError(f"input_shape must be (features,), (H, W) or (C, H, W), got {shape!r}")
    return list(dims)


def _json(what: str, value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BarenetError(f"{what} cannot be saved as JSON: {e}") from None


def to_onnx(
    model: Sequential,
    path: str | Path,
    *,
    batch: int | str = "dynamic",
    opset: int = DEFAULT_OPSET,
    input_shape: tuple[int, ...] | None = None,
) -> Path:
    """Write ``model`` to ``path`` as an ONNX model; returns the path.

    ``batch`` is "dynamic" (any batch size, axis named ``N``) or a fixed positive size.
    ``opset`` is the ONNX operator set, from ``MIN_OPSET`` to the newest the installed
    ``onnx`` knows. ``input_shape`` (one sample's) is needed only when the model has not
    seen data and does not start with ``Dense`` or ``Conv2D``. The graph is checked with
    ``onnx.checker`` (with shape inference) before it is written.
    """
    from barenet.model import Sequential

    onnx = _onnx("ONNX export")
    from onnx import helper, numpy_helper

    if not isinstance(model, Sequential):
        raise ArgumentError(f"model must be a barenet Sequential, got {type(model).__name__}")
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise ArgumentError(f"opset must be an integer from {MIN_OPSET} to {newest}, got {opset!r}")
    if batch != "dynamic":
        batch = check_int("batch", batch)
    dtype = model.dtype
    if dtype not in (np.float32, np.float64):
        raise ArgumentError(f"ONNX export needs float32 or float64 parameters, not {dtype}")
    elem = helper.np_dtype_to_tensor_dtype(dtype)

    g = _Graph(helper, numpy_helper)
    x = "input"
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dropout):
            continue
        exporter = _EXPORTERS.get(type(layer))
        if exporter is None:
            raise ArgumentError(
                f"layer {i} ({type(layer).__name__}) has no ONNX counterpart; ONNX export "
                f"supports {', '.join(sorted(t.__name__ for t in _EXPORTERS))} and Dropout"
            )
        x = exporter(g, layer, x, f"{i}_{type(layer).__name__}")
    props = {"barenet.format": _FORMAT}
    if model.loss is not None and model.loss.from_logits and not model._fused():
        activation = {"multiclass": "Softmax", "binary": "Sigmoid"}.get(model.loss.kind)
        if activation:  # what predict_proba applies to the logits
            attrs: dict[str, Any] = {"axis": 1} if activation == "Softmax" else {}
            x = g.node(activation, [x], f"output_{activation.lower()}", **attrs)
            props["barenet.output_activation"] = activation
    if g.nodes:
        g.nodes[-1].output[0] = "output"
    else:
        g.nodes.append(helper.make_node("Identity", ["input"], ["output"], name="identity"))

    dims = _input_dims(model, input_shape)
    batch_dim: int | str = "N" if batch == "dynamic" else batch
    inputs = [helper.make_tensor_value_info("input", elem, [batch_dim, *dims])]
    outputs = [helper.make_tensor_value_info("output", elem, None)]
    config = model.get_config()
    del config["layers"]  # the graph is the architecture
    props["barenet.config"] = _json("model config", config)
    props["barenet.metadata"] = _json("model metadata", model.metadata)
    for key, value in model.metadata.items():  # readable by any ONNX tool as well
        props.setdefault(str(key), value if isinstance(value, str) else _json(key, value))
    doc = f"barenet {model!r}; input {'NCHW' if len(dims) == 3 else '(N, features)'}"
    graph = helper.make_graph(g.nodes, "barenet", inputs, outputs, g.initializers, doc_string=doc)
    from barenet import __version__

    proto = helper.make_model_gen_version(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="barenet",
        producer_version=__version__,
        doc_string=doc,
    )
    helper.set_model_props(proto, props)
    try:
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ArgumentError(f"the model does not make a valid ONNX graph: {e}") from None
    path = Path(path)
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path


# ---- import -----------------------------------------------------------------------------
def _float32_text(value: float) -> float:
    """The shortest decimal that a float32 attribute stands for (1e-05, not 9.99999974e-06)."""
    return float(str(np.float32(value)))


class _Reader:
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


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_gemm(r: _Reader, node: Any, a: dict[str, Any]) -> None:
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


def _read_matmul(r: _Reader, node: Any, a: dict[str, Any]) -> None:
    w = r.const(node, 1)
    if w.ndim != 2:
        raise r.fail(f"{r.describe(node)} multiplies by a {w.ndim}-D constant")
    r.add(
        Dense,
        {"in_features": w.shape[0], "out_features": w.shape[1]},
        weight=np.ascontiguousarray(w.T),
        bias=np.zeros(w.shape[1], dtype=w.dtype),
    )


def _read_add(r: _Reader, node: Any, a: dict[str, Any]) -> None:
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
    r: _Reader, node: Any, a: dict[str, Any], kernel: tuple[int, int]
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


def _read_conv(r: _Reader, node: Any, a: dict[str, Any]) -> None:
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


def _read_pool(r: _Reader, node: Any, a: dict[str, Any]) -> None:
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


def _read_global_pool(r: _Reader, node: Any, a: dict[str, Any]) -> None:
    r.add(GlobalAvgPool2D, {})
    r.squeezed = True


def _read_batchnorm(r: _Reader, node: Any, a: dict[str, Any]) -> None:
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


def _read_softmax(r: _Reader, node: Any, a: dict[str, Any]) -> None:
    rank = r.rank(node.input[0]) or 2
    axis = a.get("axis", 1 if r.opset < 13 else -1)
    if (axis + rank if axis < 0 else axis) != 1:
        raise r.fail(
            f"{r.describe(node)} over axis {axis} of a {rank}-D tensor; barenet's is axis 1"
        )
    r.add(Softmax, {})


def _read_leaky(r: _Reader, node: Any, a: dict[str, Any]) -> None:
    slope = _float32_text(a.get("alpha", 0.01))
    if not 0 <= slope < 1:
        raise r.fail(f"{r.describe(node)} has slope {slope}; barenet's LeakyReLU takes [0, 1)")
    r.add(LeakyReLU, {"negative_slope": slope})


def _read_flatten(r: _Reader, node: Any, a: dict[str, Any]) -> None:
    if a.get("axis", 1) != 1:
        raise r.fail(f"{r.describe(node)} flattens from axis {a['axis']}; barenet's from axis 1")
    _rows(r)


def _rows(r: _Reader) -> None:
    if r.squeezed:  # GlobalAvgPool2D already gave (N, C)
        r.squeezed = False
    else:
        r.add(Flatten, {})


def _read_reshape(r: _Reader, node: Any, a: dict[str, Any]) -> None:
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


def _read_dropout(r: _Reader, node: Any, a: dict[str, Any]) -> None:
    rate = float(r.const(node, 1, np.array(a.get("ratio", 0.5))))
    training = bool(r.const(node, 2, np.array(False)))
    if training or not 0 <= rate < 1:
        raise r.fail(f"{r.describe(node)} is in training mode or has rate {rate}")
    r.add(Dropout, {"rate": _float32_text(rate)})


_IMPORTERS: dict[str, Callable[[_Reader, Any, dict[str, Any]], None]] = {
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


def _parse(onnx: Any, path: Path) -> Any:
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: {size:,} bytes is more than an ONNX model barenet reads")
    try:
        proto = onnx.ModelProto.FromString(path.read_bytes())
        onnx.checker.check_model(proto)
    except (DecodeError, onnx.checker.ValidationError, ValueError, RuntimeError) as e:
        reason = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{path}: not a readable ONNX model ({reason})") from None
    return proto


def read_onnx(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The config and named arrays of the ONNX model at ``path``, in the form of a barenet
    model file (see ``barenet.io``); ``ModelFileError`` names the first node barenet
    cannot represent."""
    onnx = _onnx("ONNX import")
    path = Path(path)
    proto = _parse(onnx, path)
    graph = proto.graph
    if len(graph.node) > MAX_NODES:
        raise ModelFileError(f"{path}: {len(graph.node):,} nodes, more than barenet reads")
    r = _Reader(onnx, path, proto)
    r.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    for tensor in graph.initializer:
        r.consts[tensor.name] = r.array(tensor)
    inputs = [i for i in graph.input if i.name not in r.consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise r.fail(
            f"barenet reads graphs of one input and one output, not {len(inputs)} and "
            f"{len(graph.output)}"
        )
    elem = inputs[0].type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise r.fail(f"the input is {onnx.TensorProto.DataType.Name(elem)}; barenet reads float")
    r.dtype = "float32" if elem == onnx.TensorProto.FLOAT else "float64"
    current = inputs[0].name
    for node in graph.node:
        a = _attrs(node)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and "value" in a:
            r.consts[node.output[0]] = r.array(a["value"])
            continue
        if node.op_type == "Identity" and node.input[0] in r.consts:
            r.consts[node.output[0]] = r.consts[node.input[0]]
            continue
        importer = _IMPORTERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if importer is None:
            raise r.fail(
                f"{r.describe(node)} has no barenet counterpart; barenet reads "
                f"{', '.join(sorted(_IMPORTERS))}"
            )
        data = [name for name in node.input if name and name not in r.consts]
        if data != [current]:
            raise r.fail(
                f"{r.describe(node)} reads {data}, not just {current!r}: barenet reads a plain "
                "chain of layers"
            )
        if r.squeezed and node.op_type not in ("Flatten", "Reshape"):
            raise r.fail(f"{r.describe(node)} follows GlobalAveragePool; barenet needs a Flatten")
        importer(r, node, a)
        current = node.output[0]
    if current != graph.output[0].name or r.squeezed:
        raise r.fail(f"the graph's output {graph.output[0].name!r} is not the end of its chain")
    if r.shape_error:
        raise r.fail(f"the graph's shapes do not fit together ({r.shape_error})")
    config = _config(r, inputs[0], {p.key: p.value for p in proto.metadata_props})
    return io.check_config(path, config), r.arrays


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _config(r: _Reader, graph_input: Any, props: dict[str, str]) -> dict[str, Any]:
    """A barenet model config: the layers read from the graph; the loss, optimizer, input
    shape and metadata from what barenet wrote into ``metadata_props``, if it did."""
    config: dict[str, Any] = {}
    if props.get("barenet.format") == _FORMAT:
        activation = props.get("barenet.output_activation")
        if activation:
            if not r.specs or r.specs[-1]["class"] != activation:
                raise r.fail(f"the graph does not end with the {activation} its metadata names")
            r.specs.pop()  # predict_proba applies it again
        try:
            stored = json.loads(props.get("barenet.config", "{}"), parse_constant=_no_constant)
            metadata = json.loads(props.get("barenet.metadata", "{}"), parse_constant=_no_constant)
        except (ValueError, RecursionError) as e:
            raise r.fail(f"barenet's metadata in the file is not valid JSON ({e})") from None
        if not isinstance(stored, dict):
            raise r.fail("barenet's config in the file is not a JSON object")
        config.update(stored, metadata=metadata)
    else:
        dims = [
            d.dim_value if d.HasField("dim_value") else None
            for d in graph_input.type.tensor_type.shape.dim
        ]
        if len(dims) > 1 and all(dims[1:]):
            config["input_shape"] = dims[1:]
    config["layers"] = r.specs
    config["format"], config["version"] = io.FORMAT, io.VERSION
    return config


def from_onnx(path: str | Path) -> Sequential:
    """Load an ONNX model (written by ``to_onnx`` or an equivalent one from PyTorch) as a
    ``Sequential``; ``bn.load_model("model.onnx")`` does the same."""
    path = Path(path)
    config, arrays = read_onnx(path)
    infos = {name: io.ArrayInfo(a.shape, a.dtype) for name, a in arrays.items()}
    io.check_arrays(path, config, infos)
    return io.build_model(path, config, infos, arrays.__getitem__)
