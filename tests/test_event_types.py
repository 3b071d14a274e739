"""Audit event types: the built-in catalogue, reads, and PUT."""

from __future__ import annotations

import re

import pytest
from support import EVENT_TYPES

from mockserver.resources.event_types import catalogue

EVENT = re.compile(r"^(platform|extension)\.[a-z0-9-]+\.[a-z0-9-]+\.[a-z0-9-]+$")
ORDER_CREATED = "AET-6491-7370"  # derived from the key: the same in every run


def all_types(api):
    return api.get(f"{EVENT_TYPES}?limit=100").json["data"]


def test_catalogue_is_realistic(api):
    types = all_types(api)
    assert len(types) == len(catalogue().event_types) == 50
    assert len({t["id"] for t in types}) == len({t["key"] for t in types}) == 50
    for event_type in types:
        assert set(event_type) == {"id", "key", "name", "description"}
        assert re.match(r"^AET-\d{4}-\d{4}$", event_type["id"])
        assert EVENT.match(event_type["key"]), event_type["key"]
        assert catalogue().kind_of(event_type["key"]) is not None
    modules = {t["key"].split(".")[1] for t in types}
    assert {"commerce", "accounts", "catalog", "billing"} <= modules


def test_ids_are_stable(api, make_app):
    other = make_app().test_client()
    assert all_types(api) == all_types(other)
    assert (
        api.get(f"{EVENT_TYPES}/{ORDER_CREATED}").json["key"] == "platform.commerce.order.created"
    )


def test_list_with_rql_and_paging(api):
    answer = api.get(
        f"{EVENT_TYPES}?limit=5&offset=0&like(key,'platform.commerce.order.*')&order=-key"
    )
    page = answer.json
    assert page["$meta"]["pagination"] == {"offset": 0, "limit": 5, "total": 7}
    keys = [t["key"] for t in page["data"]]
    assert keys == sorted(keys, reverse=True)
    assert keys[0] == "platform.commerce.order.validated"
    by_key = api.get(f"{EVENT_TYPES}?key=platform.billing.invoice.issued").json["data"]
    assert [t["name"] for t in by_key] == ["Invoice issued"]


def test_get_with_select_and_404(api):
    assert api.get(f"{EVENT_TYPES}/{ORDER_CREATED}?select=-description").json == {
        "id": ORDER_CREATED,
        "key": "platform.commerce.order.created",
        "name": "Order created",
    }
    answer = api.get(f"{EVENT_TYPES}/AET-0000-0000")
    assert answer.status_code == 404
    assert answer.json["detail"] == "Audit event type AET-0000-0000 not found."


def test_put_updates_the_members_sent_and_keeps_the_rest(api):
    url = f"{EVENT_TYPES}/{ORDER_CREATED}"
    answer = api.put(url, json={"name": "Order placed", "description": "d"})
    assert answer.status_code == 200
    expected = {
        "id": ORDER_CREATED,
        "key": "platform.commerce.order.created",
        "name": "Order placed",
        "description": "d",
    }
    assert answer.json == expected
    assert api.get(url).json == expected
    assert api.put(url, json={"name": "Again"}).json["description"] == "d"


def test_put_ignores_the_id_in_the_body(api):
    answer = api.put(f"{EVENT_TYPES}/{ORDER_CREATED}", json={"id": "AET-1111-1111", "name": "x"})
    assert answer.json["id"] == ORDER_CREATED
    assert api.get(f"{EVENT_TYPES}/AET-1111-1111").status_code == 404


def test_put_can_change_the_key_when_it_stays_unique(api):
    url = f"{EVENT_TYPES}/{ORDER_CREATED}"
    assert api.put(url, json={"key": "platform.commerce.order.placed"}).status_code == 200
    assert api.get(f"{EVENT_TYPES}?key=platform.commerce.order.placed").json["data"][0]["id"] == (
        ORDER_CREATED
    )
    assert api.put(url, json={"key": "platform.commerce.order.placed"}).status_code == 200


def test_put_with_another_types_key_is_409(api):
    answer = api.put(
        f"{EVENT_TYPES}/{ORDER_CREATED}", json={"key": "platform.commerce.order.updated"}
    )
    assert answer.status_code == 409
    assert answer.json["title"] == "Conflict"
    assert answer.json["detail"] == (
        "Another audit event type (AET-9407-4548) already has the key "
        "'platform.commerce.order.updated'."
    )


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"name": 5}, {"name": ["The value must be a string, not an integer."]}),
        ({"key": ""}, {"key": ["The value must be at least 1 characters long."]}),
        ("[]", {"$": ["The value must be an object, not an array."]}),
    ],
)
def test_put_validates(api, body, errors):
    answer = (
        api.put(f"{EVENT_TYPES}/{ORDER_CREATED}", data=body, content_type="application/json")
        if isinstance(body, str)
        else api.put(f"{EVENT_TYPES}/{ORDER_CREATED}", json=body)
    )
    assert answer.status_code == 400
    assert answer.json["errors"] == errors


def test_put_on_an_unknown_type_is_404(api):
    assert api.put(f"{EVENT_TYPES}/AET-0000-0000", json={"name": "x"}).status_code == 404
