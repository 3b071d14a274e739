"""The compiled schemas judge every generated request as openapi-core's own backend does.

The pre-check decides valid/invalid in microseconds, and openapi-core, running on the compiled
schemas, explains a rejection. These property tests generate thousands of requests from the
spec, valid and invalid (schemathesis' positive and negative generation, plus mutations of
valid bodies), and check, in lenient and in strict mode, that the pre-check's verdict, and the
fields the errors name, are those of openapi-core on its own pure-Python backend.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NotSet
from support import ROOT
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from mockserver.contract.router import Router
from mockserver.contract.spec import load_spec
from mockserver.contract.validation import Errors, Validator
from mockserver.problems import Problem

SPEC = ROOT / "openapi" / "audit.yaml"
EXAMPLES = int(os.environ.get("PRECHECK_EXAMPLES", "600"))
spec = load_spec(SPEC)
router = Router(spec.document)
generated = schemathesis.openapi.from_path(
    SPEC, config=schemathesis.Config.from_dict({"generation": {"database": "none"}})
)
OPERATIONS = [
    ("POST", "/public/v1/audit/records"),
    ("PUT", "/public/v1/audit/event-types/{id}"),
    ("GET", "/public/v1/audit/records"),
    ("GET", "/public/v1/audit/records/{id}"),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def mutations(body: Any) -> st.SearchStrategy[Any]:
    """A valid body with one member replaced, removed or added, at any depth."""
    if not isinstance(body, dict) or not body:
        return st.just(body)
    paths = []

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, value in node.items():
            paths.append((*path, key))
            if isinstance(value, dict):
                walk(value, (*path, key))

    walk(body, ())

    def mutate(choice: tuple[tuple[str, ...], int, Any, str]) -> Any:
        path, action, value, name = choice
        changed = copy.deepcopy(body)
        parent = changed
        for key in path[:-1]:
            parent = parent[key]
        if action == 0:
            parent[path[-1]] = value
        elif action == 1:
            del parent[path[-1]]
        else:
            parent[name] = value
        return changed

    return st.tuples(
        st.sampled_from(paths), st.integers(0, 2), json_values, st.text(max_size=5)
    ).map(mutate)


def verdicts(
    validator: Validator, reference: Validator, method: str, template: str, case: schemathesis.Case
) -> tuple[bool, Errors, Errors]:
    """(pre-check verdict, errors on the compiled backend, errors of openapi-core's own backend)
    for one generated request; no errors means valid."""
    path = template.format(**{k: str(v) for k, v in (case.path_parameters or {}).items()})
    match = router.match(method, path if "{" not in path else template)
    query = {k: str(v) for k, v in (case.query or {}).items() if str(v) != ""}
    media_type = None if isinstance(case.body, NotSet) else case.media_type
    body = copy.deepcopy(case.body) if media_type else None
    if media_type and not validator.strict:
        strip = validator._stripper(match.operation, media_type)
        if strip is not None:
            strip.strip(body)
    fast = validator._passes_precheck(match.operation, media_type, body, query, match.params)
    request = Request(EnvironBuilder(method=method, path=path).get_environ())
    return fast, *(
        errors(v, request, match, query, media_type, body) for v in (validator, reference)
    )


def errors(validator: Validator, *args: Any) -> Errors:
    try:
        validator._explain(*args)
    except Problem as problem:
        return problem.errors or {"": ["?"]}
    return {}


def cases(method: str, template: str) -> st.SearchStrategy[schemathesis.Case]:
    operation = generated[template][method]
    positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    if method in ("POST", "PUT"):
        mutated = positive.flatmap(
            lambda case: mutations(case.body).map(lambda body: _with_body(case, body))
        )
        return st.one_of(positive, negative, mutated)
    return st.one_of(positive, negative)


def _is_json_request(case: schemathesis.Case) -> bool:
    if isinstance(case.body, NotSet):
        return True
    if isinstance(case.body, bytes | bytearray) or "json" not in str(case.media_type):
        return False
    try:
        json.dumps(case.body, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _with_body(case: schemathesis.Case, body: Any) -> schemathesis.Case:
    case.body = body
    return case


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize(("method", "template"), OPERATIONS)
def test_precheck_agrees_with_openapi_core(method: str, template: str, strict: bool) -> None:
    validator = Validator(spec, strict)
    reference = Validator(spec, strict)
    reference.openapi = spec.openapi.request_validator  # openapi-core on its own backend
    seen = {True: 0, False: 0}

    @hypothesis.given(case=cases(method, template))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not os.environ.get("PRECHECK_RANDOM"),
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def agree(case: schemathesis.Case) -> None:
        if not _is_json_request(case):
            return  # the 415 and the JSON decoding come before the validation
        fast, compiled, own = verdicts(validator, reference, method, template, case)
        valid = not own
        seen[valid] += 1
        shown = f"{case.query!r} {case.body!r}"[:600]
        assert fast == valid, f"pre-check {fast}, openapi-core {valid}: {shown}"
        assert set(compiled) == set(own), f"errors {compiled} != {own}: {shown}"

    agree()
    assert seen[True] > EXAMPLES / 10, seen  # plenty of valid requests
    if method in ("POST", "PUT"):
        assert seen[False] > EXAMPLES / 10, seen  # and plenty of invalid ones


def test_every_audit_operation_has_a_precheck() -> None:
    validator = Validator(spec)
    for operation in router.operations:
        assert validator.precheck.parameters(operation) is not None, operation.operation_id
        for media_type in operation.node.get("requestBody", {}).get("content", {}):
            assert validator.precheck.body(operation, media_type) is not None


def test_unsupported_schemas_fall_back_to_openapi_core(tmp_path) -> None:
    document = json.loads(json.dumps(spec.document))
    document["components"]["schemas"]["AuditEventType"]["properties"]["rank"] = {
        "type": "integer",
        "multipleOf": 3,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(document))
    other = load_spec(path)
    validator = Validator(other)
    put = Router(other.document).match("PUT", "/public/v1/audit/event-types/AET-1").operation
    assert validator.precheck.body(put, "application/json") is None
    request = Request(EnvironBuilder(method="PUT", path="/x").get_environ())
    match = Router(other.document).match("PUT", "/public/v1/audit/event-types/AET-1")
    with pytest.raises(Problem) as caught:
        validator._explain(request, match, {}, "application/json", {"rank": 4})
    assert caught.value.errors == {"rank": ["4 is not a multiple of 3"]}
