"""The web server against hostile requests: foreign Host names (DNS rebinding), cross-site
POSTs, oversized, broken and hung-up bodies, odd query strings, costly training runs,
decompression bombs, datasets it would have to fetch, and the ``serve`` command's binding.
Every refusal is a 4xx with a message; nothing makes a 5xx."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import socket
import threading
import time
from urllib.parse import quote

import numpy as np
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.datastructures import Headers
from starlette.testclient import TestClient
from test_pictures import png_declaring  # a PNG header declaring any size

import barenet.web
from barenet import architectures
from barenet.cli import main
from barenet.conv import Conv2D, MaxPool2D
from barenet.datasets import fetchers, sources
from barenet.errors import ArgumentError, DatasetError
from barenet.layers import Dense, Flatten
from barenet.model import Sequential
from barenet.web import allowed_hosts
from barenet.web import reading as web_reading
from barenet.web.app import MAX_BODY, STATIC, create_app
from barenet.web.guard import SECURITY_HEADERS, Guard
from barenet.web.training import LIMITS, UPDATE_COST, Trainer, TrainSettings, local_dataset

BASE = "http://localhost"
JSON_TYPE = {"content-type": "application/json"}
POSTS = ["/api/predict", "/api/inside", "/api/saliency", "/api/train", "/api/train/stop"]


def tiny_data(name: str):
    """1,200 random images: enough for the 1,000 held out for validation and 200 to train."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1200, 28, 28), dtype=np.uint8)
    y = np.arange(1200, dtype=np.uint8) % 10
    return (x, y), (x[:50], y[:50])


def model() -> Sequential:
    return Sequential([Flatten(), Dense(784, 10)])


@pytest.fixture(scope="module")
def client():
    app = create_app({"plain": model()}, trainer=Trainer(loader=tiny_data))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def png_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


# ---- Host -----------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.2", "[::2]:80"])
def test_a_foreign_host_header_is_refused_with_400(client, host):
    r = client.get("/api/models", headers={"host": host})
    assert r.status_code == 400 and "--allow-host" in r.json()["error"]
    assert client.get("/", headers={"host": host}).status_code == 400


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8000"])
def test_the_loopback_names_are_served_by_default(client, host):
    assert client.get("/api/models", headers={"host": host}).status_code == 200


def test_malformed_and_missing_host_headers_are_refused():
    guard = Guard(lambda *a: None, ["localhost"], MAX_BODY)
    for raw in ([], [(b"host", b"")], [(b"host", b"local host")], [(b"host", b"[::1")]):
        refusal = guard.refusal(Headers(raw=raw), "GET")
        assert refusal is not None and refusal[0] == 400


def test_more_host_names_can_be_allowed():
    app = create_app({"plain": model()}, allowed_hosts=["demo.lan", "192.168.1.5"])
    with TestClient(app, base_url="http://demo.lan") as c:
        assert c.get("/api/models").status_code == 200
        assert c.get("/api/models", headers={"host": "192.168.1.5:8000"}).status_code == 200
        assert c.get("/api/models", headers={"host": "localhost"}).status_code == 400
    for bad in (["local host"], ["a/b"], "localhost", [""]):
        with pytest.raises(ArgumentError, match="allowed_hosts"):
            create_app({"plain": model()}, allowed_hosts=bad)


def test_serve_allows_its_own_name_and_loopback_names_only_on_loopback():
    assert allowed_hosts("127.0.0.1", "127.0.0.1", []) == ["127.0.0.1", "localhost", "::1"]
    assert allowed_hosts("localhost", "::1", ["pi.lan"]) == [
        "localhost",
        "pi.lan",
        "127.0.0.1",
        "::1",
    ]
    assert allowed_hosts("192.168.1.5", "192.168.1.5", ["pi.lan"]) == ["192.168.1.5", "pi.lan"]
    assert "localhost" in allowed_hosts("0.0.0.0", "0.0.0.0", [])


# ---- cross-site POSTs -----------------------------------------------------------------------
@pytest.mark.parametrize("path", POSTS)
def test_posts_must_be_json(client, path):
    for headers in ({"content-type": "text/plain"}, {"content-type": "multipart/form-data"}, {}):
        r = client.post(path, content=b"{}", headers=headers)
        assert r.status_code == 415 and "application/json" in r.json()["error"]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost:1", "x"])
