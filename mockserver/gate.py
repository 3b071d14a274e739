"""The gate every API request passes before the app: its session, its journal entry, the fault
rules (and `Prefer: code=/delay=`), and the coverage count of what it got.

It is WSGI middleware around the Flask app, so it can also answer with no HTTP at all (a reset
or closed connection), which a Flask view cannot. With no rules, it adds a few microseconds.
API requests take turns at this work in arrival order (mockserver.turns); what a rule makes
wait (a delay, a held or cut connection) is served after the turn.
"""

from __future__ import annotations

import io
import operator
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from mockserver import api, codec, connection, log
from mockserver.cors import Cors, is_preflight
from mockserver.faults import Action, Seen, preferred
from mockserver.journal import Entry, Headers, Trail
from mockserver.masking import shown
from mockserver.problems import Problem, invalid, status_line, trace_id
from mockserver.query import decode
from mockserver.router import Operation
from mockserver.rql import MISSING
from mockserver.session import DEFAULT, HEADER, NAME_RULE, Session
from mockserver.turns import Turns

if TYPE_CHECKING:
    from mockserver.app import State

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_SESSION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CONTROL_PREFIX = "/_mock"
_API = "/public/v1"
_API_TWICE = _API + _API + "/"
BODY = "mockserver.body"  # the request body as the gate read it, for the app not to read again
SOCKET_TIMEOUT = 4  # seconds uWSGI waits for a client's next bytes (its --socket-timeout)
SESSION_PREFIX = "/_session/"  # `/_session/NAME/public/v1/...`: a base URL that names a session


class _Waiting(NamedTuple):
    """An API request a rule acts on, with what the gate made of it so far."""

    session: Session
    entry: Entry
    trail: Trail
    action: Action


