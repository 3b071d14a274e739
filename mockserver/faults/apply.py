"""Doing what a rule (or `Prefer`) decided for one request, in one place: the delay, the
connection fault, the rule's own answer (status, body, headers), the rule's status and
headers on the normal answer, and the changes to a streamed answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mockserver import codec
from mockserver.codec import MISSING
from mockserver.faults import connection, waiting
from mockserver.faults.kinds import CONNECTION_FAULTS, StreamParts
from mockserver.faults.rules import Action
from mockserver.problems import Problem, status_line
from mockserver.respond import Environ, StartResponse, WSGIApp, is_head, respond, respond_problem

GONE = "499 Client Closed Request"  # logged and journaled for a delayed request whose client left
Declared = Callable[[int], str | None]  # the media type the spec declares for a status


def serve(
    action: Action,
    environ: Environ,
    start_response: StartResponse,
    app: WSGIApp,
    declared: Declared,
    hung_up: connection.HungUp = None,
) -> Iterable[bytes]:
    """The request served as the action says: after its delay (waited in this thread), what
    `act` does."""
    if action.delay_ms and not waiting.delay(action.delay_ms / 1000, environ):
        return gone(environ, start_response)
    return act(action, environ, start_response, app, declared, hung_up)


def gone(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """A delayed request whose client left: nothing is sent (GONE is what is logged)."""
    connection.detach(connection.descriptor(environ))
    start_response(GONE, [])
    return []


def act(
    action: Action,
    environ: Environ,
    start_response: StartResponse,
    app: WSGIApp,
    declared: Declared,
    hung_up: connection.HungUp = None,
) -> Iterable[bytes]:
    """The request served as the action says once its delay is over: a connection fault, the
    rule's own answer, or the app's (which `answered` then gives the rule's status)."""
    if action.fault:
        break_connection(action.fault, environ, hung_up)
        start_response(status_line(500), [])  # an answer for the server to write: to /dev/null
        return []
    if action.status is None or _normal_answer(action):
        return app(environ, start_response)
    return _own_answer(environ, start_response, action, declared(action.status))


def _normal_answer(action: Action) -> bool:
    """A 2xx (or 304) without a body: the normal answer, with the rule's status."""
    status = action.status or 0
    return action.body is MISSING and (status < 300 or status == 304)


def answered(action: Action | None, status: int, headers: Any) -> int:
    """The status of the app's answer under the action: the rule's, for a normal answer (and
    its headers added to `headers`, a werkzeug `Headers`)."""
    if action is None or not action.status or status >= 300:
        return status
    headers.update(action.headers)
    return action.status


def stream_changes(action: Action | None, environ: Environ) -> Callable[[StreamParts], None]:
    """What the action does to a streamed answer (nothing, for most)."""
    fault = action.stream if action is not None else None
    if fault is None:
        return _unchanged

    def cut() -> None:
        break_connection("empty_response", environ)

    return lambda parts: fault.change(parts, cut)


def _unchanged(parts: StreamParts) -> None:
    pass


def break_connection(fault: str, environ: Environ, hung_up: connection.HungUp = None) -> None:
    """Do a connection fault; the server's descriptor is then detached (see
    `faults.connection`)."""
    fd, own = connection.take(environ)
    CONNECTION_FAULTS[fault].act(own, hung_up)
    connection.detach(fd)


def _own_answer(
    environ: Environ, start_response: StartResponse, action: Action, declared: str | None
) -> list[bytes]:
    """A rule's answer: its body (as the spec's media type for that status, or JSON), or a
    problem shaped as the spec shapes its errors. The rule's headers win over the defaults."""
    status = action.status or 500
    if action.body is not MISSING:
        given = {k.lower(): v for k, v in dict(action.headers).items()}.get("content-type")
        media = given or declared or "application/json; charset=utf-8"
        raw = isinstance(action.body, str) and "json" not in media
        body = action.body.encode() if raw else codec.dumps(action.body)
        return respond(start_response, status, body, media, action.headers, is_head(environ))
    if status in (204, 304):
        return respond(start_response, status, b"", None, action.headers)
    problem = Problem(status, headers=dict(action.headers))
    return respond_problem(environ, start_response, problem, declared)
