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

from barenet import options, pretrained  # noqa: E402
from barenet.activations import ReLU  # noqa: E402
from barenet.cli import main  # noqa: E402
from barenet.conv import Conv2D, MaxPool2D  # noqa: E402
from barenet.datasets import FASHION_CLASSES, MNIST_CLASSES, scale  # noqa: E402
from barenet.errors import ArgumentError, ModelFileError  # noqa: E402
from barenet.layers import Dense, Flatten  # noqa: E402
from barenet.model import Sequential  # noqa: E402
from barenet.normalization import BatchNorm  # noqa: E402
from barenet.preprocess import load_image, to_mnist  # noqa: E402
from barenet.web.app import MAX_BODY, STATIC, create_app  # noqa: E402
from barenet.web.training import LIMITS, Trainer  # noqa: E402

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
    # A browser asks for an icon on every fresh load: a 404 is an error in its console.
    assert '<link rel="icon" href="/static/favicon.svg"' in r.text
    for path in ("/favicon.ico", "/static/favicon.svg"):
        icon = client.get(path)
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
        assert icon.text.startswith("<svg")


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
        ({"hidden": [0]}, "hidden must be a positive integer, got 0"),
        ({"hidden": [2000]}, "hidden must be at most 1,024, got 2,000"),
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
def test_by_default_the_shipped_networks_are_served_the_most_accurate_first():
    with TestClient(create_app(), base_url=BASE) as c:
        body = c.get("/api/models").json()
    assert body["default"] == {"mnist": "mnist-cnn", "fashion": "fashion-cnn"}
    models = {m["name"]: m for m in body["models"]}
    assert set(models) == {"mnist-mlp", "mnist-cnn", "fashion-mlp", "fashion-cnn"}
    assert models["fashion-mlp"]["classes"] == list(FASHION_CLASSES)
    assert models["mnist-cnn"]["kind"] == "cnn" and models["mnist-mlp"]["kind"] == "mlp"
    assert models["mnist-cnn"]["shape"] == "conv 32-64-128, dense 128-10"
    assert models["mnist-cnn"]["test_accuracy"] > models["mnist-mlp"]["test_accuracy"]
    assert body["learned"] is None


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


# ---- convolutional networks, saliency, networks trained on the page -------------------------
def tiny_cnn() -> Sequential:
    """A float64 CNN for 28x28 images (random weights, BatchNorm statistics not 0 and 1),
    precise enough for finite differences of its logits."""
    f64 = np.float64
    model = Sequential(
        [
            Conv2D(1, 4, 3, padding="same", dtype=f64),
            BatchNorm(4, dtype=f64),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(4 * 14 * 14, 10, dtype=f64),
        ],
        seed=0,
    )
    model.layers[1].state()["running_var"][...] = [0.5, 1.0, 2.0, 0.8]
    model.layers[1].state()["running_mean"][...] = [0.1, -0.1, 0.0, 0.2]
    model.input_shape = (28, 28)
    model.metadata = {"dataset": "mnist", "test_accuracy": 0.1}
    return model


@pytest.fixture(scope="module")
def tiny():
    return tiny_cnn()


@pytest.fixture(scope="module")
def cnn_client(mnist, tiny):
    models = {"mnist-mlp": "mnist-mlp", "mnist-cnn": "mnist-cnn", "tiny64": tiny}
    app = create_app(models, trainer=Trainer(loader={"mnist": mnist}.__getitem__))
    with TestClient(app, base_url=BASE) as c:
        yield c


def test_the_most_accurate_network_is_the_default(cnn_client):
    body = cnn_client.get("/api/models").json()
    assert body["default"] == {"mnist": "mnist-cnn", "fashion": None}
    assert [m["kind"] for m in body["models"]] == ["mlp", "cnn", "cnn"]


def test_weights_of_a_cnn_are_its_first_kernels(cnn_client):
    body = cnn_client.get("/api/weights?model=mnist-cnn&count=5").json()
    w = pretrained.load_pretrained("mnist-cnn").layers[0].params["weight"][:5].reshape(5, 9)
    expected = np.rint(127 * w / np.abs(w).max(axis=1, keepdims=True))
    assert body["kind"] == "conv" and body["size"] == [3, 3] and body["units"] == 32
    np.testing.assert_array_equal(np.array(body["images"]), expected)
    assert cnn_client.get("/api/weights?model=mnist-mlp").json()["size"] == [28, 28]