class Gate:
    def __init__(self, inner: WSGIApp, state: State) -> None:
        self.inner = inner  # Flask: the control API and the spec document
        self.state = state
        self.cors = Cors(state.settings.cors_origins) if state.settings.cors_origins else None
        self.turns = Turns()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and self.cors is not None and self.cors.allows(origin):
            if is_preflight(environ):
                return self.cors.preflight(environ, start_response)
            start_response = self.cors.wrap(start_response, origin)
        path = environ.get("PATH_INFO", "")
        if path.startswith(SESSION_PREFIX):
            path = _enter_session(environ, path)
        if path.startswith(CONTROL_PREFIX):
            return self.inner(environ, start_response)
        arrived = time.perf_counter()
        turn = self.turns.take()
        try:
            entered = self._enter(environ, start_response, path, arrived)
        finally:
            self.turns.leave(turn)
        if not isinstance(entered, _Waiting):
            return entered
        # a rule or `Prefer` applies: served after the turn, as it may wait (a delay, a fault)
        entered.entry.fault = entered.action.rule
        result = self._act(environ, start_response, entered.action, entered.trail)
        self._count(entered.session, entered.entry, entered.trail)
        return result

    def _enter(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        path: str,
        arrived: float,
    ) -> Iterable[bytes] | _Waiting:
        """An API request up to its answer, or to the action a rule takes on it."""
        name = environ.get(HEADER, DEFAULT)
        if name is not DEFAULT and not _SESSION.match(name):
            return _problem(environ, start_response, _bad_session(), None)
        session = environ["mockserver.session"] = self.state.sessions.get(name)
        try:
            body = _body(environ, self.state.settings.max_body_bytes)
        except Problem as problem:
            return _refused(environ, start_response, problem)
        trail = environ["mockserver.trail"] = Trail(arrived)
        entry = session.journal.open(
            time.time(),
            environ["REQUEST_METHOD"],
            path,
            environ.get("QUERY_STRING", ""),
            _headers(environ),
            body,
            session.name,
            trail,
        )
        action = self._decide(environ, session, path, body)
        if action is not None:
            return _Waiting(session, entry, trail, action)
        result = self._app(path)(environ, start_response)
        self._count(session, entry, trail)
        return result

    def _count(self, session: Session, entry: Entry, trail: Trail) -> None:
        trail.ended = max(trail.ended, time.perf_counter())
        session.coverage.count(entry.operation, trail.status, entry.fault)
        if self.state.tally is not None:
            self.state.tally.add(entry.operation, trail.status, entry.fault)

    def _act(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        action: Action,
        trail: Trail,
    ) -> Iterable[bytes]:
        """A rule (or `Prefer`) applies: serve the request its way, and log what it did when the
        app did not."""

        def capture(line: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            trail.status = int(line.split(" ", 1)[0])
            return start_response(line, headers, *rest)

        result = self._serve(environ, capture, action, trail)
        if trail.operation is None:  # the gate answered for the API
            trail.operation = self._operation(environ)
        if not trail.logged:
            path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
            what = f"{action.rule} ({action.fault})" if action.fault else action.rule
            millis = (time.perf_counter() - trail.started) * 1000
            target = shown(path, query)
            log.request_line(
                environ["REQUEST_METHOD"], target, trail.status, millis, {"fault": what}
            )
        return result

    def _operation(self, environ: dict[str, Any]) -> Operation | None:
        try:
            method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
            return self.state.router.match(method, path).operation
        except Problem:
            return None

    def _decide(
        self, environ: dict[str, Any], session: Session, path: str, body: bytes
    ) -> Action | None:
        if session.faults.rules:
            action = session.faults.decide(_seen(environ, path, body))
            if action is not None:
                return action
        prefer = environ.get("HTTP_PREFER")
        return preferred(prefer) if prefer else None

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        action: Action,
        trail: Trail,
    ) -> Iterable[bytes]:
        environ["mockserver.action"] = action
        if action.delay_ms:
            time.sleep(action.delay_ms / 1000)
        if action.fault:

            def hung_up() -> None:  # a `timeout`'s client gave up: how long it waited
                trail.ended = time.perf_counter()

            connection.apply(action.fault, environ, hung_up)
            start_response(status_line(500), [])  # an answer for the server to write: to /dev/null
            trail.status = 0  # nothing reached the client
            return []
        app = self._app(environ.get("PATH_INFO", ""))
        if action.status is None:
            return app(environ, start_response)
        if action.body is MISSING and (action.status < 300 or action.status == 304):
            return app(environ, start_response)  # the normal answer, the rule's status
        declared = api.media_type(self.state, self._operation(environ), action.status, None)
        return _answer(environ, start_response, action, declared)

    def _app(self, path: str) -> WSGIApp:
        """What answers an API request: the lane, or Flask for the spec document."""
        return self.inner if path == api.SPEC_PATH else self._lane

    def _lane(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return api.serve(self.state, environ, start_response)


def _refused(
    environ: dict[str, Any], start_response: Callable[..., Any], problem: Problem
) -> list[bytes]:
    """A request whose body could not be read: its problem, and its log line."""
    started = time.perf_counter()
    answer = _problem(environ, start_response, problem, None)
    target = shown(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""))
    millis = (time.perf_counter() - started) * 1000
    error = problem.errors or problem.detail
    log.request_line(environ["REQUEST_METHOD"], target, problem.status, millis, {"error": error})
    return answer


def _problem(
    environ: dict[str, Any], start_response: Callable[..., Any], problem: Problem, media: str | None
) -> list[bytes]:
    body = codec.dumps(problem.body(trace_id(environ.get("HTTP_TRACEPARENT"))))
    media = media or "application/problem+json; charset=utf-8"
    return _respond(start_response, problem.status, body, media, problem.headers)


def _answer(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    action: Action,
    declared: str | None,
) -> list[bytes]:
    """A rule's answer: its body (as the spec's media type for that status, or JSON), or a
    problem shaped as the spec shapes its errors. The rule's headers win over the defaults."""
    status = action.status or 500
    if action.body is not MISSING:
        given = {k.lower(): v for k, v in dict(action.headers).items()}.get("content-type")
        media = given or declared or "application/json; charset=utf-8"
        raw = isinstance(action.body, str) and "json" not in media
        body = action.body.encode() if raw else codec.dumps(action.body)
        return _respond(start_response, status, body, media, action.headers)
    if status in (204, 304):
        return _respond(start_response, status, b"", None, action.headers)
    problem = Problem(status, headers=dict(action.headers))
    return _problem(environ, start_response, problem, declared)


