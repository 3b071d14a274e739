"""CORS, for browser clients, only for the origins `--cors-origin` names (`*`: any).

Off by default: a page on another origin cannot read the mock's answers, nor send it requests
with a bearer token (the browser's preflight gets no permission). With an origin allowed,
preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered here, before fault
rules, the journal and the admin token (browsers send no credentials on a preflight), and
every answer to that origin says which origin may read it and exposes its headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mockserver.respond import Environ, StartResponse, WSGIApp

METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
MAX_AGE = "600"  # seconds a browser may keep a preflight's answer
# Headers a page may read anyway (the CORS-safelisted response headers), so never listed.
_SAFELISTED = {
    "cache-control",
    "content-language",
    "content-length",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
}


class Cors:
    """WSGI middleware: the outermost layer, when `--cors-origin` names any origin."""

    def __init__(self, app: WSGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.any = "*" in origins
        self.origins = frozenset(origins)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and self.allows(origin):
            if is_preflight(environ):
                return self.preflight(environ, start_response)
            start_response = self.wrap(start_response, origin)
        return self.app(environ, start_response)

    def allows(self, origin: str) -> bool:
        return self.any or origin in self.origins

    def preflight(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """`204` granting the method and headers asked for."""
        headers = [
            ("Access-Control-Allow-Origin", environ["HTTP_ORIGIN"]),
            ("Access-Control-Allow-Methods", METHODS),
            ("Access-Control-Max-Age", MAX_AGE),
            ("Vary", "Origin"),
        ]
        asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        if asked:
            headers.append(("Access-Control-Allow-Headers", asked))
        start_response("204 No Content", headers)
        return []

    def wrap(self, start_response: StartResponse, origin: str) -> StartResponse:
        """A start_response that lets `origin` read the answer and all of its headers."""

        def granting(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            exposed = sorted({n for n, _ in headers if n.lower() not in _SAFELISTED})
            granted = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
            if exposed:
                granted.append(("Access-Control-Expose-Headers", ", ".join(exposed)))
            return start_response(status, [*headers, *granted], *rest)

        return granting


def is_preflight(environ: Environ) -> bool:
    return (
        environ["REQUEST_METHOD"] == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
    )
