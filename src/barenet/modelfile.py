"""The model file format, written: its config (``CONFIG_SCHEMA``, ``check_config``) and
``save_model``.

A model file is one ``.npz`` holding ``config`` (UTF-8 JSON as a uint8 array),
``param/<layer>/<name>``, ``state/<layer>/<name>`` (e.g. BatchNorm running statistics) and,
in checkpoints, ``optimizer/<key>``. Files are written to a temporary name, then renamed,
so an interrupted save never leaves a broken file behind. Reading them, distrustfully, is
``barenet.io``'s job; this module knows nothing of ``Sequential`` beyond the attributes it
saves, so the model can save itself without an import cycle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet.errors import BarenetError, ModelFileError
from barenet.files import atomic_write

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = ["CONFIG_SCHEMA", "FORMAT", "MAX_DEPTH", "VERSION", "check_config", "save_model"]

FORMAT = "barenet-model"
VERSION = 1
#: Deepest nesting of lists and objects in a config (the shipped ones reach 5).
MAX_DEPTH = 32

# -- the config -----------------------------------------------------------------------------

_SPEC = {"class": str, "config?": dict}
#: What a config must look like (see ``check_config`` for the notation). Metadata is free
#: form, but the keys barenet reads from it have fixed types.
CONFIG_SCHEMA: dict[str, Any] = {
    "format": str,
    "version": int,
    "layers": [_SPEC],
    "loss?": (None, _SPEC),
    "optimizer?": (None, _SPEC),
    "metrics?": [str],
    "input_shape?": (None, [int]),
    "epoch?": (None, int),
    "optimizer_state?": bool,
    "metadata?": (
        None,
        {
            "dataset?": str,
            "classes?": [(str, int)],
            "preprocess?": {"pictures?": str, "*": object},
            "test_accuracy?": (None, float),
            "val_accuracy?": (None, float),
            "*": object,
        },
    ),
}

_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_NAMES.update({dict: "an object", list: "a list", object: "anything"})


def _kind(value: Any) -> str:
    """How JSON would call ``value``'s type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return _NAMES.get(type(value), "a value")


def _describe(schema: Any) -> str:
    if schema is None:
        return "null"
    if isinstance(schema, tuple):
        return " or ".join(_describe(s) for s in schema)
    if isinstance(schema, list):
        return "a list"
    if isinstance(schema, dict):
        return "an object"
    return _NAMES[schema]


def _matches_kind(value: Any, schema: Any) -> bool:
    """True when ``value`` is of the schema's outer kind (its contents aside)."""
    if schema is None:
        return value is None
    if isinstance(schema, (list, dict)):
        return isinstance(value, type(schema))
    if schema is object:
        return True
    if schema in (int, float) and isinstance(value, bool):
        return False
    if schema is float:
        return isinstance(value, (int, float))
    return isinstance(value, schema)


def _mismatch(value: Any, schema: Any, where: str) -> str | None:
    """Why ``value`` does not match ``schema``, or None if it does."""
    if isinstance(schema, tuple):
        fitting = [s for s in schema if _matches_kind(value, s)]
        if not fitting:
            return f"{where} is {_kind(value)}, expected {_describe(schema)}"
        return _mismatch(value, fitting[0], where)
    if not _matches_kind(value, schema):
        return f"{where} is {_kind(value)}, expected {_describe(schema)}"
    if isinstance(schema, list):
        for i, item in enumerate(value):
            if problem := _mismatch(item, schema[0], f"{where}[{i}]"):
                return problem
    elif isinstance(schema, dict):
        fields = {key.rstrip("?"): s for key, s in schema.items() if key != "*"}
        for key in schema:
            if key != "*" and not key.endswith("?") and key not in value:
                return f"{where} lacks {key!r}"
        for key, item in value.items():
            if key not in fields and "*" not in schema:
                return f"{where} has an unknown key {key!r}"
            if problem := _mismatch(item, fields.get(key, schema.get("*")), f"{where}.{key}"):
                return problem
    return None


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (0 for a number or string)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                todo.extend((child, depth + 1) for child in children)
    return deepest


def check_config(path: Path, config: Any) -> dict[str, Any]:
    """Return ``config`` if it is a barenet model config, else raise ModelFileError.

    The structure is checked against ``CONFIG_SCHEMA``, where a schema is a type (``int``
    and ``float`` refuse true/false, ``float`` takes integers, ``object`` takes anything),
    ``None`` (null), a tuple of alternatives, ``[item]`` for a list of items, or
    ``{key: schema}`` for an object: a key ending in ``?`` may be missing and ``"*"``
    gives the schema of keys not named (without it they are refused). The layers'
    own arguments are checked by the layers.
    """
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a barenet model file (format is not {FORMAT!r})")
    if config.get("version") != VERSION:
        raise ModelFileError(
            f"{path}: model format version {config.get('version')!r}; this barenet reads {VERSION}"
        )
    if _depth(config) > MAX_DEPTH:
        raise ModelFileError(f"{path}: the model config nests deeper than {MAX_DEPTH} levels")
    if problem := _mismatch(config, CONFIG_SCHEMA, "config"):
        raise ModelFileError(f"{path}: bad model config: {problem}")
    if any(n < 1 for n in config.get("input_shape") or []):
        raise ModelFileError(f"{path}: bad model config: input_shape {config['input_shape']}")
    return config


def save_model(
    model: Sequential,
    path: str | Path,
    *,
    include_optimizer: bool = False,
    epoch: int | None = None,
) -> Path:
    """Save ``model`` to ``path`` (``.npz`` is appended when missing; ``.safetensors``
    writes that format); returns the path."""
    path = Path(path)
    if path.suffix not in (".npz", ".safetensors"):
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
        check_config(path, json.loads(text))  # a file that is written can be read
    except (TypeError, ValueError, ModelFileError) as e:
        raise BarenetError(f"model config cannot be saved as JSON: {e}") from None
    if path.suffix == ".safetensors":
        from barenet.safetensors_io import save_safetensors

        save_safetensors(path, text, arrays)
        return path
    arrays["config"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
    return path
