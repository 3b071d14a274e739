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

from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.schemas import oas30_read_schema_validators_factory
from werkzeug.datastructures import Headers

from mockserver.contract.router import Router
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
    template: str = ""  # the operation's path template ("": no operation matched)

    def __str__(self) -> str:
        return f"{self.kind}: {self.method} {self.path} -> {self.status}: {self.message}"


class ResponseChecker:
    """Validates responses of one or more specs (the API's, the control API's)."""

    def __init__(self, *specs: Spec) -> None:
        self._specs = [(spec, Router(spec.document)) for spec in specs]
        self.findings: list[Finding] = []
        self._lock = threading.Lock()

    def check(
        self, method: str, path: str, status: int, headers: Headers, body: bytes
    ) -> list[Finding]:
        found = self._check(method, path, status, headers, body)
        if found:
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
        if isinstance(error, ResponseNotFound):
            return Finding("undocumented", method, path, status, str(error), template)
        cause = error.__cause__
        details = [getattr(e, "message", str(e)) for e in getattr(cause, "schema_errors", [])]
        text = "; ".join(details) if details else str(cause or error)
        return Finding("invalid", method, path, status, f"{error}: {text}", template)