def _respond(
    start_response: Callable[..., Any], status: int, body: bytes, media: str | None, extra: Any
) -> list[bytes]:
    given = dict(extra)
    named = {name.lower() for name in given}
    headers = [("Content-Type", media)] if media and "content-type" not in named else []
    headers += [("Content-Length", str(len(body)))] if body else []
    start_response(status_line(status), [*headers, *given.items()])
    return [body] if body else []


def _enter_session(environ: dict[str, Any], path: str) -> str:
    """`/_session/NAME/rest` is `/rest` in session NAME (the prefix becomes the script name,
    so the links the server writes keep it). The official client keeps such a base URL's path
    and adds its own `/public/v1`: `/_session/NAME/public/v1/public/v1/...` is read once."""
    name, _, rest = path[len(SESSION_PREFIX) :].partition("/")
    rest = "/" + rest
    if rest.startswith(_API_TWICE):
        rest = rest[len(_API) :]
    environ[HEADER] = name
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + SESSION_PREFIX + name
    environ["PATH_INFO"] = rest
    return rest


def _bad_session() -> Problem:
    return Problem(
        400,
        "One or more validation errors occurred.",
        errors={"X-Mock-Session": [NAME_RULE]},
    )


def _body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body (read once, and handed on to the app), unless it is over the limit;
    a Problem when it ends before its Content-Length."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return _chunked(environ, limit)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return b""
    if length == 0:
        environ[BODY] = b""
    if not 0 < length <= limit:
        return b""
    try:
        body: bytes = environ["wsgi.input"].read(length)
    except OSError:  # the client sent less and waited: uWSGI's read timed out
        body = b""
    if len(body) < length:
        raise invalid(
            {"Content-Length": [f"The body ended before its Content-Length ({length} bytes)."]}
        )
    environ["wsgi.input"] = io.BytesIO(body)
    environ[BODY] = body
    return body


def _chunked(environ: dict[str, Any], limit: int) -> bytes:
    """A chunked body, read whole (up to the limit) under uWSGI and handed on with its length;
    other servers de-chunk `wsgi.input` themselves."""
    if "uwsgi.version" not in environ:
        return b""
    import uwsgi

    parts, size = [], 0
    try:
        while part := uwsgi.chunked_read(SOCKET_TIMEOUT):
            size += len(part)
            if size > limit:
                raise Problem(413, f"The request body is larger than the limit of {limit} bytes.")
            parts.append(part)
    except OSError as exc:
        raise invalid({"Transfer-Encoding": [f"The chunked body is broken: {exc}."]}) from exc
    body = b"".join(parts)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    del environ["HTTP_TRANSFER_ENCODING"]
    environ[BODY] = body
    return body


def _headers(environ: dict[str, Any]) -> Headers:
    """The request's headers as WSGI names them (`HTTP_USER_AGENT`), names and values apart;
    the journal spells them out when it is read. Requests of one client have the same keys
    in the same order: which of them are headers is found once per key layout (and the names
    shared), then the values are read with one C-level getter."""
    layout = tuple(environ)
    found = _LAYOUTS.get(layout)
    if found is None:
        if len(_LAYOUTS) > 256:
            _LAYOUTS.clear()
        names = tuple(k for k in layout if k[:5] == "HTTP_" or k == "CONTENT_TYPE")
        found = _LAYOUTS[layout] = (names, operator.itemgetter(*names) if names else None)
    names, get = found
    if get is None:
        return (), ()
    values = get(environ)
    return names, values if len(names) > 1 else (values,)


_LAYOUTS: dict[tuple[str, ...], tuple[tuple[str, ...], Callable[..., Any] | None]] = {}


def _seen(environ: dict[str, Any], path: str, body: bytes) -> Seen:
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    parsed: Any = MISSING
    if body:
        try:
            parsed = codec.loads(body)
        except (ValueError, RecursionError):
            parsed = MISSING
    query = decode(environ.get("QUERY_STRING", "")).params
    return Seen(environ["REQUEST_METHOD"], path, query, headers, parsed)
