"""The application factory: loads the spec, the stores and the tokens, and wires the request path.

One API request, top to bottom: route (404/405) → auth (401/403) → validate (400/413/415) →
resource handler → response. Each step raises a `Problem` to answer with an error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, current_app, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from mockserver import codec, log
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
    media_types: dict[tuple[str, int], str] = field(default_factory=dict)

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
    app.response_class = ApiResponse
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


def _evicted(collection: str, item_id: str) -> None:
    log.logger.info(
        "store full (--max-records): evicted the oldest item %s of %s", item_id, collection
    )


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


@dataclass
class Trail:
    """What one request leaves for its log line (kept in the WSGI environ)."""

    started: float = field(default_factory=time.perf_counter)
    operation: Operation | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def trail() -> Trail:
    environ = request.environ
    found: Trail | None = environ.get("mockserver.trail")
    if found is None:
        found = environ["mockserver.trail"] = Trail()
    return found


def _api(path: str) -> Response:
    holder = state()
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    environ, headers = req.environ, req.headers
    match = holder.router.match(req.method, req.path)
    operation = match.operation
    notes = environ["mockserver.trail"] = Trail(operation=operation)
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
        streaming=headers.get("MPT-Streaming", "").strip().lower() == "true",
    )
    reply = holder.resources.handle(exchange)
    notes.extras.update(record=reply.record_id, warnings=exchange.warnings)
    return _reply(reply, operation)


def _base_url(environ: dict[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{environ['wsgi.url_scheme']}://{host}{environ.get('SCRIPT_NAME', '')}"


def _serve_spec() -> Response:
    return ApiResponse(state().spec_json, 200, content_type=JSON)


def _reply(reply: Reply, operation: Operation) -> Response:
    if reply.body is None:
        return ApiResponse(status=reply.status, headers=reply.headers)
    media = _media_type(operation, reply.status, JSON)
    body = reply.body if isinstance(reply.body, bytes) else codec.dumps(reply.body)
    return ApiResponse(body, reply.status, reply.headers, content_type=media)


def _media_type(operation: Operation | None, status: int, fallback: str) -> str:
    """The media type the spec declares for this answer (problem+json or json)."""
    if operation is None:
        return fallback
    known = state().media_types
    key = (operation.operation_id, status)
    if key not in known:
        declared = operation.node.get("responses", {}).get(str(status))
        if isinstance(declared, dict) and "$ref" in declared:
            declared = state().spec.schema(declared["$ref"])
        content = declared.get("content") if isinstance(declared, dict) else None
        known[key] = f"{next(iter(content))}; charset=utf-8" if content else fallback
    return known[key]


def _problem(problem: Problem) -> Response:
    trace = trace_id(request.headers.get("traceparent"))
    notes = trail()
    notes.extras["error"] = problem.errors or problem.detail
    media = _media_type(notes.operation, problem.status, PROBLEM_JSON)
    body = codec.dumps(problem.body(trace))
    return ApiResponse(body, problem.status, headers=problem.headers, content_type=media)


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
    environ = request.environ
    response.status = status_line(response.status_code)
    notes = trail()
    millis = (time.perf_counter() - notes.started) * 1000
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    query = environ.get("QUERY_STRING", "")
    checker = state().checker
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
    target = f"{path}?{unquote(query)}" if query else path
    log.request_line(environ["REQUEST_METHOD"], target, response.status_code, millis, notes.extras)
    return response


logging.getLogger("werkzeug").setLevel(logging.WARNING)
