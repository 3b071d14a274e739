"""Checking fault rules against the specs, and loading them from a scenario file.

A rule must fit the control API's `Rule` schema. A status the API spec declares for the
operations the rule can match is `documented`, and a body given for it must fit the spec's
schema for that answer (400 with the violations otherwise). Statuses the spec does not declare
(429, 502, 503, 504...) are allowed, since gateways send them, unless the server is `--strict`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from openapi_core.validation.schemas import oas30_read_schema_validators_factory
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

from mockserver import codec
from mockserver.faults import path_pattern
from mockserver.problems import invalid
from mockserver.router import Operation, Router
from mockserver.spec import Spec
from mockserver.validation import MAX_DEPTH, Errors, violations

SCENARIO_KEYS = ("rules",)
MAX_VALUES = 100_000  # values in a scenario file, its YAML aliases expanded
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110)
_FRAMING = frozenset({"content-length", "transfer-encoding"})  # the server frames the body
_NO_CONTENT = frozenset({204, 205, 304})


class ScenarioError(Exception):
    """The scenario file cannot be used; the message names the file and the problem."""


class RuleBook:
    """Checks rules for one API spec (and the control spec's `Rule` schema)."""

    def __init__(self, spec: Spec, control: Spec, router: Router, strict: bool) -> None:
        self.spec = spec
        self.control = control
        self.router = router
        self.strict = strict
        schema = control.openapi.spec / "components" / "schemas" / "Rule"
        self._rule_schema = oas30_read_schema_validators_factory.create(
            control.openapi.spec, schema
        )

    def shape_errors(self, given: Any) -> Errors:
        """Violations of the control API's `Rule` schema (for rules not sent over HTTP)."""
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
        header_errors = _header_errors(given.get("headers") or {})
        if header_errors:
            raise invalid(header_errors)
        for name in ("delay_ms", "probability"):  # NaN passes every minimum and maximum
            problem = _not_json(given.get(name), name)
            if problem:
                raise invalid({name: [problem]})
        status = given.get("status")
        if status is None:
            return True
        if "body" in given and status in _NO_CONTENT:
            raise invalid({"body": [f"A {status} answer has no body."]})
        candidates = self.operations(given)
        documented = bool(candidates) and all(_declares(op, status) for op in candidates)
        if not documented and self.strict:
            where = ", ".join(f"{op.method} {op.template}" for op in candidates) or "any operation"
            raise invalid(
                {
                    "status": [
                        f"The spec declares no {status} answer for {where}; "
                        "--strict refuses undocumented statuses."
                    ]
                }
            )
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


def read_rules(path: Path) -> list[Any]:
    """The rules a scenario file holds (YAML or JSON: a list, or `{rules: [...]}`), unchecked.
    JSON values only (what the control API takes): objects with string keys, no NaN, nested
    at most as deep as a request body may be, and no more than MAX_VALUES in all."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc.strerror or exc}") from exc
    try:
        data = codec.loads(raw) if path.suffix == ".json" else _yaml(raw.decode())
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: the scenario is not UTF-8 text: {exc.reason}") from exc
    except RecursionError as exc:
        raise ScenarioError(f"{path}: cannot parse the scenario: {_too_deep()}") from exc
    except (ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError is a ValueError
        raise ScenarioError(f"{path}: cannot parse the scenario: {exc}") from exc
    problem = _not_json(data)
    if problem:
        raise ScenarioError(f"{path}: cannot use the scenario: {problem}")
    rules = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(rules, list):
        raise ScenarioError(f"{path}: a scenario is a list of rules, or a mapping with 'rules'")
    return rules


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, stopping at nesting deeper than MAX_DEPTH: its composer recurses
    (Python's recursion limit would stop it only after reading all of a deep document), and
    its scanner looks ahead over every open `[`/`{` of a line for each token it reads."""

    depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 (PyYAML's)
        if self.flow_level >= MAX_DEPTH:
            raise yaml.YAMLError(_too_deep())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.YAMLError(_too_deep())
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _yaml(text: str) -> Any:
    """The one document of a YAML text, read with `_Loader` (safe: plain data only)."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _too_deep() -> str:
    return f"it is nested deeper than the maximum of {MAX_DEPTH} levels"


_BIGGEST = 10**codec.MAX_DIGITS  # integers with more digits cannot be written back as JSON


def _not_json(data: Any, where: str = "") -> str:
    """Why parsed YAML or JSON is not JSON as the control API takes it; "" if it is. Walks
    what YAML aliases share as often as it is referred to, up to MAX_VALUES values."""
    stack: list[tuple[Any, str, int]] = [(data, where, 1)]
    seen = 0
    while stack:
        node, where, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return f"it holds more than {MAX_VALUES} values (YAML aliases counted out)"
        if depth > MAX_DEPTH:
            where = where if len(where) < 60 else where[:50] + "..."
            return f"{where or 'it'} is nested deeper than the maximum of {MAX_DEPTH} levels"
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    return f"{where or 'the top level'} has a key that is not a string: {key!r}"
                stack.append((value, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, f"{where}[{i}]", depth + 1) for i, value in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            return f"{where or 'it'} is {node}, which JSON cannot hold"
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) >= _BIGGEST:
            return f"{where or 'it'} has more than {codec.MAX_DIGITS} digits"
        elif not isinstance(node, str | int | float | None):  # YAML dates, binary, sets
            kind = type(node).__name__
            return f"{where or 'it'} is a YAML {kind}, which JSON cannot hold (quote it)"
    return ""


def load_scenario(path: Path, book: RuleBook) -> list[dict[str, Any]]:
    """The rules of a scenario file, each checked against the control and API specs."""
    rules = read_rules(path)
    for number, rule in enumerate(rules, 1):
        found = book.refusal(rule)
        if found:
            raise ScenarioError(f"{path}: rule {number} is not valid: {found}")
    return rules
