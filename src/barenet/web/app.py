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

The page and the model list are answered here; the routes about one picture are in
``picture_routes``, the Learn page's in ``train_routes``, the state they share in ``state``
and the networks served in ``served``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from barenet.errors import ArgumentError, BarenetError, DatasetError
from barenet.web import picture_routes, train_routes
from barenet.web.guard import LOOPBACK, Guard, check_host_name
from barenet.web.reading import MAX_BODY, MAX_IMAGE_PIXELS
from barenet.web.served import ModelSpec, Served, resolve_model
from barenet.web.state import App, state_of
from barenet.web.training import DatasetMissingError, RunBusyError, Trainer

__all__ = ["MAX_BODY", "MAX_IMAGE_PIXELS", "ModelSpec", "create_app", "resolve_model"]

STATIC = Path(__file__).resolve().parent / "static"


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html")


async def favicon(request: Request) -> Response:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


async def models(request: Request) -> Response:
    """The networks served, and for each dataset the one the page starts with: the most
    accurate shipped one (the first of equals)."""
    state = state_of(request)
    state.take_learned()
    defaults: dict[str, str | None] = {}
    for d in ("mnist", "fashion"):
        shipped = [s for n, s in state.served.items() if s.dataset == d and n != state.learned]
        defaults[d] = max(shipped, key=lambda s: s.accuracy).name if shipped else None
    return JSONResponse(
        {
            "models": [s.describe() for s in state.served.values()],
            "default": defaults,
            "learned": state.learned,
        }
    )


ROUTES = [
    Route("/", index),
    Route("/api/models", models),
    Route("/favicon.ico", favicon),
]


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
    hosts = _host_names(allowed_hosts)
    state = App(_served(models), trainer or Trainer())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(state.trainer.stop)

    static = Mount("/static", StaticFiles(directory=STATIC), name="static")
    app = Starlette(
        routes=[*ROUTES, *picture_routes.ROUTES, *train_routes.ROUTES, static],
        lifespan=lifespan,
        middleware=[Middleware(Guard, allowed_hosts=hosts, max_body=MAX_BODY)],
        exception_handlers={HTTPException: _error, BarenetError: _error},
    )
    app.state.barenet = state
    return app


def _host_names(allowed_hosts: Iterable[str]) -> list[str]:
    """``allowed_hosts`` checked; ``ArgumentError`` for a string or a malformed name."""
    if isinstance(allowed_hosts, str):
        raise ArgumentError(f"allowed_hosts must be a list of names, got {allowed_hosts!r}")
    try:
        return [check_host_name(name) for name in allowed_hosts]
    except ValueError as e:
        raise ArgumentError(f"allowed_hosts: {e}") from None


def _served(models: Mapping[str, ModelSpec] | None) -> list[Served]:
    """The networks ``models`` names (by default every installed shipped one), loaded and
    checked; ``ArgumentError`` when there is none."""
    if models is None:
        from barenet import pretrained

        models = {name: name for name in pretrained.available()}
    served = [Served.check(name, resolve_model(spec)) for name, spec in models.items()]
    if not served:
        raise ArgumentError("no model to serve: give one, or install the shipped weights")
    return served
