"""The web demo's server: a Starlette app serving the page and a small JSON API.

Routes
------
``GET /``                     the page (``static/index.html``)
``GET /api/models``           the networks served: name, dataset, classes, layer widths
``POST /api/predict``         ``{"pixels": [784 values 0..255]}`` or ``{"image": "data:image/
                              png;base64,..."}`` (optional ``"model"``, ``"preprocess"``) ->
                              probabilities, the 28x28 input and the hidden activations
``GET /api/weights``          the first layer's weights as images: 28x28 per dense unit, or
                              a convolution's kernels (``?model=&count=``)
``POST /api/inside``          ``{"pixels": [...], "model"}`` -> each convolution block's
                              feature maps, strongest channels first (none for an MLP)
``POST /api/saliency``        ``{"pixels": [...], "model", "class"}`` -> the gradient of the
                              class's logit with respect to the pixels, and the pixels that
                              speak for the three likeliest other classes
``GET /api/sample``           a test image of a dataset (``?dataset=fashion&index=``)
``POST /api/train``           start a training run (see ``training.TrainSettings``)
``GET /api/train``            the current run's status
``GET /api/train/events``     the current run's events as server-sent events
``POST /api/train/stop``      stop the current run

Every request is checked: a bad one gets a 4xx answer ``{"error": "..."}`` naming what is
wrong. Before any route, ``guard.Guard`` checks the Host, the Origin and Content-Type of
POSTs and the body's size, and adds the security headers to every answer. Pictures go
through ``barenet.preprocess`` exactly as in ``barenet predict``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from barenet.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from barenet.conv import Conv2D
from barenet.datasets.specs import get_spec
from barenet.errors import ArgumentError, BarenetError, DatasetError, ModelFileError
from barenet.io import load_model
from barenet.layers import Dense
from barenet.model import Sequential
from barenet.preprocess import MAX_PIXELS, PREPROCESSORS, decode_image
from barenet.web import explain
from barenet.web.guard import LOOPBACK, Guard, check_host_name
from barenet.web.training import DatasetMissingError, RunBusyError, Trainer, TrainSettings

__all__ = ["MAX_BODY", "MAX_IMAGE_PIXELS", "ModelSpec", "create_app", "resolve_model"]

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 1 << 20  #: largest request body accepted, in bytes (1 MiB)
MAX_IMAGE_PIXELS = MAX_PIXELS  #: largest picture (width x height) decoded, as in predict
DECODERS = 2  #: pictures decoded at once (each may take ~400 MB at MAX_PIXELS)
SIDE = 28
POLL_SECONDS = 0.1  #: how often an event stream looks for new training events
HEARTBEAT = 50  #: polls without news before the stream sends a comment line
IMAGE_TYPES = ("png", "jpeg", "webp", "gif", "bmp")
_HIDDEN = (ReLU, LeakyReLU, Sigmoid, Tanh)  # layers whose output is a hidden activation
_DECODING = threading.BoundedSemaphore(DECODERS)

#: A network to serve: a shipped name ("mnist-mlp"), a model file, or a model object.
ModelSpec = str | Path | Sequential


def resolve_model(spec: ModelSpec) -> Sequential:
    """Load ``spec``: a shipped network's name, a ``.npz`` file, or a model (returned as is)."""
    if isinstance(spec, Sequential):
        return spec
    from barenet import pretrained

    if isinstance(spec, str) and spec in pretrained.PRETRAINED:
        return pretrained.load_pretrained(spec)
    path = Path(spec)
    if not path.is_file():
        names = ", ".join(pretrained.PRETRAINED)
        raise ArgumentError(f"model must be one of {names} or a model file, got {str(spec)!r}")
    return load_model(path)


