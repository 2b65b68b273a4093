"""Reading and writing IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number ``00 00 TT NN`` (``TT`` the element type, ``NN``
the number of dimensions), then ``NN`` big-endian 4-byte sizes, then the elements,
big-endian, in C order. Files may be gzip-compressed (they start with ``1f 8b``).

The reader checks everything it can, and any damage to a file -- a truncated or
corrupt gzip stream, a bad CRC, a wrong magic number, a payload of the wrong length --
becomes a :class:`~barenet.errors.DatasetError` naming the file and the problem.
It reads the header first (decompressing as it goes), refuses a payload larger than
the caller expects, then reads exactly the payload the header implies plus one byte,
so neither a gzip bomb nor a huge file costs more than the data that was asked for.
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from barenet.errors import ArgumentError, DatasetError
from barenet.files import atomic_write

__all__ = ["GZIP_MAGIC", "IDX_DTYPES", "MAX_IDX_BYTES", "parse_idx", "read_idx", "write_idx"]

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
#: Largest payload ``read_idx`` reads unless told otherwise (MNIST's largest is 47 MB).
MAX_IDX_BYTES = 2**30
#: Bytes asked of the stream at a time. A gzip read allocates what it is asked for, however
#: little data is left, so a small chunk keeps a truncated stream's cost near its data.
_CHUNK = 1 << 18


def _parse_header(data: bytes, name: str) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """Element type, shape and header length from the first bytes of an IDX file (at
    least the whole header; ``data`` may go on)."""
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
    return IDX_DTYPES[code], shape, header


def _payload_size(dtype: np.dtype[Any], shape: tuple[int, ...]) -> int:
    return dtype.itemsize * math.prod(shape)


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
    dtype, shape, header = _parse_header(data, name)
    expected = _payload_size(dtype, shape)
    actual = len(data) - header
    if actual != expected:
        kind = "truncated" if actual < expected else "too long"
        raise DatasetError(
            f"{name}: IDX payload {kind}: shape {shape} of {dtype.newbyteorder('=')} "
            f"needs {expected} bytes after the header, found {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _read_at_most(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, in chunks: memory follows the data, not what a header claims."""
    parts, left = [], n
    while left > 0 and (chunk := stream.read(min(left, _CHUNK))):
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read_limited(stream: BinaryIO, name: str, max_bytes: int) -> bytes:
    """The header and the payload it implies, plus one byte if there is more (so that
    ``parse_idx`` reports trailing data); never more than ``max_bytes`` of payload."""
    head = _read_at_most(stream, 4)
    if len(head) == 4 and head[:2] == b"\0\0":
        head += _read_at_most(stream, 4 * head[3])
    dtype, shape, _ = _parse_header(head, name)
    size = _payload_size(dtype, shape)
    if size > max_bytes:
        raise DatasetError(
            f"{name}: IDX header declares shape {shape} ({size:,} bytes), "
            f"more than the {max_bytes:,} bytes expected"
        )
    return head + _read_at_most(stream, size + 1)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's header and payload, decompressed if it is gzip; DatasetError for any
    failure, including a gzip stream that is damaged or has data after its end."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise DatasetError(f"{path}: not a regular file")
        with path.open("rb") as f:
            if f.read(2) != GZIP_MAGIC:
                f.seek(0)
                return _read_limited(f, str(path), max_bytes)
            f.seek(0)
            try:
                with gzip.GzipFile(fileobj=f) as gz:
                    return _read_limited(gz, str(path), max_bytes)  # type: ignore[arg-type]
            except (OSError, EOFError, zlib.error, ValueError) as exc:
                reason = str(exc) or type(exc).__name__
                raise DatasetError(f"{path}: corrupt or truncated gzip data: {reason}") from exc
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: no such file") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def read_idx(path: str | os.PathLike[str], max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not (detected from its first bytes).

    Parameters
    ----------
    path : str or path-like
    max_bytes : int
        Largest payload accepted (after decompression): a header declaring more is
        refused before any payload is read. Dataset loaders pass the size they expect.

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
    return parse_idx(_read_bytes(p, max_bytes), str(p))


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
