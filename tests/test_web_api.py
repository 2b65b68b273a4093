"""The web demo's API, in process: predictions, validation of every field, size limits,
concurrent requests, and training runs (one at a time, streamed, stoppable)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")
Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")

from starlette.testclient import TestClient  # noqa: E402

from barenet import pretrained  # noqa: E402
from barenet.cli import main  # noqa: E402
from barenet.datasets import FASHION_CLASSES, MNIST_CLASSES, scale  # noqa: E402
from barenet.errors import ArgumentError, ModelFileError  # noqa: E402
from barenet.layers import Dense, Flatten  # noqa: E402
from barenet.model import Sequential  # noqa: E402
from barenet.preprocess import load_image, to_mnist  # noqa: E402
from barenet.web.app import MAX_BODY, STATIC, create_app  # noqa: E402
from barenet.web.training import Trainer  # noqa: E402

pytestmark = pytest.mark.slow
BASE = "http://localhost"  # a name the server answers to by default


@pytest.fixture(scope="module")
def digits():
    return pretrained.load_pretrained("mnist-mlp")


@pytest.fixture(scope="module")
def client(mnist, fashion):
    datasets = {"mnist": mnist, "fashion": fashion}
    app = create_app({"mnist-mlp": "mnist-mlp"}, trainer=Trainer(loader=datasets.__getitem__))
    with TestClient(app, base_url=BASE) as c:
        yield c


def png_url(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def stroke_picture(draw) -> np.ndarray:
    """A 280x280 white picture with black strokes, as the page's pad makes them."""
    picture = Image.new("L", (280, 280), 255)
    draw(ImageDraw.Draw(picture))
    return np.asarray(picture)


def post_json(client, path: str, body):
    headers = {"content-type": "application/json"}
    return client.post(path, content=json.dumps(body), headers=headers)


def events_of(response) -> list[dict]:
    return [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]


# ---- predictions ----------------------------------------------------------------------------
def test_models_lists_the_served_network(client, digits):
    body = client.get("/api/models").json()
    assert body["default"] == {"mnist": "mnist-mlp", "fashion": None}
    (model,) = body["models"]
    assert model["classes"] == list(MNIST_CLASSES)
    widths = [l.out_features for l in digits.layers if isinstance(l, Dense)]
    assert model["layers"] == [784, *widths]
    assert model["params"] == digits.num_params


def test_pixels_give_the_library_s_probabilities_and_activations(client, digits, mnist):
    _, (x_test, y_test) = mnist
    r = client.post(
        "/api/predict", json={"pixels": x_test[0].ravel().tolist(), "preprocess": False}
    )
    assert r.status_code == 200
    body = r.json()
    expected = digits.predict_proba(scale(x_test[:1]))[0]
    np.testing.assert_allclose(body["probabilities"], expected, atol=2e-6)
    assert body["top"] == int(expected.argmax()) == int(y_test[0])
    assert body["label"] == MNIST_CLASSES[body["top"]]
    assert body["input"] == x_test[0].ravel().tolist()
    widths = [l.out_features for l in digits.layers[:-1] if isinstance(l, Dense)]
    assert [a["units"] for a in body["activations"]] == widths
    assert all(
        min(a["values"]) >= 0 and len(a["values"]) == a["units"] for a in body["activations"]
    )


def test_pixels_are_prepared_like_barenet_predict_unless_told_not_to(client):
    picture = np.zeros((28, 28), np.uint8)
    picture[2:10, 2:5] = 200  # a small stroke in a corner
    r = client.post("/api/predict", json={"pixels": picture.ravel().tolist()})
    assert r.json()["input"] == to_mnist(picture).ravel().tolist()


def test_png_data_url_is_read_as_barenet_predict_reads_a_file(client, tmp_path, mnist):
    _, (x_test, y_test) = mnist
    big = np.kron(255 - x_test[1], np.ones((10, 10), np.uint8))  # 280x280, dark on light
    Image.fromarray(big).save(tmp_path / "digit.png")
    expected = to_mnist(load_image(tmp_path / "digit.png"))
    body = client.post("/api/predict", json={"image": png_url(big)}).json()
    assert body["input"] == expected.ravel().tolist()
    assert body["top"] == int(y_test[1])


@pytest.mark.parametrize(
    ("draw", "digit"),
    [
        (lambda d: d.line([(140, 40), (140, 240)], fill=0, width=20), "1"),
        (lambda d: d.ellipse([70, 40, 210, 240], outline=0, width=20), "0"),
    ],
    ids=["vertical-bar", "circle"],
)
def test_hand_drawn_strokes_are_recognised_by_the_shipped_model(client, draw, digit):
    body = client.post("/api/predict", json={"image": png_url(stroke_picture(draw))}).json()
    assert body["label"] == digit, body["probabilities"]


