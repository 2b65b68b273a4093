"""The web demo's routes about one picture: the answer, what the network sees inside it and
why, the first layer's weights, and test images to try.

``POST /api/predict``, ``/api/inside`` and ``/api/saliency`` read a JSON object naming the
network (``"model"``), the 784 grey values (``"pixels"``) and whether to prepare them as
``barenet predict`` prepares a picture (``"preprocess"``, default true); ``/api/predict``
also takes a picture as a data URL (``"image"``) instead of the pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from barenet.datasets.specs import get_spec
from barenet.errors import ArgumentError
from barenet.web.reading import data_url, json_body, picture, pixels, query_int
from barenet.web.served import Served
from barenet.web.state import state_of

__all__ = ["ROUTES"]


async def _picture_body(request: Request, *fields: str) -> tuple[dict[str, Any], Served, bool]:
    """The JSON object a picture request sent, the network it names, and whether to prepare
    the pixels; ``ArgumentError`` for a field other than ``pixels``, ``model``,
    ``preprocess`` and ``fields``."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ArgumentError("the body must be a JSON object")
    unknown = sorted(set(body) - {"pixels", "model", "preprocess", *fields})
    if unknown:
        raise ArgumentError(f"unknown field {unknown[0]!r}")
    served = state_of(request).pick(body.get("model"))
    preprocess = body.get("preprocess", True)
    if not isinstance(preprocess, bool):
        raise ArgumentError(f"preprocess must be true or false, got {preprocess!r}")
    return body, served, preprocess


def _drawn(value: Any, served: Served, preprocess: bool) -> np.ndarray:
    """The 28x28 grey values ``value`` as the image ``served`` reads (prepared as a picture
    unless ``preprocess`` is false), in 0..255."""
    grid = pixels(value)
    return served.prepare(grid.round().astype(np.uint8)) if preprocess else grid


async def predict(request: Request) -> Response:
    body, served, preprocess = await _picture_body(request, "image")
    if ("pixels" in body) == ("image" in body):
        raise ArgumentError("give exactly one of pixels (784 grey values) or image")
    if "pixels" in body:
        image = _drawn(body["pixels"], served, preprocess)
    else:
        image = await run_in_threadpool(picture, data_url(body["image"]), served)
    image = np.rint(image).astype(np.uint8)
    return JSONResponse(await run_in_threadpool(served.answer, image))


async def _drawing(request: Request, *fields: str) -> tuple[Served, np.ndarray, dict[str, Any]]:
    """The network, the 28x28 uint8 image and the body of a request that must send
    ``pixels`` (/api/inside, /api/saliency), with the fields ``fields`` besides."""
    body, served, preprocess = await _picture_body(request, *fields)
    if "pixels" not in body:
        raise ArgumentError("pixels (784 grey values) are missing")
    image = _drawn(body["pixels"], served, preprocess)
    return served, np.rint(image).astype(np.uint8), body


async def inside(request: Request) -> Response:
    served, image, _ = await _drawing(request)
    return JSONResponse(await run_in_threadpool(served.inside, image))


async def saliency(request: Request) -> Response:
    served, image, body = await _drawing(request, "class")
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


async def weights(request: Request) -> Response:
    served = state_of(request).pick(request.query_params.get("model"))
    count = query_int(request, "count", 32, 1, 256)
    return JSONResponse(served.first_weights(count))


async def sample(request: Request) -> Response:
    """A test image of a dataset, by index or at random, with its label."""
    dataset = get_spec(request.query_params.get("dataset", "fashion")).name
    trainer = state_of(request).trainer
    _, (x_test, y_test) = await run_in_threadpool(trainer.dataset, dataset)
    default = int(np.random.default_rng().integers(len(x_test)))
    index = query_int(request, "index", default, 0, len(x_test) - 1)
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


ROUTES = [
    Route("/api/predict", predict, methods=["POST"]),
    Route("/api/weights", weights),
    Route("/api/inside", inside, methods=["POST"]),
    Route("/api/saliency", saliency, methods=["POST"]),
    Route("/api/sample", sample),
]
