"""The project's spec, faithful to the published one; loading any spec; serving it."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from support import MARKETPLACE_SPEC, PUBLISHED_SPEC, RECORDS, new_record, reference

from mockserver import SpecError, load_spec
from mockserver.contract.router import Router
from mockserver.settings import DEFAULT_SPEC

SERVER_SET = {"id", "timestamp", "actor", "type", "viewers"}


@pytest.fixture(scope="module")
def ours():
    return yaml.safe_load(DEFAULT_SPEC.read_text())


@pytest.fixture(scope="module")
def published():
    return json.loads(reference(PUBLISHED_SPEC).read_text())


def resolve(document, schema):
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "allOf" in schema and "type" not in schema:
        return resolve(document, schema["allOf"][0])
    return schema


def test_every_published_operation_is_in_ours(ours, published):
    for path, item in published["paths"].items():
        for method in item:
            assert method in ours["paths"][path], f"{method} {path}"


def test_every_published_field_is_in_ours_with_its_type(ours, published):
    theirs = published["components"]["schemas"]
    mine = ours["components"]["schemas"]
    for name, schema in theirs.items():
        if name.startswith("JsonNode"):
            continue  # the generator's artefact, repaired (documents are free-form)
        assert name in mine, name
        for field, definition in schema.get("properties", {}).items():
            assert field in mine[name]["properties"], f"{name}.{field}"
            own = resolve(ours, mine[name]["properties"][field])
            target = resolve(published, definition)
            for key in ("type", "format", "nullable", "enum"):
                assert own.get(key) == target.get(key), f"{name}.{field}: {key}"


def test_server_set_fields_are_read_only_with_id_patterns(ours):
    record = ours["components"]["schemas"]["AuditRecord"]["properties"]
    assert {f for f, s in record.items() if s.get("readOnly")} == SERVER_SET
    assert record["id"]["pattern"] == r"^AUD-\d{4}-\d{4}-\d{4}-\d{4}$"
    event_type = ours["components"]["schemas"]["AuditEventType"]["properties"]
    assert event_type["id"] == {
        "type": "string",
        "readOnly": True,
        "pattern": r"^AET-\d{4}-\d{4}$",
        "example": "AET-5699-2751",
    }
    assert ours["components"]["schemas"]["AuditRecordType"]["enum"] == ["Private", "Public"]
    assert record["documents"]["additionalProperties"] is True


def test_errors_are_declared_as_problems_where_they_apply(ours):
    for path, item in ours["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            if path.endswith("openapi.json"):
                continue
            assert {"400", "401", "403", "500"} <= statuses, f"{method} {path}"
            if "{id}" in path:
                assert "404" in statuses
            if "requestBody" in operation:
                assert {"413", "415"} <= statuses
            for status in statuses - {"200", "201"}:
                ref = operation["responses"][status]["$ref"]
                response = ours["components"]["responses"][ref.rsplit("/", 1)[1]]
                assert list(response["content"]) == ["application/problem+json"]
    assert "409" in ours["paths"]["/public/v1/audit/event-types/{id}"]["put"]["responses"]


def test_the_spec_in_use_is_served(api, make_app):
    served = api.get("/public/v1/audit/openapi.json")
    assert served.headers["Content-Type"].startswith("application/json")
    assert served.json == yaml.safe_load(DEFAULT_SPEC.read_text())
    other = make_app(spec=reference(PUBLISHED_SPEC), strict_conformance=False).test_client()
    published = other.get("/public/v1/audit/openapi.json").json
    assert published["info"]["version"] == "4.0.2162-ga003db3a"
    assert published["components"]["schemas"]["JsonNode"] == {
        "description": "Free-form JSON (was the generator's JsonNode)."
    }


def test_health_names_the_spec(api):
    health = api.get("/_mock/health").json
    assert health["spec"]["title"] == "SoftwareOne Marketplace Audit API"
    assert len(health["spec"]["sha256"]) == 64
    assert health["mode"] == "lenient"


# the audit part as published, and the platform's whole document (audit paths included)
PLATFORM_DOCUMENTS = pytest.mark.parametrize(
    "document", [PUBLISHED_SPEC, MARKETPLACE_SPEC], ids=["audit", "whole"]
)


@PLATFORM_DOCUMENTS
def test_published_spec_serves_the_same_behaviour(make_app, document):
    api = make_app(spec=reference(document), strict_conformance=False).test_client()
    sent = new_record(
        payload=1, actor={"type": "User"}, documents={"order": {"id": "ORD-1", "lines": [1, 2]}}
    )
    created = api.post(RECORDS, json=sent)
    assert created.status_code == 201
    record = created.json
    assert re.match(r"^AUD-\d{4}-\d{4}-\d{4}-\d{4}$", record["id"])
    assert "payload" not in record
    assert record["documents"] == sent["documents"]
    assert record["actor"]["id"] == "TKN-1234-5678"
    assert api.get(f"{RECORDS}/{record['id']}").json == record
    missing = api.get(f"{RECORDS}/AUD-0000-0000-0000-0000")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/json; charset=utf-8"  # as published
    assert api.get(f"{RECORDS}?eq(mistake,1)").json["errors"] == {
        "mistake": ["Unknown expression group."]
    }
    assert (
        api.get("/public/v1/audit/event-types?limit=1").json["$meta"]["pagination"]["total"] == 50
    )


@PLATFORM_DOCUMENTS
def test_published_spec_in_strict_mode_rejects_unknown_members(make_app, document):
    api = make_app(spec=reference(document), strict=True, strict_conformance=False)
    answer = api.test_client().post(RECORDS, json=new_record(payload=1))
    assert answer.status_code == 400
    assert answer.json["errors"] == {"payload": ["'payload' is not a member of this object."]}


def test_the_whole_marketplace_spec_loads_and_routes():
    spec = load_spec(reference(MARKETPLACE_SPEC))
    assert "JsonNode: free-form JSON" in spec.repairs
    assert "StringJsonOptional: bare optional value" in spec.repairs
    router = Router(spec.document)
    assert len({(op.method, op.template) for op in router.operations}) == 452
    match = router.match("GET", "/public/v1/accounts/ACC-1234-5678/users/USR-1234-5678")
    assert match.params == {"accountId": "ACC-1234-5678", "userId": "USR-1234-5678"}
    assert match.operation.kind == "get"
    assert router.match("POST", "/public/v1/accounts/accounts/ACC-1/enable").operation.kind == (
        "action"
    )


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("openapi: 3.0.3\ninfo: [", ".yaml", "node content (while parsing a flow node)"),
        ("- a\n- b\n", ".yaml", "the spec is not a mapping of OpenAPI fields"),
        ('{"swagger": "2.0"}', ".json", "only OpenAPI 3.x documents are supported"),
        ("openapi: 3.0.3\ninfo: {title: t, version: '1'}\n", ".yaml", "no 'info' or no 'paths'"),
        (
            "openapi: 3.0.3\ninfo: {title: t}\npaths: {}\n",
            ".yaml",
            'not a valid OpenAPI document at info: "version" is a required property',
        ),
        (
            "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get: {}\n",
            ".yaml",
            'not a valid OpenAPI document at paths > /a > get: "responses" is a required property',
        ),
    ],
)
def test_a_bad_spec_is_refused_with_the_file_and_the_problem(tmp_path, content, suffix, message):
    path = tmp_path / f"spec{suffix}"
    path.write_text(content)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}:")
    assert message in str(caught.value)


def test_a_missing_spec_is_named(tmp_path):
    with pytest.raises(SpecError, match=r"absent\.yaml: cannot read the spec"):
        load_spec(tmp_path / "absent.yaml")