def test_posts_from_another_origin_are_refused(client, path, origin):
    r = client.post(path, content=b"{}", headers={**JSON_TYPE, "origin": origin})
    assert r.status_code == 403 and "another site" in r.json()["error"]


def test_a_cross_site_stop_does_not_stop_the_run(client):
    slow = {"hidden": [1024] * 3, "epochs": 20, "samples": 100, "batch_size": 1}
    assert client.post("/api/train", json=slow).status_code == 202
    text = {"content-type": "text/plain"}
    assert client.post("/api/train/stop", content=b"{}", headers=text).status_code == 415
    assert client.get("/api/train").json()["status"] == "running"
    same_site = {**JSON_TYPE, "origin": BASE}
    r = client.post("/api/train/stop", content=b"{}", headers=same_site)
    assert r.status_code == 200 and r.json()["status"] == "stopped"


# ---- bodies ---------------------------------------------------------------------------------
def asgi(app, path: str, headers: dict[str, str], chunks, method: str = "POST"):
    """Call ``app`` directly with a body arriving in ``chunks`` (then a hang-up); returns
    the messages it sent and how many body chunks it read."""
    pending = list(chunks)
    read = 0

    async def receive():
        nonlocal read
        if not pending:
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": pending.pop(0), "more_body": True}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (k.encode(), v.encode("latin-1"))  # as HTTP carries them: "²" is one byte
            for k, v in {"host": "localhost", **headers}.items()
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    return sent, read


def test_a_client_hanging_up_mid_body_is_not_a_server_error(client):
    sent, read = asgi(client.app, "/api/predict", JSON_TYPE, [b'{"pixels": [0, 0'])
    assert read == 1  # the app saw the hang-up, raised nothing, and answered into the void
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400


@pytest.mark.parametrize("path", POSTS)
def test_a_50_mb_body_is_refused_by_its_announced_size_unread(client, path):
    headers = {**JSON_TYPE, "content-length": str(50 << 20)}
    sent, read = asgi(client.app, path, headers, [b" " * (1 << 20)] * 50)
    assert sent[0]["status"] == 413 and read == 0


def test_a_50_mb_body_without_a_length_is_cut_off_at_the_limit(client):
    chunk = 1 << 16
    sent, read = asgi(client.app, "/api/predict", JSON_TYPE, [b" " * chunk] * (50 << 4))
    assert sent[0]["status"] == 413 and read <= MAX_BODY // chunk + 1


@pytest.mark.parametrize("length", ["²", "1e3", "-1", "12 ", "9" * 30])
def test_odd_content_lengths_are_refused_with_400(client, length):
    sent, _ = asgi(client.app, "/api/predict", {**JSON_TYPE, "content-length": length}, [b"{}"])
    assert sent[0]["status"] == 400


# ---- headers on every answer ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/", {}),
        ("GET", "/static/index.html", {}),
        ("GET", "/static/app.js", {}),
        ("GET", "/api/models", {}),
        ("GET", "/api/nothing", {}),
        ("GET", "/api/weights?count=x", {}),
        ("GET", "/api/models", {"host": "evil.example"}),
        ("POST", "/api/predict", {"content-type": "text/plain"}),
        ("POST", "/api/predict", JSON_TYPE),
    ],
)
def test_every_answer_carries_the_security_headers(client, method, path, headers):
    r = client.request(method, path, headers=headers, content=b"{}" if method == "POST" else None)
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (name, r.status_code)
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


# ---- query strings --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    ["count=²", "count=١", "count=𝟙", "count=" + "9" * 5000, "count=+3", "count= 3", "count=3.0"],
)
def test_integers_in_query_strings_are_ascii_digits(client, query):
    r = client.get("/api/weights?" + quote(query, safe="="))
    assert r.status_code == 400 and "count must be an integer" in r.json()["error"]
    r = client.get("/api/sample?dataset=mnist&" + quote(query.replace("count", "index"), safe="="))
    assert r.status_code == 400 and "index must be an integer" in r.json()["error"]


