"""Property-based contract tests: schemathesis, with every check, against a running mock.

The mock is started as a user starts it (the `mockserver` console script on a free loopback
port, with its response self-check on) in both of its modes:

* lenient (the default): unknown JSON members are ignored, as the real platform does;
* strict (`--strict`): unknown and read-only members are rejected, as the spec's letter says.

Both run with a tokens file, so only the listed token is accepted: `ignored_auth` sends the
request again without a token and with a wrong one, and expects 401/403 for both. (Without a
tokens file the mock accepts any bearer token, as its docs say, and that check would fail.)

Stateless: every operation of openapi/audit.yaml, positive and negative data. Stateful: the
spec's links (POST /records -> GET /records/{id} with the created id), plus the links
schemathesis infers itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import yaml
from schemathesis.checks import CHECKS, negative_data_rejection
from schemathesis.core.parameters import ParameterLocation
from support import ROOT, TOKEN, Server, nonconforming

SPEC = ROOT / "openapi" / "audit.yaml"
MODES = ["lenient", "strict"]
MAX_EXAMPLES = 50
SEED = 20240611

# Every built-in check is on: `enabled = true` for all of them, and a response time limit
# switches on `max_response_time` (the only check that is off unless configured).
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "checks": {"enabled": True, "max_response_time": 5.0},
        # The spec's own security scheme (`bearer`), so schemathesis knows which header carries
        # the credentials and treats them as explicit (which is what `ignored_auth` probes).
        "auth": {"openapi": {"bearer": {"bearer": TOKEN}}},
    }
)
schema = schemathesis.openapi.from_path(SPEC, config=CONFIG)


# ---------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schemathesis") / "tokens.yaml"
    path.write_text(yaml.safe_dump({"tokens": [{"token": TOKEN}]}), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def running(mode: str, tokens_file: Path) -> Iterator[Server]:
    """One server per mode for this module; every response it gave must conform to the spec."""
    args = ["--tokens", str(tokens_file), "--seed-records", "20", "--faker-seed", "7"]
    if mode == "strict":
        args.append("--strict")
    server = Server(args).start()
    yield server
    assert server.stop() == 0
    assert not nonconforming(server), "\n".join(nonconforming(server))


# ---------------------------------------------------------------- checks per mode


def negative_data_rejection_outside_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """`negative_data_rejection`, for cases whose body is valid (bad parameters only).

    In lenient mode the mock ignores unknown JSON members, as the real server does, so a body
    made invalid by an extra member (every object is `additionalProperties: false`) is rightly
    accepted there; strict mode runs the full check on bodies.
    """
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY):
        return None
    return negative_data_rejection(ctx, response, case)


def check_kwargs(mode: str) -> dict[str, Any]:
    if mode == "lenient":
        return {
            "excluded_checks": [negative_data_rejection],
            "additional_checks": [negative_data_rejection_outside_body],
        }
    return {}


def test_every_check_is_enabled() -> None:
    config = schema.config.checks_config_for()
    names = {*CHECKS.get_all_names(), "max_response_time"}
    assert {name for name in names if not config.get_by_name(name=name).enabled} == set()


# ---------------------------------------------------------------- stateless


@schema.parametrize()
def test_stateless(case: schemathesis.Case, running: Server, mode: str) -> None:
    case.call_and_validate(base_url=running.url, **check_kwargs(mode))


# ---------------------------------------------------------------- stateful


def test_stateful(running: Server, mode: str) -> None:
    followed: list[tuple[str, int]] = []
    kwargs = check_kwargs(mode)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": running.url}

        def step(self, input: Any) -> Any:
            output = super().step(input)
            if input.transition is not None and input.is_applied:
                followed.append((input.transition.id, output.response.status_code))
            return output

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kw: Any
        ) -> None:
            case.validate_response(
                response,
                additional_checks=[
                    *(additional_checks or []),
                    *kwargs.get("additional_checks", []),
                ],
                excluded_checks=kwargs.get("excluded_checks"),
                transport_kwargs=kw or None,
                recorder=self.recorder,
            )

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=6,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    assert ("GetAuditRecordById", 200) in followed, followed
