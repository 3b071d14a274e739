"""Checking fault rules against the specs.

A rule must fit the control API's `Rule` schema. A status the API spec declares for the
operations the rule can match is `documented`, and a body given for it must fit the spec's
schema for that answer (400 with the violations otherwise). Statuses the spec does not declare
(429, 502, 503, 504...) are allowed, since gateways send them, unless the server is `--strict`.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

from mockserver.codec import json_fault
from mockserver.contract import library
from mockserver.contract.router import Operation, Router
from mockserver.contract.spec import Spec
from mockserver.contract.violations import Errors, violations
from mockserver.faults.matching import path_pattern
from mockserver.problems import Problem, invalid

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110)
_FRAMING = frozenset({"content-length", "transfer-encoding"})  # the server frames the body
_NO_CONTENT = frozenset({204, 205, 304})


class RuleBook:
    """Checks rules for one API spec (and the control spec's `Rule` schema)."""

    def __init__(self, spec: Spec, control: Spec, router: Router, strict: bool) -> None:
        self.spec = spec
        self.control = control
        self.router = router
        self.strict = strict

    @cached_property
    def _rule_schema(self) -> Any:
        """openapi-core's validator of the control API's `Rule` schema (made on first use:
        openapi-core is loaded then)."""
        library.load()
        from openapi_core.validation.schemas import oas30_read_schema_validators_factory

        schema = self.control.openapi.spec / "components" / "schemas" / "Rule"
        return oas30_read_schema_validators_factory.create(self.control.openapi.spec, schema)

    def shape_errors(self, given: Any) -> Errors:
        """Violations of the control API's `Rule` schema (for rules not sent over HTTP)."""
        library.load()
        from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

        try:
            self._rule_schema.validate(given)
        except InvalidSchemaValue as exc:
            errors: Errors = {}
            for error in exc.schema_errors:
                for key, message in violations(error):
                    errors.setdefault(key, []).append(message)
            return errors
        return {}

    def refusal(self, given: Any) -> str:
        """Why a rule that did not come over HTTP (a file's) is not valid; "" if it is."""
        errors = self.shape_errors(given)
        if not errors:
            try:
                self.check(given)
            except Exception as exc:  # a Problem with the violations
                errors = getattr(exc, "errors", None) or {"$": [str(exc)]}
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())

    def check(self, given: dict[str, Any]) -> bool:
        """Whether the rule's status is documented; a Problem (400) for a rule that cannot be."""
        errors = _own_errors(given)
        if errors:
            raise invalid(errors)
        status = given.get("status")
        if status is None:
            return True
        candidates = self.operations(given)
        documented = bool(candidates) and all(_declares(op, status) for op in candidates)
        if not documented and self.strict:
            raise _undocumented(status, candidates)
        if "body" in given:  # checked for each operation that declares the status
            errors = self._body_errors(candidates, status, given["body"])
            if errors:
                raise invalid(errors)
        return documented

    def operations(self, given: dict[str, Any]) -> list[Operation]:
        """The spec's operations a rule can match."""
        method = (given.get("method") or "").upper()
        pattern = path_pattern(given["path"]) if given.get("path") else None
        return [
            op
            for op in self.router.operations
            if (not method or op.method == method)
            and (pattern is None or pattern.match(op.template) or _template_fits(op, given["path"]))
        ]

    def _body_errors(self, candidates: list[Operation], status: int, body: Any) -> Errors:
        library.load()
        from openapi_core.validation.schemas import oas30_read_schema_validators_factory
        from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

        errors: Errors = {}
        for op in candidates:
            schema = _response_schema(self.spec, op, status)
            if schema is None:
                continue
            validator = oas30_read_schema_validators_factory.create(self.spec.openapi.spec, schema)
            try:
                validator.validate(body)
            except InvalidSchemaValue as exc:
                for error in exc.schema_errors:
                    for key, message in violations(error):
                        found = errors.setdefault(f"body.{key}" if key != "$" else "body", [])
                        if message not in found:  # operations sharing a schema say it once
                            found.append(message)
        return errors


def _own_errors(given: dict[str, Any]) -> Errors:
    """What is wrong with the rule on its own, before the spec is asked: every header name its
    answer could not send as it is written; else `delay_ms` or `probability` if it is not JSON
    (a NaN passes every minimum and maximum); else a body for a status that has none."""
    errors = _header_errors(given.get("headers") or {})
    if errors:
        return errors
    for name in ("delay_ms", "probability"):
        problem = json_fault(given.get(name), name)
        if problem:
            return {name: [problem]}
    status = given.get("status")
    if "body" in given and status in _NO_CONTENT:
        return {"body": [f"A {status} answer has no body."]}
    return {}


def _undocumented(status: int, candidates: list[Operation]) -> Problem:
    """The 400 of `--strict` for a status the spec does not declare for the rule's operations."""
    where = ", ".join(f"{op.method} {op.template}" for op in candidates) or "any operation"
    return invalid(
        {
            "status": [
                f"The spec declares no {status} answer for {where}; "
                "--strict refuses undocumented statuses."
            ]
        }
    )


def _header_errors(headers: dict[str, str]) -> Errors:
    """Header names the rule's answer could not send as they are written."""
    errors: Errors = {}
    for name in headers:
        if not _TOKEN.fullmatch(name):
            errors[f"headers.{name}"] = [
                "A header name is letters, digits and !#$%&'*+-.^_`|~ only."
            ]
        elif name.lower() in _FRAMING:
            errors[f"headers.{name}"] = [f"The server sets {name} itself."]
    return errors


def _template_fits(op: Operation, path: str) -> bool:
    """A concrete path (`/public/v1/audit/records/AUD-1`) fits the operation's template."""
    return bool(path_pattern(op.template).match(path))


def _declares(op: Operation, status: int) -> bool:
    responses = op.node.get("responses", {})
    return str(status) in responses or "default" in responses


def _response_schema(spec: Spec, op: Operation, status: int) -> Any:
    responses = spec.openapi.spec / "paths" / op.template / op.method.lower() / "responses"
    key = str(status) if str(status) in op.node.get("responses", {}) else "default"
    if key not in responses:
        return None
    content = responses / key / "content" if "content" in responses / key else None
    if content is None:
        return None
    for media_type in content.str_keys():
        if "json" in str(media_type) and "schema" in content / media_type:
            return content / media_type / "schema"
    return None
