"""Model files: one ``.npz`` holding the parameter arrays and a JSON config.

Layout: ``config`` (UTF-8 JSON as a uint8 array), ``param/<layer>/<name>``,
``state/<layer>/<name>`` (e.g. BatchNorm running statistics) and, in checkpoints,
``optimizer/<key>``. Files are read with ``allow_pickle=False`` (no code can run) and
written to a temporary name, then renamed, so an interrupted save never leaves a broken
file behind.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet import losses, optim
from barenet.errors import BarenetError, ModelFileError
from barenet.files import atomic_write
from barenet.layers import Layer

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = ["FORMAT", "VERSION", "load_model", "save_model"]

FORMAT = "barenet-model"
VERSION = 1


def save_model(
    model: Sequential,
    path: str | Path,
    *,
    include_optimizer: bool = False,
    epoch: int | None = None,
) -> Path:
    """Save ``model`` to ``path`` (``.npz`` is appended when missing); returns the path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    config: dict[str, Any] = {"format": FORMAT, "version": VERSION, **model.get_config()}
    config["metadata"] = model.metadata
    if epoch is not None:
        config["epoch"] = epoch
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        for name, p in layer.params.items():
            arrays[f"param/{i}/{name}"] = p
        for name, a in layer.state().items():
            arrays[f"state/{i}/{name}"] = a
    if include_optimizer and model.optimizer is not None:
        config["optimizer_state"] = True
        for key, a in model.optimizer.state_dict().items():
            arrays[f"optimizer/{key}"] = a
    try:
        text = json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BarenetError(f"model config cannot be saved as JSON: {e}") from None
    arrays["config"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
    return path


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ModelFileError(f"{path}: not a barenet model file (a bare .npy array)")
            arrays = {k: npz[k] for k in npz.files}
    except ModelFileError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: not a readable barenet model file ({e})") from None
    raw = arrays.pop("config", None)
    if raw is None or raw.dtype != np.uint8:
        raise ModelFileError(f"{path}: not a barenet model file (no config)")
    try:
        config = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: the model config is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a barenet model file (format is not {FORMAT!r})")
    if config.get("version") != VERSION:
        raise ModelFileError(
            f"{path}: model format version {config.get('version')!r}; this barenet reads {VERSION}"
        )
    return config, arrays


def _build_layer(path: Path, i: int, spec: Any) -> Layer:
    if not isinstance(spec, dict) or spec.get("class") not in Layer.registry:
        name = spec.get("class") if isinstance(spec, dict) else spec
        raise ModelFileError(f"{path}: layer {i} has unknown class {name!r}")
    try:
        return Layer.registry[spec["class"]](**spec.get("config", {}))
    except (TypeError, ValueError, BarenetError) as e:
        raise ModelFileError(f"{path}: layer {i} ({spec['class']}) has a bad config: {e}") from None


def _fill(
    path: Path, what: str, target: dict[str, np.ndarray], arrays: dict[str, np.ndarray], prefix: str
) -> None:
    for name, current in target.items():
        key = f"{prefix}/{name}"
        if key not in arrays:
            raise ModelFileError(f"{path}: missing array {key!r}")
        a = arrays.pop(key)
        if a.shape != current.shape or a.dtype != current.dtype:
            raise ModelFileError(
                f"{path}: {what} {key!r} is {a.dtype}{list(a.shape)}, the config expects "
                f"{current.dtype}{list(current.shape)}"
            )
        current[...] = a


def load_model(path: str | Path) -> Sequential:
    """Load a model saved by ``Sequential.save``: architecture, weights, loss, optimizer
    (with its state when the file is a checkpoint) and metadata."""
    from barenet.model import Sequential

    path = Path(path)
    config, arrays = _read(path)
    specs = config.get("layers")
    if not isinstance(specs, list):
        raise ModelFileError(f"{path}: the config has no layer list")
    model = Sequential([_build_layer(path, i, s) for i, s in enumerate(specs)])
    for i, layer in enumerate(model.layers):
        _fill(path, "parameter", layer.params, arrays, f"param/{i}")
        _fill(path, "state", layer.state(), arrays, f"state/{i}")
    leftovers = [k for k in arrays if not k.startswith("optimizer/")]
    if leftovers:
        raise ModelFileError(f"{path}: arrays not described by the config: {leftovers[:3]}")
    try:
        if config.get("loss"):
            opt = config.get("optimizer")
            model.compile(
                loss=losses.get(config["loss"]["class"]).__class__(**config["loss"]["config"]),
                optimizer=optim.get(opt["class"].lower(), **opt["config"]) if opt else "adam",
                metrics=config.get("metrics", ["accuracy"]),
            )
        if config.get("optimizer_state") and model.optimizer is not None:
            state = {k.split("/", 1)[1]: a for k, a in arrays.items() if k.startswith("optimizer/")}
            model._bind()
            model.optimizer.load_state_dict(state)
    except (TypeError, KeyError, ValueError, BarenetError) as e:
        raise ModelFileError(f"{path}: bad loss or optimizer in the config: {e}") from None
    shape = config.get("input_shape")
    model.input_shape = tuple(shape) if isinstance(shape, list) else None
    model.metadata = config.get("metadata") or {}
    return model
