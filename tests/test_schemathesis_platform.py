"""schemathesis over the platform's whole document (280 paths, 452 operations), response
checking on: every check, stateless (one test per operation, so xdist spreads them), and
stateful over the links schemathesis infers from the CRUD shapes (create -> read, update,
delete, actions on the created item).

The cost is bounded: a few examples per operation and no coverage phase (it makes every
boundary case of every schema: tens of thousands of requests on this document).

schemathesis reads the document as the lenient mock serves it (`contract.spec.repair`, see
docs/specs.md): the .NET generator's artefacts repaired (a `...JsonOptional` wrapper travels
bare on the wire, so a body such as `{"url": {}}` is not valid data; a form part described by
its `properties` alone is an object, so `true` is not), and a closed `allOf` part read as the
merged object, as the real server reads it (by the letter `AccountCreate` requires `name` and
forbids it: no body is valid).

Two checks are read as the platform's document must be read:

* `status_code_conformance`: the document leaves out most error statuses (of 452 operations,
  77 declare only 200). The mock answers the platform's error statuses (400, 404, 405, 409,
  415...) as problem documents, as the real server does; such an answer passes when its body
  is a problem. Any other undeclared status fails as the check says.
* `positive_data_acceptance` holds for generated data; a body taken from the document's own
  examples that its schema refuses (they hold `"by": null` where `Id` takes no null) is not
  valid data, and a 400 for it must be a problem naming the fields.
* `negative_data_rejection` is the lenient one of tests/test_schemathesis.py's: every object
  is `additionalProperties: false`, and the lenient mock ignores unknown members (and unknown
  query parameters) as the real server does; a case made invalid by nothing else passes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from schemathesis.checks import CHECKS, CheckContext, CheckFunction
from schemathesis.core import NOT_SET
from schemathesis.core.jsonschema import make_validator
from schemathesis.core.mutations import Mutation, MutationChannel, OperatorKind
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import (
    CaseMetadata,
    ComponentInfo,
    GenerationInfo,
    PhaseInfo,
    TestPhase,
    build_phase_data,
)
from schemathesis.generation.modes import GenerationMode
from stateful import config, reset, run_stateful
from support import AUTH, MARKETPLACE_SPEC, Server, nonconforming

from mockserver.contract.spec import repair

if not MARKETPLACE_SPEC.exists():
    pytest.skip(
        f"the platform's reference documents are not in {MARKETPLACE_SPEC.parent} (see README)",
        allow_module_level=True,
    )

# Every operation by default, each met with generated valid and invalid data once;
# MOCKSERVER_PLATFORM_EXAMPLES=3 searches deeper (about 6 min of CPU, see docs/specs.md) and
# MOCKSERVER_PLATFORM_FUZZ narrows the paths (a regular expression, e.g. `^/public/v1/commerce`).
MAX_EXAMPLES = int(os.environ.get("MOCKSERVER_PLATFORM_EXAMPLES", "1"))
PATHS = os.environ.get("MOCKSERVER_PLATFORM_FUZZ", ".")
STATEFUL_EXAMPLES = 10
# The stateful run follows the links of a sample of the document's kinds of operation
# (collections, items, nested collections, actions, generated reads; sellers: a JSON body no
# value met by the letter, a multipart update): 34 operations.
SAMPLE = r"^/public/v1/(commerce/orders|accounts/user-groups|accounts/sellers)"
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
    """`negative_data_rejection`, except for a case made invalid only by unknown members of
    the body or unknown query parameters (which the lenient mock ignores, as the platform
    does): a 2xx for such a case passes."""
    meta = case.meta
    if meta is not None and response.status_code < 300 and only_unknown_members(meta):
        return None
    result: bool | None = CHECKS.get_one("negative_data_rejection")(ctx, response, case)
    return result


IGNORED = {ParameterLocation.BODY, ParameterLocation.QUERY}  # where unknown names are ignored


def only_unknown_members(meta: CaseMetadata) -> bool:
    """Whether every mutation that made the case invalid adds members or query parameters the
    schema does not declare (schemathesis records each mutation: where, which keywords)."""
    mutations = getattr(meta.phase.data, "mutations", ())
    return bool(mutations) and all(
        tuple(m.keywords) == ("additionalProperties",) and m.parameter_location in IGNORED
        for m in mutations
    )


def example_aware_positive_data_acceptance(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """`positive_data_acceptance`, except for a body taken from the document's own examples
    that its schema refuses (schemathesis sends explicit examples as valid data without
    checking them; the platform's examples hold `"by": null` where `Id` takes no null): such
    data is not valid, and a refusal of it is a 400 problem that names the fields (the
    lenient mock may also accept it, where all that is wrong is what it ignores)."""
    meta = case.meta
    if meta is not None and meta.phase.name == TestPhase.EXAMPLES and _invalid_body(case):
        if response.status_code == 400:
            assert json.loads(response.content)["errors"], response.content
        return None
    result: bool | None = CHECKS.get_one("positive_data_acceptance")(ctx, response, case)
    return result


def _invalid_body(case: schemathesis.Case) -> bool:
    """Whether the case's JSON body breaks its schema, as schemathesis reads the schema."""
    body = case.operation.get_body_for_media_type(case.media_type)
    if body is None or case.body is NOT_SET or "json" not in str(case.media_type):
        return False
    validator_cls = case.operation.schema.adapter.jsonschema_validator_cls  # type: ignore[attr-defined]
    return not make_validator(body.optimized_schema, validator_cls).is_valid(case.body)


REPLACED = ("status_code_conformance", "negative_data_rejection", "positive_data_acceptance")
OPTIONS: dict[str, list[CheckFunction]] = {
    "excluded_checks": [CHECKS.get_one(name) for name in REPLACED],
    "additional_checks": [
        platform_status_code_conformance,
        lenient_negative_data_rejection,
        example_aware_positive_data_acceptance,
    ],
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


STATEFUL = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).include(path_regex=SAMPLE)


def test_stateful(platform: Server) -> None:
    """Orders, user groups, sellers: created, read, updated, processed, deleted through
    links."""
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


def _meta(*mutations: tuple[ParameterLocation, tuple[str, ...]]) -> CaseMetadata:
    """A negative case's metadata as schemathesis records it: one Mutation per change."""
    made = tuple(
        Mutation(
            path=(),
            parameter_location=location,
            schema_pointer="/properties/requester" if location == ParameterLocation.BODY else "",
            channel=MutationChannel.SCHEMA,
            operator=OperatorKind.NEGATE_CONSTRAINTS,
            keywords=keywords,
            parameter=None,
            original_value=None,
            new_value=None,
        )
        for location, keywords in mutations
    )
    phase = PhaseInfo(TestPhase.FUZZING, build_phase_data(TestPhase.FUZZING, None, mutations=made))
    return CaseMetadata(
        generation=GenerationInfo(time=0.0, mode=GenerationMode.NEGATIVE),
        components={location: ComponentInfo(GenerationMode.NEGATIVE) for location, _ in mutations},
        phase=phase,
    )


EXTRA = ("additionalProperties",)


@pytest.mark.parametrize(
    ("mutations", "ignored"),
    [
        # POST /commerce/requests in the full run: an unknown query parameter and unknown
        # members of two nested objects, all of which the lenient mock ignores
        (
            [
                (ParameterLocation.QUERY, EXTRA),
                (ParameterLocation.BODY, EXTRA),
                (ParameterLocation.BODY, EXTRA),
            ],
            True,
        ),
        ([(ParameterLocation.BODY, EXTRA)], True),
        ([(ParameterLocation.BODY, EXTRA), (ParameterLocation.BODY, ("type",))], False),
        ([(ParameterLocation.HEADER, EXTRA)], False),
        ([(ParameterLocation.PATH, EXTRA)], False),
        ([(ParameterLocation.BODY, ("additionalProperties", "minLength"))], False),
        ([], False),  # no mutation recorded: nothing says the case is only that
    ],
)
def test_only_unknown_members_are_recognised_from_the_case_mutations(mutations, ignored):
    assert only_unknown_members(_meta(*mutations)) is ignored