def test_concurrent_predictions_each_get_their_own_answer(client, mnist):
    _, (x_test, _) = mnist
    images = x_test[:16]
    alone = [
        client.post(
            "/api/predict", json={"pixels": im.ravel().tolist(), "preprocess": False}
        ).json()["probabilities"]
        for im in images
    ]
    results: dict[int, list[float]] = {}
    errors: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            for _ in range(3):
                payload = {"pixels": images[i].ravel().tolist(), "preprocess": False}
                r = client.post("/api/predict", json=payload)
                assert r.status_code == 200
                assert r.json()["probabilities"] == alone[i]
            results[i] = alone[i]
        except BaseException as e:  # collected and re-raised on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[0]
    assert len(results) == len(images)


# ---- bad requests ---------------------------------------------------------------------------
GOOD = [0] * 784
BAD_PREDICTIONS = [
    ({"pixels": [0] * 783}, "783 values"),
    ({"pixels": [0] * 785}, "785 values"),
    ({"pixels": "0" * 784}, "list of 784"),
    ({"pixels": [*GOOD[:-1], "7"]}, "pixels[783]"),
    ({"pixels": [*GOOD[:-1], None]}, "pixels[783]"),
    ({"pixels": [True, *GOOD[1:]]}, "pixels[0]"),
    ({"pixels": [*GOOD[:5], 256, *GOOD[6:]]}, "pixels[5]"),
    ({"pixels": [*GOOD[:5], -1, *GOOD[6:]]}, "pixels[5]"),
    ({"pixels": [[0] * 28] * 28}, "got 28 values"),
    ({"pixels": GOOD}, "blank"),
    ({"pixels": GOOD, "preprocess": "yes"}, "preprocess"),
    ({"pixels": GOOD, "image": "data:image/png;base64,"}, "exactly one"),
    ({}, "exactly one"),
    ({"pixels": GOOD, "colour": 1}, "unknown field 'colour'"),
    ({"pixels": GOOD, "model": "resnet"}, "model must be one of mnist-mlp"),
    ({"pixels": GOOD, "model": 3}, "model must be one of mnist-mlp"),
    ({"image": "http://example.com/x.png"}, "data URL"),
    ({"image": "data:text/plain;base64,aGk="}, "data URL"),
    ({"image": "data:image/tiff;base64,aGk="}, "image type"),
    ({"image": "data:image/png;base64,@@@"}, "base64"),
    ({"image": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}, "readable"),
    ({"image": 12}, "data URL string"),
]


