"""ONNX import: read back the graphs barenet can represent, as a ``Sequential``.

Reading accepts a plain chain of the operators ``barenet.export.to_onnx`` writes, from
barenet or from ``torch.onnx.export`` of an equivalent ``nn.Sequential`` (which folds an
inference BatchNorm into the convolution before it, and may alias equal initializers
through ``Identity``). The graph is turned into a layer list and named arrays, then checked
and assembled by ``barenet.io`` like any model file; what barenet wrote into
``metadata_props`` (loss, optimizer, input shape, metadata) comes back with it. No code in
the file runs. The ``onnx`` package is imported only when a file is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet import io
from barenet.errors import ModelFileError
from barenet.export.onnx_nodes import IMPORTERS, MAX_ELEMENTS, Reader, attrs
from barenet.optional import require

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = ["FORMAT", "MAX_ELEMENTS", "MAX_FILE_BYTES", "MAX_NODES", "from_onnx", "read_onnx"]

#: Bounds on what a file may ask the reader to hold (and MAX_ELEMENTS per tensor).
MAX_FILE_BYTES = 2**31
MAX_NODES = 10_000
#: The ``barenet.format`` metadata of a graph barenet wrote, whose metadata it trusts.
FORMAT = "barenet-onnx"


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
    onnx = require("onnx", "onnx", "ONNX import")
    path = Path(path)
    proto = _parse(onnx, path)
    graph = proto.graph
    if len(graph.node) > MAX_NODES:
        raise ModelFileError(f"{path}: {len(graph.node):,} nodes, more than barenet reads")
    r = Reader(onnx, path, proto)
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
    current = _read_chain(r, graph.node, inputs[0].name)
    if current != graph.output[0].name or r.squeezed:
        raise r.fail(f"the graph's output {graph.output[0].name!r} is not the end of its chain")
    if r.shape_error:
        raise r.fail(f"the graph's shapes do not fit together ({r.shape_error})")
    config = _config(r, inputs[0], {p.key: p.value for p in proto.metadata_props})
    return io.check_config(path, config), r.arrays


def _read_chain(r: Reader, nodes: Any, current: str) -> str:
    """Read ``nodes`` in order into ``r``, each reading the output of the one before (the
    graph's input ``current`` for the first) and constants; returns the last output."""
    for node in nodes:
        a = attrs(node)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and "value" in a:
            r.consts[node.output[0]] = r.array(a["value"])
            continue
        if node.op_type == "Identity" and node.input[0] in r.consts:
            r.consts[node.output[0]] = r.consts[node.input[0]]
            continue
        importer = IMPORTERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if importer is None:
            raise r.fail(
                f"{r.describe(node)} has no barenet counterpart; barenet reads "
                f"{', '.join(sorted(IMPORTERS))}"
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
    return current


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _config(r: Reader, graph_input: Any, props: dict[str, str]) -> dict[str, Any]:
    """A barenet model config: the layers read from the graph; the loss, optimizer, input
    shape and metadata from what barenet wrote into ``metadata_props``, if it did."""
    config: dict[str, Any] = {}
    if props.get("barenet.format") == FORMAT:
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
