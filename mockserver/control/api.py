"""The control API under `/_mock`: health, settings, sessions, reset, records (and any
labelled collection, with RQL), fault rules, journal, coverage,
the upstream's drift.

Every request is validated against openapi/control.yaml (strictly: unknown members are
refused) and errors are problem details, like the API's. `?session=NAME` (or the
`X-Mock-Session` header) picks the session; the default session otherwise.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, request

from mockserver import codec
from mockserver.contract.validation import Checked
from mockserver.control import door
from mockserver.http.answers import ApiResponse, state
from mockserver.problems import Problem, invalid
from mockserver.proxy.forward import PROXY, Proxy
from mockserver.query.params import decode as decode_query
from mockserver.resources.generated import KINDS, AnswerKind
from mockserver.respond import JSON
from mockserver.sessions.browse import FILTERS, browse, page_json
from mockserver.sessions.journal import Matcher
from mockserver.sessions.session import DEFAULT, NAME_RULE, Session
from mockserver.settings import CONTROL_PREFIX, OPTIONS, Settings
from mockserver.storage.backend import Collection
from mockserver.storage.encoding import decode

blueprint = Blueprint("control", __name__, url_prefix=CONTROL_PREFIX)
EMPTY = "The value must not be empty."


@blueprint.before_request
def _door() -> None:
    """With `--admin-token`, every control request shows it (`Authorization: Bearer ...`) or
    the dashboard's cookie (and, to change anything, its CSRF token): see `control.door`."""
    expected = state().settings.admin_token
    if expected is None:
        return
    headers, cookie = request.headers, request.cookies.get(door.COOKIE)
    verdict = door.verdict(
        expected,
        request.method,
        headers.get("Authorization", ""),
        headers.get(door.CSRF_HEADER, ""),
        cookie,
    )
    if verdict == 403:
        raise Problem(
            403,
            f"A change made with the dashboard's cookie needs its CSRF token ({door.CSRF_HEADER}).",
        )
    if verdict == 401:
        raise Problem(
            401,
            "The control API needs the admin token: Authorization: Bearer <--admin-token>.",
            headers={"WWW-Authenticate": 'Bearer realm="mockserver-control"'},
        )


def _request(make: bool = False) -> tuple[Session, Checked, dict[str, str]]:
    """Validate the control request; its session, checked body and query parameters. Only a
    write that adds something (`make`) makes the session when it is new: a read looks at a
    fresh one it does not keep."""
    holder = state()
    match = holder.control_router.match(request.method, request.path)
    query = decode_query(request.environ.get("QUERY_STRING", "")).params
    checked = holder.control_validator.check(request, match, query)
    if query.get("session") == "":  # an unset variable in CI: not silently the shared session
        raise invalid({"session": [NAME_RULE]})
    name = query.get("session") or request.headers.get("X-Mock-Session") or DEFAULT
    sessions = holder.sessions
    return sessions.get(name) if make else sessions.peek(name), checked, query


def _records(session: Session) -> Collection:
    """The session's collection the control API calls `records`."""
    template = state().collection("records")
    if template is None:
        raise Problem(404, "This server has no collection of records.")
    return session.storage.open(template)


def _json(body: Any, status: int = 200) -> Response:
    return ApiResponse(codec.dumps(body), status, content_type=JSON)


def _empty() -> Response:
    return ApiResponse(status=204)


def _health(session: Session) -> dict[str, Any]:
    holder = state()
    settings, spec = holder.settings, holder.spec
    store = session.storage.health()
    reachable = store["reachable"] and "refusing" not in store  # counts need the store
    counted = holder.counted() if reachable else {}
    health: dict[str, Any] = {
        "status": "ok" if reachable else _unavailable(store),
        "spec": {
            "title": spec.title,
            "version": spec.version,
            "sha256": spec.sha256,
            "path": str(spec.path),
            "repairs": list(spec.repairs),
        },
        "mode": "strict" if settings.strict else "lenient",
        "auth": "off" if not settings.auth else ("tokens" if settings.tokens else "on"),
        "session": session.name,
        "store": store,
        **{label: len(session.storage.open(path)) for label, path in counted.items()},
        "faults": len(session.faults.rules) if reachable else 0,  # shared ones are in the store
        "journal": len(session.journal) if reachable else 0,
        "uptimeSeconds": round(time.monotonic() - holder.started, 3),
    }
    health["operations"] = _by_kind(holder.kinds.values())
    if holder.restarts is not None:  # served by uWSGI: workers started again since start-up
        health["workerRestarts"] = holder.restarts()
    if holder.checker is not None:
        findings = list(holder.checker.findings)
        health["responseFindings"] = len(findings)
        kinds = (holder.kind_of(f.method, f.template) for f in findings if f.template)
        health["responseFindingsByKind"] = _by_kind(k for k in kinds if k is not None)
    return health


def _unavailable(store: dict[str, Any]) -> str:
    """Health's status when the store cannot serve: lost, or refusing writes."""
    return "store-refusing" if store["reachable"] else "store-unavailable"


def _by_kind(kinds: Iterable[AnswerKind]) -> dict[str, int]:
    """How many of each kind of operation: CRUD, answered with an example, generated."""
    counted = Counter(kinds)
    return {kind: counted[kind] for kind in KINDS}


@blueprint.get("/health")
def health() -> Response:
    session, _, _ = _request()
    health = _health(session)
    return _json(health, 200 if health["status"] == "ok" else 503)