def test_inside_a_cnn_each_block_s_strongest_maps(cnn_client, mnist):
    _, (x_test, _) = mnist
    payload = {"model": "mnist-cnn", "pixels": x_test[0].ravel().tolist(), "preprocess": False}
    body = post_json(cnn_client, "/api/inside", payload).json()
    blocks = body["blocks"]
    assert body["kind"] == "cnn" and [b["channels"] for b in blocks] == [32, 64, 128]
    assert [b["size"] for b in blocks] == [[28, 28], [14, 14], [7, 7]]
    assert [b["pooled_size"] for b in blocks] == [[14, 14], [7, 7], [3, 3]]
    model = pretrained.load_pretrained("mnist-cnn")
    h = scale(x_test[:1])
    for layer in model.layers[:2]:  # conv, BatchNorm; then the ReLU, before the pooling
        h = layer.forward(h)
    h = np.maximum(h, 0)  # the first block's activated maps
    first = blocks[0]
    strength = h[0].mean(axis=(1, 2))
    assert [m["channel"] for m in first["maps"]] == list(np.argsort(-strength)[:16])
    assert first["strength"] == sorted(first["strength"], reverse=True)
    channels = [m["channel"] for m in first["maps"]]
    channel = channels[0]
    np.testing.assert_allclose(
        first["maps"][0]["values"], h[0, channel].ravel() / h[0, channels].max(), atol=6e-4
    )
    for b in blocks:
        assert len(b["maps"]) == len(b["pooled"]) == 16
        assert all(len(m["values"]) == b["size"][0] * b["size"][1] for m in b["maps"])
        assert max(max(m["values"]) for m in b["maps"]) == 1.0
    mlp = post_json(cnn_client, "/api/inside", {**payload, "model": "mnist-mlp"}).json()
    assert mlp["kind"] == "mlp" and mlp["blocks"] == []


def score(model: Sequential, x: np.ndarray, cls: int) -> float:
    out = x
    for layer in model.layers:
        out = layer.forward(out, training=False)
    return float(out[0, cls])


@pytest.mark.parametrize("cls", [7, 2])
def test_saliency_is_the_gradient_of_the_class_score(cnn_client, tiny, cls):
    # Random grey values: in a digit, runs of equal pixels make max pooling meet exact ties,
    # where the score has only one-sided derivatives.
    image = np.random.default_rng(cls).integers(0, 256, (28, 28), dtype=np.uint8)
    payload = {"model": "tiny64", "pixels": image.ravel().tolist(), "preprocess": False}
    body = post_json(cnn_client, "/api/saliency", {**payload, "class": cls}).json()
    assert body["class"] == cls and body["label"] == str(cls) and body["model"] == "tiny64"
    grad = np.array(body["gradient"]).reshape(28, 28)
    x = (image / 255.0).reshape(1, 28, 28)
    eps = 1e-6
    for pixel in [(14, 14), (10, 16), (20, 12), (0, 0), (27, 5)]:
        up, down = x.copy(), x.copy()
        up[(0, *pixel)] += eps
        down[(0, *pixel)] -= eps
        expected = (score(tiny, up, cls) - score(tiny, down, cls)) / (2 * eps)
        assert grad[pixel] == pytest.approx(expected, rel=1e-4, abs=1e-9), pixel
    assert np.abs(grad).max() > 1e-3
    np.testing.assert_allclose(body["gradient_x_input"], grad.ravel() * x.ravel(), rtol=1e-5)
    assert len(body["alternatives"]) == 3 and cls not in [a["class"] for a in body["alternatives"]]
    for alt in body["alternatives"]:  # the pixels speaking for k rather than cls
        k = alt["class"]
        other = post_json(cnn_client, "/api/saliency", {**payload, "class": k}).json()
        np.testing.assert_allclose(
            alt["evidence"], np.array(other["gradient"]) - grad.ravel(), rtol=1e-4, atol=1e-6
        )


def test_saliency_of_the_shipped_networks_changes_with_the_class(cnn_client, mnist):
    _, (x_test, y_test) = mnist
    for name in ("mnist-mlp", "mnist-cnn"):
        payload = {"model": name, "pixels": x_test[0].ravel().tolist(), "preprocess": False}
        top = post_json(cnn_client, "/api/saliency", payload).json()
        assert top["class"] == int(y_test[0]) and top["probability"] > 0.9
        other = post_json(cnn_client, "/api/saliency", {**payload, "class": 3}).json()
        assert other["class"] == 3 and other["gradient"] != top["gradient"]
        probabilities = [a["probability"] for a in top["alternatives"]]
        assert probabilities == sorted(probabilities, reverse=True)


GOOD_INPUT = {"pixels": [0] * 28 * 8 + ([0] * 12 + [220] * 4 + [0] * 12) * 12 + [0] * 28 * 8}
BAD_EXPLANATIONS = [
    ("/api/saliency", {**GOOD_INPUT, "class": 10}, "class must be an integer from 0 to 9"),
    ("/api/saliency", {**GOOD_INPUT, "class": -1}, "class must be an integer"),
    ("/api/saliency", {**GOOD_INPUT, "class": 1.5}, "class must be an integer"),
    ("/api/saliency", {**GOOD_INPUT, "class": True}, "class must be an integer"),
    ("/api/saliency", {**GOOD_INPUT, "class": "3"}, "class must be an integer"),
    ("/api/inside", {**GOOD_INPUT, "class": 3}, "unknown field 'class'"),
    ("/api/inside", {"pixels": [0] * 783}, "783 values"),
    ("/api/saliency", {"pixels": [0] * 784}, "blank"),
    ("/api/saliency", {"model": "mnist-cnn"}, "pixels"),
    ("/api/inside", {**GOOD_INPUT, "model": "resnet"}, "model must be one of"),
    ("/api/inside", {**GOOD_INPUT, "preprocess": 1}, "preprocess"),
    ("/api/saliency", {**GOOD_INPUT, "image": "data:image/png;base64,"}, "unknown field"),
    ("/api/inside", [1, 2], "JSON object"),
]


