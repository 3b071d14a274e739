"""The control API under /_mock (fault rules aside): health, reset, records, the request journal
and its counts, coverage, sessions, and how the control API checks what it is sent."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml
from support import AUTH, EVENT_TYPES, RECORDS, TOKEN, new_record, nonconforming

from mockserver import Settings, create_app
from mockserver.sessions.session import NAME_RULE
from mockserver.settings import DEFAULT_SPEC

TRACE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JSON = "application/json; charset=utf-8"
PROBLEM = "application/problem+json; charset=utf-8"
SEEDS = {"seed_records": 5, "faker_seed": 11}
BAD_SESSION = "bad name"
SESSION_PATTERN = (
    "The value 'bad name' does not match the pattern ^(?!\\.\\.?$)[A-Za-z0-9._-]{1,64}$."
)
EVENT_TYPE = f"{EVENT_TYPES}/AET-6491-7370"  # platform.commerce.order.created
MISSING_RECORD = f"{RECORDS}/AUD-0000-0000-0000-0000"


# ---------------------------------------------------------------- helpers


def problem(answer: Any, status: int) -> dict[str, Any]:
    """The body of a problem answer, after checking its shape."""
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == PROBLEM
    body: dict[str, Any] = answer.json
    assert body["status"] == status
    assert TRACE.match(body["traceId"])
    return body


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.get_data(as_text=True)
    if status == 204:
        assert answer.get_data() == b""
        return None
    assert answer.headers["Content-Type"] == JSON
    return answer.json


def health(client: Any, session: str | None = None) -> dict[str, Any]:
    query = f"?session={session}" if session else ""
    found: dict[str, Any] = ok(client.get(f"/_mock/health{query}"))
    return found


def stored(client: Any, session: str | None = None) -> list[dict[str, Any]]:
    query = f"?session={session}" if session else ""
    body = ok(client.get(f"/_mock/records{query}"))
    assert body["total"] == len(body["data"])
    data: list[dict[str, Any]] = body["data"]
    return data


def journal(client: Any, session: str | None = None) -> list[dict[str, Any]]:
    query = f"?session={session}" if session else ""
    body = ok(client.get(f"/_mock/requests{query}"))
    assert body["total"] == len(body["data"])
    data: list[dict[str, Any]] = body["data"]
    return data


def count(client: Any, matcher: Any, session: str | None = None) -> int:
    query = f"?session={session}" if session else ""
    found: int = ok(client.post(f"/_mock/requests/count{query}", json=matcher))["count"]
    return found


def coverage(client: Any, session: str | None = None) -> dict[str, Any]:
    query = f"?session={session}" if session else ""
    found: dict[str, Any] = ok(client.get(f"/_mock/coverage{query}"))
    return found


def statuses(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {op["operation"]: op["statuses"] for op in report["operations"]}


def fixture(number: int, **changes: Any) -> dict[str, Any]:
    """A whole audit record, as the API answers it, with ids only a fixture would have."""
    record: dict[str, Any] = {
        "id": f"AUD-9000-0000-0000-{number:04d}",
        "event": "platform.commerce.order.created",
        "summary": "Order created",
        "details": f"Order {number} created",
        "timestamp": f"2021-03-{number:02d}T10:00:00.123Z",
        "type": "Private",
        "object": {"id": f"ORD-9000-0000-{number:04d}", "name": "Order", "objectType": "Order"},
        "actor": {
            "id": "USR-9000-0001",
            "name": "Fixture User",
            "account": {"id": "ACC-9000-0001", "name": "Fixture Corp", "accountType": "Client"},
        },
        "request": {"api": {"ip": "192.0.2.7", "userAgent": "fixture/1.0"}},
        "documents": {"order": {"id": f"ORD-9000-0000-{number:04d}", "lines": [1, 2]}},
        "viewers": [{"id": "ACC-9000-0001", "name": "Fixture Corp", "type": "Client"}],
    }
    record.update(changes)
    return record


def spec_statuses() -> dict[str, dict[str, int]]:
    """Every operation of the bundled spec with each status it declares, all at zero."""
    document = yaml.safe_load(DEFAULT_SPEC.read_text(encoding="utf-8"))
    return {
        node["operationId"]: dict.fromkeys(node["responses"], 0)
        for item in document["paths"].values()
        for node in item.values()
    }


@pytest.fixture
def seeded(make_app: Any) -> Any:
    return make_app(**SEEDS).test_client()


@pytest.fixture
def custom_spec(tmp_path: Path) -> Path:
    """The bundled spec with the .NET generator's artefacts and an action on a record (answered
    404 for a record that does not exist, a status that operation does not declare)."""
    document = yaml.safe_load(DEFAULT_SPEC.read_text(encoding="utf-8"))
    document["info"].update(title="Custom Audit API", version="9.9.9")
    schemas = document["components"]["schemas"]
    schemas["JsonNode"] = {
        "type": "object",
        "properties": {"options": {}, "parent": {}, "root": {}},
    }
    schemas["StringJsonOptional"] = {
        "type": "object",
        "properties": {"hasValue": {"type": "boolean"}, "value": {"type": "string"}},
    }
    document["paths"][f"{RECORDS}/{{id}}/approve"] = {
        "post": {
            "operationId": "approveAuditRecord",
            "parameters": [{"$ref": "#/components/parameters/id"}],
            "responses": {"200": {"description": "OK"}},
        }
    }
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- health


def test_health_reports_every_member(api):
    found = health(api)
    uptime = found.pop("uptimeSeconds")
    assert isinstance(uptime, int | float)
    assert 0 <= uptime < 60
    held = found["store"].pop("bytes")  # the 50 event types: their JSON and ~160 bytes each
    assert 50 * 160 < held < 50 * 1000
    assert found["store"].pop("bytesLimit") == 1024**3
    assert found == {
        "status": "ok",
        "spec": {
            "title": "SoftwareOne Marketplace Audit API",
            "version": "4.0.2162-mock.1",
            "sha256": hashlib.sha256(DEFAULT_SPEC.read_bytes()).hexdigest(),
            "path": str(DEFAULT_SPEC),
            "repairs": [],
        },
        "mode": "lenient",
        "auth": "on",
        "session": "default",
        "store": {"kind": "memory", "reachable": True},
        "records": 0,
        "eventTypes": 50,
        "faults": 0,
        "journal": 0,
        # the six CRUD operations of records and event types; the spec document's own GET
        # is answered as any operation without a CRUD shape is
        "operations": {"crud": 6, "example": 0, "generated": 1},
        "responseFindings": 0,
        "responseFindingsByKind": {"crud": 0, "example": 0, "generated": 0},
    }


def test_health_counts_follow_the_sessions_state(api):
    ok(api.post(RECORDS, json=new_record()), 201)
    ok(api.post(RECORDS, json=new_record()), 201)
    problem(api.get(MISSING_RECORD), 404)
    ok(api.post("/_mock/faults", json={"path": "/nowhere", "status": 500}), 201)
    found = health(api)
    assert (found["records"], found["eventTypes"], found["faults"], found["journal"]) == (
        2,
        50,
        1,
        3,
    )
    assert health(api)["journal"] == 3  # reading the control API is not journaled


def test_uptime_grows(api):
    first = health(api)["uptimeSeconds"]
    second = health(api)["uptimeSeconds"]
    assert 0 <= first <= second


@pytest.mark.parametrize(
    ("settings", "member", "value"),
    [
        ({"strict": True}, "mode", "strict"),
        ({"strict": False}, "mode", "lenient"),
        ({"auth": False}, "auth", "off"),
        ({"auth": True}, "auth", "on"),
    ],
)
def test_health_reflects_the_settings(make_app, settings, member, value):
    assert health(make_app(**settings).test_client())[member] == value


def test_health_auth_is_tokens_with_a_tokens_file(make_app, tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens:\n  - token: only-this-one\n", encoding="utf-8")
    assert health(make_app(tokens=tokens).test_client())["auth"] == "tokens"


def test_health_of_a_custom_spec_names_it_and_lists_its_repairs(make_app, custom_spec):
    found = health(make_app(spec=custom_spec).test_client())
    assert found["spec"] == {
        "title": "Custom Audit API",
        "version": "9.9.9",
        "sha256": hashlib.sha256(custom_spec.read_bytes()).hexdigest(),
        "path": str(custom_spec),
        "repairs": ["JsonNode: free-form JSON", "StringJsonOptional: bare optional value"],
    }


def test_health_has_no_response_findings_without_check_responses(make_app):
    found = health(make_app(check_responses=False).test_client())
    assert "responseFindings" not in found
    assert found["status"] == "ok"


def test_health_counts_responses_that_do_not_conform(make_app):
    # a 202 for a list is not in the spec: the checker finds it (an "undocumented" finding)
    api = make_app(strict_conformance=False).test_client()
    assert health(api)["responseFindings"] == 0
    assert api.get(RECORDS, headers={**AUTH, "Prefer": "code=202"}).status_code == 202
    assert health(api)["responseFindings"] == 1


def test_health_per_session_by_query_and_by_header(seeded):
    ok(seeded.post(RECORDS, json=new_record(), headers={**AUTH, "X-Mock-Session": "h-1"}), 201)
    by_query = health(seeded, "h-1")
    by_header = ok(seeded.get("/_mock/health", headers={"X-Mock-Session": "h-1"}))
    for found in (by_query, by_header):
        assert (found["session"], found["records"], found["journal"]) == ("h-1", 6, 1)
    default = health(seeded)
    assert (default["session"], default["records"], default["journal"]) == ("default", 5, 0)
    fresh = health(seeded, "h-2")
    assert (fresh["session"], fresh["records"], fresh["journal"]) == ("h-2", 5, 0)


# ---------------------------------------------------------------- reset


def test_reset_restores_the_seed_records_and_drops_the_rest(seeded):
    at_start = stored(seeded)
    assert len(at_start) == 5
    created = ok(seeded.post(RECORDS, json=new_record()), 201)
    ok(seeded.post("/_mock/records", json=[fixture(1), {**at_start[0], "details": "changed"}]), 201)
    assert len(stored(seeded)) == 7

    answer = ok(seeded.post("/_mock/reset"))
    answer.pop("uptimeSeconds")
    expected = health(seeded)
    expected.pop("uptimeSeconds")
    assert answer == expected
    assert (answer["session"], answer["records"], answer["journal"]) == ("default", 5, 0)
    assert stored(seeded) == at_start
    problem(seeded.get(f"{RECORDS}/{created['id']}"), 404)
    problem(seeded.get(f"{RECORDS}/{fixture(1)['id']}"), 404)
    assert ok(seeded.get(f"{RECORDS}/{at_start[0]['id']}")) == at_start[0]


def test_reset_after_clearing_brings_the_seed_records_back(seeded):
    at_start = stored(seeded)
    ok(seeded.delete("/_mock/records"), 204)
    assert stored(seeded) == []
    ok(seeded.post("/_mock/reset"))
    assert stored(seeded) == at_start


def test_reset_restores_the_event_types(api):
    before = ok(api.get(EVENT_TYPE))
    assert ok(api.put(EVENT_TYPE, json={"name": "Renamed"}))["name"] == "Renamed"
    ok(api.post("/_mock/reset"))
    assert ok(api.get(EVENT_TYPE)) == before


def test_reset_empties_the_journal_and_the_coverage(api):
    ok(api.post(RECORDS, json=new_record()), 201)
    problem(api.get(MISSING_RECORD), 404)
    assert len(journal(api)) == 2
    assert statuses(coverage(api))["createAuditRecord"]["201"] == 1
    ok(api.post("/_mock/reset"))
    assert journal(api) == []
    assert count(api, {}) == 0
    assert coverage(api) == {
        "operations": coverage(api)["operations"],
        "undocumented": [],
        "faults": [],
    }
    assert statuses(coverage(api)) == spec_statuses()


def test_reset_works_on_its_session_only(seeded):
    headers = {**AUTH, "X-Mock-Session": "r-1"}
    ok(seeded.post(RECORDS, json=new_record(), headers=headers), 201)
    ok(seeded.post(RECORDS, json=new_record()), 201)

    answer = ok(seeded.post("/_mock/reset?session=r-1"))
    assert (answer["session"], answer["records"], answer["journal"]) == ("r-1", 5, 0)
    assert len(stored(seeded, "r-1")) == 5
    assert journal(seeded, "r-1") == []
    assert len(stored(seeded)) == 6  # the default session keeps its record and journal
    assert len(journal(seeded)) == 1
    assert statuses(coverage(seeded))["createAuditRecord"]["201"] == 1

    answer = ok(seeded.post("/_mock/reset", headers={"X-Mock-Session": "default"}))
    assert (answer["session"], answer["records"], answer["journal"]) == ("default", 5, 0)


# ---------------------------------------------------------------- records


def test_records_are_listed_oldest_first_with_total_and_paging(seeded):
    everything = ok(seeded.get("/_mock/records"))
    assert everything["total"] == 5
    records = everything["data"]
    stamps = [record["timestamp"] for record in records]
    assert stamps == sorted(stamps)  # seeded oldest first
    created = ok(seeded.post(RECORDS, json=new_record()), 201)
    records = stored(seeded)
    assert records[-1] == created  # the newest last

    assert ok(seeded.get("/_mock/records?limit=2&offset=1")) == {"total": 6, "data": records[1:3]}
    assert ok(seeded.get("/_mock/records?limit=2")) == {"total": 6, "data": records[:2]}
    assert ok(seeded.get("/_mock/records?offset=4")) == {"total": 6, "data": records[4:]}
    assert ok(seeded.get("/_mock/records?limit=0")) == {"total": 6, "data": []}
    assert ok(seeded.get("/_mock/records?offset=6")) == {"total": 6, "data": []}


BAD_PAGING = [
    ("limit=-1", {"limit": ["The value must be 0 or more."]}),
    ("limit=100001", {"limit": ["The value must be 100000 or less."]}),
    ("limit=x", {"limit": ["The value 'x' is not valid for limit."]}),
    ("offset=-1", {"offset": ["The value must be 0 or more."]}),
]


def test_records_paging_is_checked(api):
    for query, errors in BAD_PAGING:
        assert problem(api.get(f"/_mock/records?{query}"), 400)["errors"] == errors, query


def test_one_fixture_is_stored_verbatim_and_served_by_the_api(api):
    record = fixture(1)
    assert ok(api.post("/_mock/records", json=record), 201) == {"data": [record]}
    assert stored(api) == [record]
    assert ok(api.get(f"{RECORDS}/{record['id']}")) == record
    listed = ok(api.get(RECORDS))
    assert listed == {
        "$meta": {"pagination": {"offset": 0, "limit": 10, "total": 1}},
        "data": [record],
    }
    assert health(api)["records"] == 1


def test_a_list_of_fixtures_is_stored_in_order(api):
    records = [fixture(3), fixture(1), fixture(2, type="Public", actor={"id": "TKN-9000-0002"})]
    assert ok(api.post("/_mock/records", json=records), 201) == {"data": records}
    assert stored(api) == records
    for record in records:
        assert ok(api.get(f"{RECORDS}/{record['id']}")) == record


def test_an_empty_list_of_fixtures_inserts_nothing(api):
    assert ok(api.post("/_mock/records", json=[]), 201) == {"data": []}
    assert stored(api) == []


def test_a_minimal_fixture_needs_only_an_id(api):
    record = {"id": "AUD-9000-0000-0000-0099"}
    assert ok(api.post("/_mock/records", json=record), 201) == {"data": [record]}
    assert ok(api.get(f"{RECORDS}/{record['id']}")) == record


RQL_CASES = [
    ("eq(actor.id,USR-9000-0001)", [1, 2]),
    ("eq(actor.id,TKN-9000-0003)", [3]),
    ("eq(actor.account.id,ACC-9000-0003)", [3]),
    ("eq(object.id,ORD-9000-0000-0002)", [2]),
    ("eq(event,platform.commerce.order.cancelled)", [3]),
    ("eq(type,Public)", [3]),
    ("lt(timestamp,2021-03-02)", [1]),
    ("ge(timestamp,2021-03-02T10:00:00.123Z)", [2, 3]),
    ("eq(request.api.ip,192.0.2.7)", [1, 2, 3]),
    ("any(documents,eq(id,ORD-9000-0000-0001))", [1]),
    ("eq(details,'Order 2 created')", [2]),
    ("eq(actor.id,USR-0000-0001)", []),
]


def test_fixtures_are_found_with_rql(api):
    third = fixture(
        3,
        event="platform.commerce.order.cancelled",
        type="Public",
        actor={
            "id": "TKN-9000-0003",
            "name": "API Token TKN-9000-0003",
            "account": {"id": "ACC-9000-0003", "name": "Other", "accountType": "Vendor"},
        },
    )
    ok(api.post("/_mock/records", json=[fixture(1), fixture(2), third]), 201)
    for rql, expected in RQL_CASES:
        found = ok(api.get(f"{RECORDS}?{rql}&order=timestamp"))
        ids = [record["id"] for record in found["data"]]
        assert ids == [fixture(n)["id"] for n in expected], rql
        assert found["$meta"]["pagination"]["total"] == len(expected), rql


def test_an_existing_id_is_replaced(api):
    ok(api.post("/_mock/records", json=[fixture(1), fixture(2)]), 201)
    moved = {
        "id": fixture(1)["id"],
        "event": "platform.commerce.order.deleted",
        "object": {"id": "ORD-9000-0000-0777"},
        "actor": {"id": "USR-9000-0777"},
        "timestamp": "2022-01-01T00:00:00.000Z",
    }
    assert ok(api.post("/_mock/records", json=moved), 201) == {"data": [moved]}
    records = stored(api)
    assert len(records) == 2
    assert fixture(2) in records
    assert moved in records
    assert ok(api.get(f"{RECORDS}/{moved['id']}")) == moved
    # the old values are no longer found, the new ones are (indexed paths and others)
    for rql, total in [
        ("eq(object.id,ORD-9000-0000-0001)", 0),
        ("eq(actor.id,USR-9000-0001)", 1),
        ("eq(event,platform.commerce.order.created)", 1),
        ("eq(object.id,ORD-9000-0000-0777)", 1),
        ("eq(actor.id,USR-9000-0777)", 1),
        ("eq(event,platform.commerce.order.deleted)", 1),
        ("eq(details,'Order 1 created')", 0),
    ]:
        assert ok(api.get(f"{RECORDS}?{rql}"))["$meta"]["pagination"]["total"] == total, rql


def test_a_fixture_replacing_a_seed_record_is_served(seeded):
    first = stored(seeded)[0]
    changed = {**first, "details": "changed by a fixture"}
    ok(seeded.post("/_mock/records", json=changed), 201)
    assert len(stored(seeded)) == 5
    assert ok(seeded.get(f"{RECORDS}/{first['id']}")) == changed


BAD_FIXTURES = [
    (
        fixture(1, timestamp="yesterday"),
        {"[0].timestamp": ["The value 'yesterday' is not a valid date-time."]},
    ),
    (fixture(1, event=42), {"[0].event": ["The value must be a string, not an integer."]}),
    (
        fixture(1, event="order created"),
        {
            "[0].event": [
                "The value 'order created' does not match the pattern "
                "^(platform|extension)(\\.[A-Za-z0-9_-]+){3}$."
            ]
        },
    ),
    (
        fixture(1, id="fixture-1"),
        {
            "[0].id": [
                "The value 'fixture-1' does not match the pattern "
                "^AUD-\\d{4}-\\d{4}-\\d{4}-\\d{4}$."
            ]
        },
    ),
    (fixture(1, type="Secret"), {"[0].type": ["The value must be one of: Private, Public."]}),
    (fixture(1, colour="red"), {"[0].colour": ["'colour' is not a member of this object."]}),
    (
        fixture(1, object={"id": 7}),
        {"[0].object.id": ["The value must be a string, not an integer."]},
    ),
    (
        [fixture(1), fixture(2, timestamp="2021-13-45T99:00:00Z", viewers={})],
        {
            "[1].timestamp": ["The value '2021-13-45T99:00:00Z' is not a valid date-time."],
            "[1].viewers": ["The value must be an array, not an object."],
        },
    ),
]


def test_a_fixture_breaking_the_record_schema_is_a_400_and_nothing_is_stored(api):
    for sent, errors in BAD_FIXTURES:
        body = problem(api.post("/_mock/records", json=sent), 400)
        assert body["detail"] == "One or more validation errors occurred."
        assert body["errors"] == errors, sent
        assert stored(api) == []
        problem(api.get(f"{RECORDS}/{fixture(1)['id']}"), 404)


def test_a_fixture_without_an_id_is_a_400_naming_it(api):
    body = problem(api.post("/_mock/records", json=[fixture(1), {"event": "platform.a.b.c"}]), 400)
    assert body["errors"] == {"[1].id": ["The id field is required."]}


def test_clearing_the_records_empties_the_session(seeded):
    ok(seeded.post(RECORDS, json=new_record()), 201)
    ok(seeded.post(RECORDS, json=new_record(), headers={**AUTH, "X-Mock-Session": "c-1"}), 201)
    ok(seeded.delete("/_mock/records"), 204)
    assert ok(seeded.get("/_mock/records")) == {"total": 0, "data": []}
    assert health(seeded)["records"] == 0
    assert ok(seeded.get(RECORDS))["$meta"]["pagination"]["total"] == 0
    assert health(seeded)["eventTypes"] == 50  # only the records go
    assert len(stored(seeded, "c-1")) == 6  # another session keeps its records
    ok(seeded.delete("/_mock/records?session=c-1"), 204)
    assert stored(seeded, "c-1") == []


# ---------------------------------------------------------------- the journal


def test_an_entry_holds_the_request_and_what_it_got(api):
    before = datetime.now(UTC) - timedelta(seconds=1)
    headers = {**AUTH, "User-Agent": "control-tests/1.0", "X-Trace": "t-1"}
    answered = api.post(RECORDS, json=new_record(), headers=headers)
    created = ok(answered, 201)
    after = datetime.now(UTC) + timedelta(seconds=1)
    [entry] = journal(api)
    assert TIME.match(entry["time"])
    assert before <= datetime.fromisoformat(entry.pop("time")) <= after
    duration = entry.pop("durationMs")
    assert isinstance(duration, int | float)
    assert 0 <= duration < 10_000
    answer = entry.pop("answer")
    assert answer["body"] == created
    assert answer["bodySize"] == len(answered.get_data())
    assert answer["bodyTruncated"] is False
    assert answer["headers"]["Location"].endswith(f"{RECORDS}/{created['id']}")
    assert answer["headers"]["Content-Type"].startswith("application/json")
    assert entry == {
        "id": 1,
        "method": "POST",
        "path": RECORDS,
        "query": "",
        "headers": {
            "User-Agent": "control-tests/1.0",
            "Host": "localhost",
            "Authorization": "Bearer idt:TKN-***",
            "X-Trace": "t-1",
            "Content-Type": "application/json",
        },
        "body": new_record(),
        "bodySize": len(api.application.json.dumps(new_record()).encode()),
        "operation": "createAuditRecord",
        "valid": True,
        "violations": {},
        "warnings": [],
        "fault": None,
        "status": 201,
        "recordId": created["id"],
        "delayMs": None,
        "session": "default",
    }


def test_an_entry_of_a_400_holds_the_violations_keyed_by_field(api):
    sent = {"object": {"id": 5}, "event": 42}
    answer = problem(api.post(RECORDS, json=sent), 400)
    [entry] = journal(api)
    assert (entry["valid"], entry["status"], entry["recordId"]) == (False, 400, None)
    assert entry["violations"] == answer["errors"]
    assert entry["violations"] == {
        "event": ["The value must be a string, not an integer."],
        "object.id": ["The value must be a string, not an integer."],
    }
    assert entry["body"] == sent


def test_an_entry_of_a_bad_query_holds_its_violations(api):
    problem(api.get(f"{RECORDS}?limit=abc"), 400)
    problem(api.get(f"{RECORDS}?eq(colour,red)"), 400)
    first, second = journal(api)
    assert (first["valid"], first["violations"]) == (
        False,
        {"limit": ["The value 'abc' is not valid for limit."]},
    )
    assert (second["valid"], second["violations"]) == (
        False,
        {"colour": ["Unknown expression group."]},
    )


def test_an_entry_lists_the_ignored_members(api):
    ok(api.post(RECORDS, json=new_record(payload={"a": 1}, id="AUD-0000-0000-0000-0001")), 201)
    [entry] = journal(api)
    assert entry["warnings"] == [
        "unknown member 'payload' ignored",
        "read-only member 'id' ignored",
    ]
    assert (entry["valid"], entry["violations"]) == (True, {})
    assert entry["body"] == new_record(payload={"a": 1}, id="AUD-0000-0000-0000-0001")


def test_in_strict_mode_an_unknown_member_is_a_violation(make_app):
    api = make_app(strict=True).test_client()
    problem(api.post(RECORDS, json=new_record(payload=1)), 400)
    [entry] = journal(api)
    assert (entry["valid"], entry["warnings"]) == (False, [])
    assert entry["violations"] == {"payload": ["'payload' is not a member of this object."]}


def test_the_query_is_journaled_decoded(api):
    query = "eq(object.id,'ORD%201%2C2')&select=-actor&limit=5"
    ok(api.get(f"{RECORDS}?{query}"))
    [entry] = journal(api)
    assert entry["query"] == "eq(object.id,'ORD 1,2')&select=-actor&limit=5"
    assert (entry["operation"], entry["body"], entry["recordId"]) == (
        "listAuditRecords",
        None,
        None,
    )


BODIES = [
    (b"hello, not json", "text/plain", "hello, not json"),
    (b'{"event": ', "application/json", '{"event": '),
    (b"caf\xc3\xa9", "text/plain", "café"),
    (b"\xff\xfe", "text/plain", "\ufffd\ufffd"),
    (b"[1, 2]", "application/json", [1, 2]),
    (b"", "application/json", None),
]


def test_the_body_is_journaled_as_json_or_else_as_text(api):
    for data, content_type, body in BODIES:
        ok(api.delete("/_mock/requests"), 204)
        api.post(RECORDS, data=data, content_type=content_type)
        [entry] = journal(api)
        assert entry["body"] == body, data


def test_secrets_are_masked_and_never_journaled(make_app):
    api = make_app().test_client(use_cookies=False)  # the cookie jar would drop our Cookie
    secret_headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Proxy-Authorization": "Basic dXNlcjpwYXNzd29yZA==",
        "Cookie": "session=cookie-secret-value",
        "X-Api-Key": "key-secret-value-123",
    }
    ok(api.get(RECORDS, headers=secret_headers))
    text = api.get("/_mock/requests").get_data(as_text=True)
    [entry] = json.loads(text)["data"]
    assert entry["headers"]["Authorization"] == "Bearer idt:TKN-***"
    assert entry["headers"]["Proxy-Authorization"] == "Basic dXNlcjpw***"
    assert entry["headers"]["Cookie"] == "session=***"
    assert entry["headers"]["X-Api-Key"] == "key-secr***"
    for secret in (TOKEN, "secret", "dXNlcjpwYXNzd29yZA", "cookie-secret", "value-123"):
        assert secret not in text


def test_a_short_token_is_not_journaled_whole(api):
    ok(api.get(RECORDS, headers={"Authorization": "Bearer s3cr3t"}))
    text = api.get("/_mock/requests").get_data(as_text=True)
    assert "s3cr3t" not in text


def test_control_requests_are_not_journaled(api):
    for path in ("/_mock/health", "/_mock/records", "/_mock/requests", "/_mock/coverage"):
        ok(api.get(path))
    ok(api.post("/_mock/records", json=fixture(1)), 201)
    ok(api.post("/_mock/requests/count", json={}))
    problem(api.get("/_mock/nothing-here"), 404)
    assert journal(api) == []
    assert health(api)["journal"] == 0
    assert count(api, {}) == 0
    assert coverage(api)["undocumented"] == []


def test_requests_the_api_refuses_early_are_journaled(api):
    problem(api.get(RECORDS, headers={}), 401)
    problem(api.get("/public/v1/nothing"), 404)
    problem(api.delete(RECORDS), 405)
    entries = journal(api)
    assert [(e["path"], e["status"], e["operation"]) for e in entries] == [
        (RECORDS, 401, "listAuditRecords"),
        ("/public/v1/nothing", 404, None),
        (RECORDS, 405, None),
    ]
    assert [e["valid"] for e in entries[1:]] == [None, None]  # no operation: not checked
    assert "Authorization" not in entries[0]["headers"]


def test_a_request_with_an_undeclared_media_type_is_not_valid(api):
    problem(api.post(RECORDS, data="x", content_type="text/plain"), 415)
    [entry] = journal(api)
    assert entry["status"] == 415
    assert entry["valid"] is False


def test_the_journal_pages_oldest_first(api):
    for number in range(6):
        problem(api.get(f"{RECORDS}/AUD-0000-0000-0000-000{number}"), 404)
    entries = journal(api)
    assert [e["id"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert [e["path"][-1] for e in entries] == ["0", "1", "2", "3", "4", "5"]
    assert ok(api.get("/_mock/requests?limit=2&offset=1")) == {
        "total": 6,
        "last": 6,
        "data": entries[1:3],
    }
    assert ok(api.get("/_mock/requests?offset=4")) == {"total": 6, "last": 6, "data": entries[4:]}
    assert ok(api.get("/_mock/requests?limit=0")) == {"total": 6, "last": 6, "data": []}
    assert ok(api.get("/_mock/requests?offset=9")) == {"total": 6, "last": 6, "data": []}
    assert problem(api.get("/_mock/requests?limit=-1"), 400)["errors"] == {
        "limit": ["The value must be 0 or more."]
    }


def test_clearing_the_journal_empties_it_and_ids_go_on(api):
    ok(api.get(RECORDS))
    ok(api.get(RECORDS))
    ok(api.get(RECORDS, headers={**AUTH, "X-Mock-Session": "j-1"}))
    ok(api.delete("/_mock/requests"), 204)
    assert journal(api) == []
    assert health(api)["journal"] == 0
    assert len(journal(api, "j-1")) == 1  # another session keeps its journal
    ok(api.get(RECORDS))
    assert [e["id"] for e in journal(api)] == [3]


def test_a_bounded_journal_keeps_the_last_entries(make_app):
    api = make_app(journal_size=5).test_client()
    for number in range(8):
        problem(api.get(f"{RECORDS}/AUD-0000-0000-0000-000{number}"), 404)
    entries = journal(api)
    assert [e["id"] for e in entries] == [4, 5, 6, 7, 8]
    assert [e["path"][-1] for e in entries] == ["3", "4", "5", "6", "7"]
    assert health(api)["journal"] == 5
    assert count(api, {"status": 404}) == 5


def test_a_journal_of_size_zero_keeps_nothing(make_app):
    api = make_app(journal_size=0).test_client()
    ok(api.post(RECORDS, json=new_record()), 201)
    ok(api.get(RECORDS))
    assert ok(api.get("/_mock/requests")) == {"total": 0, "last": 0, "data": []}
    assert health(api)["journal"] == 0
    assert count(api, {}) == 0
    assert statuses(coverage(api))["createAuditRecord"]["201"] == 1  # coverage still counts


# ---------------------------------------------------------------- counting requests


@pytest.fixture
def exchanged(api: Any) -> Any:
    """An app that has answered seven requests of several kinds."""
    first = ok(api.post(RECORDS, json=new_record()), 201)
    second = new_record(object={"id": "ORD-2", "objectType": "Order"}, details="second")
    ok(api.post(RECORDS, json=second, headers={**AUTH, "X-Test": "one"}), 201)
    ok(api.get(f"{RECORDS}?limit=5&select=-actor"))
    ok(api.get(f"{RECORDS}/{first['id']}"))
    problem(api.get(MISSING_RECORD), 404)
    problem(api.post(RECORDS, json={"object": {"id": "ORD-1"}}), 400)
    ok(api.get(EVENT_TYPES))
    return api


MATCHERS = [
    ({}, 7),
    ({"method": "POST"}, 3),
    ({"method": "post"}, 3),
    ({"method": "DELETE"}, 0),
    ({"path": RECORDS}, 4),
    ({"path": RECORDS + "/"}, 4),
    ({"path": RECORDS.upper()}, 4),
    ({"path": RECORDS + "/{id}"}, 2),
    ({"path": MISSING_RECORD}, 1),
    ({"path": "/public/v1/audit/{collection}"}, 5),
    ({"path": EVENT_TYPES}, 1),
    ({"path": "/public/v1"}, 0),
    ({"operation": "createAuditRecord"}, 3),
    ({"operation": "getAuditRecord"}, 2),
    ({"operation": "listAuditRecords"}, 1),
    ({"operation": "listAuditEventTypes"}, 1),
    ({"operation": "updateAuditEventType"}, 0),
    ({"status": 201}, 2),
    ({"status": 200}, 3),
    ({"status": 404}, 1),
    ({"status": 400}, 1),
    ({"status": 500}, 0),
    ({"when": {"headers": {"X-Test": "one"}}}, 1),
    ({"when": {"headers": {"x-test": "one"}}}, 1),
    ({"when": {"headers": {"X-Test": "two"}}}, 0),
    ({"when": {"headers": {"Content-Type": "application/json"}}}, 3),
    ({"when": {"query": {"limit": "5"}}}, 1),
    ({"when": {"query": {"limit": "5", "select": "-actor"}}}, 1),
    ({"when": {"query": {"limit": "6"}}}, 0),
    ({"when": {"body": {}}}, 3),
    ({"when": {"body": {"object": {"id": "ORD-2"}}}}, 1),
    ({"when": {"body": {"object": {"id": "ORD-1"}}}}, 1),
    ({"when": {"body": {"event": "platform.commerce.order.created"}}}, 2),
    ({"when": {"body": {"details": "second", "event": "platform.commerce.order.created"}}}, 1),
    ({"when": {"body": {"details": "third"}}}, 0),
    ({"method": "GET", "path": RECORDS + "/{id}", "status": 404}, 1),
    ({"method": "POST", "operation": "createAuditRecord", "status": 201}, 2),
    ({"method": "POST", "status": 201, "when": {"headers": {"x-test": "one"}}}, 1),
    ({"fault": "rule-1"}, 0),
]


def test_counts_match_every_condition(exchanged):
    for matcher, expected in MATCHERS:
        assert count(exchanged, matcher) == expected, matcher


def test_counts_by_fault(make_app):
    api = make_app(strict_conformance=False).test_client()  # a 202 is not in the spec
    ok(api.get(RECORDS, headers={**AUTH, "Prefer": "code=202"}), 202)
    ok(api.get(RECORDS))
    assert count(api, {"fault": "prefer"}) == 1
    assert count(api, {"fault": "prefer", "status": 202}) == 1
    assert count(api, {"fault": "rule-1"}) == 0
    assert [e["fault"] for e in journal(api)] == ["prefer", None]


def test_counts_are_per_session(api):
    ok(api.get(RECORDS, headers={**AUTH, "X-Mock-Session": "n-1"}))
    ok(api.get(RECORDS, headers={**AUTH, "X-Mock-Session": "n-1"}))
    ok(api.get(RECORDS))
    assert count(api, {"operation": "listAuditRecords"}, "n-1") == 2
    assert count(api, {"operation": "listAuditRecords"}) == 1
    answer = api.post("/_mock/requests/count", json={}, headers={"X-Mock-Session": "n-1"})
    assert ok(answer) == {"count": 2}


BAD_MATCHERS = [
    ({"colour": "red"}, {"colour": ["'colour' is not a member of this object."]}),
    ({"status": "404"}, {"status": ["The value must be an integer, not a string."]}),
    ({"method": 1}, {"method": ["The value must be a string, not an integer."]}),
    ({"path": "records"}, {"path": ["The value 'records' does not match the pattern ^/."]}),
    ({"operation": ["a"]}, {"operation": ["The value must be a string, not an array."]}),
    ({"fault": 1}, {"fault": ["The value must be a string, not an integer."]}),
    ({"when": []}, {"when": ["The value must be an object, not an array."]}),
    ({"when": {"colour": 1}}, {"when.colour": ["'colour' is not a member of this object."]}),
    (
        {"when": {"headers": {"X-Test": 1}}},
        {"when.headers.X-Test": ["The value must be a string, not an integer."]},
    ),
    (
        {"when": {"query": {"limit": 5}}},
        {"when.query.limit": ["The value must be a string, not an integer."]},
    ),
    ([], {"$": ["The value must be an object, not an array."]}),
    (
        {"status": "x", "mode": "all"},
        {
            "mode": ["'mode' is not a member of this object."],
            "status": ["The value must be an integer, not a string."],
        },
    ),
]


def test_a_malformed_matcher_is_a_400_naming_the_field(api):
    for matcher, errors in BAD_MATCHERS:
        body = problem(api.post("/_mock/requests/count", json=matcher), 400)
        assert body["detail"] == "One or more validation errors occurred."
        assert body["errors"] == errors, matcher


def test_a_matcher_is_required(api):
    body = problem(api.post("/_mock/requests/count", content_type="application/json"), 400)
    assert body["errors"] == {"$": ["A non-empty request body is required."]}


# ---------------------------------------------------------------- coverage


def test_coverage_lists_every_operation_and_declared_status(api):
    report = coverage(api)
    assert statuses(report) == spec_statuses()
    assert (report["undocumented"], report["faults"]) == ([], [])
    for op in report["operations"]:
        assert (op["method"], op["path"]) in {
            ("POST", RECORDS),
            ("GET", RECORDS),
            ("GET", f"{RECORDS}/{{id}}"),
            ("GET", EVENT_TYPES),
            ("GET", f"{EVENT_TYPES}/{{id}}"),
            ("PUT", f"{EVENT_TYPES}/{{id}}"),
            ("GET", "/public/v1/audit/openapi.json"),
        }
    by_id = {op["operation"]: (op["method"], op["path"]) for op in report["operations"]}
    assert by_id["getAuditRecord"] == ("GET", f"{RECORDS}/{{id}}")
    assert by_id["updateAuditEventType"] == ("PUT", f"{EVENT_TYPES}/{{id}}")


def test_coverage_counts_each_answer_under_its_operation(exchanged):
    ok(exchanged.put(EVENT_TYPE, json={"name": "Order placed"}))
    problem(exchanged.put(EVENT_TYPE, data="x", content_type="text/plain"), 415)
    problem(exchanged.get(RECORDS, headers={"Authorization": "Basic x"}), 401)
    problem(exchanged.get(f"{RECORDS}?offset=1", headers={**AUTH, "MPT-Streaming": "true"}), 400)
    expected = spec_statuses()
    expected["createAuditRecord"].update({"201": 2, "400": 1})
    expected["listAuditRecords"].update({"200": 1, "401": 1, "400": 1})
    expected["getAuditRecord"].update({"200": 1, "404": 1})
    expected["listAuditEventTypes"].update({"200": 1})
    expected["updateAuditEventType"].update({"200": 1, "415": 1})
    report = coverage(exchanged)
    assert statuses(report) == expected
    assert (report["undocumented"], report["faults"]) == ([], [])


def test_coverage_lists_answers_without_a_declared_status(make_app):
    api = make_app(strict_conformance=False).test_client()  # a 202 is not in the spec
    problem(api.delete(RECORDS), 405)
    problem(api.delete(RECORDS), 405)
    problem(api.get("/public/v1/nothing"), 404)
    ok(api.get(RECORDS, headers={**AUTH, "Prefer": "code=202"}), 202)
    report = coverage(api)
    assert sorted(report["undocumented"], key=lambda answer: answer["status"]) == [
        {"operation": "listAuditRecords", "status": 202, "count": 1},
        {"operation": None, "status": 404, "count": 1},
        {"operation": None, "status": 405, "count": 2},
    ]
    assert report["faults"] == [{"id": "prefer", "fired": 1}]
    assert statuses(report) == spec_statuses()


def test_coverage_lists_a_status_the_operation_does_not_declare(make_app, custom_spec):
    api = make_app(spec=custom_spec, strict_conformance=False).test_client()
    problem(api.post(f"{RECORDS}/AUD-0000-0000-0000-0001/approve"), 404)
    report = coverage(api)
    assert report["undocumented"] == [
        {"operation": "approveAuditRecord", "status": 404, "count": 1}
    ]
    assert statuses(report)["approveAuditRecord"] == {"200": 0}


def test_coverage_counts_a_preferred_status_under_its_operation(api):
    problem(api.get(RECORDS, headers={**AUTH, "Prefer": "code=418"}), 418)
    problem(api.get(RECORDS, headers={**AUTH, "Prefer": "code=500"}), 500)
    report = coverage(api)
    assert report["undocumented"] == [{"operation": "listAuditRecords", "status": 418, "count": 1}]
    assert statuses(report)["listAuditRecords"]["500"] == 1
    assert [e["operation"] for e in journal(api)] == ["listAuditRecords", "listAuditRecords"]
    assert count(api, {"operation": "listAuditRecords"}) == 2


def test_coverage_counts_the_openapi_document_under_its_operation(api):
    ok(api.get("/public/v1/audit/openapi.json", headers={}))
    report = coverage(api)
    assert report["undocumented"] == []
    assert statuses(report)["getOpenApiDocument"] == {"200": 1}
    assert [entry["operation"] for entry in journal(api)] == ["getOpenApiDocument"]


def test_coverage_is_per_session(api):
    ok(api.post(RECORDS, json=new_record(), headers={**AUTH, "X-Mock-Session": "v-1"}), 201)
    assert statuses(coverage(api, "v-1"))["createAuditRecord"]["201"] == 1
    by_header = ok(api.get("/_mock/coverage", headers={"X-Mock-Session": "v-1"}))
    assert by_header == coverage(api, "v-1")
    assert statuses(coverage(api)) == spec_statuses()


# ---------------------------------------------------------------- sessions


def test_the_header_and_the_query_pick_the_same_session(seeded):
    headers = {**AUTH, "X-Mock-Session": "s-1"}
    created = ok(seeded.post(RECORDS, json=new_record(), headers=headers), 201)
    assert stored(seeded, "s-1")[-1] == created
    assert ok(seeded.get(f"{RECORDS}/{created['id']}", headers=headers)) == created
    entries = journal(seeded, "s-1")
    assert [(e["method"], e["session"], e["recordId"]) for e in entries] == [
        ("POST", "s-1", created["id"]),
        ("GET", "s-1", None),
    ]
    assert entries[0]["headers"]["X-Mock-Session"] == "s-1"

    # the default session sees none of it
    problem(seeded.get(f"{RECORDS}/{created['id']}"), 404)
    assert len(stored(seeded)) == 5
    assert [e["session"] for e in journal(seeded)] == ["default"]  # the 404 just above

    # a fixture inserted with ?session= is served to the header
    ok(seeded.post("/_mock/records?session=s-1", json=fixture(1)), 201)
    assert ok(seeded.get(f"{RECORDS}/{fixture(1)['id']}", headers=headers)) == fixture(1)
    problem(seeded.get(f"{RECORDS}/{fixture(1)['id']}"), 404)


def test_a_new_session_starts_from_the_start_up_state(seeded):
    at_start = stored(seeded)
    event_type = ok(seeded.get(EVENT_TYPE))
    ok(seeded.post(RECORDS, json=new_record()), 201)
    ok(seeded.put(EVENT_TYPE, json={"name": "Renamed"}))
    ok(seeded.delete("/_mock/records?session=other"), 204)
    headers = {**AUTH, "X-Mock-Session": "fresh"}
    assert stored(seeded, "fresh") == at_start
    listed = ok(seeded.get(f"{RECORDS}?order=timestamp&limit=100", headers=headers))
    assert listed["data"] == at_start
    assert ok(seeded.get(EVENT_TYPE, headers=headers)) == event_type
    assert [e["session"] for e in journal(seeded, "fresh")] == ["fresh", "fresh"]
    assert stored(seeded, "other") == []


def test_the_default_session_is_named_default(api):
    ok(api.get(RECORDS, headers={**AUTH, "X-Mock-Session": "default"}))
    ok(api.get(RECORDS))
    assert [e["session"] for e in journal(api, "default")] == ["default", "default"]


def test_a_bad_session_header_on_the_api_is_a_400(api):
    body = problem(api.get(RECORDS, headers={**AUTH, "X-Mock-Session": BAD_SESSION}), 400)
    assert body["errors"] == {"X-Mock-Session": [NAME_RULE]}


@pytest.mark.parametrize("name", [".", ".."])
def test_a_session_named_by_dots_alone_is_a_400(api, name):
    """`/_mock/sessions/.` is `/_mock/sessions/` once its dot segment is resolved: such a
    name could not be ended (found by schemathesis' stateful run)."""
    body = problem(api.get(RECORDS, headers={**AUTH, "X-Mock-Session": name}), 400)
    assert body["errors"] == {"X-Mock-Session": [NAME_RULE]}
    ok(api.get(RECORDS, headers={**AUTH, "X-Mock-Session": "..."}))


def test_a_query_parameter_given_twice_is_read_by_its_first_value(api):
    """As ASP.NET Core binds a single value: `limit=a&limit=` is the invalid `a`, not the
    empty last one (found by schemathesis' stateful run on the control API)."""
    body = problem(api.get("/_mock/records?limit=a&limit="), 400)
    assert "limit" in json.dumps(body["errors"])
    ok(api.get("/_mock/records?limit=1&limit=2"))


def test_sessions_over_http(start_server):
    server = start_server("--seed-records", "3", "--faker-seed", "5")
    headers = {**AUTH, "X-Mock-Session": "http-1"}
    created = requests.post(f"{server.url}{RECORDS}", json=new_record(), headers=headers, timeout=5)
    assert created.status_code == 201
    records = requests.get(f"{server.url}/_mock/records?session=http-1", timeout=5).json()
    assert records["total"] == 4
    assert records["data"][-1] == created.json()
    assert requests.get(f"{server.url}/_mock/records", timeout=5).json()["total"] == 3
    entries = requests.get(
        f"{server.url}/_mock/requests", headers={"X-Mock-Session": "http-1"}, timeout=5
    )
    [entry] = entries.json()["data"]
    assert entry["headers"]["Host"] == f"127.0.0.1:{server.port}"
    assert entry["headers"]["Authorization"] == "Bearer idt:TKN-***"
    assert entry["headers"]["Content-Type"] == "application/json"
    assert entry["body"] == new_record()
    assert (entry["session"], entry["status"], entry["recordId"]) == (
        "http-1",
        201,
        created.json()["id"],
    )
    assert TOKEN not in entries.text
    assert server.health()["journal"] == 0
    assert server.stop() == 0
    assert not nonconforming(server), "\n".join(nonconforming(server))


# ---------------------------------------------------------------- checking control requests


BODY_PATHS = ["/_mock/records", "/_mock/requests/count"]


def test_a_body_of_another_media_type_is_a_415(api):
    for path in BODY_PATHS:
        for content_type in ("text/plain", "application/xml", "application/json; charset=latin-1"):
            body = problem(api.post(path, data=b"{}", content_type=content_type), 415)
            assert body["title"] == "Unsupported Media Type"
    assert stored(api) == []


def test_malformed_json_is_a_400(api):
    for path in BODY_PATHS:
        body = problem(api.post(path, data=b'{"id": ', content_type="application/json"), 400)
        assert body["detail"] == "One or more validation errors occurred."
        assert list(body["errors"]) == ["$"]
        [message] = body["errors"]["$"]
        assert message.startswith("The body is not valid JSON: ")


SESSION_ENDPOINTS = [
    ("GET", "/_mock/records"),
    ("POST", "/_mock/records"),
    ("DELETE", "/_mock/records"),
    ("GET", "/_mock/requests"),
    ("DELETE", "/_mock/requests"),
    ("POST", "/_mock/requests/count"),
    ("GET", "/_mock/coverage"),
    ("POST", "/_mock/reset"),
]


def test_a_bad_session_parameter_is_a_400(api):
    pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]{1,64}$"
    for name in (BAD_SESSION, "x" * 65, "a/b", "é"):
        message = f"The value '{name}' does not match the pattern {pattern}."
        for method, path in SESSION_ENDPOINTS:
            sent = fixture(1) if path == "/_mock/records" else {}
            url = f"{path}?session={quote(name, safe='')}"
            answer = api.open(url, method=method, json=sent if method == "POST" else None)
            assert problem(answer, 400)["errors"] == {"session": [message]}, (method, path)
    assert stored(api) == []  # nothing was inserted anywhere
    assert [health(api, name)["records"] for name in ("default", "x" * 64)] == [0, 0]


