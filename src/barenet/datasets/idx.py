"""Reading and writing IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number ``00 00 TT NN`` (``TT`` the element type, ``NN``
the number of dimensions), then ``NN`` big-endian 4-byte sizes, then the elements,
big-endian, in C order. Files may be gzip-compressed (they start with ``1f 8b``).

The reader checks everything it can, and any damage to a file -- a truncated or
corrupt gzip stream, a bad CRC, a wrong magic number, a payload of the wrong length --
becomes a :class:`~barenet.errors.DatasetError` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from barenet.errors import ArgumentError, DatasetError
from barenet.files import atomic_write

__all__ = ["GZIP_MAGIC", "IDX_DTYPES", "parse_idx", "read_idx", "write_idx"]

GZIP_MAGIC = b"\x1f\x8b"

#: IDX element type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
_MAX_DIM = 2**31 - 1


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an uncompressed IDX file.

    Parameters
    ----------
    data : bytes
        The whole file.
    name : str
        What to call the data in error messages (usually its path).

    Returns
    -------
    ndarray
        Native byte order, writable, shape and dtype from the header.

    Raises
    ------
    DatasetError
        If the header is malformed or the payload is not exactly as long as the header
        says.
    """
    if len(data) < 4:
        raise DatasetError(f"{name}: not an IDX file: only {len(data)} bytes, no header")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{name}: not an IDX file: magic number starts with {data[:2].hex(' ')}, expected 00 00"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DatasetError(f"{name}: unknown IDX element type 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DatasetError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"the file has {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = dtype.itemsize
    for size in shape:
        expected *= size
    actual = len(data) - header
    if actual != expected:
        kind = "truncated" if actual < expected else "too long"
        raise DatasetError(
            f"{name}: IDX payload {kind}: shape {shape} of {dtype.newbyteorder('=')} "
            f"needs {expected} bytes after the header, found {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed if it is gzip; DatasetError for any failure."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise DatasetError(f"{path}: not a regular file")
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: no such file") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DatasetError(f"{path}: corrupt or truncated gzip data: {reason}") from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not (detected from its first bytes).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray
        In native byte order, e.g. uint8 ``(60000, 28, 28)`` for MNIST training images.

    Raises
    ------
    DatasetError
        If the file is missing, unreadable, not IDX, or damaged in any way.
    """
    p = Path(path)
    return parse_idx(_read_bytes(p), str(p))


def write_idx(
    path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None
) -> None:
    """Write ``array`` as an IDX file, atomically (a temporary file, then a rename).

    Parameters
    ----------
    path : str or path-like
    array : ndarray with at least one dimension
        Of uint8, int8, int16, int32, float32 or float64.
    compress : bool, optional
        Gzip the file; by default, when ``path`` ends in ``.gz``.

    Raises
    ------
    ArgumentError
        If the array's dtype or shape cannot be stored in IDX.
    DatasetError
        If the file cannot be written.
    """
    p = Path(path)
    a = np.asarray(array)
    code = _CODES.get(a.dtype.newbyteorder("="))
    if code is None:
        names = ", ".join(str(dt) for dt in _CODES)
        raise ArgumentError(f"IDX cannot store {a.dtype} arrays (it stores {names})")
    if a.ndim == 0 or a.ndim > 255 or any(n > _MAX_DIM for n in a.shape):
        raise ArgumentError(f"IDX needs 1 to 255 dimensions below 2**31, got shape {a.shape}")
    if compress is None:
        compress = p.suffix == ".gz"
    header = bytes([0, 0, code, a.ndim]) + b"".join(n.to_bytes(4, "big") for n in a.shape)
    payload = np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes()

    def write(f: Any) -> None:
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            f.write(header)
            f.write(payload)

    try:
        atomic_write(p, write)
    except OSError as exc:
        raise DatasetError(f"{p}: cannot write: {exc.strerror or exc}") from exc