@pytest.mark.parametrize(("payload", "words"), BAD_PREDICTIONS)
def test_bad_predictions_get_a_400_naming_the_problem(client, payload, words):
    r = client.post("/api/predict", json=payload)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
        (b'{"pixels": [NaN]}', {"content-type": "application/json"}, 400, "NaN"),
        (b"[1, 2]", {"content-type": "application/json"}, 400, "JSON object"),
        (b"[" * 100_000, {"content-type": "application/json"}, 400, "not valid JSON"),
        (b'{"pixels": []}', {"content-type": "text/plain"}, 415, "Content-Type"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_refused(client, body, headers, status, words):
    r = client.post("/api/predict", content=body, headers=headers)
    assert r.status_code == status
    assert words in r.json()["error"]


def test_oversized_bodies_are_refused_with_413(client):
    body = b'{"image": "' + b"A" * (MAX_BODY + 10) + b'"}'
    r = client.post("/api/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(MAX_BODY // 65536 + 2):
            yield b" " * 65536

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_huge_pictures_are_refused_before_decoding(client):
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000), 255).save(buffer, format="PNG")  # small file, 25 Mpixels
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    r = client.post("/api/predict", json={"image": url})
    assert r.status_code == 400 and "5000x5000" in r.json()["error"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
FIELDS = st.sampled_from(["pixels", "image", "model", "preprocess", "extra"])
PIXELS = st.lists(st.integers(-2, 300) | st.floats(-1, 260), min_size=784, max_size=784)
SETTINGS = st.sampled_from(["dataset", "hidden", "lr", "epochs", "samples", "batch_size", "seed"])
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(body=st.dictionaries(FIELDS, JSON | PIXELS, max_size=3))
def test_no_prediction_request_makes_a_server_error(client, body):
    r = post_json(client, "/api/predict", body)  # the test client raises on a server error
    assert r.status_code == 200 or (r.status_code == 400 and r.json()["error"])


@FUZZ
@given(body=st.dictionaries(SETTINGS, JSON, max_size=3) | JSON)
def test_no_training_request_makes_a_server_error(client, body):
    r = post_json(client, "/api/train", body)
    assert r.status_code == 202 or (r.status_code == 400 and r.json()["error"])
    client.post("/api/train/stop", json={})


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/api/nothing").status_code == 404
    r = client.get("/api/predict")
    assert r.status_code == 405 and r.json()["error"]


# ---- weights, samples, page ------------------------------------------------------------------
def test_weights_are_the_first_layer_scaled_per_unit(client, digits):
    body = client.get("/api/weights?count=3").json()
    w = next(l for l in digits.layers if isinstance(l, Dense)).params["weight"][:3]
    expected = np.rint(127 * w / np.abs(w).max(axis=1, keepdims=True))
    np.testing.assert_array_equal(np.array(body["images"]), expected)
    for query in ("count=0", "count=999", "count=x", "model=other"):
        r = client.get(f"/api/weights?{query}")
        assert r.status_code == 400 and r.json()["error"]


def test_sample_gives_a_test_image_and_checks_its_arguments(client, fashion):
    _, (x_test, y_test) = fashion
    body = client.get("/api/sample?dataset=fashion&index=7").json()
    assert body["pixels"] == x_test[7].ravel().tolist()
    assert body["class"] == FASHION_CLASSES[y_test[7]]
    for query in ("dataset=cifar", "index=10000", "index=-1", "index=1e3"):
        r = client.get(f"/api/sample?{query}")
        assert r.status_code == 400 and r.json()["error"]


def test_page_and_its_files_are_served_locally(client):
    r = client.get("/")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    for name in ("index.html", "app.js", "style.css"):
        text = client.get(f"/static/{name}").text
        assert "://" not in text, f"{name} refers to another site"
    assert 'id="pad" width="280" height="280"' in r.text


# ---- training ------------------------------------------------------------------------------
TINY = {"dataset": "mnist", "hidden": [16], "epochs": 1, "samples": 500, "batch_size": 50}


def test_training_streams_progress_and_ends_done(client):
    r = client.post("/api/train", json=TINY)
    assert r.status_code == 202
    events = events_of(client.get("/api/train/events"))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and "progress" in kinds and "epoch" in kinds
    start, end = events[0], events[-1]
    assert start["steps"] == 10 and len(start["panel"]["images"]) == len(start["panel"]["labels"])
    assert end["status"] == "done"
    progress = [e for e in events if e["type"] == "progress"]
    assert [e["step"] for e in progress] == list(range(1, 11))
    last = progress[-1]
    assert last["step"] == 10 and len(last["predictions"]) == len(start["panel"]["labels"])
    epoch = next(e for e in events if e["type"] == "epoch")
    assert 0 <= epoch["val_accuracy"] <= 1 and epoch["loss"] > 0
    assert client.get("/api/train").json()["status"] == "done"


def test_a_second_run_while_one_trains_gets_409_and_stop_ends_it(client):
    long_run = {**TINY, "samples": 59000, "epochs": 20, "batch_size": 64}
    first = client.post("/api/train", json=long_run)
    assert first.status_code == 202
    second = client.post("/api/train", json=TINY)
    assert second.status_code == 409
    assert "already going on" in second.json()["error"]
    started = time.monotonic()
    stopped = client.post("/api/train/stop", json={}).json()
    assert stopped == {"run": first.json()["run"], "status": "stopped"}
    assert time.monotonic() - started < 10
    assert events_of(client.get("/api/train/events"))[-1]["status"] == "stopped"
    assert client.post("/api/train", json=TINY).status_code == 202  # free again
    client.post("/api/train/stop", json={})


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"hidden": []}, "hidden"),
        ({"hidden": [0]}, "width"),
        ({"hidden": [2000]}, "width"),
        ({"hidden": "64"}, "hidden"),
        ({"hidden": [64, 64, 64, 64]}, "hidden"),
        ({"lr": 0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"epochs": 100}, "epochs"),
        ({"samples": 10}, "samples"),
        ({"batch_size": True}, "batch_size"),
        ({"dataset": "cifar"}, "cifar"),
        ({"seed": -1}, "seed"),
        ({"speed": 1}, "unknown setting 'speed'"),
    ],
)
def test_bad_training_settings_get_a_400(client, settings, words):
    r = client.post("/api/train", json={**TINY, **settings})
    assert r.status_code == 400
    assert words in r.json()["error"]


def test_training_endpoints_when_nothing_runs():
    app = create_app({"plain": Sequential([Flatten(), Dense(784, 10)])})
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/api/train").json() == {"run": None, "status": "idle"}
        assert c.post("/api/train/stop", json={}).json() == {"run": None, "status": "idle"}
        assert c.get("/api/train/events").status_code == 404


# ---- set-up ---------------------------------------------------------------------------------
def test_by_default_the_shipped_networks_are_served():
    with TestClient(create_app(), base_url=BASE) as c:
        body = c.get("/api/models").json()
    assert body["default"] == {"mnist": "mnist-mlp", "fashion": "fashion-mlp"}
    fashion_model = next(m for m in body["models"] if m["name"] == "fashion-mlp")
    assert fashion_model["classes"] == list(FASHION_CLASSES)


def test_a_model_that_does_not_read_28x28_images_is_refused():
    with pytest.raises(ModelFileError, match="28x28"):
        create_app({"toy": Sequential([Dense(2, 3)])})
    with pytest.raises(ArgumentError, match="no model to serve"):
        create_app({})


def test_serve_command_reports_bad_options_in_one_line(capsys, tmp_path):
    assert main(["serve", "--model", str(tmp_path / "missing.npz")]) == 2
    assert main(["serve", "--port", "70000"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "missing.npz" in err[0] and "70000" in err[1]
    assert (STATIC / "index.html").is_file()
