"""The API's request path: route (404/405) → auth (401/403) → validate (400/413/415) →
resource handler → response. Each step raises a `Problem` to answer with an error; errors of
every kind become problem details. One log line per request.

API requests take the lane (`serve`): a werkzeug request handed straight to the handlers,
without Flask's request context, URL map, hooks and teardown, which cost a third of a plain
request's time. Flask serves the rest (the control API, the spec document) with the same
handlers, through the wrappers at the end.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Response, current_app, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from mockserver import codec, connection, log
from mockserver.auth import required_right
from mockserver.journal import Trail
from mockserver.masking import shown
from mockserver.problems import Problem, status_line, trace_id
from mockserver.query import decode
from mockserver.resource import Exchange, Reply
from mockserver.router import Operation
from mockserver.session import Session
from mockserver.stream import chunked

if TYPE_CHECKING:
    from mockserver.app import State

SPEC_PATH = "/public/v1/audit/openapi.json"  # the spec document, served by Flask
JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json; charset=utf-8"
_INVALID = frozenset({400, 411, 413, 414, 415, 422})  # "the request broke the contract"


def state() -> State:
    found: State = current_app.extensions["mockserver"]
    return found


def session(holder: State, environ: dict[str, Any]) -> Session:
    """The request's session (the gate picked it; the default one otherwise)."""
    found: Session | None = environ.get("mockserver.session")
    return found if found is not None else holder.sessions.get()


class ApiRequest(Request):
    """A werkzeug request whose body limit is the server's (`--max-body-bytes`)."""

    def __init__(self, environ: dict[str, Any], limit: int) -> None:
        super().__init__(environ)
        self.max_content_length = limit


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


def serve(
    holder: State, environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """An API request, answered without Flask."""
    req = ApiRequest(environ, holder.settings.max_body_bytes)
    try:
        response = handle(holder, req)
    except Problem as problem:
        response = problem_answer(holder, req, problem)
    except HTTPException as error:
        response = http_answer(holder, req, error)
    except Exception:
        response = crash_answer(holder, req)
    return _sent(finished(holder, req, response), environ, start_response)


def _sent(
    response: Response, environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """A whole body answered as it is, with the headers it has; werkzeug's own call (which
    checks every header, ~10 % of a plain request) for the rest: a stream, a HEAD, the
    statuses without a body, a body without its length."""
    if (
        response.is_streamed
        or environ["REQUEST_METHOD"] == "HEAD"
        or response.status_code in (204, 304)
        or "Content-Length" not in response.headers
    ):
        return response(environ, start_response)
    start_response(response.status, response.headers.to_wsgi_list())
    return [response.get_data()]


def handle(holder: State, req: Request) -> Response:
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
        session(holder, environ).stores,
    )
    if headers.get("MPT-Streaming", "").strip().lower() == "true":
        _streaming(exchange, environ, holder.settings.max_export)
    reply = holder.resources.handle(exchange)
    notes.extras.update(record=reply.record_id, warnings=exchange.warnings)
    if exchange.streaming:
        notes.extras["streamed"] = reply.headers.get("MPT-Item-Count")
    return _reply(holder, reply, operation, environ)


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
        trail(request.environ).operation = holder.router.match("GET", request.path).operation
    return ApiResponse(holder.spec_json, 200, content_type=JSON)


def _reply(holder: State, reply: Reply, operation: Operation, environ: dict[str, Any]) -> Response:
    if reply.body is None:
        return ApiResponse(status=reply.status, headers=reply.headers)
    if isinstance(reply.body, Iterator):  # a stream: sent as it is made
        parts, headers = reply.body, dict(reply.headers)
        if "uwsgi.version" in environ and environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
            parts, headers["Transfer-Encoding"] = chunked(parts), "chunked"
        return ApiResponse(parts, reply.status, headers, direct_passthrough=True)
    media = media_type(holder, operation, reply.status, JSON)
    body = reply.body if isinstance(reply.body, bytes) else codec.dumps(reply.body)
    return ApiResponse(body, reply.status, reply.headers, content_type=media)


def media_type(
    holder: State, operation: Operation | None, status: int, fallback: str | None
) -> str | None:
    """The media type the spec declares for this answer of the operation (problem+json or
    json), found once."""
    if operation is None:
        return fallback
    known = holder.media_types
    key = (operation.operation_id, status)
    if key not in known:
        declared = operation.node.get("responses", {}).get(str(status))
        if isinstance(declared, dict) and "$ref" in declared:
            declared = holder.spec.schema(declared["$ref"])
        content = declared.get("content") if isinstance(declared, dict) else None
        known[key] = f"{next(iter(content))}; charset=utf-8" if content else None
    return known[key] or fallback


def problem_answer(holder: State, req: Request, problem: Problem) -> Response:
    trace = trace_id(req.headers.get("traceparent"))
    notes = trail(req.environ)
    notes.extras["error"] = problem.errors or problem.detail
    if problem.status in _INVALID and notes.violations is None:
        notes.violations = problem.errors or {"$": [str(problem)]}
    media = media_type(holder, notes.operation, problem.status, PROBLEM_JSON)
    body = codec.dumps(problem.body(trace))
    return ApiResponse(body, problem.status, headers=problem.headers, content_type=media)


def http_answer(holder: State, req: Request, error: HTTPException) -> Response:
    status = error.code or 500
    if status == 404:  # Flask's: a path no rule takes (a line break in it), as the API does
        try:
            return handle(holder, req)
        except Problem as problem:
            return problem_answer(holder, req, problem)
    if status == 405:  # Flask's: a method it does not route at all (QUERY, PROPFIND...)
        control = req.path.startswith("/_mock/")
        try:
            (holder.control_router if control else holder.router).match(req.method, req.path)
        except Problem as problem:
            return problem_answer(holder, req, problem)
    detail = error.description
    if status == 413:
        limit = holder.settings.max_body_bytes
        detail = f"The request body is larger than the limit of {limit} bytes."
    return problem_answer(holder, req, Problem(status, detail))


def crash_answer(holder: State, req: Request) -> Response:
    log.logger.exception("unexpected error on %s %s", req.method, req.path)
    problem = Problem(500, "The mock server failed unexpectedly; see its log.")
    return problem_answer(holder, req, problem)


def finished(holder: State, req: Request, response: Response) -> Response:
    """The answer as a rule changes it; checked against the spec (`--check-responses`) and
    logged."""
    environ = req.environ
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
    checker = holder.checker
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
    log.request_line(
        environ["REQUEST_METHOD"], shown(path, query), response.status_code, millis, notes.extras
    )
    notes.logged = True
    notes.status = response.status_code
    return response


# ---------------------------------------------------------------- Flask's hooks: the same


def api(path: str) -> Response:
    return handle(state(), request._get_current_object())  # type: ignore[attr-defined]


def problem_response(problem: Problem) -> Response:
    return problem_answer(state(), request._get_current_object(), problem)  # type: ignore[attr-defined]


def http_error(error: HTTPException) -> Response:
    return http_answer(state(), request._get_current_object(), error)  # type: ignore[attr-defined]


def crash(error: Exception) -> Response:
    return crash_answer(state(), request._get_current_object())  # type: ignore[attr-defined]


def finish(response: Response) -> Response:
    return finished(state(), request._get_current_object(), response)  # type: ignore[attr-defined]
