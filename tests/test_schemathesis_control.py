"""Property-based contract tests of the control API (openapi/control.yaml): schemathesis, with
all of its checks, against a running mock.

The mock is started as a user starts it (the `mockserver` console script, response self-check
on), twice:

* open: no admin token, as the control API runs by default;
* admin-token: `MOCKSERVER_ADMIN_TOKEN` set. The spec declares the token as optional security
  (`[{}, {adminToken: []}]`: open unless the server has one), which makes `ignored_auth` a
  no-op; this run reads the spec as such a server serves it, with the token required, and
  schemathesis sends the token through the `adminToken` scheme, so `ignored_auth` sends each
  accepted request again without it and with a made-up one and expects a 401 for both.

Stateless: every operation, positive and negative data, in schemathesis' examples, coverage
and fuzzing phases. Stateful: the spec's links (POST /_mock/faults -> DELETE /_mock/faults/{id}
with the added rule's id; POST /_mock/faults -> GET /_mock/faults; POST /_mock/records -> GET
/_mock/records) and the ones schemathesis infers. Sessions would scatter a sequence over
unrelated state (each generated name is a session of its own), so the stateful run leaves the
session parameters and the rules' own `session` member out and works on the default session:
every step sees what the steps before it did, and each scenario starts from a reset. The
stateless run covers the sessions. Afterwards the server must still be whole: a reset gives
the start-up state, the API answers, a rule still fires.

What the control spec cannot say is said here. Fixtures (`Fixture`, POST /_mock/records) are
checked against the audit record schema of the API spec the server was started with: the test
gives schemathesis the bundled spec's, with read-only members allowed (a fixture sets `id`,
`timestamp` and `actor` itself). A rule's header names are tokens: JSON Schema's
`patternProperties`, which OpenAPI 3.0 lacks. And a rule's `body` is checked against the API spec's
schema for the rule's status, on every operation the rule can match: `positive_data_acceptance`
takes a 400 that names only the body (`body`, `body.title`) as the answer to such a rule.

Every check is on.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from schemathesis.checks import CHECKS, CheckContext, CheckFunction
from schemathesis.errors import FailureGroup
from schemathesis.openapi.checks import IgnoredAuth
from stateful import config, run_stateful
from support import AUTH, RECORDS, ROOT, Server, new_record, nonconforming

SPEC = ROOT / "openapi" / "control.yaml"
API_SPEC = ROOT / "openapi" / "audit.yaml"
ADMIN_TOKEN = "adm-schemathesis-5d1c0e7a94"
DOOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MODES = ["open", "admin-token"]
SEED_RECORDS = 5
MAX_EXAMPLES = 40
STATEFUL_EXAMPLES = 40
# The link the spec declares on addFaults' 201 (schemathesis names transitions so).
REMOVE_LINK = "POST /_mock/faults -> [201] RemoveAddedFault -> DELETE /_mock/faults/{id}"
SESSION_PARAMETERS = {"session": "session", "sessionHeader": "X-Mock-Session"}
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
# a 400 that names only a rule's `body` (`body`, `body.title`, `[1].body`...)
BODY_ONLY = re.compile(r"^(\[\d+\]\.)?body(\.|\[|$)")


def _config(auth: dict[str, Any] | None) -> schemathesis.Config:
    # `session` is no secret here: show it in failures (the token stays hidden)
    hidden = ["authorization"]
    output = {"sanitization": {"keys-to-sanitize": hidden, "sensitive-markers": hidden}}
    return config(MAX_EXAMPLES, output=output, **({"auth": auth} if auth else {}))


def _api_schemas() -> dict[str, Any]:
    """The bundled API spec's schemas as `Api<Name>`, read as fixtures are (read-only allowed)."""

    def rename(node: Any) -> Any:
        if isinstance(node, list):
            return [rename(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: rename(value) for key, value in node.items() if key != "readOnly"}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            out["$ref"] = "#/components/schemas/Api" + ref.rsplit("/", 1)[1]
        return out

    schemas = yaml.safe_load(API_SPEC.read_text(encoding="utf-8"))["components"]["schemas"]
    return {f"Api{name}": rename(value) for name, value in schemas.items()}


def _without_sessions(document: dict[str, Any]) -> None:
    """No session parameters, and rules without a `session` of their own."""
    del document["components"]["schemas"]["Rule"]["properties"]["session"]
    refs = {f"#/components/parameters/{name}" for name in SESSION_PARAMETERS}
    for item in document["paths"].values():
        for operation in item.values():
            kept = [p for p in operation.get("parameters", []) if p.get("$ref") not in refs]
            operation["parameters"] = kept
            for answer in operation["responses"].values():
                for link in answer.get("links", {}).values():
                    for name in SESSION_PARAMETERS.values():
                        del link["parameters"][name]


def control_document(admin_token: bool, sessions: bool = True) -> dict[str, Any]:
    """openapi/control.yaml as a server started with the bundled API spec serves it (with
    `admin_token`: one started with --admin-token); without `sessions`, with no session
    parameters (every request works on the default session)."""
    document: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    schemas.update(_api_schemas())
    schemas["Fixture"] = {
        "allOf": [{"$ref": "#/components/schemas/ApiAuditRecord"}],
        "required": ["id"],
    }
    # header names are tokens (OpenAPI 3.0 has no `patternProperties`; JSON Schema has)
    headers = schemas["Rule"]["properties"]["headers"]
    headers["patternProperties"] = {HEADER_NAME: headers.pop("additionalProperties")}
    headers["additionalProperties"] = False
    if admin_token:
        assert document["security"] == [{}, {"adminToken": []}, {"adminCookie": []}]
        # the bearer token; the dashboard's cookie (and its CSRF token) is tested in
        # tests/test_journal_browse.py and tests/test_dashboard.py
        document["security"] = [{"adminToken": []}]
    if not sessions:
        _without_sessions(document)
    return document


def control_schema(mode: str, sessions: bool = True) -> Any:
    admin_token = mode == "admin-token"
    auth = {"openapi": {"adminToken": {"bearer": ADMIN_TOKEN}}} if admin_token else None
    document = control_document(admin_token, sessions)
    return schemathesis.openapi.from_dict(document, config=_config(auth))


open_schema = control_schema("open")
door_schema = control_schema("admin-token")


def positive_data_acceptance(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """schemathesis' `positive_data_acceptance`, except for a rule whose `body` the API spec
    refuses for the rule's status (see the module docstring)."""
    if (
        case.operation.path == "/_mock/faults"
        and case.method.upper() == "POST"
        and response.status_code == 400
    ):
        errors = (response.json() or {}).get("errors") or {}
        if errors and all(BODY_ONLY.match(key) for key in errors):
            return None
    result: bool | None = CHECKS.get_one("positive_data_acceptance")(ctx, response, case)
    return result


# See the module docstring. (The OpenAPI checks are registered once a schema is loaded.)
CHECK_OPTIONS: dict[str, list[CheckFunction]] = {
    "excluded_checks": [
        CHECKS.get_one("positive_data_acceptance"),
    ],
    "additional_checks": [positive_data_acceptance],
}


# ---------------------------------------------------------------- servers


def _stopped(server: Server) -> None:
    assert server.stop() == 0
    found = nonconforming(server)
    assert not found, "\n".join(found)
    crashes = [line for line in server.log if "unexpected error" in line]
    assert not crashes, "\n".join(server.log)


@pytest.fixture(scope="module")
def open_server() -> Iterator[Server]:
    server = Server(["--seed-records", str(SEED_RECORDS), "--faker-seed", "7"]).start()
    yield server
    _stopped(server)


@pytest.fixture(scope="module")
def door_server() -> Iterator[Server]:
    args = ["--seed-records", str(SEED_RECORDS), "--faker-seed", "7"]
    server = Server(args, {"MOCKSERVER_ADMIN_TOKEN": ADMIN_TOKEN}).start()
    yield server
    _stopped(server)


def running(mode: str, request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue("open_server" if mode == "open" else "door_server")
    return server


def test_every_check_is_enabled() -> None:
    names = {*CHECKS.get_all_names(), "max_response_time"}
    for schema in (open_schema, door_schema):
        config = schema.config.checks_config_for()
        assert {name for name in names if not config.get_by_name(name=name).enabled} == set()


# ---------------------------------------------------------------- stateless


@open_schema.parametrize()
def test_stateless_open(case: schemathesis.Case, open_server: Server) -> None:
    case.call_and_validate(base_url=open_server.url, **CHECK_OPTIONS)


@door_schema.parametrize()
def test_stateless_admin_token(case: schemathesis.Case, door_server: Server) -> None:
    case.call_and_validate(base_url=door_server.url, **CHECK_OPTIONS)


# ---------------------------------------------------------------- stateful


@pytest.mark.parametrize("mode", MODES)
def test_stateful(mode: str, request: pytest.FixtureRequest) -> None:
    server = running(mode, request)
    door = DOOR if mode == "admin-token" else {}

    def setup() -> None:
        # Each scenario from the start-up state: the same steps get the same answers, so
        # Hypothesis sees the same choices when it replays one.
        reset = requests.post(f"{server.url}/_mock/reset", headers=door, timeout=10)
        assert reset.status_code == 200, reset.text

    schema = control_schema(mode, sessions=False)
    followed = run_stateful(schema, server.url, CHECK_OPTIONS, STATEFUL_EXAMPLES, setup)
    # The link was followed, and the rule it named was removed.
    assert (REMOVE_LINK, 204) in followed, Counter(followed)


def test_ignored_auth_is_truthful(open_server: Server, door_server: Server) -> None:
    """`ignored_auth` passes on the server with an admin token, and fails on an open one."""
    case = door_schema["/_mock/health"]["GET"].Case()
    ignored_auth = [CHECKS.get_one("ignored_auth")]
    case.call_and_validate(base_url=door_server.url, headers=DOOR, checks=ignored_auth)
    with pytest.raises(FailureGroup) as failed:
        case.call_and_validate(base_url=open_server.url, headers=DOOR, checks=ignored_auth)
    assert [type(f) for f in failed.value.exceptions] == [IgnoredAuth]


# ---------------------------------------------------------------- afterwards


@pytest.mark.parametrize("mode", MODES)
def test_the_server_is_whole_afterwards(mode: str, request: pytest.FixtureRequest) -> None:
    """After the fuzzing: a reset gives the start-up state, the API answers, rules still work."""
    server = running(mode, request)
    door = DOOR if mode == "admin-token" else {}
    control = f"{server.url}/_mock"
    for session in ("default", "after-the-fuzzing"):
        reset = requests.post(f"{control}/reset?session={session}", headers=door, timeout=10)
        assert reset.status_code == 200, reset.text
        health = reset.json()
        assert (health["records"], health["faults"], health["journal"]) == (SEED_RECORDS, 0, 0)
    records = f"{server.url}{RECORDS}"
    created = requests.post(records, json=new_record(), headers=AUTH, timeout=10)
    assert created.status_code == 201, created.text
    read = requests.get(f"{records}/{created.json()['id']}", headers=AUTH, timeout=10)
    assert read.status_code == 200, read.text
    rule = {"method": "GET", "path": RECORDS, "status": 503, "times": 1}
    added = requests.post(f"{control}/faults", json=rule, headers=door, timeout=10)
    assert added.status_code == 201, added.text
    assert requests.get(records, headers=AUTH, timeout=10).status_code == 503
    assert requests.get(records, headers=AUTH, timeout=10).status_code == 200
    rule_id = added.json()["data"][0]["id"]
    gone = requests.delete(f"{control}/faults/{rule_id}", headers=door, timeout=10)
    assert gone.status_code == 204


# ---------------------------------------------------------------- methods the spec does not list


def test_an_unknown_method_is_a_405_with_allow(open_server: Server) -> None:
    """A method Flask routes nowhere (QUERY) on a control path: the control route's 405."""
    answer = requests.request("QUERY", f"{open_server.url}/_mock/faults", timeout=10)
    assert answer.status_code == 405, answer.text
    assert answer.headers["Allow"] == "DELETE, GET, POST"
    assert answer.headers["Content-Type"].startswith("application/problem+json")


def test_an_empty_session_parameter_is_a_400(open_server: Server) -> None:
    answer = requests.get(f"{open_server.url}/_mock/health?session=", timeout=10)
    assert answer.status_code == 400, answer.text
    assert list(answer.json()["errors"]) == ["session"]


def test_options_is_a_405_with_allow(open_server: Server) -> None:
    answer = requests.options(f"{open_server.url}/_mock/health", timeout=10)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET"
