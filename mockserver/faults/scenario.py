"""Scenario files (`--scenario`, and the pytest marker's `scenario=`): fault rules in YAML or
JSON, read safely (plain JSON values, bounded in depth and size) and each checked as the
control API checks a rule (`faults.checking`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mockserver import codec
from mockserver.codec import MAX_DEPTH, json_fault
from mockserver.documents import syntax_error
from mockserver.faults.checking import RuleBook


class ScenarioError(Exception):
    """The scenario file cannot be used; the message names the file and the problem."""


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
    except RecursionError as exc:
        raise ScenarioError(f"{path}: cannot parse the scenario: {_too_deep()}") from exc
    except (ValueError, yaml.YAMLError) as exc:  # JSON's and UTF-8's errors are ValueErrors
        raise ScenarioError(syntax_error(path, raw, exc)) from exc
    problem = json_fault(data)
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


def load_scenario(path: Path, book: RuleBook) -> list[dict[str, Any]]:
    """The rules of a scenario file, each checked against the control and API specs."""
    rules = read_rules(path)
    for number, rule in enumerate(rules, 1):
        found = book.refusal(rule)
        if found:
            raise ScenarioError(f"{path}: rule {number} is not valid: {found}")
    return rules
