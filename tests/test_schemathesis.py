"""Property-based contract tests: schemathesis, with all of its checks, against a running mock.

The mock is started as a user starts it: the `mockserver` console script on a free loopback
port, with its response self-check on. It runs in both of its modes:

* lenient (the default): unknown JSON members are ignored, as the real platform does;
* strict (`--strict`): unknown and read-only members are rejected, as the spec's letter says.

Both modes run with a tokens file, so only the listed token is accepted. `ignored_auth` sends
each authenticated request again without a token and with a made-up one and expects 401/403
for both. Without a tokens file the mock accepts any bearer token, as its docs say, so that
check would fail; `test_ignored_auth_is_truthful` shows both sides.

Stateless: every operation of openapi/audit.yaml, positive and negative data, in schemathesis'
examples, coverage and fuzzing phases. Stateful: the spec's link (POST /records -> GET
/records/{id} with the created id) and the links schemathesis infers on its own; each scenario
starts from the server's start-up state (tests/stateful.py says why).

`order` is declared as a string, but only names of the items' fields sort (anything else is
the platform's 400 "Unknown expression group."), which OpenAPI cannot express: a hook makes
the generated `order` values from the fields of the operation's item schema.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from openapi_schema_validator import OAS30Validator
from schemathesis.checks import CHECKS, CheckContext, CheckFunction
from schemathesis.core.parameters import ParameterLocation
from schemathesis.errors import FailureGroup
from schemathesis.openapi.checks import IgnoredAuth
from stateful import Step, config, reset, run_stateful
from support import AUTH, ROOT, TOKEN, Server, nonconforming

SPEC = ROOT / "openapi" / "audit.yaml"
SPEC_DOCUMENT = "/public/v1/audit/openapi.json"
MODES = ["lenient", "strict"]
MAX_EXAMPLES = 100
STATEFUL_EXAMPLES = 50
# The link the spec declares on createAuditRecord's 201 (schemathesis names transitions so).
SPEC_LINK = (
    "POST /public/v1/audit/records -> [201] GetAuditRecordById -> GET /public/v1/audit/records/{id}"
)

# Credentials through the spec's own security scheme (`bearer`): schemathesis then knows which
# header carries them and that they are valid, which is what `ignored_auth` probes.
CONFIG = config(MAX_EXAMPLES, auth={"openapi": {"bearer": {"bearer": TOKEN}}})
schema = schemathesis.openapi.from_path(SPEC, config=CONFIG)


def _fields(schema_name: str) -> list[str]:
    properties = yaml.safe_load(SPEC.read_text())["components"]["schemas"][schema_name]
    return sorted(properties["properties"])


SORTABLE = {
    "/public/v1/audit/records": _fields("AuditRecord"),
    "/public/v1/audit/event-types": _fields("AuditEventType"),
}


@schema.hook
def map_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> Any:
    """Turn a generated `order` into sort keys on real fields (see the module docstring)."""
    if not query or "order" not in query or context.operation is None:
        return query
    fields = SORTABLE[context.operation.path]
    text = str(query["order"])
    keys = [("-" if ord(c) % 2 else "") + fields[ord(c) % len(fields)] for c in text[:3]]
    return {**query, "order": ",".join(keys)}


# ---------------------------------------------------------------- servers


def write_tokens(directory: Path) -> Path:
    path = directory / "tokens.yaml"
    path.write_text(yaml.safe_dump({"tokens": [{"token": TOKEN}]}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tokens(tmp_path_factory.mktemp("schemathesis"))


@pytest.fixture(scope="module", params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def running(mode: str, tokens_file: Path) -> Iterator[Server]:
    """One server per mode; afterwards every response it gave must have conformed to the spec."""
    args = ["--tokens", str(tokens_file), "--seed-records", "20", "--faker-seed", "7"]
    if mode == "strict":
        args.append("--strict")
    server = Server(args).start()
    yield server
    assert server.stop() == 0
    assert not nonconforming(server), "\n".join(nonconforming(server))


# ---------------------------------------------------------------- checks per mode


def _lenient(node: Any) -> Any:
    """A schema as the lenient mock reads it: unknown and read-only members are allowed."""
    if isinstance(node, list):
        return [_lenient(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _lenient(value)
        for key, value in node.items()
        if not (key == "additionalProperties" and value is False)
    }
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            name: value
            for name, value in out["properties"].items()
            if not (isinstance(value, dict) and value.get("readOnly"))
        }
    return out


LENIENT_SPEC = _lenient(yaml.safe_load(SPEC.read_text(encoding="utf-8")))


def lenient_body_is_valid(case: schemathesis.Case) -> bool:
    """Whether the body is valid once unknown and read-only members are ignored."""
    operation = LENIENT_SPEC["paths"][case.operation.path][case.operation.method.lower()]
    content = operation.get("requestBody", {}).get("content")
    if not content:
        return False
    body_schema = content.get(case.media_type) or next(iter(content.values()))
    root = {"components": LENIENT_SPEC["components"], "allOf": [body_schema["schema"]]}
    return bool(OAS30Validator(root).is_valid(case.body))


def lenient_negative_data_rejection(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """`negative_data_rejection` for the lenient mock.

    Every object of the spec is `additionalProperties: false`, so schemathesis makes bodies
    invalid by adding members. The lenient mock ignores unknown (and read-only) members, as the
    real server does, and rightly accepts such a body; the check is skipped only for cases
    whose one invalid part is a body that is valid when read that way. Strict mode runs the
    full check.
    """
    meta = case.meta
    if (
        meta is not None
        and meta.is_negative_at(ParameterLocation.BODY)
        and not any(
            component.mode.is_negative
            for location, component in meta.components.items()
            if location != ParameterLocation.BODY
        )
        and lenient_body_is_valid(case)
    ):
        return None
    result: bool | None = CHECKS.get_one("negative_data_rejection")(ctx, response, case)
    return result


def check_options(mode: str) -> dict[str, list[CheckFunction]]:
    """`excluded_checks` / `additional_checks` in a mode (every other check runs)."""
    excluded: list[CheckFunction] = []
    if mode == "lenient":
        excluded.append(CHECKS.get_one("negative_data_rejection"))
        return {"excluded_checks": excluded, "additional_checks": [lenient_negative_data_rejection]}
    return {"excluded_checks": excluded, "additional_checks": []}


def test_every_check_is_enabled() -> None:
    config = schema.config.checks_config_for()
    names = {*CHECKS.get_all_names(), "max_response_time"}
    assert {name for name in names if not config.get_by_name(name=name).enabled} == set()


# ---------------------------------------------------------------- stateless


@schema.parametrize()
def test_stateless(case: schemathesis.Case, running: Server, mode: str) -> None:
    case.call_and_validate(base_url=running.url, **check_options(mode))


# ---------------------------------------------------------------- stateful


def test_stateful(running: Server, mode: str) -> None:
    # each scenario from the start-up state (see tests/stateful.py: the answers must not
    # depend on what earlier scenarios did)
    followed = run_stateful(
        schema, running.url, check_options(mode), STATEFUL_EXAMPLES, setup=reset(running.url)
    )
    # The spec's link was followed, and the record it created could be read.
    assert (SPEC_LINK, 200) in followed, Counter(followed)


def test_a_stateful_run_does_not_depend_on_what_the_server_saw_before(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    """The same run twice on one server makes the same calls and gets the same answers, though
    the first run created records and changed event types: a scenario Hypothesis replays gets
    the answers it got first (else it stops with FlakyStrategyDefinition). Without the reset
    before each scenario, the second run's pages hold the first run's records."""
    server = start_server(
        "--tokens", str(write_tokens(tmp_path)), "--seed-records", "20", "--faker-seed", "7"
    )
    runs: list[list[Step]] = [[], []]
    for steps in runs:
        setup = reset(server.url)
        run_stateful(schema, server.url, check_options("lenient"), 15, setup=setup, steps=steps)
    assert runs[0] == runs[1]
    assert ("POST /public/v1/audit/records", 201, None) in runs[0], runs[0]


# ---------------------------------------------------------------- the auth setup


def test_ignored_auth_is_truthful(start_server: Callable[..., Server], tmp_path: Path) -> None:
    """With a tokens file the mock passes `ignored_auth`; accepting any token, it cannot."""
    case = schema["/public/v1/audit/event-types"]["GET"].Case()
    ignored_auth = [CHECKS.get_one("ignored_auth")]

    listed_only = start_server("--tokens", str(write_tokens(tmp_path)))
    case.call_and_validate(base_url=listed_only.url, headers=AUTH, checks=ignored_auth)

    any_token = start_server()
    with pytest.raises(FailureGroup) as failed:
        case.call_and_validate(base_url=any_token.url, headers=AUTH, checks=ignored_auth)
    assert [type(f) for f in failed.value.exceptions] == [IgnoredAuth]
