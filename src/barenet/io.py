"""Model files, read: ``load_model`` and the checks it makes. The format itself (one
``.npz`` holding the parameter arrays and a JSON config) and ``save_model`` are in
``barenet.modelfile``, below ``barenet.model``; this module builds a ``Sequential``, so it
sits above it.

A file is distrusted until checked, and checked before anything large is allocated:
each member's ``.npy`` header is read first (shape and dtype, no data) and must agree
with the size the zip directory declares; the values of all arrays together are capped
(``MAX_PARAMS``); the config must match ``CONFIG_SCHEMA``; the arrays each layer of the
config would hold (``Layer.array_shapes``) must be the ones stored, before any layer is
built; and every member is read with a bounded read. No pickle is ever read (no code can
run), and NaN or infinite weights are refused. Anything wrong is a ModelFileError naming
the file and the problem.
"""

from __future__ import annotations

import json
import lzma
import math
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy

from barenet import losses, optim
from barenet.errors import BarenetError, ModelFileError
from barenet.layers import Layer
from barenet.model import Sequential
from barenet.modelfile import (
    CONFIG_SCHEMA,
    FORMAT,
    MAX_DEPTH,
    VERSION,
    check_config,
    save_model,
)

__all__ = [
    "CONFIG_SCHEMA",
    "FORMAT",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_PARAMS",
    "VERSION",
    "ArrayInfo",
    "build_model",
    "check_arrays",
    "check_config",
    "load_model",
    "parse_config",
    "save_model",
]

#: Most values (parameters, statistics, optimizer state) one model file may hold in all:
#: 1 GiB of float32. The shipped models hold about a million.
MAX_PARAMS = 2**28
#: Largest JSON config, in bytes (the shipped ones are about 1 KB).
MAX_CONFIG_BYTES = 2**22
#: Most values one sample may take between two layers of a loaded model (the shipped CNNs
#: reach 25,088), so a file cannot make ``predict`` allocate without bound.
MAX_SAMPLE_VALUES = 2**24

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: The dtypes each kind of member may have.
_DTYPES: dict[str, tuple[np.dtype[Any], ...]] = {
    "config": (np.dtype(np.uint8),),
    "param": _FLOATS,
    "state": _FLOATS,
    "optimizer": (*_FLOATS, np.dtype(np.int64)),
}


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_config(path: Path, raw: bytes) -> dict[str, Any]:
    """Decode the UTF-8 JSON config of a model file and check it (``check_config``)."""
    try:
        config = json.loads(
            raw.decode("utf-8"), parse_float=_finite, parse_constant=_refuse_constant
        )
    except RecursionError:
        raise ModelFileError(f"{path}: the model config nests too deeply") from None
    except ValueError as e:  # also bad UTF-8 and integers of over 4300 digits
        raise ModelFileError(f"{path}: the model config is not valid JSON ({e})") from None
    return check_config(path, config)


# -- the arrays, checked against the config -------------------------------------------------


