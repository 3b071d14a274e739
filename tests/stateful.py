"""schemathesis as the contract tests use it: one configuration (every check on, positive and
negative data, derandomized), and stateful runs in which every link followed is noted and each
response is checked with the test's own check options.

A stateful run's scenarios share one server, and what Hypothesis draws next depends on what the
server answered (a rule is open only once a bundle holds a fitting answer, a root call counts
only when a link can read a value off its answer). Hypothesis replays the choices of earlier
scenarios to make new ones; if a replayed step is answered otherwise than the first time (the
records an earlier scenario created fill a page that was empty, an event type an earlier PUT
renamed no longer matches), it stops with `FlakyStrategyDefinition`. So every scenario starts
from the server's start-up state (`reset`). Which scenarios are made depends on the modules the
process has loaded (Hypothesis draws on their constants), so a run inside the whole suite
differs from a run of one file: without the reset, the suite's order could meet such a step
where a single file did not."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import hypothesis
import requests
import schemathesis
from schemathesis.checks import CheckFunction

CheckOptions = dict[str, list[CheckFunction]]  # additional_checks, excluded_checks
Step = tuple[str, int, int | None]  # operation, status, items listed
SEED = 20240611


def config(max_examples: int, **extra: Any) -> schemathesis.Config:
    """Every built-in check on (`enabled`; a response time limit switches on
    `max_response_time`, the only one off unless configured), the same cases on every run;
    `extra`: more top-level settings (`auth`, `output`)."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",  # positive and negative data
                "max-examples": max_examples,
                "deterministic": True,  # Hypothesis' derandomize
                "database": "none",
            },
            "checks": {"enabled": True, "max_response_time": 5.0},
            **extra,
        }
    )


def reset(base_url: str, headers: dict[str, str] | None = None) -> Callable[[], None]:
    """A scenario's `setup`: the server back to its start-up state (records, event types,
    faults, journal), so the same steps get the same answers in every scenario."""

    def setup() -> None:
        answer = requests.post(f"{base_url}/_mock/reset", headers=headers or {}, timeout=30)
        assert answer.status_code == 200, answer.text

    return setup


def run_stateful(
    schema: Any,
    base_url: str,
    options: CheckOptions,
    examples: int,
    setup: Callable[[], None] | None = None,
    headers: dict[str, str] | None = None,
    steps: list[Step] | None = None,
) -> list[tuple[str, int]]:
    """Run the schema's state machine against `base_url`; (transition id, status) of every
    link followed. `setup` runs before each scenario; `headers` go with every call; `steps`, if
    given, gets every call's operation, status and the number of items its answer listed."""
    followed: list[tuple[str, int]] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            if setup is not None:
                setup()

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": base_url, **({"headers": headers} if headers else {})}

        def step(self, input: Any) -> Any:
            output = super().step(input)
            status = output.response.status_code
            if input.transition is not None and input.is_applied:
                followed.append((input.transition.id, status))
            if steps is not None:
                steps.append((input.case.operation.label, status, _listed(output.response)))
            return output

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                additional_checks=[*(additional_checks or []), *options["additional_checks"]],
                excluded_checks=options["excluded_checks"],
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=examples,
            stateful_step_count=6,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    return followed


def _listed(response: schemathesis.Response) -> int | None:
    """How many items an answer lists (`data` of a page), None for any other answer."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    return len(data) if isinstance(data, list) else None