@pytest.mark.parametrize(("path", "payload", "words"), BAD_EXPLANATIONS)
def test_bad_explanation_requests_get_a_400_naming_the_problem(cnn_client, path, payload, words):
    r = post_json(cnn_client, path, payload)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]


EXPLAIN_FIELDS = st.sampled_from(["pixels", "model", "preprocess", "class", "extra"])
MODELS = st.sampled_from(["mnist-mlp", "mnist-cnn", "tiny64"])


@FUZZ
@given(
    path=st.sampled_from(["/api/inside", "/api/saliency"]),
    body=st.dictionaries(EXPLAIN_FIELDS, JSON | PIXELS | MODELS | st.integers(-3, 12), max_size=4)
    | JSON,
)
def test_no_explanation_request_makes_a_server_error(cnn_client, path, body):
    r = post_json(cnn_client, path, body)  # the test client raises on a server error
    assert r.status_code == 200 or (r.status_code == 400 and r.json()["error"])


def test_a_cnn_trained_on_the_page_reports_confusion_and_is_served(cnn_client):
    settings = {**TINY, "kind": "cnn", "channels": [4], "hidden": [16], "samples": 300}
    r = post_json(cnn_client, "/api/train", settings)
    assert r.status_code == 202 and r.json()["settings"]["channels"] == [4]
    events = events_of(cnn_client.get("/api/train/events"))
    assert events[-1]["status"] == "done"
    epoch = next(e for e in events if e["type"] == "epoch")
    confusion = np.array(epoch["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 1000
    assert np.trace(confusion) / 1000 == pytest.approx(epoch["val_accuracy"])
    body = cnn_client.get("/api/models").json()
    assert body["learned"] == "learned-mnist-cnn"
    assert body["default"]["mnist"] == "mnist-cnn"  # a page-trained network is offered, not pushed
    learned = next(m for m in body["models"] if m["name"] == "learned-mnist-cnn")
    assert learned["kind"] == "cnn" and learned["val_accuracy"] == epoch["val_accuracy"]
    payload = {"model": "learned-mnist-cnn", "pixels": GOOD_INPUT["pixels"]}
    assert cnn_client.post("/api/predict", json=payload).status_code == 200
    assert post_json(cnn_client, "/api/saliency", payload).status_code == 200
    assert len(post_json(cnn_client, "/api/inside", payload).json()["blocks"]) == 1
    assert cnn_client.get("/api/weights?model=learned-mnist-cnn").json()["units"] == 4

    r = post_json(cnn_client, "/api/train", {**TINY, "hidden": [8]})  # the next one replaces it
    assert events_of(cnn_client.get("/api/train/events"))[-1]["status"] == "done"
    names = [m["name"] for m in cnn_client.get("/api/models").json()["models"]]
    assert names == ["mnist-mlp", "mnist-cnn", "tiny64", "learned-mnist-mlp"]


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"kind": "rnn"}, "kind must be 'mlp' or 'cnn'"),
        ({"kind": "cnn", "channels": []}, "channels must be a list of 1 to 2"),
        ({"kind": "cnn", "channels": [8, 8, 8]}, "channels must be a list of 1 to 2"),
        ({"kind": "cnn", "channels": [0]}, "channels must be a positive integer, got 0"),
        ({"kind": "cnn", "channels": [65]}, "channels must be at most 64, got 65"),
        ({"kind": "cnn", "channels": "8,16"}, "channels must be a list"),
    ],
)
def test_bad_cnn_settings_get_a_400(client, settings, words):
    r = client.post("/api/train", json={**TINY, **settings})
    assert r.status_code == 400
    assert words in r.json()["error"]


def test_serve_offers_its_model_and_every_shipped_network(tmp_path):
    from barenet.web import _models

    shipped = list(pretrained.available())
    assert len(shipped) == 4
    assert list(_models("mnist-cnn")) == ["mnist-cnn", *[n for n in shipped if n != "mnist-cnn"]]
    mine = tmp_path / "mine.npz"
    assert _models(str(mine)) == {"mine": str(mine), **{n: n for n in shipped}}


def test_the_pages_limits_are_the_command_lines_narrowed():
    """The Learn page checks its settings against the command line's bounds, narrowed to
    its cost caps, never widened: each of its limits lies within the shared one."""
    shared = {"hidden_layers": "layers", "conv_blocks": "layers", "channels": "width"}
    shared |= {"width": "width", "samples": "limit"}
    for name, (low, high) in LIMITS.items():
        if name in ("steps", "work"):  # the web's own cost caps
            continue
        wide_low, wide_high = options.tighten(shared.get(name, name))
        assert wide_low <= low <= high <= wide_high, name
    assert options.tighten("epochs", high=10**9) == (1, options.MAX_EPOCHS)
    assert options.tighten("lr", low=-1.0, high=1.0) == (0.0, 1.0)
