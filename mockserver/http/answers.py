"""Answers as werkzeug responses: an error of any kind as a problem document, the media type
the spec declares for an answer, and the last touches every answer gets (a rule's status,
`--check-responses`). Used by the API lane and, through Flask's hooks, by the control API.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from mockserver import codec, log
from mockserver.contract.router import Operation
from mockserver.faults import apply
from mockserver.http.state import of
from mockserver.problems import Problem, status_line, trace_id
from mockserver.respond import PROBLEM_JSON, wsgi_text
from mockserver.settings import UI_PREFIX
from mockserver.state import State

_INVALID = frozenset({400, 411, 413, 414, 415, 422})  # "the request broke the contract"


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
        media = next((m for m in content if "json" in m), next(iter(content))) if content else None
        known[key] = f"{media}; charset=utf-8" if media else None
    return known[key] or fallback


def problem_answer(holder: State, req: Request, problem: Problem) -> Response:
    trace = trace_id(req.headers.get("traceparent"))
    notes = of(req.environ).trail
    notes.extras["error"] = problem.errors or problem.detail
    if problem.status in _INVALID and notes.violations is None:
        notes.violations = problem.errors or {"$": [str(problem)]}
    media = media_type(holder, notes.operation, problem.status, PROBLEM_JSON)
    body = codec.dumps(problem.body(trace))
    return ApiResponse(body, problem.status, headers=problem.headers, content_type=media)


def http_answer(holder: State, req: Request, error: HTTPException) -> Response:
    """werkzeug's own errors as problems: a body over the limit (413); on the control API, a
    path or a method Flask does not route (404, or 405 with Allow)."""
    status = error.code or 500
    if status in (404, 405):
        try:
            holder.control_router.match(req.method, req.path)
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


def finish(holder: State, req: Request, response: Response) -> Response:
    """The answer as a rule changes it, checked against the spec (`--check-responses`)."""
    environ = req.environ
    request = of(environ)
    if request.action is not None:
        code = apply.answered(request.action, response.status_code, response.headers)
        response.status_code = code
    if response.status_code in (204, 304) and not response.is_streamed:
        response.set_data(b"")  # no body, and nothing that says what it would be
        del response.headers["Content-Type"]
    line = status_line(response.status_code)
    if response.status != line:  # one the lane made with its line already is kept as it is
        response.status = line
    request.trail.status = response.status_code
    checker = holder.checker
    path = environ.get("PATH_INFO", "")
    if checker is not None and not response.is_streamed and not path.startswith(UI_PREFIX):
        path = wsgi_text(path)
        found = checker.check(
            environ["REQUEST_METHOD"],
            path,
            response.status_code,
            response.headers,
            response.get_data(),
        )
        for finding in found:
            kind = holder.kind_of(finding.method, finding.template) if finding.template else None
            log.logger.warning(
                "response does not conform to the spec%s: %s", f" ({kind})" if kind else "", finding
            )
    return response


# ---------------------------------------------------------------- Flask's hooks: the same


def state() -> State:
    found: State = current_app.extensions["mockserver"]
    return found


def problem_response(problem: Problem) -> Response:
    return problem_answer(state(), request._get_current_object(), problem)  # type: ignore[attr-defined]


def http_error(error: HTTPException) -> Response:
    return http_answer(state(), request._get_current_object(), error)  # type: ignore[attr-defined]


def crash(error: Exception) -> Response:
    return crash_answer(state(), request._get_current_object())  # type: ignore[attr-defined]


def finished(response: Response) -> Response:
    return finish(state(), request._get_current_object(), response)  # type: ignore[attr-defined]
