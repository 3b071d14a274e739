"""The application factory: loads the specs, tokens and scenario, seeds the start-up state,
and wires the request path: the gate (sessions, journal, faults) around the Flask app (the API
of the spec, and the control API under /_mock).
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from werkzeug.exceptions import HTTPException

from mockserver import api, log, snapshot
from mockserver.auth import Authenticator, load_tokens
from mockserver.conformance import ResponseChecker
from mockserver.coverage import Coverage
from mockserver.event_types import COLLECTION as EVENT_TYPES
from mockserver.event_types import EventTypeBehaviour, load_catalogue
from mockserver.fake import Seeder
from mockserver.gate import Gate
from mockserver.problems import Problem
from mockserver.records import COLLECTION as RECORDS
from mockserver.records import Fixtures, RecordBehaviour
from mockserver.resource import Resources
from mockserver.router import Operation, Router
from mockserver.scenario import RuleBook, load_scenario
from mockserver.session import DEFAULT, Session, Sessions
from mockserver.settings import CONTROL_SPEC, Settings
from mockserver.spec import Spec, as_json, load_spec
from mockserver.store import Stores
from mockserver.tally import Tally, write_report
from mockserver.validation import Validator

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


@dataclass
class State:
    """Everything one server holds; `app.extensions["mockserver"]`."""

    settings: Settings
    spec: Spec
    router: Router
    validator: Validator
    resources: Resources
    sessions: Sessions
    auth: Authenticator
    control_spec: Spec
    rules: RuleBook
    control_router: Router
    control_validator: Validator
    fixtures: Fixtures
    checker: ResponseChecker | None = None
    started: float = field(default_factory=time.monotonic)
    spec_json: bytes = b""
    media_types: dict[tuple[str, int], str | None] = field(default_factory=dict)
    tally: Tally | None = None  # every answer, for the coverage report at exit
    forked: bool = False  # served by a forked worker (uWSGI), not by the process that made it


def create_app(settings: Settings | None = None, spec: Spec | None = None) -> Flask:
    """A ready server; raises SpecError, TokensFileError or ScenarioError naming a bad file."""
    settings = settings or Settings()
    spec = spec or load_spec(settings.spec)
    tokens = load_tokens(settings.tokens) if settings.tokens else None
    control = load_spec(CONTROL_SPEC)
    router = Router(spec.document)
    rules = RuleBook(spec, control, router, settings.strict)
    scenario = load_scenario(settings.scenario, rules) if settings.scenario else []
    initial = Stores(settings.max_records, on_evict=_evicted)
    behaviours = {RECORDS: RecordBehaviour, EVENT_TYPES: EventTypeBehaviour}
    resources = Resources(router.operations, spec.schema, initial, behaviours)
    load_catalogue(initial[EVENT_TYPES])
    seed(initial, settings)

    def load_rules(session: Session) -> None:
        for rule in scenario:
            if rule.get("session", DEFAULT) == session.name:
                session.faults.add(rule, rules.check(rule))

    sessions = Sessions(
        initial,
        lambda: Coverage(router.operations),
        settings.journal_size,
        settings.fault_seed,
        load_rules,
    )
    holder = State(
        settings,
        spec,
        router,
        Validator(spec, settings.strict),
        resources,
        sessions,
        Authenticator(settings.auth, tokens),
        control,
        rules,
        Router(control.document),
        Validator(control, strict=True),
        Fixtures(spec, router),
        checker=ResponseChecker(spec, control) if settings.check_responses else None,
        spec_json=as_json(spec),
        tally=Tally(settings.coverage_report) if settings.coverage_report is not None else None,
    )
    sessions.get(DEFAULT)
    if settings.state_file is not None:
        _restore(holder, settings.state_file)
    if holder.tally is not None:
        atexit.register(_write_coverage, holder.tally, router.operations)
    return _flask(holder)


def _restore(holder: State, path: Path) -> None:
    """Load `--state-file` when it exists, and save to it when this server stops."""
    if path.exists():
        templates = {op.collection for op in holder.router.operations if op.collection}
        started = time.monotonic()
        count, items = snapshot.load(path, holder.sessions, holder.rules, templates)
        took = time.monotonic() - started
        log.logger.info(
            "state loaded from %s: %d items in %d sessions (%.1fs)", path, items, count, took
        )
    else:
        log.logger.info("no state file %s yet: it is written when the server stops", path)
    atexit.register(_save, holder, path, os.getpid())


def _save(holder: State, path: Path, creator: int) -> None:
    """Save the sessions, from the process that served them: uWSGI's worker, not its master
    (which made the app, forked the worker and holds only the start-up state)."""
    if holder.forked and os.getpid() == creator:
        return
    started = time.monotonic()
    try:
        items = snapshot.save(path, holder.sessions, f"{holder.spec.title} {holder.spec.version}")
    except OSError as exc:
        log.logger.error("cannot save the state to %s: %s", path, exc)
        return
    took = time.monotonic() - started
    log.logger.info("state saved to %s: %d items (%.1fs)", path, items, took)


def _write_coverage(tally: Tally, operations: list[Operation]) -> None:
    """Served in-process: the report, from this process's tally. (uWSGI's master, which made
    the tally, runs no exit handlers: its exit command writes the report.)"""
    if os.getpid() == tally.owner and tally.path.exists():
        tally.close()
        write_report(tally.report, operations)
        log.logger.info("coverage report written to %s", tally.report)


def _flask(holder: State) -> Flask:
    app = Flask("mockserver")
    app.response_class = api.ApiResponse
    app.config["MAX_CONTENT_LENGTH"] = holder.settings.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False  # OPTIONS is a 405 with Allow, as the API's
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["mockserver"] = holder
    from mockserver.control import blueprint

    app.register_blueprint(blueprint)
    app.add_url_rule(
        api.SPEC_PATH, "spec", api.serve_spec, methods=["GET"], provide_automatic_options=False
    )
    app.add_url_rule(
        "/",
        "api",
        api.api,
        defaults={"path": ""},
        methods=ALL_METHODS,
        provide_automatic_options=False,
    )
    app.add_url_rule(
        "/<path:path>", "api", api.api, methods=ALL_METHODS, provide_automatic_options=False
    )
    app.after_request(api.finish)
    app.register_error_handler(Problem, api.problem_response)
    app.register_error_handler(HTTPException, api.http_error)
    app.register_error_handler(Exception, api.crash)
    app.wsgi_app = Gate(app.wsgi_app, holder)  # type: ignore[method-assign]
    return app


def seed(stores: Stores, settings: Settings) -> None:
    """Fill the records store with `--seed-records` Faker records, showing progress."""
    if settings.seed_records <= 0:
        return
    started = time.monotonic()
    store = stores[RECORDS]

    def progress(done: int, total: int) -> None:
        log.logger.info("seeding records: %d/%d (%.1fs)", done, total, time.monotonic() - started)

    count = settings.seed_records
    records = Seeder(settings.faker_seed).records(count, progress if count >= 10_000 else None)
    for record in records:
        store.insert(record)
    log.logger.info("seeded %d records in %.1fs", count, time.monotonic() - started)


def _evicted(collection: str, item_id: str) -> None:
    log.logger.info(
        "store full (--max-records): evicted the oldest item %s of %s", item_id, collection
    )


logging.getLogger("werkzeug").setLevel(logging.WARNING)
