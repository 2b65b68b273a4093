"""Model files in the safetensors format: the arrays as tensors, the config as metadata.

``model.save("m.safetensors")`` and ``load_model("m.safetensors")`` come here (the
extension picks the format). The tensors have the names of a ``.npz`` model file
(``param/<layer>/<name>``, ``state/<layer>/<name>``, ``optimizer/<key>``) and the JSON
config rides in the header's metadata under ``"config"``, so other tools read the
weights and anyone reads the architecture. Reading goes through ``barenet.io``'s checks:
the config and every tensor's shape are checked against each other from the header,
before any layer is built or tensor read, and NaN or infinite values are refused. The
``safetensors`` package checks the header itself (offsets that cover the file exactly);
it holds no code, only numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet import io
from barenet.errors import ModelFileError
from barenet.files import atomic_write
from barenet.optional import require

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = ["load_safetensors", "save_safetensors"]

#: The tensor dtypes a model file holds, by their safetensors names.
_DTYPES: dict[str, np.dtype[Any]] = {
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
    "I64": np.dtype(np.int64),
}


def save_safetensors(path: Path, config_json: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` and the JSON config to ``path`` atomically."""
    numpy_api = require("safetensors.numpy", "safetensors", "Saving a .safetensors file")
    # np.require keeps 0-d arrays (the optimizer's step count) 0-d; ascontiguousarray would not.
    tensors = {name: np.require(a, requirements="C") for name, a in arrays.items()}
    data = numpy_api.save(tensors, metadata={"config": config_json})
    atomic_write(path, lambda f: f.write(data))


def _infos(path: Path, f: Any) -> dict[str, io.ArrayInfo]:
    infos = {}
    for name in f.keys():
        piece = f.get_slice(name)
        dtype = _DTYPES.get(piece.get_dtype())
        if dtype is None:
            raise ModelFileError(
                f"{path}: tensor {name!r} is {piece.get_dtype()}; model files hold F32, F64 or I64"
            )
        infos[name] = io.ArrayInfo(tuple(piece.get_shape()), dtype)
    return infos


def load_safetensors(path: str | Path) -> Sequential:
    """Load a model written by ``save("....safetensors")``."""
    safetensors = require("safetensors", "safetensors", "Reading a .safetensors file")
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get("config")
            if raw is None:
                raise ModelFileError(f"{path}: not a barenet model file (no config in metadata)")
            if len(raw) > io.MAX_CONFIG_BYTES:
                raise ModelFileError(
                    f"{path}: the model config is {len(raw):,} bytes, over {io.MAX_CONFIG_BYTES:,}"
                )
            config = io.parse_config(path, raw.encode("utf-8"))
            infos = _infos(path, f)
            io.check_arrays(path, config, infos)
            return io.build_model(path, config, infos, f.get_tensor)
    except safetensors.SafetensorError as e:
        raise ModelFileError(f"{path}: not a readable safetensors file ({e})") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot be read ({e})") from None