def test_a_bad_session_parameter_on_health_is_a_declared_400():
    app = create_app(Settings(check_responses=True))
    answer = app.test_client().get(f"/_mock/health?session={BAD_SESSION}")
    assert problem(answer, 400)["errors"] == {"session": [SESSION_PATTERN]}
    assert app.extensions["mockserver"].checker.findings == []


def test_a_bad_session_header_on_the_control_api_is_a_400(api):
    answer = api.get("/_mock/records", headers={"X-Mock-Session": BAD_SESSION})
    assert list(problem(answer, 400)["errors"]) == ["X-Mock-Session"]


def test_an_unknown_control_path_is_a_404_problem(api):
    body = problem(api.get("/_mock/nothing-here"), 404)
    assert body["detail"] == "No resource at /_mock/nothing-here."
    problem(api.post("/_mock/faults/rule-1/extra", json={}), 404)
    assert journal(api) == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/_mock/health", "GET"),
        ("PUT", "/_mock/records", "DELETE, GET, POST"),
        ("GET", "/_mock/reset", "POST"),
        ("GET", "/_mock/requests/count", "POST"),
        ("POST", "/_mock/coverage", "GET"),
        ("PATCH", "/_mock/requests", "DELETE, GET"),
    ],
)
def test_a_wrong_method_on_a_control_path_is_a_405_with_allow(api, method, path, allow):
    answer = api.open(path, method=method)
    problem(answer, 405)
    assert answer.headers["Allow"] == allow
