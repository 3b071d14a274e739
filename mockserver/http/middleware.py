"""The front every request passes: WSGI middleware around the app, and the one place a
request's log line is written (`_log_line`, when the request is answered).

For an API request it picks the session, reads the body once, opens the journal entry,
decides what fault rules (or `Prefer: code=/delay=`) do, and counts the answer for coverage.
Being WSGI middleware, it can also answer with no HTTP at all (a reset or closed connection),
which a Flask view cannot; with no rules, it adds a few microseconds. API requests take turns
at this work in arrival order (`http.fair_queue`); what a rule makes wait (a delay, a held or
cut connection) is served after the turn (`faults.apply`); under uWSGI a delayed request is
handed over (`http.delayed`) and its thread goes back at once. Control requests go straight to
Flask.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from mockserver import codec, log, storage
from mockserver.auth.identity import required_right
from mockserver.codec import MISSING
from mockserver.contract.router import Operation
from mockserver.faults import apply, delay_loop
from mockserver.faults.matching import Seen
from mockserver.faults.redis_rules import RedisFaults
from mockserver.faults.rules import Action, preferred
from mockserver.http import delayed, lane, wire
from mockserver.http.answers import media_type
from mockserver.http.fair_queue import Turns
from mockserver.http.request_body import read_body
from mockserver.http.state import RequestState, begin
from mockserver.masking import shown
from mockserver.problems import Problem
from mockserver.proxy.forward import Proxy
from mockserver.query.params import decode
from mockserver.respond import Environ, StartResponse, WSGIApp, respond_problem, wsgi_text
from mockserver.sessions.answer import kept
from mockserver.sessions.journal import Headers
from mockserver.sessions.session import DEFAULT, HEADER, NAME_RULE, Session
from mockserver.settings import CONTROL_PREFIX
from mockserver.state import State
from mockserver.storage.redis_connection import FRESH, REFUSED, Link, RulesChanged

_SESSION = re.compile(r"^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$")  # `.`, `..`: dot segments of a URL


class Front:
    def __init__(self, inner: WSGIApp, state: State, proxy: Proxy | None = None) -> None:
        self.inner = inner  # Flask: the control API
        self.state = state
        self.turns = Turns()
        storage.wait_aside(state.sessions.initial, self.turns.aside)  # Redis: off the turn
        self._link: Link | None = getattr(state.sessions.initial, "link", None)
        self.proxy = proxy  # --upstream: it answers instead of the lane

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = begin(environ)
        refusal = wire.refusal(environ)
        if refusal is not None:
            return self._refused_on_the_wire(environ, start_response, request, refusal)
        if not environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            try:
                return self._api(environ, start_response, request)
            except Exception:  # a bug: a 500 that says so, logged, never a closed connection
                return self._crashed(environ, start_response, request)
        result = self.inner(environ, start_response)
        if self._link is not None:  # a change another process's copy may hold: told first
            self._link.fence()
        _log_line(environ, request)
        return result

    def _crashed(
        self, environ: Environ, start_response: StartResponse, request: RequestState
    ) -> Iterable[bytes]:
        """An API request whose serving raised past the lane's own catch (the front's work
        around it: its session, its rules, its count), answered 500 as the lane would."""
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "")
        log.logger.exception("unexpected error on %s %s", method, path)
        info = sys.exc_info()

        def again(status: str, headers: list[tuple[str, str]]) -> Any:
            try:
                return start_response(status, headers)
            except AssertionError:  # started already (werkzeug's servers): replaced, as PEP
                return start_response(status, headers, info)  # 3333 lets exc_info do

        request.trail.ended = request.trail.ended or time.perf_counter()
        problem = Problem(500, "The mock server failed unexpectedly; see its log.")
        answer = self._refused(environ, again, request, problem)
        _log_line(environ, request)
        return answer

    def _refused_on_the_wire(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestState,
        problem: Problem,
    ) -> Iterable[bytes]:
        """A request refused for its HTTP framing (`http.wire`): a version we do not speak is
        answered on the connection itself, in HTTP/1.1."""
        request.trail.status = problem.status
        _log_line(environ, request)
        if problem.status != 505:  # the connection is not kept: its requests were not counted
            return respond_problem(environ, wire.closing(start_response), problem)
        wire.answer_raw(environ, problem)
        start_response("505 HTTP Version Not Supported", [])  # written to /dev/null
        return []

    def _api(
        self, environ: Environ, start_response: StartResponse, request: RequestState
    ) -> Iterable[bytes]:
        try:  # the body is read before the turn: a slow upload holds no one up
            body, failure = read_body(environ, self.state.settings.max_body_bytes), None
        except Problem as problem:
            body, failure = None, problem
        turn = self.turns.take()
        try:
            answered = self._enter(environ, start_response, request, body, failure)
            if answered is not None:
                _log_line(environ, request)  # in the turn: work that waits on no client
                return answered
        finally:
            self.turns.leave(turn)
        # a rule or `Prefer` applies: served after the turn, as it may wait (a delay, a fault)
        action = request.action
        assert action is not None
        if action.delay_ms and delayed.offloaded(environ):
            return self._hand_over(environ, start_response, request, action)
        result = self._served(
            environ,
            start_response,
            request,
            action,
            lambda given: apply.serve(
                action,
                environ,
                given,
                self._lane,
                self._declared(environ),
                lambda: _hung_up(request),
            ),
        )
        _log_line(environ, request)
        return result

    def _served(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestState,
        action: Action,
        serve: Callable[[StartResponse], Iterable[bytes]],
    ) -> Iterable[bytes]:
        """A rule's action served (`serve`: the app's answer or the rule's own, after the
        delay), and what the journal and coverage keep of it; the log line is the caller's."""
        sent: list[tuple[str, str]] = []

        def capture(line: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            request.trail.status = int(line.split(" ", 1)[0])  # the rule's own answer's, too
            sent[:] = headers
            return start_response(line, headers, *rest)

        result = serve(capture)
        if request.trail.answer is None and not action.fault:  # the rule's own answer
            whole = b"".join(result) if isinstance(result, list) else None
            request.trail.answer = kept(sent, whole)
        self._acted(environ, request, action)
        self._count(request)
        return result

    def _hand_over(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestState,
        action: Action,
    ) -> Iterable[bytes]:
        """A delayed request handed over (`http.delayed`): its thread goes back to the server
        at once. It is served when the delay is over, or ends (499) when its client hangs up
        first; its log line is written once its answer is (with the delay in its time). It
        keeps a copy of the environ: uWSGI empties its own once the thread is back."""
        environ = dict(environ)

        def due(given: StartResponse) -> Iterable[bytes]:
            declared, hung_up = self._declared(environ), lambda: _hung_up(request)
            return self._served(
                environ,
                given,
                request,
                action,
                lambda sent: apply.act(action, environ, sent, self._lane, declared, hung_up),
            )

        def gone(given: StartResponse) -> Iterable[bytes]:
            return self._served(
                environ, given, request, action, lambda sent: apply.gone(environ, sent)
            )

        try:
            return delayed.hand_over(
                environ,
                start_response,
                action.delay_ms / 1000,
                request.body or b"",
                due,
                gone,
                lambda: _log_line(environ, request),
            )
        except delay_loop.Full as full:  # too many held: refused, visibly, with the limit
            problem = Problem(503, str(full), headers={"Retry-After": "1"})
            request.trail.extras["error"] = problem.detail
            result = self._served(
                environ,
                start_response,
                request,
                dataclasses.replace(action, delay_ms=0.0, fault=None),
                lambda sent: respond_problem(environ, sent, problem),
            )
            _log_line(environ, request)
            return result

    def _declared(self, environ: Environ) -> Callable[[int], str | None]:
        """The media type the spec declares for a status of this request's operation."""
        return lambda status: media_type(self.state, self._operation(environ), status, None)

    def _enter(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestState,
        body: bytes | None,
        failure: Problem | None,
    ) -> Iterable[bytes] | None:
        """An API request up to its answer; None when a rule's action is to be served."""
        name = environ.get(HEADER, DEFAULT)
        if name is not DEFAULT and not _SESSION.match(name):
            return self._refused(environ, start_response, request, _bad_session())
        admitted = self._admitted(environ, request)
        sessions = self.state.sessions
        try:  # auth refused: no session made, a fresh one looked at; the store may be lost (503)
            session = request.session = sessions.get(name) if admitted else sessions.peek(name)
            if failure is not None:
                raise failure
        except Problem as problem:
            return self._refused(environ, start_response, request, problem)
        request.body = body
        body = body or b""
        path = environ.get("PATH_INFO", "")
        request.entry = session.journal.open(
            time.time(),
            environ["REQUEST_METHOD"],
            path,
            environ.get("QUERY_STRING", ""),
            _headers(environ),
            body,
            session.name,
            request.trail,
        )
        deferred = admitted and _deferred(environ, session)
        try:  # a shared store's rules may be out of reach (503)
            decides = admitted and not deferred
            request.action = _decide(environ, session, path, body) if decides else None
        except Problem as problem:
            request.trail.ended = time.perf_counter()  # done: a shared journal writes it later
            return self._refused(environ, start_response, request, problem)
        if request.action is not None:
            request.entry.fault = request.action.rule
            return None
        if deferred:
            return self._read_deferred(environ, start_response, request, session, body)
        result = self._lane(environ, start_response)
        self._count(request)
        return result

    def _read_deferred(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestState,
        session: Session,
        body: bytes,
    ) -> Iterable[bytes] | None:
        """A request on Redis whose rules' version went with its first command, or whose change
        checked it in its script (one round trip fewer: `RedisFaults.defer`). The answer is
        held until the version is known to be the one decided on; rules changed meanwhile are
        read, and decide again: a rule that applies now is served instead (None), as it would
        have been before the request; a change refused by its script (nothing written) is
        served again, on the rules now read."""
        said: list[Any] = []

        def hold(*args: Any) -> Callable[[bytes], None]:
            said[:] = args
            return _no_write

        faults = session.faults
        assert isinstance(faults, RedisFaults)
        result: Iterable[bytes] = []
        try:
            result = self._lane(environ, hold)
        except RulesChanged:  # nothing written: served again below
            pass
        finally:
            known = faults.deferred()
        if known != FRESH:
            try:
                action = _decide(environ, session, environ.get("PATH_INFO", ""), body)
            except Problem as problem:
                _close(result)
                request.trail.ended = time.perf_counter()
                return self._refused(environ, start_response, request, problem)
            if action is not None or known == REFUSED:
                _close(result)
                _forget_answer(request)
            if action is not None:
                request.action = action
                assert request.entry is not None
                request.entry.fault = action.rule
                return None
            if known == REFUSED:  # nothing was written: served now, on the rules read
                result = self._lane(environ, hold)
        start_response(*said)
        self._count(request)
        return result

    def _admitted(self, environ: Environ, request: RequestState) -> bool:
        """Whether the request is for an operation of the spec and auth lets it in: only then
        may it make a session, or meet a fault rule or its own `Prefer`."""
        state = self.state
        path = wsgi_text(environ.get("PATH_INFO", ""))
        try:
            match = state.router.match(environ["REQUEST_METHOD"], path)
            right = required_right(match.operation.method, match.operation.resource)
            identity = state.auth.identify(environ.get("HTTP_AUTHORIZATION"), right)
        except Problem:
            return False
        request.match, request.identity = match, identity
        return True

    def _lane(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self.proxy is not None:
            return self.proxy.serve(self.state, environ, start_response)
        return lane.serve(self.state, environ, start_response)

    def _refused(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestState,
        problem: Problem,
    ) -> list[bytes]:
        """A request refused before it was journaled (its session name, its body)."""
        request.trail.extras["error"] = problem.errors or problem.detail
        request.trail.status = problem.status
        return respond_problem(environ, start_response, problem)

    def _acted(self, environ: Environ, request: RequestState, action: Action) -> None:
        """What the log and the journal keep of a rule's action."""
        trail = request.trail
        if action.fault:
            trail.status = 0  # nothing reached the client
        if trail.operation is None:  # the front answered for the API
            trail.operation = self._operation(environ)
        trail.extras["fault"] = f"{action.rule} ({action.fault})" if action.fault else action.rule
        if action.delay_ms:
            trail.extras["delay_ms"] = round(action.delay_ms, 3)

    def _count(self, request: RequestState) -> None:
        entry, trail = request.entry, request.trail
        assert entry is not None
        assert request.session is not None
        trail.ended = max(trail.ended, time.perf_counter())
        request.session.coverage.count(entry.operation, trail.status, entry.fault)
        if self.state.tally is not None:
            self.state.tally.add(entry.operation, trail.status, entry.fault)

    def _operation(self, environ: Environ) -> Operation | None:
        try:
            method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
            return self.state.router.match(method, path).operation
        except Problem:
            return None


def _log_line(environ: Environ, request: RequestState) -> None:
    """The request's one log line: method, target, status, time, and what happened to it."""
    trail = request.trail
    path = wsgi_text(environ.get("PATH_INFO", ""))
    millis = (time.perf_counter() - trail.started) * 1000
    target = shown(path, environ.get("QUERY_STRING", ""))
    log.request_line(environ["REQUEST_METHOD"], target, trail.status, millis, trail.extras)


def _hung_up(request: RequestState) -> None:
    """A `timeout`'s client gave up: how long it waited."""
    request.trail.ended = time.perf_counter()


def _deferred(environ: Environ, session: Session) -> bool:
    """A request of a session whose rules are on Redis, none held (`RedisFaults.defer`), and
    no `Prefer` of its own: its rules' version is read with its first command to Redis, or
    checked by the script of its change."""
    faults = session.faults
    return isinstance(faults, RedisFaults) and "HTTP_PREFER" not in environ and faults.defer()


def _forget_answer(request: RequestState) -> None:
    """What the trail kept of an answer that is not given."""
    trail = request.trail
    trail.answer, trail.status = None, 0
    for made in ("record", "warnings", "streamed", "error"):
        trail.extras.pop(made, None)


def _no_write(data: bytes) -> None:
    raise RuntimeError("the lane writes no body through start_response's writer")


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _decide(environ: Environ, session: Session, path: str, body: bytes) -> Action | None:
    """The request's own `Prefer` (`code=`, `delay=`) wins; else the session's rules (for a
    deferred read, none of those last read: `RedisFaults.defer`)."""
    prefer = environ.get("HTTP_PREFER")
    action = preferred(prefer) if prefer else None
    if action is None and session.faults.rules:
        action = session.faults.decide(_seen(environ, path, body))
    return action


def _bad_session() -> Problem:
    return Problem(
        400,
        "One or more validation errors occurred.",
        errors={"X-Mock-Session": [NAME_RULE]},
    )


def _headers(environ: Environ) -> Headers:
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


def _seen(environ: Environ, path: str, body: bytes) -> Seen:
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
