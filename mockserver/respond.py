"""WSGI plumbing every layer that answers a request uses: the types, and a whole answer (a
body of known length, or a problem document) written straight to `start_response`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mockserver import codec
from mockserver.problems import Problem, status_line, trace_id

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json; charset=utf-8"


def respond(
    start_response: StartResponse,
    status: int,
    body: bytes,
    media: str | None,
    extra: Mapping[str, str],
    head: bool = False,
) -> list[bytes]:
    """A whole answer: its media type (unless `extra` sets one), length and headers; without
    the body for a `head` request (its length still says what a GET would get)."""
    given = dict(extra)
    named = {name.lower() for name in given}
    headers = [("Content-Type", media)] if media and "content-type" not in named else []
    headers += [("Content-Length", str(len(body)))] if body else []
    start_response(status_line(status), [*headers, *given.items()])
    return [body] if body and not head else []


def respond_problem(
    environ: Environ, start_response: StartResponse, problem: Problem, media: str | None = None
) -> list[bytes]:
    """A problem document, with the request's trace id."""
    body = codec.dumps(problem.body(trace_id(environ.get("HTTP_TRACEPARENT"))))
    media = media or PROBLEM_JSON
    return respond(start_response, problem.status, body, media, problem.headers, is_head(environ))


def is_head(environ: Environ) -> bool:
    return bool(environ.get("REQUEST_METHOD") == "HEAD")


def wsgi_text(value: str) -> str:
    """A WSGI string (bytes as latin-1) read as the UTF-8 it was sent in; as it is when ASCII
    (nearly always: no copy)."""
    return value if value.isascii() else value.encode("latin-1").decode("utf-8", "replace")
