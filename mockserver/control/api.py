"""The control API under `/_mock`: health, reset, records, fault rules, journal, coverage.

Every request is validated against openapi/control.yaml (strictly: unknown members are
refused) and errors are problem details, like the API's. `?session=NAME` (or the
`X-Mock-Session` header) picks the session; the default session otherwise.
"""

from __future__ import annotations

import hmac
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, request

from mockserver import codec
from mockserver.contract.validation import Checked
from mockserver.http.answers import ApiResponse, state
from mockserver.problems import Problem, invalid
from mockserver.query.params import decode as decode_query
from mockserver.resources.generated import KINDS, AnswerKind
from mockserver.respond import JSON
from mockserver.sessions.journal import Matcher
from mockserver.sessions.session import DEFAULT, NAME_RULE, Session
from mockserver.settings import CONTROL_PREFIX
from mockserver.storage.backend import Collection
from mockserver.storage.encoding import decode

blueprint = Blueprint("control", __name__, url_prefix=CONTROL_PREFIX)


@blueprint.before_request
def _door() -> None:
    """With `--admin-token`, every control request shows it (`Authorization: Bearer ...`)."""
    expected = state().settings.admin_token
    if expected is None:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        raise Problem(
            401,
            "The control API needs the admin token: Authorization: Bearer <--admin-token>.",
            headers={"WWW-Authenticate": 'Bearer realm="mockserver-control"'},
        )


def _request() -> tuple[Session, Checked, dict[str, str]]:
    """Validate the control request; its session, checked body and query parameters."""
    holder = state()
    match = holder.control_router.match(request.method, request.path)
    query = decode_query(request.environ.get("QUERY_STRING", "")).params
    checked = holder.control_validator.check(request, match, query)
    if query.get("session") == "":  # an unset variable in CI: not silently the shared session
        raise invalid({"session": [NAME_RULE]})
    name = query.get("session") or request.headers.get("X-Mock-Session") or DEFAULT
    return holder.sessions.get(name), checked, query


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
    health: dict[str, Any] = {
        "status": "ok",
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
        **{label: len(session.storage.open(path)) for label, path in holder.counted().items()},
        "faults": len(session.faults.rules),
        "journal": len(session.journal),
        "uptimeSeconds": round(time.monotonic() - holder.started, 3),
    }
    health["operations"] = _by_kind(holder.kinds.values())
    if holder.checker is not None:
        findings = list(holder.checker.findings)
        health["responseFindings"] = len(findings)
        kinds = (holder.kind_of(f.method, f.template) for f in findings if f.template)
        health["responseFindingsByKind"] = _by_kind(k for k in kinds if k is not None)
    return health


def _by_kind(kinds: Iterable[AnswerKind]) -> dict[str, int]:
    """How many of each kind of operation: CRUD, answered with an example, generated."""
    counted = Counter(kinds)
    return {kind: counted[kind] for kind in KINDS}


@blueprint.get("/health")
def health() -> Response:
    session, _, _ = _request()
    return _json(_health(session))


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


@blueprint.post("/records")
def insert_records() -> Response:
    session, checked, _ = _request()
    fixtures = checked.body if isinstance(checked.body, list) else [checked.body]
    records = _records(session)
    errors = state().resources.item_errors(records.template, fixtures)
    if errors:
        raise invalid(errors)
    return _json({"data": [decode(records.insert(fixture)) for fixture in fixtures]}, 201)


@blueprint.delete("/records")
def clear_records() -> Response:
    session, _, _ = _request()
    _records(session).clear()
    return _empty()


@blueprint.get("/faults")
def list_faults() -> Response:
    session, _, _ = _request()
    return _json({"data": [rule.state() for rule in session.faults.rules]})


@blueprint.post("/faults")
def add_faults() -> Response:
    session, checked, _ = _request()
    given = checked.body if isinstance(checked.body, list) else [checked.body]
    book, sessions = state().rules, state().sessions
    documented = [book.check(rule) for rule in given]  # all checked before any is added
    added = [
        sessions.get(rule["session"]).faults.add(rule, ok)
        if "session" in rule
        else session.faults.add(rule, ok)
        for rule, ok in zip(given, documented, strict=True)
    ]
    return _json({"data": [rule.state() for rule in added]}, 201)


@blueprint.delete("/faults")
def clear_faults() -> Response:
    session, _, _ = _request()
    session.faults.clear()
    return _empty()


@blueprint.delete("/faults/<rule_id>")
def remove_fault(rule_id: str) -> Response:
    session, _, _ = _request()
    if not session.faults.remove(rule_id):
        raise Problem(404, f"No fault rule {rule_id} in session {session.name}.")
    return _empty()


@blueprint.get("/requests")
def list_requests() -> Response:
    session, _, query = _request()
    entries = list(session.journal)
    page = _page(query, entries, len(entries) or 1)
    return _json({"total": len(entries), "data": [entry.as_json() for entry in page]})


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