@blueprint.get("/settings")
def list_settings() -> Response:
    """The server's settings by option name (`max-body-bytes`); the admin token is not shown,
    only whether there is one."""
    _request()
    flags = {option.dest: option.flag[2:] for option in OPTIONS}
    shown: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        value = getattr(state().settings, field.name)
        if field.name == "admin_token":
            value = value is not None
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):  # a repeated option (--cors-origin)
            value = list(value)
        name = flags.get(field.name) or flags.get(field.name.removesuffix("s"), field.name)
        shown[name] = value
    return _json({"settings": shown})


@blueprint.post("/reset")
def reset() -> Response:
    session, _, _ = _request()
    return _json(_health(state().sessions.reset(session.name)))


def _page(query: dict[str, str], items: list[Any], default: int) -> list[Any]:
    offset = int(query.get("offset") or 0)
    return items[offset : offset + int(query.get("limit") or default)]


@blueprint.get("/records")
def list_records() -> Response:
    session, _, query = _request()
    stored = list(_records(session))
    return _json(
        {"total": len(stored), "data": [decode(raw) for raw in _page(query, stored, 1000)]}
    )


@blueprint.get("/collections/<label>")
def browse_collection(label: str) -> Response:
    """A page of a labelled collection (`records`, `eventTypes`), filtered with RQL."""
    session, _, query = _request()
    template = state().collection(label)
    if template is None:
        raise Problem(404, f"This server has no collection labelled {label}.")
    offset, limit = int(query.get("offset") or 0), int(query.get("limit") or 20)
    found = state().resources.browse(
        session.storage.open(template), decode_query(query.get("rql") or ""), offset, limit
    )
    return _json({"total": found.total, "data": [decode(raw) for raw in found.items]})


@blueprint.post("/records")
def insert_records() -> Response:
    session, checked, _ = _request(make=True)
    fixtures = checked.body if isinstance(checked.body, list) else [checked.body]
    records = _records(session)
    errors = state().resources.item_errors(records.template, fixtures)
    if errors:
        raise invalid(errors)
    return _json({"data": [decode(records.insert(fixture)) for fixture in fixtures]}, 201)


@blueprint.delete("/records")
def clear_records() -> Response:
    session, _, _ = _request(make=True)
    _records(session).clear()
    return _empty()


@blueprint.get("/faults")
def list_faults() -> Response:
    session, _, _ = _request()
    return _json({"data": session.faults.states()})


@blueprint.post("/faults")
def add_faults() -> Response:
    session, checked, _ = _request(make=True)
    given = checked.body if isinstance(checked.body, list) else [checked.body]
    book, sessions = state().rules, state().sessions
    documented = [book.check(rule) for rule in given]  # all checked before any is added
    targets = [sessions.get(rule["session"]) if "session" in rule else session for rule in given]
    for target in {id(t): t for t in targets}.values():  # all fit, or none is added
        target.faults.room(sum(1 for t in targets if t is target))
    added = [
        target.faults.add(rule, ok)
        for rule, ok, target in zip(given, documented, targets, strict=True)
    ]
    return _json({"data": [rule.state() for rule in added]}, 201)


@blueprint.delete("/faults")
def clear_faults() -> Response:
    session, _, _ = _request(make=True)
    session.faults.clear()
    return _empty()


@blueprint.delete("/faults/<rule_id>")
def remove_fault(rule_id: str) -> Response:
    session, _, _ = _request()
    if not session.faults.remove(rule_id):
        raise Problem(404, f"No fault rule {rule_id} in session {session.name}.")
    return _empty()


@blueprint.get("/sessions")
def list_sessions() -> Response:
    _request()
    holder = state()
    sessions = holder.sessions
    live = list(sessions)
    budget = sessions.budget
    return _json(
        {
            "total": len(live),
            "limit": sessions.limits.max_sessions,
            "journalBytes": budget.used if budget else 0,
            "journalBytesLimit": budget.limit if budget else 0,
            "data": [_summary(session) for session in live],
        }
    )


def _summary(session: Session) -> dict[str, Any]:
    counted = state().counted()
    return {
        "name": session.name,
        **{label: len(session.storage.open(path)) for label, path in counted.items()},
        "faults": len(session.faults.rules),
        "journal": len(session.journal),
        "journalBytes": session.journal.bytes,
        "idleSeconds": round(max(time.monotonic() - session.used, 0.0), 3),
    }


@blueprint.delete("/sessions/<name>")
def end_session(name: str) -> Response:
    _request()
    if not state().sessions.end(name):
        raise Problem(404, f"No session {name}: it ended, or was never made.")
    return _empty()


@blueprint.get("/requests")
def list_requests() -> Response:
    session, _, query = _request()
    empty = {name: [EMPTY] for name in FILTERS if query.get(name) == ""}
    if empty:  # an unset variable in a script: not silently "no filter"
        raise invalid(empty)
    return _json(page_json(browse(list(session.journal), query)))


@blueprint.delete("/requests")
def clear_requests() -> Response:
    session, _, _ = _request()
    session.journal.clear()
    return _empty()


@blueprint.post("/requests/count")
def count_requests() -> Response:
    session, checked, _ = _request()
    return _json({"count": session.journal.count(Matcher.parse(checked.body))})


@blueprint.get("/coverage")
def coverage() -> Response:
    session, _, _ = _request()
    return _json(session.coverage.report())


@blueprint.get("/drift")
def drift() -> Response:
    """The upstream's drift from the spec (`--upstream`): empty when nothing is proxied."""
    _request()
    proxy: Proxy | None = current_app.extensions.get(PROXY)
    if proxy is None:
        return _json({"upstream": None, "responses": 0, "violations": 0, "operations": []})
    return _json(proxy.drift.report())
