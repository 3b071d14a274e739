"""The API lane: an API request from the front to its answer, without Flask. Route (404/405)
→ auth (401/403) → validate (400/413/415) → resource handler → response. Each step raises a
`Problem` to answer with an error; errors of every kind become problem details.

The lane hands a plain werkzeug request straight to the handlers: Flask's request context,
URL map, hooks and teardown cost a third of a plain request's time, so Flask serves only the
control API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from mockserver import codec
from mockserver.auth.identity import required_right
from mockserver.contract.router import Operation
from mockserver.faults import apply
from mockserver.http.answers import (
    ApiResponse,
    crash_answer,
    finish,
    http_answer,
    media_type,
    problem_answer,
)
from mockserver.http.state import KEY, RequestState, of
from mockserver.problems import Problem, status_line
from mockserver.query.params import decode
from mockserver.resources.handlers import Exchange, Reply
from mockserver.resources.streaming import chunked
from mockserver.respond import JSON, Environ, StartResponse, wsgi_text
from mockserver.sessions.answer import kept
from mockserver.state import State

SPEC_PATH = "/public/v1/audit/openapi.json"  # the spec document, as the platform serves it


class ApiRequest(Request):
    """A werkzeug request whose body limit is the server's (`--max-body-bytes`)."""

    def __init__(self, environ: Environ, limit: int) -> None:
        super().__init__(environ, populate_request=False)  # no environ <-> request cycle
        self.max_content_length = limit


def serve(holder: State, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """An API request, answered."""
    req = ApiRequest(environ, holder.settings.max_body_bytes)
    try:
        response = handle(holder, req)
    except Problem as problem:
        response = problem_answer(holder, req, problem)
    except HTTPException as error:
        response = http_answer(holder, req, error)
    except Exception:
        response = crash_answer(holder, req)
    return _sent(finish(holder, req, response), environ, start_response)


def _sent(response: Response, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A whole body answered as it is, with the headers it has; werkzeug's own call (which
    checks every header, ~10 % of a plain request) for the rest: a stream, a HEAD, the
    statuses without a body, a body without its length. The journal keeps the answer."""
    trail = environ[KEY].trail
    headers = response.headers.to_wsgi_list()
    if (
        response.is_streamed
        or environ["REQUEST_METHOD"] == "HEAD"
        or response.status_code in (204, 304)
        or "Content-Length" not in response.headers
    ):
        trail.answer = kept(headers, None if response.is_streamed else response.get_data())
        return response(environ, start_response)
    body = response.get_data()
    trail.answer = kept(headers, body)
    start_response(response.status, headers)
    return [body]


def handle(holder: State, req: Request) -> Response:
    environ, method, path = req.environ, req.method, req.path  # headers: the environ's own keys
    request = of(environ)
    if path == SPEC_PATH and method in ("GET", "HEAD"):
        return _spec_document(holder, request)
    match = request.match or holder.router.match(method, path)
    operation = match.operation
    request.trail.operation = operation
    identity = request.identity  # found by the front, with the match
    if identity is None:
        right = required_right(operation.method, operation.resource)
        identity = holder.auth.identify(environ.get("HTTP_AUTHORIZATION"), right)
    query = decode(wsgi_text(environ.get("QUERY_STRING", "")))
    checked = holder.validator.check(req, match, query.params, request.body)
    session = request.session or holder.sessions.get()
    exchange = Exchange(
        match, query, checked.body, identity, _base_url(environ), checked.warnings, session.storage
    )
    exchange.prefer = environ.get("HTTP_PREFER")
    if environ.get("HTTP_MPT_STREAMING", "").strip().lower() == "true":
        _streaming(exchange, request, environ, holder.settings.max_export)
    reply = holder.resources.handle(exchange)
    request.trail.extras.update(record=reply.record_id, warnings=exchange.warnings)
    if exchange.streaming:
        request.trail.extras["streamed"] = reply.headers.get("MPT-Item-Count")
    return _reply(holder, reply, operation, environ)


def _spec_document(holder: State, request: RequestState) -> Response:
    with contextlib.suppress(Problem):  # a spec may not declare its own document
        request.trail.operation = holder.router.match("GET", SPEC_PATH).operation
    return ApiResponse(holder.spec_json, 200, content_type=JSON)


def _streaming(exchange: Exchange, request: RequestState, environ: Environ, cap: int) -> None:
    """A streamed read: its format, cap, and what a fault rule does to it."""
    exchange.streaming = True
    exchange.accept = environ.get("HTTP_ACCEPT")
    exchange.max_export = cap
    exchange.stream_changes = apply.stream_changes(request.action, environ)


def _base_url(environ: Environ) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{environ['wsgi.url_scheme']}://{host}{environ.get('SCRIPT_NAME', '')}"


def _reply(holder: State, reply: Reply, operation: Operation, environ: Environ) -> Response:
    if reply.body is None:  # no body: no Content-Type either
        response = ApiResponse(status=reply.status, headers=reply.headers)
        del response.headers["Content-Type"]
        return response
    if isinstance(reply.body, Iterator):  # a stream: sent as it is made
        parts, headers = reply.body, dict(reply.headers)
        if "uwsgi.version" in environ and environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
            parts, headers["Transfer-Encoding"] = chunked(parts), "chunked"
        return ApiResponse(parts, reply.status, headers, direct_passthrough=True)
    media = media_type(holder, operation, reply.status, JSON)
    body: Any = reply.body if isinstance(reply.body, bytes) else codec.dumps(reply.body)
    return ApiResponse(body, status_line(reply.status), reply.headers, content_type=media)