# ---- training cost --------------------------------------------------------------------------
def test_what_the_page_sends_is_within_the_limits(client):
    """app.js sends dataset, kind, channels, hidden, lr, epochs and samples; index.html
    bounds the last two the same way the server does."""
    page = (STATIC / "index.html").read_text()
    for name in ("epochs", "samples"):
        field = re.search(rf'name="{name}"[^>]*min="(\d+)"\s+max="(\d+)"', page)
        assert field is not None and tuple(map(int, field.groups())) == LIMITS[name]
    sent = re.search(r'api\("/api/train", \{(.*?)\}\);', (STATIC / "app.js").read_text(), re.S)
    assert sent is not None
    assert re.findall(r"(\w+):", sent[1]) == [
        *("dataset", "kind", "channels", "hidden", "lr", "epochs", "samples")
    ]
    channels = re.search(r'name="channels"\s+value="([\d,]+)"', page)
    assert channels is not None
    default = {"dataset": "mnist", "hidden": [64], "lr": 0.001, "epochs": 2, "samples": 5000}
    largest = {**default, "epochs": LIMITS["epochs"][1], "samples": LIMITS["samples"][1]}
    cnn = {**default, "kind": "cnn", "channels": [int(c) for c in channels[1].split(",")]}
    largest_cnn = {**cnn, "samples": LIMITS["samples"][1]}  # one epoch of every image
    for body in (default, largest, cnn, largest_cnn):
        r = client.post("/api/train", json=body)
        assert r.status_code == 202 and r.json()["settings"]["batch_size"] == 64
        client.post("/api/train/stop", json={})


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"epochs": 20, "samples": 59000, "batch_size": 1}, "1,180,000 steps"),
        ({"epochs": 20, "samples": 59000, "batch_size": 2}, "590,000 steps"),
        ({"epochs": 20, "samples": 59000, "batch_size": 1024, "hidden": [1024] * 3}, "too large"),
        ({"epochs": 1, "samples": 10000, "batch_size": 1, "hidden": [1024] * 3}, "too large"),
    ],
)
def test_runs_costing_more_than_the_limits_are_refused(client, settings, words):
    r = client.post("/api/train", json=settings)
    assert r.status_code == 400 and words in r.json()["error"]


