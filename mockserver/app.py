"""The application factory: loads the spec, the stores and the tokens, and wires the request path.

One API request, top to bottom: route (404/405) → auth (401/403) → validate (400/413/415) →
resource handler → response. Each step raises a `Problem` to answer with an error.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from mockserver import log
from mockserver.auth import Authenticator, load_tokens, required_right
from mockserver.conformance import ResponseChecker
from mockserver.event_types import COLLECTION as EVENT_TYPES
from mockserver.event_types import EventTypeBehaviour, load_catalogue
from mockserver.fake import Seeder
from mockserver.problems import Problem, status_line, trace_id
from mockserver.query import decode
from mockserver.records import COLLECTION as RECORDS
from mockserver.records import RecordBehaviour
from mockserver.resource import Exchange, Reply, Resources
from mockserver.router import Operation, Router
from mockserver.settings import CONTROL_SPEC, Settings
from mockserver.spec import Spec, as_json, load_spec
from mockserver.store import Stores
from mockserver.validation import Validator

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
SPEC_PATH = "/public/v1/audit/openapi.json"
JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json; charset=utf-8"


@dataclass
class State:
    """Everything one server holds; `app.extensions["mockserver"]`."""

    settings: Settings
    spec: Spec
    router: Router
    validator: Validator
    resources: Resources
    stores: Stores
    auth: Authenticator
    control_spec: Spec
    checker: ResponseChecker | None = None
    started: float = field(default_factory=time.monotonic)
    spec_json: bytes = b""

    def reset(self) -> None:
        """Back to the start-up state: the catalogue and the seed records, nothing else."""
        self.stores.clear()
        load_catalogue(self.stores[EVENT_TYPES])
        seed(self.stores, self.settings)


def state() -> State:
    found: State = current_app.extensions["mockserver"]
    return found


def create_app(settings: Settings | None = None, spec: Spec | None = None) -> Flask:
    """A ready server; raises SpecError or TokensFileError naming a bad file."""
    settings = settings or Settings()
    spec = spec or load_spec(settings.spec)
    tokens = load_tokens(settings.tokens) if settings.tokens else None
    router = Router(spec.document)
    stores = Stores(settings.max_records, on_evict=_evicted)
    resources = Resources(
        router.operations,
        spec.schema,
        stores,
        {RECORDS: RecordBehaviour, EVENT_TYPES: EventTypeBehaviour},
    )
    control = load_spec(CONTROL_SPEC)
    holder = State(
        settings,
        spec,
        router,
        Validator(spec, settings.strict),
        resources,
        stores,
        Authenticator(settings.auth, tokens),
        control,
        checker=ResponseChecker(spec, control) if settings.check_responses else None,
        spec_json=as_json(spec),
    )
    holder.reset()

    app = Flask("mockserver")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["mockserver"] = holder
    from mockserver.control import blueprint

    app.register_blueprint(blueprint)
    app.add_url_rule(
        SPEC_PATH, "spec", _serve_spec, methods=["GET"], provide_automatic_options=False
    )
    app.add_url_rule(
        "/",
        "api",
        _api,
        defaults={"path": ""},
        methods=ALL_METHODS,
        provide_automatic_options=False,
    )
    app.add_url_rule(
        "/<path:path>", "api", _api, methods=ALL_METHODS, provide_automatic_options=False
    )
    app.before_request(_start)
    app.after_request(_log)
    app.register_error_handler(Problem, _problem)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _crash)
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


def _evicted(collection: str, item: dict[str, Any]) -> None:
    log.logger.info(
        "store full (--max-records): evicted the oldest item %s of %s", item.get("id"), collection
    )


def _start() -> None:
    g.started = time.perf_counter()
    g.extras = {}


def _api(path: str) -> Response:
    holder = state()
    match = holder.router.match(request.method, request.path)
    g.operation = match.operation
    operation = match.operation
    identity = holder.auth.identify(
        request.headers.get("Authorization"), required_right(operation.method, operation.resource)
    )
    query = decode(request.query_string.decode("utf-8", "replace"))
    checked = holder.validator.check(request, match, query.params)
    exchange = Exchange(
        match,
        query,
        checked.body,
        identity,
        request.host_url.rstrip("/"),
        checked.warnings,
        streaming=request.headers.get("MPT-Streaming", "").strip().lower() == "true",
    )
    reply = holder.resources.handle(exchange)
    g.extras.update(record=reply.record_id, warnings=exchange.warnings)
    return _reply(reply, operation)


def _serve_spec() -> Response:
    return Response(state().spec_json, 200, content_type=JSON)


def _reply(reply: Reply, operation: Operation) -> Response:
    if reply.body is None:
        return Response(status=reply.status, headers=reply.headers)
    body = json.dumps(reply.body, ensure_ascii=False, separators=(",", ":"))
    return Response(
        body,
        reply.status,
        headers=reply.headers,
        content_type=_media_type(operation, reply.status, JSON),
    )


def _media_type(operation: Operation | None, status: int, fallback: str) -> str:
    """The media type the spec declares for this answer (problem+json or json)."""
    if operation is None:
        return fallback
    declared = operation.node.get("responses", {}).get(str(status))
    if isinstance(declared, dict) and "$ref" in declared:
        declared = state().spec.schema(declared["$ref"])
    content = declared.get("content") if isinstance(declared, dict) else None
    return f"{next(iter(content))}; charset=utf-8" if content else fallback


def _problem(problem: Problem) -> Response:
    trace = trace_id(request.headers.get("traceparent"))
    body = json.dumps(problem.body(trace), ensure_ascii=False, separators=(",", ":"))
    g.extras["error"] = problem.errors or problem.detail
    media = _media_type(g.get("operation"), problem.status, PROBLEM_JSON)
    return Response(body, problem.status, headers=problem.headers, content_type=media)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 405:  # a method Flask does not route at all (QUERY, PROPFIND...)
        try:
            state().router.match(request.method, request.path)
        except Problem as problem:
            return _problem(problem)
    detail = error.description
    if status == 413:
        limit = state().settings.max_body_bytes
        detail = f"The request body is larger than the limit of {limit} bytes."
    return _problem(Problem(status, detail))


def _crash(error: Exception) -> Response:
    log.logger.exception("unexpected error on %s %s", request.method, request.path)
    return _problem(Problem(500, "The mock server failed unexpectedly; see its log."))


def _log(response: Response) -> Response:
    response.status = status_line(response.status_code)
    started = g.get("started")
    millis = (time.perf_counter() - started) * 1000 if started else 0.0
    target = request.full_path.rstrip("?") if request.query_string else request.path
    checker = state().checker
    if checker is not None and not response.is_streamed:
        found = checker.check(
            request.method,
            request.path,
            response.status_code,
            response.headers,
            response.get_data(),
        )
        for finding in found:
            log.logger.warning("response does not conform to the spec: %s", finding)
    log.request_line(request.method, target, response.status_code, millis, g.get("extras", {}))
    return response


logging.getLogger("werkzeug").setLevel(logging.WARNING)
