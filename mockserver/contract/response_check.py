"""Checking the server's own answers against the spec (openapi-core response validation).

With `--check-responses` every response is checked after it is made; what does not conform is
logged and counted (`GET /_mock/health` shows the count). The test suite runs with it on, so
every response any test sees is checked, whichever client made the request.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from werkzeug.datastructures import Headers

from mockserver.contract import library
from mockserver.contract.router import Operation, Router
from mockserver.contract.schema_backend import LazyFormats, Violation, compile_schema
from mockserver.contract.schemas import join
from mockserver.contract.spec import Spec
from mockserver.problems import Problem


@dataclass(frozen=True)
class Finding:
    """One way a response differs from the spec.

    `undocumented`: the spec declares no such status for the operation (the published platform
    spec leaves out most error statuses); `invalid`: the body or headers break the schema.
    """

    kind: Literal["undocumented", "invalid"]
    method: str
    path: str
    status: int
    message: str
    field: str = ""  # where in the body (`object.id`, `$` for the body itself)
    expected: str = ""  # what the spec asks for there (`string`, `present`)
    found: str = ""  # what the response holds (`integer`, `missing`)
    template: str = ""  # the operation's path template ("": no operation matched)

    def __str__(self) -> str:
        return f"{self.kind}: {self.method} {self.path} -> {self.status}: {self.message}"


class ResponseChecker:
    """Validates responses of one or more specs (the API's, the control API's)."""

    def __init__(self, *specs: Spec) -> None:
        self._specs = [(spec, Router(spec.document)) for spec in specs]
        self._fast = _Compiled()
        self.findings: list[Finding] = []
        self._lock = threading.Lock()

    def check(
        self, method: str, path: str, status: int, headers: Headers, body: bytes, keep: bool = True
    ) -> list[Finding]:
        """What does not conform; kept in `findings` (for health's count) unless `keep` is
        false (the proxy counts its own)."""
        found = self._check(method, path, status, headers, body)
        if found and keep:
            with self._lock:
                self.findings.extend(found)
        return found

    def _check(
        self, method: str, path: str, status: int, headers: Headers, body: bytes
    ) -> list[Finding]:
        mimetype = headers.get("Content-Type", "")
        for spec, router in self._specs:
            try:
                match = router.match(method, path)
            except Problem:
                continue
            if self._fast.conforms(spec, match.operation, status, mimetype, body):
                return []
            op = spec.openapi.spec / "paths" / match.operation.template / method.lower()
            validator: Any = spec.openapi.response_validator
            errors = list(validator._iter_errors(status, body, headers, mimetype, op))
            template = match.operation.template
            return [self._finding(e, method, path, status, template) for e in errors]
        return self._check_problem(method, path, status, mimetype, body)

    def _check_problem(
        self, method: str, path: str, status: int, mimetype: str, body: bytes
    ) -> list[Finding]:
        """No operation matched (404, 405): the body must still be a problem document."""
        spec = self._specs[0][0]
        if status < 400:
            return [Finding("undocumented", method, path, status, "no operation in the spec")]
        if "json" not in mimetype:
            return [Finding("invalid", method, path, status, f"not a JSON problem ({mimetype})")]
        if "ProblemDetails" not in spec.document.get("components", {}).get("schemas", {}):
            spec = self._specs[-1][0]  # the control spec always has it
        library.load()
        from openapi_core.validation.schemas import oas30_read_schema_validators_factory

        try:
            value = json.loads(body)
            root = spec.openapi.spec
            schema = root / "components" / "schemas" / "ProblemDetails"
            oas30_read_schema_validators_factory.create(root, schema).validate(value)
        except Exception as exc:
            return [Finding("invalid", method, path, status, f"not a valid problem: {exc}")]
        return []

    @staticmethod
    def _finding(error: Exception, method: str, path: str, status: int, template: str) -> Finding:
        library.load()
        from openapi_core.templating.responses.exceptions import ResponseNotFound

        if isinstance(error, ResponseNotFound):
            return Finding(
                "undocumented",
                method,
                path,
                status,
                str(error),
                "status",
                "declared",
                "undeclared",
                template,
            )
        cause = error.__cause__
        schema_errors = list(getattr(cause, "schema_errors", []))
        details = [getattr(e, "message", str(e)) for e in schema_errors]
        text = "; ".join(details) if details else str(cause or error)
        where = _where(schema_errors[0]) if schema_errors else ("$", "valid", str(cause or error))
        return Finding("invalid", method, path, status, f"{error}: {text}", *where, template)


class _Compiled:
    """The fast path: a response whose body a compiled schema (jsonschema-rs) accepts conforms;
    any other, or one whose schema does not compile, goes to openapi-core, which explains."""

    def __init__(self) -> None:
        self._formats = LazyFormats()  # openapi-core's format checks, loaded on first use
        self._made: dict[tuple[int, str, int, str], Any] = {}

    def conforms(
        self, spec: Spec, operation: Operation, status: int, mimetype: str, body: bytes
    ) -> bool:
        media = mimetype.split(";", 1)[0].strip().lower()
        key = (id(spec), operation.operation_id, status, media)
        if key not in self._made:
            self._made[key] = self._compiled(spec, operation, status, media)
        validator = self._made[key]
        if validator is None:
            return False
        try:
            return bool(validator.is_valid(orjson.loads(body)))
        except orjson.JSONDecodeError:
            return False

    def _compiled(self, spec: Spec, operation: Operation, status: int, media: str) -> Any:
        declared = operation.node.get("responses", {}).get(str(status))
        if isinstance(declared, dict) and "$ref" in declared:
            declared = spec.schema(declared["$ref"])
        if not isinstance(declared, dict) or "json" not in media:
            return None
        headers = declared.get("headers") or {}
        if any(isinstance(h, dict) and h.get("required") for h in headers.values()):
            return None  # openapi-core checks headers; the fast path only bodies
        schema = (declared.get("content") or {}).get(media, {}).get("schema")
        if schema is None:
            return None
        return compile_schema(spec, schema, self._formats, response=True)


_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer"}


def _where(error: Any) -> tuple[str, str, str]:
    """(field path, expected, found) of a schema error of either backend."""
    found = error if isinstance(error, Violation) else Violation.from_jsonschema(error)
    path = ""
    for part in found.path:
        path = join(path, part)
    if found.keyword == "required":
        return join(path, str(found.expected)), "present", "missing"
    if found.keyword == "additionalProperties":
        return join(path, ",".join(found.unexpected)), "absent", "present"
    if found.keyword == "type":
        expected = found.expected
        shown = "|".join(expected) if isinstance(expected, list) else str(expected)
        return path or "$", shown, _type_name(found.instance)
    value = json.dumps(found.instance, default=str)[:80]
    return path or "$", f"{found.keyword} {found.expected}", value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return _TYPES.get(type(value), "number")