@settings(max_examples=100, deadline=None)
@given(
    channels=st.lists(st.integers(1, 64), min_size=1, max_size=2),
    hidden=st.lists(st.integers(1, 1024), min_size=1, max_size=3),
    epochs=st.integers(1, 20),
    samples=st.integers(100, 59_000),
    batch_size=st.integers(1, 1024),
)
def test_every_accepted_cnn_run_is_bounded(channels, hidden, epochs, samples, batch_size):
    """The work of a CNN: multiply-adds per image (each 3x3 convolution at every position
    of its 28x28, 14x14, ... input) x images seen + weights x UPDATE_COST x steps."""
    body = {"kind": "cnn", "channels": channels, "hidden": hidden, "epochs": epochs}
    try:
        s = TrainSettings.from_json({**body, "samples": samples, "batch_size": batch_size})
    except ArgumentError:
        return
    model = architectures.cnn(channels, hidden, dropout=0.0)
    macs, weights, side = 0, model.num_params, 28
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            macs += side * side * layer.num_params()
        elif isinstance(layer, MaxPool2D):
            side //= 2
        elif isinstance(layer, Dense):
            macs += layer.num_params()
    steps = epochs * -(-samples // batch_size)
    assert s.work == macs * epochs * samples + weights * UPDATE_COST * steps
    assert s.steps <= LIMITS["steps"][1] and s.work <= LIMITS["work"][1]


@settings(max_examples=200, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 1024), min_size=1, max_size=3),
    epochs=st.integers(1, 20),
    samples=st.integers(100, 59_000),
    batch_size=st.integers(1, 1024),
)
def test_every_accepted_run_is_bounded(hidden, epochs, samples, batch_size):
    body = {"hidden": hidden, "epochs": epochs, "samples": samples, "batch_size": batch_size}
    try:
        s = TrainSettings.from_json(body)
    except ArgumentError:
        return
    weights = sum((a + 1) * b for a, b in zip([784, *hidden], [*hidden, 10], strict=True))
    steps = epochs * -(-samples // batch_size)
    assert s.steps == steps <= LIMITS["steps"][1]
    assert weights * (epochs * samples + UPDATE_COST * steps) <= LIMITS["work"][1]


# ---- pictures -------------------------------------------------------------------------------
@pytest.mark.parametrize("side", [60_000, 10_000])
def test_a_decompression_bomb_gets_a_400(client, side):
    r = client.post("/api/predict", json={"image": png_url(png_declaring(side, side))})
    assert r.status_code == 400 and "pixels" in r.json()["error"]


def test_the_web_reads_pictures_as_large_as_barenet_predict_does(client):
    picture = Image.new("L", (3000, 3000), 255)  # over the web's old 2048x2048 limit
    picture.paste(0, (1400, 600, 1600, 2400))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    r = client.post("/api/predict", json={"image": png_url(buffer.getvalue())})
    assert r.status_code == 200, r.text
    buffer = io.BytesIO()
    Image.new("L", (4097, 4096), 255).save(buffer, format="PNG")
    r = client.post("/api/predict", json={"image": png_url(buffer.getvalue())})
    assert r.status_code == 400 and "4097x4096" in r.json()["error"]


def test_at_most_a_few_pictures_are_decoded_at_once(client, monkeypatch):
    """Each decode may take ~400 MB at the pixel limit: many at once must wait their turn."""
    lock, running, most = threading.Lock(), [0], [0]

    def decode(data, name="image"):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)  # long enough for the other requests to arrive
        with lock:
            running[0] -= 1
        picture = np.full((40, 40), 255, np.uint8)
        picture[5:35, 18:22] = 0
        return picture

    monkeypatch.setattr(web_reading, "decode_image", decode)
    url = png_url(b"decoded by the stand-in")
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(
                client.post("/api/predict", json={"image": url}).status_code
            )
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [200] * 8
    assert 1 <= most[0] <= web_reading.DECODERS


# ---- datasets: never fetched for a request --------------------------------------------------
@pytest.fixture
def no_local_data(tmp_path, monkeypatch):
    """An empty cache, no system copies, and every fetching source recording its calls."""
    monkeypatch.setenv("BARENET_DATA", str(tmp_path / "cache"))
    monkeypatch.setitem(sources.SYSTEM_DIRS, "fashion", [tmp_path / "none"])
    monkeypatch.setitem(sources.SYSTEM_DIRS, "mnist", [])
    calls: list[str] = []

    def refuse(name):
        def source(*args, **kwargs):
            calls.append(name)
            raise DatasetError(f"{name} is not used in tests")

        return source

    monkeypatch.setattr(sources, "SOURCES", [(n, refuse(n)) for n, _ in sources.SOURCES])
    for name in ("download", "pip_wheel_csv", "apt_package"):
        monkeypatch.setattr(fetchers, name, refuse(name))
    return calls


def test_a_missing_dataset_is_a_409_and_nothing_is_fetched(no_local_data):
    app = create_app({"plain": model()})  # the default trainer: this machine's copies only
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        r = c.get("/api/sample?dataset=fashion")
        assert r.status_code == 409 and "barenet data fetch fashion" in r.json()["error"]
        r = c.post("/api/train", json={"dataset": "mnist"})
        assert r.status_code == 409 and "barenet data fetch mnist" in r.json()["error"]
        assert c.get("/api/train").json()["status"] == "idle"
    assert no_local_data == []


def test_datasets_in_the_cache_are_used(mnist):
    (x, y), (x_test, y_test) = local_dataset("mnist")
    np.testing.assert_array_equal(x_test, mnist[1][0])
    assert x.shape == (60000, 28, 28) and len(y) == 60000 and len(y_test) == 10000


# ---- serve ----------------------------------------------------------------------------------
@pytest.fixture
def served(monkeypatch):
    """``barenet serve`` that returns instead of serving; records the addresses of the
    sockets it was given."""
    runs: list[list[tuple]] = []

    def run(self, sockets=None):
        runs.append([s.getsockname() for s in sockets or []])

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return runs


