"""What every request must pass before it reaches a route, and the headers every answer gets.

* The ``Host`` header must name this server (400 otherwise). Without this, DNS rebinding
  gives any web page the whole API: its own name, re-pointed at 127.0.0.1, reaches the
  server from the visitor's browser as a same-origin request.
* A request that may change something (any method but GET, HEAD and OPTIONS) must not come
  from another site's page (a foreign ``Origin`` header: 403) and must carry JSON
  (``Content-Type: application/json``: 415), which a cross-site form cannot send.
* A body announced as larger than the limit is refused before it is read (413).
* Every answer, pages, files, API and errors alike, carries the security headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from barenet.web import LOOPBACK

__all__ = ["LOOPBACK", "SECURITY_HEADERS", "Guard", "check_host_name", "host_of"]

#: Sent with every answer: no foreign scripts, styles or frames; no guessing content types;
#: no Referer sent onwards.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")
_NAME = re.compile(r"[A-Za-z0-9._-]+|\[?[0-9A-Fa-f:.]+\]?")


def host_of(header: str) -> str | None:
    """The host name of a ``Host`` header value, lower case, IPv6 without brackets
    (``"[::1]:8000"`` -> ``"::1"``); None when the value is malformed."""
    match = _HOST.fullmatch(header)
    return match[1].strip("[]").lower() if match else None


def check_host_name(name: str) -> str:
    """``name`` (a host name or IP address) as ``host_of`` gives it; ValueError if malformed."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"not a host name or IP address: {name!r}")
    return name.strip("[]").lower()


class Guard:
    """ASGI middleware applying the module's checks and headers around ``app``.

    Parameters
    ----------
    app : ASGI application
    allowed_hosts : iterable of str
        The host names (or IP addresses) the ``Host`` header may give.
    max_body : int
        The largest ``Content-Length`` accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str], max_body: int) -> None:
        self.app = app
        self.hosts = frozenset(check_host_name(h) for h in allowed_hosts)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        refusal = self.refusal(Headers(scope=scope), scope["method"])
        if refusal is None:
            await self.app(scope, receive, send_with_headers)
        else:
            status, message = refusal
            await JSONResponse({"error": message}, status)(scope, receive, send_with_headers)

    def refusal(self, headers: Headers, method: str) -> tuple[int, str] | None:
        """``(status, message)`` for a request these checks refuse, else None."""
        header = headers.get("host", "")
        host = host_of(header)
        if host not in self.hosts:
            return 400, (
                f"this server does not answer to the Host {header!r}; to reach it by that "
                "name, start it with --allow-host NAME"
            )
        length = headers.get("content-length")
        if length is not None and not re.fullmatch(r"[0-9]{1,19}", length):
            return 400, f"Content-Length must be a number of bytes, got {length!r}"
        if length is not None and int(length) > self.max_body:
            return 413, f"the body is larger than the limit of {self.max_body} bytes"
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, header):
            return 403, f"requests from another site ({origin!r}) may not change anything here"
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return 415, "the body must be JSON (Content-Type: application/json)"
        return None


def _same_origin(origin: str, host_header: str) -> bool:
    """True when ``origin`` is ``http(s)://`` followed by the request's own Host."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()
