"""Shared fixtures and the suite's two rules.

* Tests talk to loopback only. Every connection and name lookup to anything else fails at
  once with ``OSError``, so a test cannot reach the internet, a private network or DNS by
  accident (the fetcher tests fake their servers on 127.0.0.1).
* Under ``make test`` (``BARENET_STRICT_TESTS=1``) a skipped test fails the run: a missing
  optional dependency (torch, Pillow, Playwright) must not turn a check into a silent pass;
  and hypothesis draws the same examples every run, so a failure can be repeated.

The real datasets are read once per session from the local cache, which ``make test``
fills with ``barenet data fetch`` before pytest starts.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest
from hypothesis import settings

from barenet import parallel
from barenet.datasets.cache import read_cache
from barenet.datasets.specs import FASHION, MNIST, DatasetSpec
from barenet.errors import DatasetError

STRICT = os.environ.get("BARENET_STRICT_TESTS") == "1"

# Under make test (and so in CI) hypothesis draws the same examples every run: a red run
# can be repeated, and a landing never depends on a lucky draw. Run pytest by hand to
# explore new examples (and keep the ones that fail in .hypothesis/).
settings.register_profile("repeatable", derandomize=True, database=None)
if STRICT:
    settings.load_profile("repeatable")

# Files whose numbers depend on the arithmetic (accuracies reached, curves, repeated runs):
# ``make test`` runs them a second time under another OpenBLAS kernel family.
KERNEL_SENSITIVE = {
    "test_tour.py",
    "test_pretrained.py",
    "test_pretrained_cnn.py",
    "test_readme.py",
    "test_model.py",
    "test_train.py",
    "test_export_onnx.py",
    "test_interop_torch.py",
    "test_photos.py",
}
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def is_loopback(host: object) -> bool:
    """True for a loopback address or name (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if not isinstance(host, str | bytes):
        return False
    name = host.decode() if isinstance(host, bytes) else host
    if name.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if not is_loopback(host):
            raise OSError(f"tests may only connect to loopback, not {host!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(self, address)
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host is not None and not is_loopback(host):
        raise socket.gaierror(socket.EAI_NONAME, f"tests may not look up {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    # Tests compare runs bit for bit; the thread count a busy machine would make training
    # drop to depends on the load. tests/test_parallel.py turns the tuner on where it
    # tests it.
    parallel.configure(tune=False)
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in KERNEL_SENSITIVE:
            item.add_marker(pytest.mark.kernels)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In strict mode a skip is a failure, and so is a run that collected nothing."""
    if not STRICT:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        if reporter:
            reporter.ensure_newline()
            reporter.write_line(
                f"BARENET_STRICT_TESTS: {len(skipped)} skipped test(s) count as failures "
                "(install what they need: make test installs everything)",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _cached(spec: DatasetSpec):  # type: ignore[no-untyped-def]
    try:
        arrays, _ = read_cache(spec)
    except DatasetError as exc:
        pytest.fail(f"{exc} (fetch it before the tests: barenet data fetch {spec.name})")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


@pytest.fixture(scope="session")
def mnist():
    """MNIST as ``((x_train, y_train), (x_test, y_test))``, uint8, from the local cache."""
    return _cached(MNIST)


@pytest.fixture(scope="session")
def fashion():
    """Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``, uint8."""
    return _cached(FASHION)