@dataclass
class Served:
    """A network the server answers with, and what the page needs to know about it."""

    name: str
    model: Sequential
    dataset: str
    classes: list[str]
    input_shape: tuple[int, ...]
    pictures: str
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def check(cls, name: str, model: Sequential) -> Served:
        """Wrap ``model``; ``ModelFileError`` unless it reads one 28x28 picture."""
        meta = model.metadata or {}
        shape = tuple(model.input_shape or (SIDE, SIDE))
        if math.prod(shape) != SIDE * SIDE:
            raise ModelFileError(f"model {name!r} reads inputs of shape {shape}, not 28x28 images")
        try:
            dataset = get_spec(meta.get("dataset", "mnist")).name
            with np.errstate(all="ignore"):
                width = model.predict_proba(np.zeros((1, *shape), model.dtype)).shape[1]
        except (BarenetError, IndexError) as e:
            raise ModelFileError(f"model {name!r} cannot classify 28x28 images: {e}") from None
        classes = [str(c) for c in meta.get("classes", get_spec(dataset).classes)]
        if len(classes) != width:
            classes = [str(i) for i in range(width)]
        preprocess = meta.get("preprocess")
        pictures = preprocess.get("pictures", "mnist") if isinstance(preprocess, dict) else "mnist"
        return cls(name, model, dataset, classes, shape, str(pictures))

    def prepare(self, picture: np.ndarray) -> np.ndarray:
        """Any grayscale picture as the 28x28 uint8 image this network reads, prepared
        as ``barenet predict`` prepares it (by the model's ``preprocess`` metadata)."""
        return PREPROCESSORS.get(self.pictures, PREPROCESSORS["mnist"])(picture)

    @property
    def kind(self) -> str:
        """ "cnn" for a network with convolutions, else "mlp"."""
        return "cnn" if any(isinstance(l, Conv2D) for l in self.model.layers) else "mlp"

    @property
    def accuracy(self) -> float:
        """Its test accuracy as recorded in its metadata, else its validation accuracy
        (a network trained on the Learn page), else 0."""
        meta = self.model.metadata or {}
        value = meta.get("test_accuracy", meta.get("val_accuracy"))
        return float(value) if isinstance(value, (int, float)) else 0.0

    def describe(self) -> dict[str, Any]:
        widths = [l.out_features for l in self.model.layers if isinstance(l, Dense)]
        channels = [l.out_channels for l in self.model.layers if isinstance(l, Conv2D)]
        meta = self.model.metadata or {}
        shape = "-".join(map(str, [SIDE * SIDE, *widths]))
        if channels:
            shape = f"conv {'-'.join(map(str, channels))}, dense {'-'.join(map(str, widths))}"
        return {
            "name": self.name,
            "dataset": self.dataset,
            "classes": self.classes,
            "kind": self.kind,
            "layers": [SIDE * SIDE, *widths],
            "shape": shape,
            "params": self.model.num_params,
            "test_accuracy": meta.get("test_accuracy"),
            "val_accuracy": meta.get("val_accuracy"),
        }

    def _input(self, image: np.ndarray) -> np.ndarray:
        """A 28x28 uint8 image as the one-sample batch the network reads (pixels / 255)."""
        x = (image.astype(np.float32) / np.float32(255)).reshape(1, *self.input_shape)
        return x.astype(self.model.dtype, copy=False)

    def inside(self, image: np.ndarray) -> dict[str, Any]:
        """The convolution blocks' feature maps for one 28x28 uint8 image (none for an MLP)."""
        with self.lock, np.errstate(all="ignore"):
            blocks = explain.feature_maps(self.model, self._input(image))
        return {"model": self.name, "kind": self.kind, "blocks": blocks}

    def why(self, image: np.ndarray, target: int | None) -> dict[str, Any]:
        """Saliency of class ``target`` (default: the answer) for one 28x28 uint8 image."""
        x = self._input(image)
        with self.lock, np.errstate(all="ignore"):
            if target is None:
                target = int(self.model.predict_proba(x)[0].argmax())
            result = explain.saliency(self.model, x, target)
        result["label"] = self.classes[result["class"]]
        for alt in result["alternatives"]:
            alt["label"] = self.classes[alt["class"]]
        return {"model": self.name, "classes": self.classes, **result}

    def answer(self, image: np.ndarray) -> dict[str, Any]:
        """Probabilities and hidden activations for one 28x28 uint8 image."""
        x = (image.astype(np.float32) / np.float32(255)).reshape(1, *self.input_shape)
        x = x.astype(self.model.dtype, copy=False)
        hidden = []
        with self.lock, np.errstate(all="ignore"):  # layers cache their inputs: one at a time
            h = x
            for i, layer in enumerate(self.model.layers[:-1]):
                h = layer.forward(h)
                if isinstance(layer, _HIDDEN) and h.ndim == 2:
                    hidden.append({"layer": i, "units": h.shape[1], "values": _rounded(h[0])})
            proba = self.model.predict_proba(x)[0].astype(np.float64)
        top = int(proba.argmax())
        return {
            "model": self.name,
            "classes": self.classes,
            "probabilities": _rounded(proba, 6),
            "top": top,
            "label": self.classes[top],
            "input": image.reshape(-1).tolist(),
            "activations": hidden,
        }

    def first_weights(self, count: int) -> dict[str, Any]:
        """The first ``count`` filters of the first layer, each an image in -127..127:
        a dense unit's 28x28 incoming weights, or a convolution's kernel."""
        try:
            filters = explain.first_filters(self.model, SIDE, count)
        except ArgumentError:
            raise ArgumentError(
                f"model {self.name!r} has no first layer reading the pixels"
            ) from None
        return {"model": self.name, **filters}


