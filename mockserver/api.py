"""The API's request path inside Flask: route (404/405) → auth (401/403) → validate
(400/413/415) → resource handler → response. Each step raises a `Problem` to answer with an
error; errors of every kind become problem details. One log line per request.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from flask import Response, current_app, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from mockserver import codec, connection, log
from mockserver.auth import required_right
from mockserver.journal import Trail
from mockserver.problems import Problem, status_line, trace_id
from mockserver.query import decode
from mockserver.resource import Exchange, Reply
from mockserver.router import Operation
from mockserver.session import Session
from mockserver.stream import chunked

if TYPE_CHECKING:
    from mockserver.app import State

JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json; charset=utf-8"
_INVALID = frozenset({400, 413, 415, 422})  # answers that mean "the request broke the contract"


def state() -> State:
    found: State = current_app.extensions["mockserver"]
    return found


def session(environ: dict[str, Any] | None = None) -> Session:
    """The request's session (the gate picked it; the default one otherwise)."""
    found: Session | None = (environ or request.environ).get("mockserver.session")
    return found if found is not None else state().sessions.get()


class ApiResponse(Response):
    """A Flask response that trusts the app's Location headers: they are URIs already (ids are
    percent-encoded), so werkzeug's IRI-to-URI pass (~40 us a response) is skipped for them."""

    def get_wsgi_headers(self, environ: Any) -> Headers:
        location = self.headers.get("Location")
        if location is None or not location.isascii():
            return super().get_wsgi_headers(environ)
        del self.headers["Location"]
        try:
            headers = super().get_wsgi_headers(environ)
        finally:
            self.headers["Location"] = location
        headers["Location"] = location
        return headers


def trail(environ: dict[str, Any] | None = None) -> Trail:
    """What the request leaves for its log line and journal entry (the gate made it)."""
    environ = environ or request.environ
    found: Trail | None = environ.get("mockserver.trail")
    if found is None:
        found = environ["mockserver.trail"] = Trail()
    return found


def api(path: str) -> Response:
    holder = state()
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    environ, headers, method, path = req.environ, req.headers, req.method, req.path
    if path.startswith("/_mock/"):  # no control view took it: 404, or 405 with Allow
        holder.control_router.match(method, path)
    match = holder.router.match(method, path)
    operation = match.operation
    notes = trail(environ)
    notes.operation = operation
    right = required_right(operation.method, operation.resource)
    identity = holder.auth.identify(headers.get("Authorization"), right)
    query = decode(environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "replace"))
    checked = holder.validator.check(req, match, query.params)
    exchange = Exchange(
        match,
        query,
        checked.body,
        identity,
        _base_url(environ),
        checked.warnings,
        session(environ).stores,
    )
    if headers.get("MPT-Streaming", "").strip().lower() == "true":
        _streaming(exchange, environ, holder.settings.max_export)
    reply = holder.resources.handle(exchange)
    notes.extras.update(record=reply.record_id, warnings=exchange.warnings)
    if exchange.streaming:
        notes.extras["streamed"] = reply.headers.get("MPT-Item-Count")
    return _reply(reply, operation, environ)


def _streaming(exchange: Exchange, environ: dict[str, Any], cap: int) -> None:
    """A streamed read: its format, cap, and what a fault rule does to it."""
    action = environ.get("mockserver.action")
    exchange.streaming = True
    exchange.accept = environ.get("HTTP_ACCEPT")
    exchange.max_export = cap
    exchange.stream_fault = action.stream if action is not None else None
    exchange.cut = functools.partial(connection.apply, "empty_response", environ, None)


def _base_url(environ: dict[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{environ['wsgi.url_scheme']}://{host}{environ.get('SCRIPT_NAME', '')}"


def serve_spec() -> Response:
    holder = state()
    with contextlib.suppress(Problem):  # a spec may not declare its own document
        trail().operation = holder.router.match("GET", request.path).operation
    return ApiResponse(holder.spec_json, 200, content_type=JSON)


def _reply(reply: Reply, operation: Operation, environ: dict[str, Any]) -> Response:
    if reply.body is None:
        return ApiResponse(status=reply.status, headers=reply.headers)
    if isinstance(reply.body, Iterator):  # a stream: sent as it is made
        parts, headers = reply.body, dict(reply.headers)
        if "uwsgi.version" in environ and environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
            parts, headers["Transfer-Encoding"] = chunked(parts), "chunked"
        return ApiResponse(parts, reply.status, headers, direct_passthrough=True)
    media = _media_type(operation, reply.status, JSON)
    body = reply.body if isinstance(reply.body, bytes) else codec.dumps(reply.body)
    return ApiResponse(body, reply.status, reply.headers, content_type=media)


def _media_type(operation: Operation | None, status: int, fallback: str) -> str:
    """The media type the spec declares for this answer (problem+json or json)."""
    if operation is None:
        return fallback
    known = state().media_types
    key = (operation.operation_id, status)
    if key not in known:
        declared = operation.node.get("responses", {}).get(str(status))
        if isinstance(declared, dict) and "$ref" in declared:
            declared = state().spec.schema(declared["$ref"])
        content = declared.get("content") if isinstance(declared, dict) else None
        known[key] = f"{next(iter(content))}; charset=utf-8" if content else fallback
    return known[key]


def problem_response(problem: Problem) -> Response:
    trace = trace_id(request.headers.get("traceparent"))
    notes = trail()
    notes.extras["error"] = problem.errors or problem.detail
    if problem.status in _INVALID and notes.violations is None:
        notes.violations = problem.errors or {"$": [str(problem)]}
    media = _media_type(notes.operation, problem.status, PROBLEM_JSON)
    body = codec.dumps(problem.body(trace))
    return ApiResponse(body, problem.status, headers=problem.headers, content_type=media)


def http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 405:  # a method Flask does not route at all (QUERY, PROPFIND...)
        try:
            state().router.match(request.method, request.path)
        except Problem as problem:
            return problem_response(problem)
    detail = error.description
    if status == 413:
        limit = state().settings.max_body_bytes
        detail = f"The request body is larger than the limit of {limit} bytes."
    return problem_response(Problem(status, detail))


def crash(error: Exception) -> Response:
    log.logger.exception("unexpected error on %s %s", request.method, request.path)
    return problem_response(Problem(500, "The mock server failed unexpectedly; see its log."))


def finish(response: Response) -> Response:
    environ = request.environ
    notes = trail(environ)
    action = environ.get("mockserver.action")
    if action is not None:  # a fault rule or `Prefer` touched this request
        notes.extras["fault"] = action.rule
        if action.status and response.status_code < 300:
            response.status_code = action.status  # the normal answer, the rule's status
            response.headers.update(action.headers)
    response.status = status_line(response.status_code)
    millis = (time.perf_counter() - notes.started) * 1000
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    query = environ.get("QUERY_STRING", "")
    checker = state().checker
    if checker is not None and not response.is_streamed:
        found = checker.check(
            environ["REQUEST_METHOD"],
            path,
            response.status_code,
            response.headers,
            response.get_data(),
        )
        for finding in found:
            log.logger.warning("response does not conform to the spec: %s", finding)
    target = f"{path}?{unquote(query)}" if query else path
    log.request_line(environ["REQUEST_METHOD"], target, response.status_code, millis, notes.extras)
    notes.logged = True
    notes.status = response.status_code
    return response
