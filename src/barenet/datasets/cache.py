"""The local cache: one verified ``.npz`` per dataset, so the slow sources run once.

The cache folder is ``$BARENET_DATA``, else ``$XDG_CACHE_HOME/barenet``, else
``~/.cache/barenet``. Each file holds the four arrays plus a small JSON record of
where they came from. Files are written to a temporary name and renamed, and are
checked against the pinned digests every time they are read, so a damaged or foreign
cache file is noticed and rebuilt rather than trusted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from barenet.datasets.specs import ARRAY_NAMES, Arrays, DatasetSpec, digest, verify
from barenet.errors import DatasetError
from barenet.files import atomic_write

__all__ = ["cache_dir", "cache_path", "describe", "read_cache", "write_cache"]


def cache_dir() -> Path:
    """The folder holding cached datasets (it may not exist yet)."""
    if os.environ.get("BARENET_DATA"):
        return Path(os.environ["BARENET_DATA"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "barenet"
    return Path.home() / ".cache" / "barenet"


def cache_path(spec: DatasetSpec) -> Path:
    """Where dataset ``spec`` is cached: ``cache_dir() / "<name>.npz"``."""
    return cache_dir() / f"{spec.name}.npz"


def _load(path: Path) -> tuple[Arrays, dict[str, Any]]:
    """The arrays and the record in a cache file, unverified; DatasetError if unreadable."""
    if not path.is_file():
        raise DatasetError(f"no cached copy at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ARRAY_NAMES if name in npz.files}
            record = json.loads(str(npz["meta"][()])) if "meta" in npz.files else {}
    except Exception as exc:  # whatever is wrong with the file, it gets rebuilt
        raise DatasetError(f"{path} is unreadable ({type(exc).__name__}: {exc})") from exc
    return arrays, record if isinstance(record, dict) else {}


def read_cache(spec: DatasetSpec) -> tuple[Arrays, dict[str, Any]]:
    """Load and verify the cached copy of ``spec``.

    Returns
    -------
    arrays : dict of ndarray
        ``x_train``, ``y_train``, ``x_test``, ``y_test``, verified.
    record : dict
        Where the copy came from: ``{"source": ..., "fetched": ...}``.

    Raises
    ------
    DatasetError
        If there is no cache file or it is unreadable or not the pinned data.
    """
    path = cache_path(spec)
    arrays, record = _load(path)
    return verify(spec, arrays, str(path)), record


def write_cache(spec: DatasetSpec, arrays: Arrays, source: str) -> Path:
    """Store verified ``arrays`` atomically and record ``source``; returns the path.

    Raises
    ------
    DatasetError
        If the folder or file cannot be written.
    """
    arrays = verify(spec, arrays, source)
    path = cache_path(spec)
    record = {"source": source, "fetched": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    payload: dict[str, Any] = {**arrays, "meta": np.array(json.dumps(record))}
    try:
        atomic_write(path, lambda f: np.savez(f, **payload))
    except OSError as exc:
        raise DatasetError(f"cannot write the cache {path}: {exc.strerror or exc}") from exc
    return path


def describe(spec: DatasetSpec) -> dict[str, Any]:
    """What the cache holds for ``spec``, for ``barenet data info``.

    Returns
    -------
    dict
        ``name``, ``title``, ``path``, ``present`` (bool), and when present ``bytes``,
        ``source``, ``fetched``, ``verified`` (bool), ``problem`` (str or None) and
        ``sha256`` (array name -> digest of the cached array).
    """
    path = cache_path(spec)
    out: dict[str, Any] = {"name": spec.name, "title": spec.title, "path": str(path)}
    out["present"] = path.is_file()
    if not out["present"]:
        return out
    out["bytes"] = path.stat().st_size
    try:
        arrays, record = _load(path)
    except DatasetError as exc:
        return {**out, "verified": False, "problem": str(exc), "sha256": {}}
    out["source"] = record.get("source", "unknown")
    out["fetched"] = record.get("fetched", "unknown")
    out["sha256"] = {name: digest(a) for name, a in arrays.items()}
    try:
        verify(spec, arrays, str(path))
        out["verified"], out["problem"] = True, None
    except DatasetError as exc:
        out["verified"], out["problem"] = False, str(exc)
    return out
