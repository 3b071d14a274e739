"""POST and GET of audit records: what the server stores and answers."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from support import RECORDS, new_record

RECORD_ID = re.compile(r"^AUD-\d{4}-\d{4}-\d{4}-\d{4}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_create_answers_201_with_the_stored_record_and_its_location(api):
    answer = api.post(RECORDS, json=new_record())
    assert answer.status_code == 201
    record = answer.json
    assert RECORD_ID.match(record["id"])
    assert answer.headers["Location"] == f"http://localhost{RECORDS}/{record['id']}"
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert api.get(f"{RECORDS}/{record['id']}").json == record
    assert record["event"] == "platform.commerce.order.created"
    assert record["object"] == new_record()["object"]
    assert record["details"] == "Order created"


def test_server_sets_timestamp_actor_type_and_viewers(api):
    before = datetime.now(UTC) - timedelta(seconds=1)
    record = api.post(RECORDS, json=new_record()).json
    assert TIMESTAMP.match(record["timestamp"])
    stamped = datetime.fromisoformat(record["timestamp"])
    assert before <= stamped <= datetime.now(UTC) + timedelta(seconds=1)
    assert record["actor"] == {
        "id": "TKN-1234-5678",
        "name": "API Token TKN-1234-5678",
        "account": {"id": "ACC-0000-0001", "name": "Mock Account", "accountType": "Vendor"},
    }
    assert record["type"] == "Public"
    assert record["viewers"] == [{"id": "ACC-0000-0001", "name": "Mock Account", "type": "Vendor"}]


def test_a_plain_token_gets_the_default_user_as_actor(api):
    record = api.post(RECORDS, json=new_record(), headers={"Authorization": "Bearer abc"}).json
    assert record["actor"]["id"] == "USR-0000-0001"


def test_ids_are_unique(api):
    ids = {api.post(RECORDS, json=new_record()).json["id"] for _ in range(50)}
    assert len(ids) == 50


def test_values_sent_for_read_only_fields_are_ignored(api, caplog):
    sent = new_record(
        id="AUD-0000-0000-0000-0001",
        timestamp="2020-01-01T00:00:00.000Z",
        actor={"id": "USR-9999-9999", "name": "Mallory"},
        type="Private",
        viewers=[{"id": "ACC-9999-9999"}],
    )
    with caplog.at_level(logging.INFO, logger="mockserver"):
        record = api.post(RECORDS, json=sent).json
    assert record["id"] != "AUD-0000-0000-0000-0001"
    assert record["timestamp"] != "2020-01-01T00:00:00.000Z"
    assert record["actor"]["id"] == "TKN-1234-5678"
    assert record["type"] == "Public"
    assert record["viewers"][0]["id"] == "ACC-0000-0001"
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("POST"))
    for name in ("id", "timestamp", "actor", "type", "viewers"):
        assert f"read-only member '{name}' ignored" in line


def test_unknown_members_are_ignored_not_stored_and_logged(api, caplog):
    sent = new_record(payload={"a": 1}, object={"id": "ORD-1", "colour": "red"})
    with caplog.at_level(logging.INFO, logger="mockserver"):
        answer = api.post(RECORDS, json=sent)
    assert answer.status_code == 201
    stored = api.get(f"{RECORDS}/{answer.json['id']}").json
    assert "payload" not in stored
    assert stored["object"] == {"id": "ORD-1"}
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("POST"))
    assert "unknown member 'payload' ignored" in line
    assert "unknown member 'object.colour' ignored" in line


def test_strict_mode_rejects_unknown_and_read_only_members(make_app):
    api = make_app(strict=True).test_client()
    answer = api.post(RECORDS, json=new_record(payload=1, id="AUD-0000-0000-0000-0001"))
    assert answer.status_code == 400
    errors = answer.json["errors"]
    assert errors["payload"] == ["'payload' is not a member of this object."]
    assert errors["id"] == ["The id field is read-only: the server sets it."]
    assert api.post(RECORDS, json=new_record()).status_code == 201


def test_documents_are_free_form_json(api):
    documents = {"order": {"id": "ORD-1", "lines": [{"qty": 2, "price": 1.5}], "tags": None}}
    record = api.post(RECORDS, json=new_record(documents=documents)).json
    assert record["documents"] == documents
    assert api.post(RECORDS, json=new_record(documents=None)).json["documents"] is None


def test_request_block_is_stored(api):
    request = {
        "api": {
            "ip": "2001:db8::1",
            "geolocation": {"countryCode": "NL", "countryName": "Netherlands", "region": "Utrecht"},
            "userAgent": "swo-marketplace-client/1.0",
        },
        "log": {"requestId": "r1", "operationId": "o1"},
    }
    assert api.post(RECORDS, json=new_record(request=request)).json["request"] == request


@pytest.mark.parametrize(
    "media_type",
    ["application/json", "application/json; charset=utf-8", "text/json", "application/merge+json"],
)
def test_json_media_types_are_accepted(api, media_type):
    body = json.dumps(new_record()).encode()
    assert api.post(RECORDS, data=body, content_type=media_type).status_code == 201


@pytest.mark.parametrize(
    "media_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x", ""]
)
def test_other_media_types_get_415(api, media_type):
    body = json.dumps(new_record()).encode()
    answer = api.post(RECORDS, data=body, content_type=media_type or None)
    assert answer.status_code == 415
    assert answer.json["title"] == "Unsupported Media Type"
    assert "application/json, text/json, application/*+json" in answer.json["detail"]
    assert answer.headers["Content-Type"] == "application/problem+json; charset=utf-8"


def test_a_charset_other_than_utf8_gets_415(api):
    body = json.dumps(new_record()).encode("utf-16")
    answer = api.post(RECORDS, data=body, content_type="application/json; charset=utf-16")
    assert answer.status_code == 415
    assert "utf-16" in answer.json["detail"]


def test_utf8_text_round_trips(api):
    record = api.post(RECORDS, json=new_record(details="créé ✓ 注文")).json
    raw = api.get(f"{RECORDS}/{record['id']}").get_data()
    assert "créé ✓ 注文".encode() in raw  # sent as UTF-8, not \\u escapes


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"object": {"id": "ORD-1"}}, {"event": ["The event field is required."]}),
        (
            {"event": "platform.commerce.order.created"},
            {"object": ["The object field is required."]},
        ),
        (
            {"event": "platform.commerce.order.created", "object": {}},
            {"object.id": ["The id field is required."]},
        ),
        (
            new_record(event=5),
            {"event": ["The value must be a string, not an integer."]},
        ),
        (
            new_record(event="order created"),
            {
                "event": [
                    "The value 'order created' does not match the pattern "
                    "^(platform|extension)(\\.[A-Za-z0-9_-]+){3}$."
                ]
            },
        ),
        (
            new_record(object={"id": "ORD-1", "name": 3}),
            {"object.name": ["The value must be a string, not an integer."]},
        ),
        (
            new_record(documents=[1, 2]),
            {"documents": ["The value must be an object, not an array."]},
        ),
        (
            new_record(viewers="x", request={"api": {"ip": 1}}),
            {
                "request.api.ip": ["The value must be a string, not an integer."],
            },
        ),
        ([1, 2], {"$": ["The value must be an object, not an array."]}),
    ],
)
def test_invalid_bodies_get_400_with_errors_by_json_path(api, body, errors):
    answer = api.post(RECORDS, json=body)
    assert answer.status_code == 400
    problem = answer.json
    assert problem["title"] == "Bad Request"
    assert problem["detail"] == "One or more validation errors occurred."
    assert problem["errors"] == errors


def test_get_an_unknown_record_is_a_404_problem(api):
    answer = api.get(f"{RECORDS}/AUD-0000-0000-0000-0000")
    assert answer.status_code == 404
    assert answer.json["detail"] == "Audit record AUD-0000-0000-0000-0000 not found."
    assert answer.json["type"] == "https://tools.ietf.org/html/rfc9110#section-15.5.5"


def test_get_with_select_leaves_fields_out(api):
    record = api.post(RECORDS, json=new_record()).json
    url = f"{RECORDS}/{record['id']}"
    assert "object" not in api.get(f"{url}?select=-object").json
    trimmed = api.get(f"{url}?select=-object%2C%2Bactor.account%2Cdetails").json
    assert "object" not in trimmed
    assert trimmed["actor"]["account"] == record["actor"]["account"]
    assert trimmed["details"] == record["details"]
    nested = api.get(f"{url}?select=-actor.account").json
    assert nested["actor"] == {"id": "TKN-1234-5678", "name": "API Token TKN-1234-5678"}
    assert api.get(url).json == record  # the stored record is untouched


def test_routes_ignore_case_and_a_trailing_slash_as_aspnet_does(api):
    record = api.post("/Public/V1/Audit/Records/", json=new_record()).json
    assert api.get(f"/public/v1/AUDIT/records/{record['id']}/").json == record
