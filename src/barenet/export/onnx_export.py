"""Write a model as an ONNX graph (reading one back: ``barenet.export.onnx_import``).

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
``metadata_props``, so ``from_onnx`` gives back the model that was
exported, less its dropout layers. The ``onnx`` package is imported only when a model is
written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from barenet.conv import Conv2D
from barenet.errors import ArgumentError, BarenetError, check_int
from barenet.export.onnx_import import FORMAT
from barenet.files import atomic_write
from barenet.layers import Dense, Dropout, Flatten, Layer
from barenet.normalization import BatchNorm
from barenet.optional import require
from barenet.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "to_onnx"]

#: Written unless asked otherwise: read by every ONNX Runtime of the last few years.
DEFAULT_OPSET = 17
#: Softmax over one axis (rather than over everything after it) arrived in opset 13.
MIN_OPSET = 13


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
    onnx = require("onnx", "onnx", "ONNX export")
    from onnx import helper, numpy_helper

    batch = _check_request(model, batch, opset, onnx.defs.onnx_opset_version())
    g = _Graph(helper, numpy_helper)
    activation = _translate(g, model)
    dims = _input_dims(model, input_shape)
    props = _props(model, activation)
    proto = _model_proto(helper, g, model, [batch if batch != "dynamic" else "N", *dims], opset)
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


def _check_request(model: Any, batch: int | str, opset: Any, newest: int) -> int | str:
    """``batch`` checked ("dynamic" or a positive size); ``ArgumentError`` for anything but
    a float32 or float64 Sequential, or an opset outside ``MIN_OPSET``..``newest``."""
    from barenet.model import Sequential

    if not isinstance(model, Sequential):
        raise ArgumentError(f"model must be a barenet Sequential, got {type(model).__name__}")
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise ArgumentError(f"opset must be an integer from {MIN_OPSET} to {newest}, got {opset!r}")
    if batch != "dynamic":
        batch = check_int("batch", batch)
    if model.dtype not in (np.float32, np.float64):
        raise ArgumentError(f"ONNX export needs float32 or float64 parameters, not {model.dtype}")
    return batch


def _translate(g: _Graph, model: Sequential) -> str | None:
    """Add a node (or two) per layer to ``g``, then the activation ``predict_proba`` applies
    to logits, if any (returned: "Softmax", "Sigmoid" or None); the last node's output is
    named ``output``."""
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
    activation = None
    if model.loss is not None and model.loss.from_logits and not model._fused():
        activation = {"multiclass": "Softmax", "binary": "Sigmoid"}.get(model.loss.kind)
        if activation:  # what predict_proba applies to the logits
            attrs: dict[str, Any] = {"axis": 1} if activation == "Softmax" else {}
            x = g.node(activation, [x], f"output_{activation.lower()}", **attrs)
    if g.nodes:
        g.nodes[-1].output[0] = "output"
    else:
        g.nodes.append(g.helper.make_node("Identity", ["input"], ["output"], name="identity"))
    return activation


def _props(model: Sequential, activation: str | None) -> dict[str, str]:
    """The ``metadata_props``: barenet's format, output activation, config (less the
    layers: the graph is the architecture) and metadata, and each metadata entry on its
    own, readable by any ONNX tool."""
    props = {"barenet.format": FORMAT}
    if activation:
        props["barenet.output_activation"] = activation
    config = model.get_config()
    del config["layers"]
    props["barenet.config"] = _json("model config", config)
    props["barenet.metadata"] = _json("model metadata", model.metadata)
    for key, value in model.metadata.items():
        props.setdefault(str(key), value if isinstance(value, str) else _json(key, value))
    return props


def _model_proto(
    helper: Any, g: _Graph, model: Sequential, input_dims: list[int | str], opset: int
) -> Any:
    """The ModelProto of graph ``g``: one input of ``input_dims`` (batch axis first), one
    output, in the model's dtype, for ``opset``."""
    from barenet import __version__

    elem = helper.np_dtype_to_tensor_dtype(model.dtype)
    inputs = [helper.make_tensor_value_info("input", elem, input_dims)]
    outputs = [helper.make_tensor_value_info("output", elem, None)]
    doc = f"barenet {model!r}; input {'NCHW' if len(input_dims) == 4 else '(N, features)'}"
    graph = helper.make_graph(g.nodes, "barenet", inputs, outputs, g.initializers, doc_string=doc)
    return helper.make_model_gen_version(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="barenet",
        producer_version=__version__,
        doc_string=doc,
    )
