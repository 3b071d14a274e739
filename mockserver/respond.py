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
) -> list[bytes]:
    """A whole answer: its media type (unless `extra` sets one), length and headers."""
    given = dict(extra)
    named = {name.lower() for name in given}
    headers = [("Content-Type", media)] if media and "content-type" not in named else []
    headers += [("Content-Length", str(len(body)))] if body else []
    start_response(status_line(status), [*headers, *given.items()])
    return [body] if body else []


def respond_problem(
    environ: Environ, start_response: StartResponse, problem: Problem, media: str | None = None
) -> list[bytes]:
    """A problem document, with the request's trace id."""
    body = codec.dumps(problem.body(trace_id(environ.get("HTTP_TRACEPARENT"))))
    return respond(start_response, problem.status, body, media or PROBLEM_JSON, problem.headers)
