"""schemathesis over the platform's whole document (280 paths, 452 operations), response
checking on: every check, stateless (one test per operation, so xdist spreads them), and
stateful over the links schemathesis infers from the CRUD shapes (create -> read, update,
delete, actions on the created item).

The cost is bounded: a few examples per operation and no coverage phase (it makes every
boundary case of every schema: tens of thousands of requests on this document).

schemathesis reads the document as the mock serves it: with the .NET generator's artefacts
repaired (`contract.spec.repair`: a `...JsonOptional` wrapper travels bare on the wire, as the
real server reads it; see docs/api.md), so a body such as `{"url": {}}` is not taken for
valid data.

Two checks are read as the platform's document must be read:

* `status_code_conformance`: the document leaves out most error statuses (of 452 operations,
  77 declare only 200). The mock answers the platform's error statuses (400, 404, 405, 409,
  415...) as problem documents, as the real server does; such an answer passes when its body
  is a problem. Any other undeclared status fails as the check says.
* `negative_data_rejection` is the lenient one of tests/test_schemathesis.py's: every object
  is `additionalProperties: false`, and the lenient mock ignores unknown members as the real
  server does.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import CHECKS, CheckContext, CheckFunction
from stateful import config, reset, run_stateful
from support import AUTH, MARKETPLACE_SPEC, Server, nonconforming

from mockserver.contract.spec import repair

if not MARKETPLACE_SPEC.exists():
    pytest.skip(
        f"the platform's reference documents are not in {MARKETPLACE_SPEC.parent} (see README)",
        allow_module_level=True,
    )

MAX_EXAMPLES = 3
STATEFUL_EXAMPLES = 10
# Which paths run (a regular expression): by default a sample of the document's kinds of
# operation (collections, items, nested collections, actions, generated reads); `.` runs
# all 452 operations (see the module docstring for what that costs).
PATHS = os.environ.get(
    "MOCKSERVER_PLATFORM_FUZZ", r"^/public/v1/(commerce/orders|accounts/user-groups)"
)
ERRORS = {400, 401, 403, 404, 405, 406, 409, 411, 413, 414, 415}  # the platform's problems
CONFIG = config(
    MAX_EXAMPLES, phases={"coverage": {"enabled": False}}, **{"suppress-health-check": ["all"]}
)
DOCUMENT = json.loads(MARKETPLACE_SPEC.read_text(encoding="utf-8"))
repair(DOCUMENT)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).include(path_regex=PATHS)


def platform_status_code_conformance(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """`status_code_conformance`, with the platform's undeclared error answers (problems)."""
    declared = set(case.operation.definition.raw.get("responses", {}))
    status = response.status_code
    if str(status) not in declared and status in ERRORS:
        problem = json.loads(response.content)
        assert problem["status"] == status, problem
        assert "title" in problem, problem
        media = {k.lower(): v for k, v in response.headers.items()}["content-type"][0]
        assert media.split(";")[0].endswith("json"), media
        return True
    result: bool | None = CHECKS.get_one("status_code_conformance")(ctx, response, case)
    return result


def lenient_negative_data_rejection(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """`negative_data_rejection`, except for a body made invalid only by unknown members
    (which the lenient mock ignores, as the platform does): a 2xx for such a case passes."""
    meta = case.meta
    if meta is not None and response.status_code < 300 and _only_extra_members(meta):
        return None
    result: bool | None = CHECKS.get_one("negative_data_rejection")(ctx, response, case)
    return result


def _only_extra_members(meta: Any) -> bool:
    """Whether the case's only negative part is its body, made so by members the schema does
    not declare (schemathesis says which mutation made a case negative)."""
    negative = [c for c in meta.components.values() if c.mode.is_negative]
    description = str(getattr(meta.phase.data, "description", "") or "")
    return len(negative) == 1 and "additional" in description.lower()


REPLACED = ("status_code_conformance", "negative_data_rejection")
OPTIONS: dict[str, list[CheckFunction]] = {
    "excluded_checks": [CHECKS.get_one(name) for name in REPLACED],
    "additional_checks": [platform_status_code_conformance, lenient_negative_data_rejection],
}


@pytest.fixture(scope="module")
def platform() -> Iterator[Server]:
    """The mock with the platform's document; every answer it gave must conform."""
    server = Server(["--spec", str(MARKETPLACE_SPEC), "--faker-seed", "7"]).start()
    yield server
    assert server.stop() == 0
    found = [line for line in nonconforming(server) if "undocumented:" not in line]
    assert not found, "\n".join(found)


@schema.parametrize()
def test_stateless(case: schemathesis.Case, platform: Server) -> None:
    case.call_and_validate(base_url=platform.url, headers=AUTH, **OPTIONS)


STATEFUL = schema


def test_stateful(platform: Server) -> None:
    """Orders and user groups: created, read, updated, processed, deleted through links."""
    followed = run_stateful(
        STATEFUL,
        platform.url,
        OPTIONS,
        STATEFUL_EXAMPLES,
        setup=reset(platform.url),  # each scenario from the start-up state (tests/stateful.py)
        headers=AUTH,
    )
    statuses = Counter(status for _, status in followed)
    assert followed, "no link was followed"
    assert any(200 <= status < 300 for status in statuses), statuses
