"""Models to and from other formats: ONNX graphs written (``to_onnx``) and read back
(``from_onnx``). PyTorch lives in ``barenet.interop``, ``.safetensors`` files in
``barenet.safetensors_io``.

The ``onnx`` package is imported only inside the functions that write or read a graph, and
``import barenet`` never imports this package.
"""

from __future__ import annotations

from barenet.export.onnx_export import DEFAULT_OPSET, MIN_OPSET, to_onnx
from barenet.export.onnx_import import (
    FORMAT,
    MAX_ELEMENTS,
    MAX_FILE_BYTES,
    MAX_NODES,
    from_onnx,
    read_onnx,
)

__all__ = [
    "DEFAULT_OPSET",
    "FORMAT",
    "MAX_ELEMENTS",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "MIN_OPSET",
    "from_onnx",
    "read_onnx",
    "to_onnx",
]
