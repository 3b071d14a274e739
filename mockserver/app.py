"""The application factory: composition only. It loads the specs, tokens and scenario, fills
the start-up storage from the behaviours, and stacks the request path: CORS → session prefix
→ the front (sessions, journal, faults, the log line) → the API lane, or Flask for the
control API under /_mock.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from mockserver import log
from mockserver.auth.identity import Authenticator
from mockserver.auth.tokens import load_tokens
from mockserver.contract.response_check import ResponseChecker
from mockserver.contract.router import Operation, Router
from mockserver.contract.spec import Spec, as_json, load_spec
from mockserver.contract.validation import Validator
from mockserver.control import ui
from mockserver.control.api import blueprint
from mockserver.faults.checking import RuleBook
from mockserver.faults.scenario import load_scenario
from mockserver.http import answers
from mockserver.http.cors import Cors
from mockserver.http.middleware import Front
from mockserver.http.session_prefix import SessionPrefix
from mockserver.problems import Problem
from mockserver.proxy.forward import PROXY, Proxy
from mockserver.proxy.seed import seed as seed_from
from mockserver.resources.behaviour import Behaviour
from mockserver.resources.event_types import COLLECTION as EVENT_TYPES
from mockserver.resources.event_types import EventTypeBehaviour
from mockserver.resources.handlers import Resources
from mockserver.resources.records import COLLECTION as RECORDS
from mockserver.resources.records import RecordBehaviour
from mockserver.respond import WSGIApp
from mockserver.sessions import state_file
from mockserver.sessions.coverage import Coverage
from mockserver.sessions.journal import Budget, Journal
from mockserver.sessions.session import DEFAULT, Limits, Session, Sessions
from mockserver.sessions.tally import Tally, write_report
from mockserver.settings import CONTROL_SPEC, Settings
from mockserver.state import State
from mockserver.storage import make_backend
from mockserver.storage.backend import Backend, StoreUnavailable
from mockserver.storage.budget import StoreBudget

BUILT_IN: dict[str, type[Behaviour]] = {RECORDS: RecordBehaviour, EVENT_TYPES: EventTypeBehaviour}


def create_app(
    settings: Settings | None = None,
    spec: Spec | None = None,
    *,
    behaviours: dict[str, type[Behaviour]] | None = None,
    backend: Backend | None = None,
) -> Flask:
    """A ready server; raises SpecError, TokensFileError, ScenarioError or StateFileError
    naming a bad file. `behaviours` (by collection path) replace the built-in ones (records
    and event types); `backend` is the start-up storage every session starts from (an
    empty memory backend by default)."""
    settings = settings or Settings()
    chosen = BUILT_IN if behaviours is None else behaviours
    spec = spec or load_spec(settings.spec, strict=settings.strict)
    state = _state(settings, spec, chosen, backend)
    state.sessions.get(DEFAULT)
    if settings.state_file is not None:
        _restore(state, settings.state_file)
    if state.tally is not None:
        atexit.register(_write_coverage, state.tally, state.router.operations)
    proxy = _proxy(state)
    return _flask(state, proxy)


def _proxy(state: State) -> Proxy | None:
    """With `--upstream`: the proxy, checking the upstream's answers against the API's spec;
    its drift report written at exit when served in-process (uWSGI's master runs a command)."""
    if state.settings.upstream is None:
        return None
    proxy = Proxy(state.settings, ResponseChecker(state.spec))
    if state.settings.drift_report is not None:
        atexit.register(_write_drift, proxy)
    return proxy


def _write_drift(proxy: Proxy) -> None:
    if os.getpid() == proxy.drift.owner:
        proxy.write_drift_report()


def _state(
    settings: Settings,
    spec: Spec,
    behaviours: dict[str, type[Behaviour]],
    backend: Backend | None,
) -> State:
    """What the server holds, its start-up storage filled (in the order a bad file is found:
    the spec, the tokens, the scenario)."""
    tokens = load_tokens(settings.tokens) if settings.tokens else None
    control = load_spec(CONTROL_SPEC)
    router = Router(spec.document)
    rules = RuleBook(spec, control, router, settings.strict)
    scenario = load_scenario(settings.scenario, rules) if settings.scenario else []
    if backend is None:
        budget = StoreBudget(settings.max_store_bytes, _spilled)
        backend = make_backend(
            settings.store,
            settings.max_records,
            _evicted,
            settings.store_prefix,
            budget,
            settings.read_cache_bytes,
        )
        atexit.register(_release, backend)
    initial = backend
    resources = Resources(router.operations, spec, initial, behaviours, settings.faker_seed)
    resources.query_budget = settings.query_budget_ms / 1000
    resources.seed(initial, settings)
    if settings.seed_from is not None:
        count = seed_from(initial, router, settings.seed_from)
        log.logger.info("seeded %d items from %s", count, settings.seed_from)
    return State(
        settings,
        spec,
        router,
        Validator(spec, settings.strict),
        resources,
        behaviours,
        _sessions(settings, initial, router, rules, scenario),
        Authenticator(settings.auth, tokens),
        control,
        rules,
        Router(control.document),
        Validator(control, strict=True),
        checker=ResponseChecker(spec, control) if settings.check_responses else None,
        spec_json=as_json(spec),
        tally=Tally(settings.coverage_report) if settings.coverage_report is not None else None,
        kinds=resources.kinds(router.operations),
    )


def _sessions(
    settings: Settings,
    initial: Backend,
    router: Router,
    rules: RuleBook,
    scenario: list[dict[str, Any]],
) -> Sessions:
    """Sessions made from the start-up storage, each with the scenario's rules for it."""

    def load_rules(session: Session) -> None:
        for rule in scenario:
            if rule.get("session", DEFAULT) == session.name:
                session.faults.add(rule, rules.check(rule))

    limits = Limits(settings.max_sessions, settings.session_ttl, settings.max_rules)
    if getattr(initial, "shared", False):  # a Redis store: sessions shared with other servers
        from mockserver.sessions.shared import Shared, SharedSessions

        link, prefix = initial.link, initial.namespace.prefix  # type: ignore[attr-defined]
        shared = Shared(link, prefix, settings.journal_bytes, settings.journal_write_behind)
        return SharedSessions(
            initial,
            router.operations,
            settings.journal_size,
            settings.fault_seed,
            load_rules,
            limits,
            shared,
        )
    budget = Budget(settings.journal_bytes)  # every session's journal together
    return Sessions(
        initial,
        lambda: Coverage(router.operations),
        lambda: Journal(settings.journal_size, budget),
        settings.fault_seed,
        load_rules,
        limits,
        budget,
    )


def _restore(state: State, path: Path) -> None:
    """Load `--state-file` when it exists, and save to it when this server stops."""
    state_file.check_writable(path)
    if path.exists():
        templates = {
            op.collection: _item_check(state, op.collection)
            for op in state.router.operations
            if op.collection
        }
        started = time.monotonic()
        count, items = state_file.load(path, state.sessions, state.rules, templates)
        took = time.monotonic() - started
        log.logger.info(
            "state loaded from %s: %d items in %d sessions (%.1fs)", path, items, count, took
        )
    else:
        log.logger.info("no state file %s yet: it is written when the server stops", path)
    atexit.register(_save, state, path, os.getpid())


def _item_check(state: State, collection: str) -> Callable[[Any], str]:
    """Why an item of the state file breaks the spec ("" when it does not): as the control
    API checks the records it is given."""

    def check(item: Any) -> str:
        errors = state.resources.item_errors(collection, [item])
        return "; ".join(
            f"{k.removeprefix('[0]').lstrip('.') or '(the item)'}: {', '.join(v)}"
            for k, v in errors.items()
        )

    return check


def _save(state: State, path: Path, creator: int) -> None:
    """Save the sessions, from the process that served them: uWSGI's worker, not its master
    (which made the app, forked the worker and holds only the start-up state)."""
    if state.forked and os.getpid() == creator:
        return
    started = time.monotonic()
    spec = f"{state.spec.title} {state.spec.version}"
    try:
        items = state_file.save(path, state.sessions, spec)
    except (OSError, StoreUnavailable) as exc:
        state.unsaved = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        log.logger.error("could not save the state file %s: %s", path, state.unsaved)
        return
    took = time.monotonic() - started
    log.logger.info("state saved to %s: %d items (%.1fs)", path, items, took)


def _release(backend: Backend) -> None:
    """The start-up storage let go of when the server stops (by uWSGI's worker: its master
    runs no exit handlers)."""
    try:
        backend.release()
    except Problem as problem:  # the store lost: nothing more to do
        log.logger.warning("could not release the start-up storage: %s", problem)


def _write_coverage(tally: Tally, operations: list[Operation]) -> None:
    """Served in-process: the report, from this process's tally. (uWSGI's master, which made
    the tally, runs no exit handlers: its exit command writes the report.)"""
    if os.getpid() == tally.owner and tally.path.exists():
        tally.close()
        write_report(tally.report, operations)
        log.logger.info("coverage report written to %s", tally.report)


def _flask(state: State, proxy: Proxy | None = None) -> Flask:
    """Flask for the control API, behind the front (which sends API requests to the lane)."""
    app = Flask("mockserver")
    app.response_class = answers.ApiResponse
    app.config["MAX_CONTENT_LENGTH"] = state.settings.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False  # OPTIONS is a 405 with Allow, as the API's
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["mockserver"] = state
    app.extensions[PROXY] = proxy
    app.register_blueprint(blueprint)
    app.register_blueprint(ui.blueprint)  # the dashboard, /_mock/ui
    app.after_request(answers.finished)
    app.register_error_handler(Problem, answers.problem_response)
    app.register_error_handler(HTTPException, answers.http_error)
    app.register_error_handler(Exception, answers.crash)
    front: WSGIApp = SessionPrefix(Front(app.wsgi_app, state, proxy))
    origins = state.settings.cors_origins
    app.wsgi_app = Cors(front, origins) if origins else front  # type: ignore[method-assign,assignment]
    return app


def _evicted(collection: str, item_id: str) -> None:
    log.logger.info(
        "store full (--max-records): evicted the oldest item %s of %s", item_id, collection
    )


def _spilled(collection: str, item_id: str) -> None:
    log.logger.info(
        "store full (--max-store-bytes): evicted the oldest item %s of %s", item_id, collection
    )


logging.getLogger("werkzeug").setLevel(logging.WARNING)
