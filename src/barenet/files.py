"""Files: atomic writes (a file is either the old one or the complete new one, never half)
and careful reads of paths a person typed (regular files only, never more than a limit).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from barenet.errors import ArgumentError

try:
    import fcntl
except ImportError:  # Windows, where an open file cannot be deleted anyway
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_write", "read_regular_file", "regular_file"]

TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False when another process holds
    it. Where there are no locks (Windows), True."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _remove_orphans(path: Path) -> None:
    """Delete temporary files an interrupted ``atomic_write`` to ``path`` left behind (a
    process killed outright never reaches its clean-up). Each writer holds a lock on its
    temporary file, which the system releases when the process dies, so a file that can be
    locked belongs to no running writer; names are matched exactly as ``mkstemp`` makes
    them, so nothing else beside ``path`` is touched."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}{re.escape(TMP_SUFFIX)}")
    try:
        names = [e.name for e in os.scandir(path.parent) if pattern.fullmatch(e.name)]
    except OSError:
        return
    for name in names:
        orphan = path.parent / name
        try:
            fd = os.open(orphan, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # gone already, a link, or not ours to read
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd):
                orphan.unlink(missing_ok=True)
        except OSError:
            pass
        finally:
            os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable: after a power cut the new name is there.
    Skipped where directories cannot be opened (Windows) or synced."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[Any]], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    The rename is atomic, so an interrupted write (an exception, Ctrl-C, a full disk) leaves
    whatever was at ``path`` before and no temporary file; the directory is synced after
    the rename. A temporary file left by a process killed mid-write (``kill -9``) is
    removed by the next write to the same path. The new file gets the usual permissions
    (0666 less the umask), not the private ones of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        _lock(fd)  # held until this process closes the file or dies
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            if fcntl is not None:
                os.replace(tmp, path)  # while locked: no clean-up can take the file
        if fcntl is None:
            os.replace(tmp, path)  # Windows renames closed files only
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def regular_file(path: str | os.PathLike[str], what: str, limit: int | None = None) -> int:
    """Check, without opening it, that ``path`` is a regular file (not a directory, FIFO,
    device or socket, whose reading can block for ever or never end) of at most ``limit``
    bytes; return its size. ``what`` ("image", "model file") starts the messages.

    Raises
    ------
    ArgumentError
        Naming the path and what is wrong with it.
    """
    name = f"{what} {os.fspath(path)!s}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ArgumentError(f"{name}: no such file") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise ArgumentError(
            f"{name}: cannot be read ({getattr(e, 'strerror', None) or e})"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ArgumentError(f"{name}: not a regular file ({_kind(info.st_mode)})")
    if limit is not None and info.st_size > limit:
        raise ArgumentError(f"{name}: the file is larger than the limit of {limit:,} bytes")
    return info.st_size


def read_regular_file(path: str | os.PathLike[str], what: str, limit: int) -> bytes:
    """The bytes of ``path`` after :func:`regular_file`'s checks, reading at most
    ``limit + 1`` bytes (a file that grew past ``limit`` since is refused). Opened without
    blocking and checked again once open, so a FIFO swapped in meanwhile cannot hang."""
    regular_file(path, what, limit)
    name = f"{what} {os.fspath(path)!s}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ArgumentError(f"{name}: not a regular file")
            data = f.read(limit + 1)
    except OSError as e:
        raise ArgumentError(f"{name}: cannot be read ({e.strerror or e})") from None
    if len(data) > limit:
        raise ArgumentError(f"{name}: the file is larger than the limit of {limit:,} bytes")
    return data
