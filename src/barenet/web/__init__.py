"""``barenet serve``: a page where you draw a digit and watch a network answer and learn.

The server needs the ``web`` extra (``pip install 'barenet[web]'``); it is imported only
when the command runs, so the rest of barenet works without it.

>>> from barenet.web.app import create_app             # doctest: +SKIP
>>> app = create_app({"mnist-mlp": "mnist-mlp"})        # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any

from barenet.errors import ArgumentError, BarenetError

__all__ = ["add_serve_parser", "allowed_hosts", "bind", "run_serve"]

LOOPBACK = ("localhost", "127.0.0.1", "::1")  #: names that always mean this machine


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
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests made to this host name (repeatable); by default only "
        "the --host name, and localhost, 127.0.0.1 and ::1 when serving on loopback or on "
        "every interface",
    )
    p.add_argument(
        "--model",
        default="mnist-cnn",
        metavar="NAME|PATH",
        help="network listed first: a shipped one or a model file; the page offers it and "
        "every shipped network, starting on the most accurate (default %(default)s)",
    )
    p.set_defaults(func=run_serve)
    return p


def _models(model: str) -> dict[str, Any]:
    """The networks to serve: ``model`` first, then every installed shipped one."""
    from barenet import pretrained

    name = model if model in pretrained.PRETRAINED else Path(model).stem
    models: dict[str, Any] = {name: model}
    for shipped in pretrained.available():
        models.setdefault(shipped, shipped)
    return models


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``; ``ArgumentError`` naming the problem
    (an unknown host, a port in use, ...) when it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError, ValueError) as e:  # gaierror is an OSError
        raise ArgumentError(f"host {host!r} is not an address this machine has ({e})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ArgumentError(f"cannot serve on {host} port {port}: {e.strerror or e}") from None
    return sock


def _is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address.split("%")[0]).is_loopback


def allowed_hosts(host: str, address: str, extra: list[str]) -> list[str]:
    """The Host names the server answers to: ``host`` as given, the loopback names when
    ``address`` (what it bound) is loopback or every interface, and ``extra``."""
    names = [host, *extra]
    if _is_loopback(address) or ipaddress.ip_address(address.split("%")[0]).is_unspecified:
        names += LOOPBACK
    return list(dict.fromkeys(names))


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
    extra = list(getattr(args, "allow_host", None) or [])
    sock = bind(args.host, args.port)
    try:
        address = sock.getsockname()[0]
        hosts = allowed_hosts(args.host, address, extra)
        app = create_app(_models(args.model), allowed_hosts=hosts)
        if not _is_loopback(address):
            print(
                f"barenet: warning: {args.host} is not a loopback address, so the API "
                f"(predictions, training runs) is reachable from the network by anyone who "
                f"can reach port {args.port}; it answers requests made to {', '.join(hosts)} "
                "(add names with --allow-host NAME)",
                file=sys.stderr,
                flush=True,
            )
        shown = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address
        print(f"barenet: serving on http://{shown}:{args.port}/ (Ctrl-C stops)", flush=True)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0
