"""``barenet serve``: a page where you draw a digit and watch a network answer and learn.

The server needs the ``web`` extra (``pip install 'barenet[web]'``); it is imported only
when the command runs, so the rest of barenet works without it.

>>> from barenet.web.app import create_app             # doctest: +SKIP
>>> app = create_app({"mnist-mlp": "mnist-mlp"})        # doctest: +SKIP
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from barenet.errors import ArgumentError, BarenetError

__all__ = ["add_serve_parser", "run_serve"]


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` command to an argparse subparsers object; its ``func`` is
    :func:`run_serve`."""
    p = subparsers.add_parser(
        "serve",
        help="open the browser demo: draw a digit, look inside the network, watch it learn",
        description="Serve the demo page and its API (binds to 127.0.0.1 unless --host says "
        "otherwise).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    p.add_argument(
        "--model",
        default="mnist-mlp",
        metavar="mnist-mlp|PATH",
        help="network that reads the drawings: a shipped one or a model file (default %(default)s)",
    )
    p.set_defaults(func=run_serve)
    return p


def _models(model: str) -> dict[str, Any]:
    """The networks to serve: ``model`` first, then the shipped Fashion-MNIST one if any."""
    from barenet import pretrained

    name = model if model in pretrained.PRETRAINED else Path(model).stem
    models: dict[str, Any] = {name: model}
    for shipped in pretrained.available():
        if shipped.startswith("fashion") and shipped not in models:
            models[shipped] = shipped
    return models


def run_serve(args: argparse.Namespace) -> int:
    """Start the server with the options ``add_serve_parser`` defined; returns 0 when it
    stops (Ctrl-C)."""
    if not 0 < args.port < 65536:
        raise ArgumentError(f"port must be from 1 to 65535, got {args.port}")
    try:
        import uvicorn

        from barenet.web.app import create_app
    except ImportError as e:
        raise BarenetError(
            f"barenet serve needs the web extra ({e.name} is missing): pip install 'barenet[web]'"
        ) from None
    app = create_app(_models(args.model))
    print(f"barenet: serving on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2
    )
    return 0