@dataclass(frozen=True)
class ArrayInfo:
    """What a stored array's header says: enough to check it before its data is read."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{list(self.shape)}"


def _layer_class(path: Path, i: int, name: str) -> type[Layer]:
    cls = Layer.registry.get(name)
    if cls is None or name.startswith("_"):
        raise ModelFileError(f"{path}: layer {i} has unknown class {name!r}")
    return cls


def _expected(path: Path, i: int, spec: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """The arrays (``param/<i>/<name>`` -> shape) layer ``i`` of the config would hold."""
    cls = _layer_class(path, i, spec["class"])
    try:
        shapes = cls.array_shapes(spec.get("config", {}))
    except (TypeError, ValueError, BarenetError) as e:
        raise ModelFileError(f"{path}: layer {i} ({spec['class']}) has a bad config: {e}") from None
    if shapes is None:
        return None
    named = (key.partition("/") for key in shapes)
    return {f"{kind}/{i}/{name}": shapes[f"{kind}/{name}"] for kind, _, name in named}


def check_arrays(path: Path, config: dict[str, Any], arrays: dict[str, ArrayInfo]) -> None:
    """Refuse ``arrays`` (name -> header, the config excluded) unless they are within
    ``MAX_PARAMS`` values and are what the config's layers would hold, by name and shape.

    Runs before any layer is built, so a small file describing a huge network costs
    nothing. Layers whose classes cannot tell their shapes are checked once built.
    """
    total = sum(info.size for info in arrays.values())
    if total > MAX_PARAMS:
        raise ModelFileError(f"{path}: holds {total:,} values, more than {MAX_PARAMS:,}")
    described: set[str] = set()
    open_prefixes: list[str] = []
    declared = 0
    for i, spec in enumerate(config["layers"]):
        shapes = _expected(path, i, spec)
        if shapes is None:
            open_prefixes += [f"param/{i}/", f"state/{i}/"]
            continue
        for key, shape in shapes.items():
            declared += math.prod(shape)
            if declared > MAX_PARAMS:
                raise ModelFileError(
                    f"{path}: the config describes over {MAX_PARAMS:,} values (layer {i}, "
                    f"{spec['class']}, holds {key!r} of shape {list(shape)})"
                )
            if key not in arrays:
                raise ModelFileError(f"{path}: missing array {key!r}")
            if arrays[key].shape != shape:
                raise ModelFileError(
                    f"{path}: array {key!r} is {arrays[key]}, layer {i} ({spec['class']}) "
                    f"of the config holds {list(shape)}"
                )
        described.update(shapes)
    leftovers = [
        key
        for key in arrays
        if key not in described and not key.startswith(("optimizer/", *open_prefixes))
    ]
    if leftovers:
        raise ModelFileError(f"{path}: arrays not described by the config: {leftovers[:3]}")


def _value(path: Path, key: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ModelFileError(f"{path}: array {key!r} holds NaN or infinite values")
    return a


def _fill(
    path: Path,
    target: dict[str, np.ndarray],
    prefix: str,
    infos: dict[str, ArrayInfo],
    read: Callable[[str], np.ndarray],
) -> None:
    for name, current in target.items():
        key = f"{prefix}/{name}"
        info = infos.get(key)
        if info is None:
            raise ModelFileError(f"{path}: missing array {key!r}")
        if info.shape != current.shape or info.dtype != current.dtype:
            raise ModelFileError(
                f"{path}: array {key!r} is {info}, the config expects "
                f"{current.dtype}{list(current.shape)}"
            )
        current[...] = _value(path, key, read(key))


def _build_layer(path: Path, i: int, spec: dict[str, Any]) -> Layer:
    cls = _layer_class(path, i, spec["class"])
    try:
        return cls(**spec.get("config", {}))
    except (TypeError, ValueError, BarenetError) as e:
        raise ModelFileError(f"{path}: layer {i} ({spec['class']}) has a bad config: {e}") from None


def _restore_optimizer(
    path: Path, model: Sequential, infos: dict[str, ArrayInfo], read: Callable[[str], np.ndarray]
) -> None:
    """Load a checkpoint's optimizer state; it must fit the model's parameter buffer."""
    assert model.optimizer is not None
    keys = [k for k in infos if k.startswith("optimizer/")]
    state = {k.split("/", 1)[1]: _value(path, k, read(k)) for k in keys}
    steps = state.get("iterations")
    if steps is None or steps.shape != () or steps.dtype != np.int64 or steps < 0:
        raise ModelFileError(f"{path}: the optimizer state has no step count")
    flat = model._bind()[0]
    slots = {f"0.{s}" for s in model.optimizer.slots}
    arrays = {k: a for k, a in state.items() if k != "iterations"}
    if arrays and (
        set(arrays) != slots
        or any(a.shape != flat.shape or a.dtype != flat.dtype for a in arrays.values())
    ):
        raise ModelFileError(
            f"{path}: the optimizer state {sorted(arrays)} does not fit the model's "
            f"{flat.size} parameters of {flat.dtype} (expected {sorted(slots)})"
        )
    model.optimizer.load_state_dict(state)


def _check_geometry(path: Path, layers: list[Layer], config: dict[str, Any]) -> None:
    """Refuse image layers padded as wide as their kernel (the extra rows see only zeros,
    and a huge padding would make every prediction huge), and a network whose samples grow
    past ``MAX_SAMPLE_VALUES`` values on their way through the layers."""
    for i, (layer, spec) in enumerate(zip(layers, config["layers"], strict=True)):
        padding = spec.get("config", {}).get("padding")
        kernel = getattr(layer, "kernel_size", None)
        if isinstance(padding, int) and kernel is not None and padding >= max(kernel):
            raise ModelFileError(
                f"{path}: layer {i} ({spec['class']}) pads {padding} pixels, "
                f"not less than its kernel {list(kernel)}"
            )
    shape = config.get("input_shape")
    if shape is None:
        return
    shape = tuple(shape)
    stages: list[Layer | None] = [None, *layers]  # None: the input itself
    for i, stage in enumerate(stages):
        if stage is not None:
            try:
                shape = stage.output_shape(shape)
            except (ValueError, IndexError, TypeError, BarenetError) as e:
                raise ModelFileError(
                    f"{path}: layer {i - 1} cannot take samples of shape {list(shape)}: {e}"
                ) from None
        if any(n < 1 for n in shape) or math.prod(shape) > MAX_SAMPLE_VALUES:
            raise ModelFileError(
                f"{path}: samples of shape {list(shape)} "
                f"{'at the input' if stage is None else f'after layer {i - 1}'}; at most "
                f"{MAX_SAMPLE_VALUES:,} values of at least one per axis are allowed"
            )


def build_model(
    path: Path,
    config: dict[str, Any],
    infos: dict[str, ArrayInfo],
    read: Callable[[str], np.ndarray],
) -> Sequential:
    """The model a checked config describes, its arrays read with ``read(name)``.

    ``infos`` gives each stored array's header; ``check_arrays`` must have passed.
    """
    model = Sequential([_build_layer(path, i, s) for i, s in enumerate(config["layers"])])
    _check_geometry(path, model.layers, config)
    for i, layer in enumerate(model.layers):
        _fill(path, layer.params, f"param/{i}", infos, read)
        _fill(path, layer.state(), f"state/{i}", infos, read)
    held = {
        f"{kind}/{i}/{name}"
        for i, layer in enumerate(model.layers)
        for kind, arrays in (("param", layer.params), ("state", layer.state()))
        for name in arrays
    }
    leftovers = [key for key in infos if key not in held and not key.startswith("optimizer/")]
    if leftovers:
        raise ModelFileError(f"{path}: arrays not described by the config: {leftovers[:3]}")
    try:
        loss, opt = config.get("loss"), config.get("optimizer")
        if loss:
            model.compile(
                loss=losses.get(loss["class"]).__class__(**loss.get("config", {})),
                optimizer=optim.get(opt["class"].lower(), **opt.get("config", {}))
                if opt
                else "adam",
                metrics=config.get("metrics", ["accuracy"]),
            )
    except (TypeError, ValueError, BarenetError) as e:
        raise ModelFileError(f"{path}: bad loss or optimizer in the config: {e}") from None
    if config.get("optimizer_state") and model.optimizer is not None:
        _restore_optimizer(path, model, infos, read)
    shape = config.get("input_shape")
    model.input_shape = None if shape is None else tuple(shape)
    model.metadata = config.get("metadata") or {}
    return model


# -- the .npz container ---------------------------------------------------------------------

#: What reading a damaged or foreign zip archive may raise.
_ZIP_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,  # an unknown compression method
    RuntimeError,  # an encrypted member
    tokenize.TokenError,  # a .npy header NumPy cannot even tokenise
)


@dataclass(frozen=True)
class _Member:
    info: zipfile.ZipInfo
    array: ArrayInfo
    offset: int  # bytes of .npy header before the data
    fortran: bool


def _header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    """Read only the ``.npy`` header of ``info`` and check it against the zip directory."""
    name = info.filename.removesuffix(".npy")
    kind = name.split("/")[0]
    if kind not in _DTYPES:
        raise ModelFileError(f"{path}: arrays not described by the config: [{name!r}]")
    with archive.open(info) as f:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(f)
        else:
            raise ModelFileError(f"{path}: member {name!r} has .npy version {version}")
        offset = f.tell()
    array = ArrayInfo(tuple(shape), dtype)
    if dtype not in _DTYPES[kind]:
        raise ModelFileError(f"{path}: array {name!r} has dtype {dtype}, not a model file's")
    if info.file_size != offset + array.size * dtype.itemsize:
        raise ModelFileError(
            f"{path}: array {name!r} is declared {array} but its member holds "
            f"{info.file_size} bytes"
        )
    return _Member(info, array, offset, fortran)


def _read(path: Path, archive: zipfile.ZipFile, name: str, member: _Member) -> np.ndarray:
    """The array of a checked member: exactly its declared bytes, never more."""
    nbytes = member.array.size * member.array.dtype.itemsize
    with archive.open(member.info) as f:
        f.read(member.offset)
        data = f.read(nbytes + 1)  # reaching the end makes zipfile check the CRC
    if len(data) != nbytes:
        raise ModelFileError(f"{path}: array {name!r} is truncated")
    a = np.frombuffer(data, member.array.dtype)
    return a.reshape(member.array.shape, order="F" if member.fortran else "C")


@contextmanager
def _zip_errors(path: Path) -> Iterator[None]:
    """Turn whatever a damaged archive raises into a ModelFileError."""
    try:
        yield
    except ModelFileError:
        raise
    except _ZIP_ERRORS as e:
        raise ModelFileError(f"{path}: not a readable barenet model file ({e})") from None


def _npz_members(path: Path, archive: zipfile.ZipFile) -> dict[str, _Member]:
    if "config.npy" not in archive.namelist():
        raise ModelFileError(f"{path}: not a barenet model file (no config)")
    members: dict[str, _Member] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name == info.filename or name in members:
            raise ModelFileError(
                f"{path}: not a barenet model file (member {info.filename!r} is not one array)"
            )
        members[name] = _header(path, archive, info)
    return members


def load_model(path: str | Path) -> Sequential:
    """Load a model saved by ``Sequential.save``: architecture, weights, loss, optimizer
    (with its state when the file is a checkpoint) and metadata."""
    path = Path(path)
    if path.suffix in (".safetensors", ".onnx"):  # the other formats, by extension
        from barenet.export import from_onnx
        from barenet.safetensors_io import load_safetensors

        return (load_safetensors if path.suffix == ".safetensors" else from_onnx)(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    with _zip_errors(path), zipfile.ZipFile(path) as archive:
        members = _npz_members(path, archive)
        raw = members.pop("config", None)
        if raw is None or len(raw.array.shape) != 1:
            raise ModelFileError(f"{path}: not a barenet model file (no config)")
        if raw.array.size > MAX_CONFIG_BYTES:
            raise ModelFileError(
                f"{path}: the model config is {raw.array.size:,} bytes, over {MAX_CONFIG_BYTES:,}"
            )
        config = parse_config(path, _read(path, archive, "config", raw).tobytes())
        infos = {name: m.array for name, m in members.items()}
        check_arrays(path, config, infos)
        return build_model(
            path, config, infos, lambda name: _read(path, archive, name, members[name])
        )
