"""Reading the web demo's requests: JSON bodies read up to a limit, drawn pixels, pictures
sent as data URLs (decoded a few at a time), and integer query parameters. What is wrong
with a request is raised as ``ArgumentError`` (a 400) or an ``HTTPException`` with its
status, each naming what is wrong."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from typing import Any

import numpy as np
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from barenet.errors import ArgumentError
from barenet.preprocess import MAX_PIXELS, decode_image
from barenet.web.served import SIDE, Served

__all__ = [
    "DECODERS",
    "MAX_BODY",
    "MAX_IMAGE_PIXELS",
    "bad",
    "data_url",
    "json_body",
    "picture",
    "pixels",
    "query_int",
]

MAX_BODY = 1 << 20  #: largest request body accepted, in bytes (1 MiB)
MAX_IMAGE_PIXELS = MAX_PIXELS  #: largest picture (width x height) decoded, as in predict
DECODERS = 2  #: pictures decoded at once (each may take ~400 MB at MAX_PIXELS)
IMAGE_TYPES = ("png", "jpeg", "webp", "gif", "bmp")
_DECODING = threading.BoundedSemaphore(DECODERS)


def bad(message: str, status: int = 400) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


async def json_body(request: Request, limit: int = MAX_BODY) -> Any:
    """The request's JSON body, read up to ``limit`` bytes (413 beyond)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise bad("the body must be JSON (Content-Type: application/json)", 415)
    length = request.headers.get("content-length", "")
    too_big = f"the body is larger than the limit of {limit} bytes"
    if re.fullmatch(r"[0-9]{1,19}", length) and int(length) > limit:
        raise bad(too_big, 413)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise bad(too_big, 413)
    except ClientDisconnect:  # nobody is left to answer; the 400 goes nowhere
        raise bad("the client hung up before the body ended") from None
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise bad(f"the body is not valid JSON ({e})") from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def pixels(value: Any) -> np.ndarray:
    """A list of 784 numbers in 0..255 as a 28x28 float64 array."""
    n = SIDE * SIDE
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise ArgumentError(f"pixels must be a list of {n} grey values (28x28), got {got}")
    for i, v in enumerate(value):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 255:
            raise ArgumentError(f"pixels[{i}] must be a number from 0 to 255, got {v!r}")
    return np.array(value, dtype=np.float64).reshape(SIDE, SIDE)


def data_url(value: Any) -> bytes:
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


def picture(data: bytes, served: Served) -> np.ndarray:
    """Picture bytes as the 28x28 image ``served`` reads, decoded and prepared as ``barenet
    predict`` reads a file; at most ``DECODERS`` at once, to bound the memory they take."""
    with _DECODING:
        return served.prepare(decode_image(data, "image"))


def query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """Query parameter ``name``: ASCII digits only (``str.isdigit`` and ``int`` also take
    "²" or "١"), at most nine of them, from ``lo`` to ``hi``."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not lo <= int(raw) <= hi:
        raise ArgumentError(f"{name} must be an integer from {lo} to {hi}, got {raw!r}")
    return int(raw)
