"""schemathesis as the contract tests use it: one configuration (every check on, positive and
negative data, derandomized), and stateful runs in which every link followed is noted and each
response is checked with the test's own check options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis
import schemathesis
from schemathesis.checks import CheckFunction

CheckOptions = dict[str, list[CheckFunction]]  # additional_checks, excluded_checks
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


def run_stateful(
    schema: Any,
    base_url: str,
    options: CheckOptions,
    examples: int,
    setup: Callable[[], None] | None = None,
    headers: dict[str, str] | None = None,
) -> list[tuple[str, int]]:
    """Run the schema's state machine against `base_url`; (transition id, status) of every
    link followed. `setup` runs before each scenario; `headers` go with every call."""
    followed: list[tuple[str, int]] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            if setup is not None:
                setup()

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": base_url, **({"headers": headers} if headers else {})}

        def step(self, input: Any) -> Any:
            output = super().step(input)
            if input.transition is not None and input.is_applied:
                followed.append((input.transition.id, output.response.status_code))
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