def test_a_port_in_use_is_one_line_and_exit_2(served, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert "serving on" not in out and served == []
    assert len(err.splitlines()) == 1 and f"port {port}" in err and "in use" in err


def test_a_bad_host_is_one_line_and_exit_2(served, capsys):
    assert main(["serve", "--host", "x" * 64, "--port", "8000"]) == 2  # no lookup is made
    out, err = capsys.readouterr()
    assert "serving on" not in out and served == []
    assert len(err.splitlines()) == 1 and "host" in err


def test_serving_binds_before_saying_so(served, capsys):
    with socket.socket() as probe:  # a free port, released for serve to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["serve", "--port", str(port)]) == 0
    out, err = capsys.readouterr()
    assert f"serving on http://127.0.0.1:{port}/" in out and err == ""
    assert served == [[("127.0.0.1", port)]]


class FakeSocket:
    def __init__(self, address: str, port: int) -> None:
        self.address = (address, port)

    def getsockname(self):
        return self.address

    def close(self) -> None:
        pass


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])
def test_serving_beyond_loopback_warns_on_stderr(served, monkeypatch, capsys, host):
    monkeypatch.setattr(barenet.web, "bind", lambda h, p: FakeSocket(h, p))  # nothing bound
    assert main(["serve", "--host", host, "--port", "8000", "--allow-host", "pi.lan"]) == 0
    out, err = capsys.readouterr()
    assert f"serving on http://{'[::]' if host == '::' else host}:8000/" in out
    assert len(err.splitlines()) == 1 and "reachable from the network" in err and "pi.lan" in err


# ---- fuzz: no request makes a server error --------------------------------------------------
ROUTES = [
    ("GET", "/"),
    ("GET", "/api/models"),
    ("GET", "/api/weights"),
    ("GET", "/api/sample"),
    ("GET", "/api/train"),
    ("GET", "/api/train/events"),
    ("GET", "/static/app.js"),
    ("POST", "/api/predict"),
    ("POST", "/api/inside"),
    ("POST", "/api/saliency"),
    ("POST", "/api/train"),
    ("POST", "/api/train/stop"),
    ("PUT", "/api/predict"),
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
KEYS = st.sampled_from(["model", "count", "dataset", "index", "x", "pixels", "image"])
ODD = st.sampled_from(["²", "١", "𝟙", "9" * 5000, "-1", "0", "7", "fashion", "plain"])
QUERY = st.lists(st.tuples(KEYS, st.text(max_size=12) | ODD), max_size=3)
FIELDS = st.sampled_from(
    [
        *("pixels", "image", "model", "preprocess", "class", "dataset", "kind", "channels"),
        *("hidden", "lr", "epochs", "samples"),
    ]
)
BODIES = (
    st.binary(max_size=64)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(FIELDS, JSON_VALUES, max_size=4).map(lambda v: json.dumps(v).encode())
)
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "x"])
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(route=st.sampled_from(ROUTES), query=QUERY, body=BODIES, kind=CONTENT_TYPES)
def test_no_request_makes_a_server_error(client, route, query, body, kind):
    method, path = route
    url = path + ("?" + "&".join(f"{k}={quote(v)}" for k, v in query) if query else "")
    r = client.request(method, url, content=body, headers={"content-type": kind})
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400 and path.startswith("/api"):
        assert r.json()["error"]
    client.post("/api/train/stop", json={})


def test_event_streams_are_capped_and_counted_back(client):
    """Each event stream holds a connection for as long as a run lasts; any number of them
    could be opened before."""
    from barenet.web.train_routes import MAX_STREAMS

    run = {"dataset": "mnist", "hidden": [8], "epochs": 1, "samples": 200, "batch_size": 100}
    assert client.post("/api/train", json=run, headers={"origin": BASE}).status_code == 202
    app = client.app.state.barenet
    assert app.streams == 0
    ended = client.get("/api/train/events")  # read to the end: the run finishes
    assert ended.status_code == 200 and "data:" in ended.text
    assert app.streams == 0  # a finished stream leaves the count
    app.streams = MAX_STREAMS
    try:
        refused = client.get("/api/train/events")
    finally:
        app.streams = 0
    assert refused.status_code == 429 and "event streams are open" in refused.text