def _rounded(a: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in a]


# ---- reading requests -----------------------------------------------------------------------
def _bad(message: str, status: int = 400) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


async def _json_body(request: Request, limit: int = MAX_BODY) -> Any:
    """The request's JSON body, read up to ``limit`` bytes (413 beyond)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise _bad("the body must be JSON (Content-Type: application/json)", 415)
    length = request.headers.get("content-length", "")
    too_big = f"the body is larger than the limit of {limit} bytes"
    if re.fullmatch(r"[0-9]{1,19}", length) and int(length) > limit:
        raise _bad(too_big, 413)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _bad(too_big, 413)
    except ClientDisconnect:  # nobody is left to answer; the 400 goes nowhere
        raise _bad("the client hung up before the body ended") from None
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise _bad(f"the body is not valid JSON ({e})") from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _pixels(value: Any) -> np.ndarray:
    """A list of 784 numbers in 0..255 as a 28x28 float64 array."""
    n = SIDE * SIDE
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise ArgumentError(f"pixels must be a list of {n} grey values (28x28), got {got}")
    for i, v in enumerate(value):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 255:
            raise ArgumentError(f"pixels[{i}] must be a number from 0 to 255, got {v!r}")
    return np.array(value, dtype=np.float64).reshape(SIDE, SIDE)


def _data_url(value: Any) -> bytes:
    """The bytes of a ``data:image/...;base64,`` URL."""
    if not isinstance(value, str):
        raise ArgumentError(f"image must be a data URL string, got {type(value).__name__}")
    head, sep, payload = value.partition(",")
    kind = head.removeprefix("data:image/").removesuffix(";base64")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise ArgumentError("image must be a data URL like 'data:image/png;base64,...'")
    if kind not in IMAGE_TYPES:
        raise ArgumentError(f"image type must be one of {', '.join(IMAGE_TYPES)}, got {kind!r}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ArgumentError("image: the data URL's base64 payload is malformed") from None


def _picture(data: bytes, served: Served) -> np.ndarray:
    """Picture bytes as the 28x28 image ``served`` reads, decoded and prepared as ``barenet
    predict`` reads a file; at most ``DECODERS`` at once, to bound the memory they take."""
    with _DECODING:
        return served.prepare(decode_image(data, "image"))


class App:
    """The state behind the routes: the served networks and the training runs."""

    def __init__(self, served: list[Served], trainer: Trainer) -> None:
        self.served = {s.name: s for s in served}
        self.trainer = trainer
        self.learned: str | None = None  # the name the latest trained network is served by
        self._learned_run = 0

    def take_learned(self) -> None:
        """Serve the network the latest finished Learn-page run trained, in memory, as
        ``learned-DATASET-KIND`` (in place of an earlier one)."""
        run = self.trainer.current
        if run is None or run.model is None or run.id == self._learned_run:
            return
        self._learned_run = run.id
        if self.learned is not None:
            del self.served[self.learned]
        name = f"learned-{run.settings.dataset}-{run.settings.kind}"
        self.served[name] = Served.check(name, run.model)
        self.learned = name

    def pick(self, name: Any) -> Served:
        """The served network called ``name``; the first one when ``name`` is None."""
        self.take_learned()
        if name is None:
            return next(iter(self.served.values()))
        if not isinstance(name, str) or name not in self.served:
            names = ", ".join(self.served)
            raise ArgumentError(f"model must be one of {names}; got {name!r}")
        return self.served[name]

    # ---- routes ---------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def models(self, request: Request) -> Response:
        self.take_learned()
        defaults: dict[str, str | None] = {}
        for d in ("mnist", "fashion"):  # the most accurate; the first of equals
            shipped = [s for n, s in self.served.items() if s.dataset == d and n != self.learned]
            defaults[d] = max(shipped, key=lambda s: s.accuracy).name if shipped else None
        return JSONResponse(
            {
                "models": [s.describe() for s in self.served.values()],
                "default": defaults,
                "learned": self.learned,
            }
        )

    async def predict(self, request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise ArgumentError("the body must be a JSON object")
        unknown = sorted(set(body) - {"pixels", "image", "model", "preprocess"})
        if unknown:
            raise ArgumentError(f"unknown field {unknown[0]!r}")
        served = self.pick(body.get("model"))
        preprocess = body.get("preprocess", True)
        if not isinstance(preprocess, bool):
            raise ArgumentError(f"preprocess must be true or false, got {preprocess!r}")
        if ("pixels" in body) == ("image" in body):
            raise ArgumentError("give exactly one of pixels (784 grey values) or image")
        if "pixels" in body:
            grid = _pixels(body["pixels"])
            image = served.prepare(grid.round().astype(np.uint8)) if preprocess else grid
        else:
            image = await run_in_threadpool(_picture, _data_url(body["image"]), served)
        image = np.rint(image).astype(np.uint8)
        return JSONResponse(await run_in_threadpool(served.answer, image))

    async def _image_request(self, request: Request, *extra: str) -> tuple[Served, Any, Any]:
        """The network, the 28x28 uint8 image and the body of an /api/inside or
        /api/saliency request: ``{"pixels": [784 values], "model", "preprocess"}`` plus
        the fields ``extra``."""
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise ArgumentError("the body must be a JSON object")
        unknown = sorted(set(body) - {"pixels", "model", "preprocess", *extra})
        if unknown:
            raise ArgumentError(f"unknown field {unknown[0]!r}")
        served = self.pick(body.get("model"))
        preprocess = body.get("preprocess", True)
        if not isinstance(preprocess, bool):
            raise ArgumentError(f"preprocess must be true or false, got {preprocess!r}")
        if "pixels" not in body:
            raise ArgumentError("pixels (784 grey values) are missing")
        grid = _pixels(body["pixels"])
        image = served.prepare(grid.round().astype(np.uint8)) if preprocess else grid
        return served, np.rint(image).astype(np.uint8), body

    async def inside(self, request: Request) -> Response:
        served, image, _ = await self._image_request(request)
        return JSONResponse(await run_in_threadpool(served.inside, image))

    async def saliency(self, request: Request) -> Response:
        served, image, body = await self._image_request(request, "class")
        target = body.get("class")
        if target is not None and (
            not isinstance(target, int)
            or isinstance(target, bool)
            or not 0 <= target < len(served.classes)
        ):
            raise ArgumentError(
                f"class must be an integer from 0 to {len(served.classes) - 1}, got {target!r}"
            )
        return JSONResponse(await run_in_threadpool(served.why, image, target))

    async def favicon(self, request: Request) -> Response:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    async def weights(self, request: Request) -> Response:
        served = self.pick(request.query_params.get("model"))
        count = _query_int(request, "count", 32, 1, 256)
        return JSONResponse(served.first_weights(count))

    async def sample(self, request: Request) -> Response:
        dataset = get_spec(request.query_params.get("dataset", "fashion")).name
        _, (x_test, y_test) = await run_in_threadpool(self.trainer.dataset, dataset)
        default = int(np.random.default_rng().integers(len(x_test)))
        index = _query_int(request, "index", default, 0, len(x_test) - 1)
        label = int(y_test[index])
        return JSONResponse(
            {
                "dataset": dataset,
                "index": index,
                "label": label,
                "class": get_spec(dataset).classes[label],
                "pixels": x_test[index].reshape(-1).tolist(),
            }
        )

    async def train_start(self, request: Request) -> Response:
        settings = TrainSettings.from_json(await _json_body(request))
        await run_in_threadpool(self.trainer.dataset, settings.dataset)  # here, or a 409 now
        run = self.trainer.start(settings)
        return JSONResponse({"run": run.id, "settings": settings.to_json()}, status_code=202)

    async def train_status(self, request: Request) -> Response:
        run = self.trainer.current
        if run is None:
            return JSONResponse({"run": None, "status": "idle"})
        return JSONResponse(
            {
                "run": run.id,
                "status": run.status,
                "settings": run.settings.to_json(),
                "events": len(run.events),
            }
        )

    async def train_stop(self, request: Request) -> Response:
        run = self.trainer.current
        if run is None:
            return JSONResponse({"run": None, "status": "idle"})
        run.stop()
        await run_in_threadpool(run.join, 10.0)
        return JSONResponse({"run": run.id, "status": run.status})

    async def train_events(self, request: Request) -> Response:
        run = self.trainer.current
        if run is None:
            raise _bad("no training run has been started", 404)

        async def stream() -> AsyncIterator[str]:
            seen, quiet = 0, 0
            while True:
                running = run.running
                events = run.events_from(seen)
                for event in events:
                    yield f"id: {seen}\ndata: {json.dumps(event)}\n\n"
                    seen += 1
                if not running and not events:
                    return
                quiet = 0 if events else quiet + 1
                if quiet == HEARTBEAT:  # a comment line: keeps proxies and browsers patient
                    yield ": still training\n\n"
                    quiet = 0
                await asyncio.sleep(POLL_SECONDS)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """Query parameter ``name``: ASCII digits only (``str.isdigit`` and ``int`` also take
    "²" or "١"), at most nine of them, from ``lo`` to ``hi``."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not lo <= int(raw) <= hi:
        raise ArgumentError(f"{name} must be an integer from {lo} to {hi}, got {raw!r}")
    return int(raw)


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    elif isinstance(exc, (RunBusyError, DatasetMissingError)):
        status, message = 409, str(exc)
    elif isinstance(exc, DatasetError):
        status, message = 503, str(exc)
    else:
        status, message = 400, str(exc)
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    models: Mapping[str, ModelSpec] | None = None,
    *,
    trainer: Trainer | None = None,
    allowed_hosts: Iterable[str] = LOOPBACK,
) -> Starlette:
    """The demo's Starlette application.

    Parameters
    ----------
    models : mapping of name to ModelSpec, optional
        The networks to serve, by the name the page shows; each is a shipped network's name,
        a model file or a ``Sequential``. The page offers each for its dataset and starts
        with the most accurate (by the test accuracy in its metadata; the first of equals).
        By default every shipped network that is installed.
    trainer : Trainer, optional
        Runs the Learn page's training (a new one by default).
    allowed_hosts : iterable of str, optional
        The names (or IP addresses) requests may give in their Host header; others get a
        400. By default this machine's loopback names: localhost, 127.0.0.1 and ::1.

    Raises
    ------
    ArgumentError, ModelFileError
        When there is no model, or one cannot be found or read, or does not classify
        28x28 images, or a host name is malformed.
    """
    if isinstance(allowed_hosts, str):
        raise ArgumentError(f"allowed_hosts must be a list of names, got {allowed_hosts!r}")
    try:
        hosts = [check_host_name(name) for name in allowed_hosts]
    except ValueError as e:
        raise ArgumentError(f"allowed_hosts: {e}") from None
    if models is None:
        from barenet import pretrained

        models = {name: name for name in pretrained.available()}
    served = [Served.check(name, resolve_model(spec)) for name, spec in models.items()]
    if not served:
        raise ArgumentError("no model to serve: give one, or install the shipped weights")
    state = App(served, trainer or Trainer())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(state.trainer.stop)

    routes = [
        Route("/", state.index),
        Route("/api/models", state.models),
        Route("/api/predict", state.predict, methods=["POST"]),
        Route("/api/weights", state.weights),
        Route("/api/inside", state.inside, methods=["POST"]),
        Route("/api/saliency", state.saliency, methods=["POST"]),
        Route("/favicon.ico", state.favicon),
        Route("/api/sample", state.sample),
        Route("/api/train", state.train_start, methods=["POST"]),
        Route("/api/train", state.train_status, methods=["GET"]),
        Route("/api/train/stop", state.train_stop, methods=["POST"]),
        Route("/api/train/events", state.train_events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(Guard, allowed_hosts=hosts, max_body=MAX_BODY)],
        exception_handlers={HTTPException: _error, BarenetError: _error},
    )
    app.state.barenet = state
    return app
