"""Collection reads through the API: RQL filters, order, select, paging and query decoding.

The query strings are written as the official client sends them (client-wire-contract.md §4):
`order`/`select` with literal `,` and `+`, RQL values percent-encoded, `"` as `%22`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from support import EVENT_TYPES, RECORDS, TOKEN, new_record

import mockserver.resources.records
from mockserver.problems import Problem
from mockserver.query.params import Page, Selection, decode, page
from mockserver.query.rql import MAX_NESTING
from mockserver.resources.event_types import catalogue

TRACE_ID = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
OTHER_TOKEN = "idt:TKN-2222-2222:secret"
OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}
TOKENS = f"""
tokens:
  - token: {TOKEN}
    actor: {{id: USR-1111-1111, name: Alice}}
    account: {{id: ACC-1111-1111, name: Alpha, type: Vendor}}
  - token: {OTHER_TOKEN}
    actor: {{id: USR-2222-2222, name: Bob}}
    account: {{id: ACC-2222-2222, name: Beta, type: Client}}
"""
CONTRACT_DETAILS = "a&b c+d/e,f(g)h'i#%"
CONTRACT_EQ = "eq(details,%22a%26b%20c%2Bd%2Fe%2Cf%28g%29h%27i%23%25%22)"

# ---------------------------------------------------------------- helpers


def listing(api: Any, path: str, query: str) -> dict[str, Any]:
    """GET a collection; it must answer 200 with exactly the list envelope."""
    answer = api.get(f"{path}?{query}" if query else path)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type == "application/json; charset=utf-8"
    body: dict[str, Any] = answer.json
    assert set(body) == {"$meta", "data"}
    assert set(body["$meta"]) in ({"pagination"}, {"pagination", "omitted"})
    assert set(body["$meta"]["pagination"]) == {"offset", "limit", "total"}
    assert isinstance(body["data"], list)
    return body


def bad_request(api: Any, path: str, query: str) -> dict[str, list[str]]:
    """GET that must answer the platform's 400 problem; its `errors`."""
    answer = api.get(f"{path}?{query}")
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.content_type == "application/problem+json; charset=utf-8"
    body = dict(answer.json)
    assert TRACE_ID.match(body.pop("traceId"))
    errors: dict[str, list[str]] = body.pop("errors")
    assert body == {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "Bad Request",
        "status": 400,
        "detail": "One or more validation errors occurred.",
    }
    return errors


def fetch_all(api: Any, path: str, query: str = "") -> list[dict[str, Any]]:
    """Every item, page by page (100 at a time), in the order the server gives."""
    items: list[dict[str, Any]] = []
    while True:
        body = listing(api, path, f"limit=100&offset={len(items)}&{query}")
        items.extend(body["data"])
        assert body["data"] or len(items) == body["$meta"]["pagination"]["total"]
        if len(items) >= body["$meta"]["pagination"]["total"]:
            assert len(items) == body["$meta"]["pagination"]["total"]
            return items


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Records:
    """Five records made through the API, with known timestamps, by two accounts."""

    def __init__(self, api: Any, names: dict[str, str]) -> None:
        self.api = api
        self.ids = names
        self.names = {v: k for k, v in names.items()}

    def get(self, query: str) -> dict[str, Any]:
        return listing(self.api, RECORDS, query)

    def found(self, query: str) -> list[str]:
        """The names of the records a query returns, in the server's order."""
        return [self.names[item["id"]] for item in self.get(query)["data"]]

    def errors(self, query: str) -> dict[str, list[str]]:
        return bad_request(self.api, RECORDS, query)


@pytest.fixture
def two_accounts(make_app: Callable[..., Flask], tmp_path: Path) -> Any:
    """An app whose tokens belong to two accounts (ACC-1111-1111 Vendor, ACC-2222-2222 Client)."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(TOKENS)
    return make_app(tokens=tokens).test_client()


def create(
    api: Any,
    monkeypatch: pytest.MonkeyPatch,
    timestamp: str,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> str:
    """POST a record whose server-set timestamp is `timestamp` (a field given as None is left
    out of the body); its id. The server's clock is pinned so that date filters and ordering
    can be checked against exact instants."""
    monkeypatch.setattr(mockserver.resources.records, "now", lambda: timestamp)
    body = {k: v for k, v in new_record(**fields).items() if v is not None}
    kwargs = {"headers": headers} if headers else {}
    answer = api.post(RECORDS, json=body, **kwargs)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.json["timestamp"] == timestamp
    record_id: str = answer.json["id"]
    return record_id


@pytest.fixture
def records(two_accounts: Any, monkeypatch: pytest.MonkeyPatch) -> Records:
    """Five records, r1..r5 in insertion order (`-` means the member is absent):

    r1  2025-01-01T00:00:00.000Z  ACC-1111  platform.commerce.order.created
        object ORD-0001-0001-0001 "Order 1", details "Order ORD-0001-0001-0001 created",
        summary alpha, documents.order {Active, revision 3, paid true, amount 1.5}
    r2  2025-01-15T12:30:15.123Z  ACC-2222  platform.commerce.order.updated
        object ORD-0002-0002-0002 "Order 2", details "10", summary -,
        documents.order {Draft, revision 10, paid false}
    r3  2025-02-01T12:30:15.123Z  ACC-1111  platform.accounts.user.invited
        object USR-0003-0003 name null, details -, summary gamma,
        documents {user: {id USR-0003-0003}, account: {id ACC-1111-1111}}
    r4  2025-03-01T00:00:00.000Z  ACC-2222  extension.billing.invoice.created
        object INV-0004-0004-0004 name -, details "", summary -, documents -
    r5  2025-03-01T00:00:00.001Z  ACC-1111  platform.commerce.order.created
        object ORD-0005-0005-0005 "order 5", details a&b c+d/e,f(g)h'i#%, summary -,
        documents.order {id X, Active}

    ACC-1111-1111 is a Vendor (actor USR-1111-1111 Alice), ACC-2222-2222 a Client (actor
    USR-2222-2222 Bob); a record's only viewer is its actor's account.
    """
    api = two_accounts
    names = {
        "r1": create(
            api,
            monkeypatch,
            "2025-01-01T00:00:00.000Z",
            object={"id": "ORD-0001-0001-0001", "name": "Order 1", "objectType": "Order"},
            details="Order ORD-0001-0001-0001 created",
            summary="alpha",
            documents={
                "order": {
                    "id": "ORD-0001-0001-0001",
                    "status": "Active",
                    "revision": 3,
                    "paid": True,
                    "amount": 1.5,
                }
            },
        ),
        "r2": create(
            api,
            monkeypatch,
            "2025-01-15T12:30:15.123Z",
            OTHER,
            event="platform.commerce.order.updated",
            object={"id": "ORD-0002-0002-0002", "name": "Order 2", "objectType": "Order"},
            details="10",
            documents={
                "order": {
                    "id": "ORD-0002-0002-0002",
                    "status": "Draft",
                    "revision": 10,
                    "paid": False,
                }
            },
        ),
        "r3": create(
            api,
            monkeypatch,
            "2025-02-01T12:30:15.123Z",
            event="platform.accounts.user.invited",
            object={"id": "USR-0003-0003", "name": None, "objectType": "User"},  # JSON null
            details=None,
            summary="gamma",
            documents={"user": {"id": "USR-0003-0003"}, "account": {"id": "ACC-1111-1111"}},
        ),
        "r4": create(
            api,
            monkeypatch,
            "2025-03-01T00:00:00.000Z",
            OTHER,
            event="extension.billing.invoice.created",
            object={"id": "INV-0004-0004-0004"},
            details="",
        ),
        "r5": create(
            api,
            monkeypatch,
            "2025-03-01T00:00:00.001Z",
            object={"id": "ORD-0005-0005-0005", "name": "order 5", "objectType": "Order"},
            details=CONTRACT_DETAILS,
            documents={"order": {"id": "X", "status": "Active"}},
        ),
    }
    return Records(api, names)


ALL = ["r1", "r2", "r3", "r4", "r5"]

# ---------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ALL),
        # eq / ne, quoted, bare and shortcut
        ("eq(event,'platform.commerce.order.created')", ["r1", "r5"]),
        ("eq(event,platform.commerce.order.created)", ["r1", "r5"]),
        ("eq(event,%22platform.commerce.order.created%22)", ["r1", "r5"]),
        ("event=platform.commerce.order.created", ["r1", "r5"]),
        ("event='platform.commerce.order.created'", ["r1", "r5"]),
        ("ne(event,'platform.commerce.order.created')", ["r2", "r3", "r4"]),
        ("ne(summary,'alpha')", ["r2", "r3", "r4", "r5"]),  # missing is "not equal"
        # gt ge lt le on strings
        ("gt(event,'platform.commerce.order.created')", ["r2"]),
        ("ge(event,'platform.commerce.order.created')", ["r1", "r2", "r5"]),
        ("lt(event,'platform.commerce')", ["r3", "r4"]),
        ("le(event,'platform.accounts.user.invited')", ["r3", "r4"]),
        # like / ilike (case-sensitive / not), percent-encoded pattern
        ("like(event,'platform.commerce.*')", ["r1", "r2", "r5"]),
        ("like(event,'*.created')", ["r1", "r4", "r5"]),
        ("like(object.name,'Order*')", ["r1", "r2"]),
        ("ilike(object.name,'order*')", ["r1", "r2", "r5"]),
        ("ilike(details,'*order%20ORD-0001*')", ["r1"]),
        ("like(details,'*order%20ORD-0001*')", []),
        # in / out, with a group and with bare values
        (
            "in(event,('platform.commerce.order.updated','platform.accounts.user.invited'))",
            ["r2", "r3"],
        ),
        ("in(object.id,ORD-0001-0001-0001,INV-0004-0004-0004)", ["r1", "r4"]),
        (
            "out(event,('platform.commerce.order.updated','platform.accounts.user.invited'))",
            ["r1", "r4", "r5"],
        ),
        ("out(event,('platform.commerce.order.created'))", ["r2", "r3", "r4"]),
        # and / or / not
        (
            "and(eq(event,'platform.commerce.order.created'),eq(object.id,'ORD-0005-0005-0005'))",
            ["r5"],
        ),
        ("or(eq(object.id,'ORD-0002-0002-0002'),eq(summary,'gamma'))", ["r2", "r3"]),
        ("not(like(event,'platform.*'))", ["r4"]),
        ("not(or(eq(summary,'alpha'),eq(summary,'gamma')))", ["r2", "r4", "r5"]),
        # null() and empty(), also in the shortcut form
        ("eq(details,null())", ["r3"]),
        ("details=null()", ["r3"]),
        ("ne(details,null())", ["r1", "r2", "r4", "r5"]),
        ("eq(details,empty())", ["r3", "r4"]),
        ("details=empty()", ["r3", "r4"]),
        ("ne(details,empty())", ["r1", "r2", "r5"]),
        ("eq(object.name,null())", ["r3", "r4"]),  # JSON null and a missing member
        ("and(eq(details,null()),ne(object.name,empty()))", []),
        ("eq(documents,null())", ["r4"]),
        # dotted paths
        ("eq(object.id,'ORD-0002-0002-0002')", ["r2"]),
        ("object.id=ORD-0002-0002-0002", ["r2"]),
        ("eq(actor.account.id,'ACC-2222-2222')", ["r2", "r4"]),
        ("actor.account.id=ACC-1111-1111", ["r1", "r3", "r5"]),
        ("eq(actor.id,'USR-2222-2222')", ["r2", "r4"]),
        ("eq(object.objectType,'Order')", ["r1", "r2", "r5"]),
        # lists: a path through an array matches when any element does
        ("eq(viewers.id,'ACC-2222-2222')", ["r2", "r4"]),
        ("viewers.type=Client", ["r2", "r4"]),
        ("ne(viewers.id,'ACC-2222-2222')", ["r1", "r3", "r5"]),
        ("any(viewers,and(eq(id,'ACC-1111-1111'),eq(name,'Alpha')))", ["r1", "r3", "r5"]),
        ("all(viewers,eq(type,'Vendor'))", ["r1", "r3", "r5"]),
        # documents: a map of free-form JSON documents
        ("any(documents,eq(id,'X'))", ["r5"]),
        ("any(documents,eq(status,'Active'))", ["r1", "r5"]),
        ("any(documents,eq(id,'ACC-1111-1111'))", ["r3"]),
        ("all(documents,eq(status,'Active'))", ["r1", "r5"]),
        ("eq(documents.order.status,'Draft')", ["r2"]),
        ("eq(documents.user.id,'USR-0003-0003')", ["r3"]),
        ("eq(documents.nothing.here,1)", []),
        # numbers and booleans are typed by the field
        ("eq(documents.order.revision,3)", ["r1"]),
        ("gt(documents.order.revision,9)", ["r2"]),  # 10 > 9 as numbers
        ("lt(documents.order.revision,10)", ["r1"]),
        ("ge(documents.order.revision,3)", ["r1", "r2"]),
        ("eq(documents.order.amount,1.50)", ["r1"]),
        ("eq(documents.order.paid,true)", ["r1"]),
        ("eq(documents.order.paid,false)", ["r2"]),
        ("ne(documents.order.paid,true)", ["r2", "r3", "r4", "r5"]),
        ("eq(details,10)", ["r2"]),  # a string field compares as a string
        ("gt(details,9)", ["r1", "r5"]),  # "10" < "9" as strings
    ],
)
def test_filters(records: Records, query: str, expected: list[str]) -> None:
    body = records.get(query)
    assert [records.names[i["id"]] for i in body["data"]] == expected
    assert body["$meta"] == {"pagination": {"offset": 0, "limit": 10, "total": len(expected)}}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # date only (midnight UTC)
        ("ge(timestamp,'2025-01-15')", ["r2", "r3", "r4", "r5"]),
        ("eq(timestamp,'2025-01-01')", ["r1"]),
        ("lt(timestamp,2025-02-01)", ["r1", "r2"]),
        # naive date-time with microseconds, as datetime(2025,2,1,12,30,15,123000) is sent
        ("eq(timestamp,'2025-02-01T12%3A30%3A15.123000')", ["r3"]),
        ("lt(timestamp,'2025-02-01T12%3A30%3A15.123000')", ["r1", "r2"]),
        # +00:00 offset, as an aware datetime is sent (and with the `+` left literal)
        ("gt(timestamp,'2025-01-01T00%3A00%3A00%2B00%3A00')", ["r2", "r3", "r4", "r5"]),
        ("ge(timestamp,'2025-01-01T00:00:00+00:00')", ALL),
        ("gt(timestamp,2025-03-01T01:00:00+01:00)", ["r5"]),  # the same instant as r4
        # Z
        ("gt(timestamp,'2025-01-01T00%3A00%3A00Z')", ["r2", "r3", "r4", "r5"]),
        ("eq(timestamp,'2025-03-01T00:00:00.001Z')", ["r5"]),
        ("le(timestamp,'2025-03-01T00:00:00Z')", ["r1", "r2", "r3", "r4"]),
        # the contract's range
        (
            "and(ge(timestamp,'2025-01-01'),lt(timestamp,'2025-02-01T12%3A30%3A15.123000'))",
            ["r1", "r2"],
        ),
    ],
)
def test_dates(records: Records, query: str, expected: list[str]) -> None:
    assert records.found(query) == expected


def test_the_contracts_hardest_value(records: Records) -> None:
    assert records.found(CONTRACT_EQ) == ["r5"]
    assert records.found("details=a%26b%20c%2Bd%2Fe%2Cf%28g%29h%27i%23%25") == ["r5"]
    # single quotes may hold , ( ) & " and double quotes may hold '
    assert records.found("like(details,'*%2Cf%28g%29h*')") == ["r5"]
    assert records.found("like(details,'*,f(g)h*')") == ["r5"]
    assert records.found("like(details,%22*h'i%23%25%22)") == ["r5"]
    assert records.found("ilike(details,'A%26B*')") == ["r5"]


def test_a_literal_plus_in_an_rql_part_stays_a_plus(records: Records) -> None:
    assert records.found("like(details,'*c+d*')") == ["r5"]
    assert records.found("like(details,'*c%2Bd*')") == ["r5"]
    assert records.found("like(details,'*c d*')") == []


def test_an_operator_may_be_percent_encoded(records: Records) -> None:
    assert records.found("eq%28object.id%2C%27ORD-0002-0002-0002%27%29") == ["r2"]


def test_several_rql_parts_are_anded(records: Records) -> None:
    assert records.found("like(event,'platform.*')&eq(actor.account.id,'ACC-1111-1111')") == [
        "r1",
        "r3",
        "r5",
    ]
    assert records.found(
        "like(event,'platform.*')&eq(actor.account.id,'ACC-1111-1111')"
        "&not(eq(object.id,'ORD-0005-0005-0005'))"
    ) == ["r1", "r3"]
    assert records.found("eq(summary,'alpha')&eq(summary,'gamma')") == []


def test_rql_and_shortcuts_mix(records: Records) -> None:
    assert records.found("like(event,'platform.*')&actor.account.id=ACC-2222-2222") == ["r2"]
    assert records.found(
        "limit=10&offset=0&event=platform.commerce.order.created&eq(viewers.id,'ACC-1111-1111')"
        "&documents.order.status=Active"
    ) == ["r1", "r5"]


@pytest.mark.parametrize("render", ["render()", "render%28%29=", "render%28%29"])
def test_render_is_accepted(records: Records, render: str) -> None:
    assert records.found(f"eq(event,'platform.commerce.order.created')&{render}") == [
        "r1",
        "r5",
    ]
    assert records.found(f"limit=2&offset=0&{render}") == ["r1", "r2"]


def test_the_clients_full_query_layout(records: Records) -> None:
    body = records.get(
        "limit=2&offset=1&order=-timestamp,id&select=id,-actor,+object"
        "&like(event,'platform.commerce.*')&render()"
    )
    assert body["$meta"] == {
        "pagination": {"offset": 1, "limit": 2, "total": 3},
        "omitted": ["actor"],
    }
    assert [records.names[i["id"]] for i in body["data"]] == ["r2", "r1"]
    assert all("actor" not in i and "object" in i for i in body["data"])


# ---------------------------------------------------------------- malformed filters


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        (
            "eq(details,'abc)",
            {"eq(details,'abc)": ["Unterminated string starting at position 12."]},
        ),
        (
            "eq(details,%22abc)",
            {'eq(details,"abc)': ["Unterminated string starting at position 12."]},
        ),
        ("eq(event,'a'", {"eq(event,'a'": ["Missing ')' at the end of 'eq(event,'a''."]}),
        (
            "and(eq(event,'a'),eq(summary,'b')",
            {
                "and(eq(event,'a'),eq(summary,'b')": [
                    "Missing ')' at the end of 'and(eq(event,'a'),eq(summary,'b')'."
                ]
            },
        ),
        ("eq(event,'a'))", {"eq(event,'a'))": ["Unexpected ')' at position 14."]}),
        ("foo(event,'a')", {"foo(event,'a')": ["Unknown operator 'foo'."]}),
        (
            "and(eq(event,'a'),regex(event,'a.*'))",
            {"regex(event,'a.*')": ["Unknown operator 'regex'."]},
        ),
        ("eq(event)", {"eq(event)": ["'eq' takes 2 arguments, got 1."]}),
        (
            "or(eq(event,'a'),is(details,%22it's%22))",
            {'is(details,"it\'s")': ["Unknown operator 'is'."]},
        ),
        ("eq(event,'a','b')", {"eq(event,'a','b')": ["'eq' takes 2 arguments, got 3."]}),
        (
            "not(eq(event,'a'),eq(event,'b'))",
            {"not(eq(event,'a'),eq(event,'b'))": ["'not' takes 1 argument, got 2."]},
        ),
        ("in(event)", {"in(event)": ["'in' needs a field and a list of values."]}),
        ("and()", {"and()": ["'and' needs at least one expression."]}),
        ("any(documents,'x')", {"any(documents,'x')": ["'any' expects expressions as arguments."]}),
        ("eq('event','a')", {"eq('event','a')": ["'eq' needs a field name first."]}),
        (
            "mistake",
            {"mistake": ["An RQL expression must be an operator call such as eq(field,value)."]},
        ),
        # fields the item schema does not have
        ("eq(mistake,1)", {"mistake": ["Unknown expression group."]}),
        ("mistake=1", {"mistake": ["Unknown expression group."]}),
        ("like(object.nope,'x*')", {"object.nope": ["Unknown expression group."]}),
        ("eq(actor.account.nope,1)", {"actor.account.nope": ["Unknown expression group."]}),
        ("in(viewers.nope,(1,2))", {"viewers.nope": ["Unknown expression group."]}),
        ("any(nope,eq(id,1))", {"nope": ["Unknown expression group."]}),
        (
            "and(eq(event,'a'),not(eq(objectId,'b')))",
            {"objectId": ["Unknown expression group."]},
        ),
        ("eq(event,'a')&nope=1", {"nope": ["Unknown expression group."]}),
    ],
)
def test_malformed_rql_is_a_400_naming_the_bad_part(
    records: Records, query: str, errors: dict[str, list[str]]
) -> None:
    assert records.errors(query) == errors


def test_nesting_up_to_32_levels(records: Records) -> None:
    inner = "eq(object.id,'ORD-0002-0002-0002')"
    query = "and(" * (MAX_NESTING - 1) + inner + ")" * (MAX_NESTING - 1)
    assert records.found(query) == ["r2"]


def test_nesting_deeper_than_32_levels_is_a_400(records: Records) -> None:
    inner = "eq(object.id,'ORD-0002-0002-0002')"
    query = "and(" * MAX_NESTING + inner + ")" * MAX_NESTING
    assert records.errors(query) == {query: ["Expressions are nested deeper than 32 levels."]}
    deep = "not(" * 5000 + inner + ")" * 5000
    assert records.errors(deep) == {deep: ["Expressions are nested deeper than 32 levels."]}


def test_documents_paths_are_free_form(records: Records) -> None:
    assert records.found("eq(documents.anything.at.all,1)") == []
    assert records.found("documents.order.id=X") == ["r5"]
    assert records.found("order=documents.whatever,-documents.order.revision") == [
        "r2",
        "r1",
        "r3",
        "r4",
        "r5",
    ]


# ---------------------------------------------------------------- order


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("timestamp", ["r1", "r2", "r3", "r4", "r5"]),
        ("+timestamp", ["r1", "r2", "r3", "r4", "r5"]),
        ("-timestamp", ["r5", "r4", "r3", "r2", "r1"]),
        ("event,-timestamp", ["r4", "r3", "r5", "r1", "r2"]),
        ("+event,+timestamp", ["r4", "r3", "r1", "r5", "r2"]),
        ("-event,timestamp", ["r2", "r1", "r5", "r3", "r4"]),
        ("actor.account.id,-object.id", ["r3", "r5", "r1", "r2", "r4"]),
        ("viewers.type,timestamp", ["r2", "r4", "r1", "r3", "r5"]),
        # missing values first when ascending, last when descending (JSON null counts as missing)
        ("summary", ["r2", "r4", "r5", "r1", "r3"]),
        ("-summary", ["r3", "r1", "r2", "r4", "r5"]),
        ("details,timestamp", ["r3", "r4", "r2", "r1", "r5"]),
        ("object.name", ["r3", "r4", "r1", "r2", "r5"]),
        ("-object.name,-timestamp", ["r5", "r2", "r1", "r4", "r3"]),
        # numbers sort as numbers (3 before 10)
        ("documents.order.revision", ["r3", "r4", "r5", "r1", "r2"]),
        ("-documents.order.revision", ["r2", "r1", "r3", "r4", "r5"]),
    ],
)
def test_order(records: Records, order: str, expected: list[str]) -> None:
    assert records.found(f"order={order}") == expected


def test_order_percent_encoded_as_get_sends_it(records: Records) -> None:
    assert records.found("order=%2Bevent%2C-timestamp") == ["r4", "r3", "r5", "r1", "r2"]


def test_order_with_filter_and_paging(records: Records) -> None:
    body = records.get("order=-timestamp&limit=2&offset=1&like(event,'platform.*')")
    assert [records.names[i["id"]] for i in body["data"]] == ["r3", "r2"]
    assert body["$meta"]["pagination"] == {"offset": 1, "limit": 2, "total": 4}


@pytest.mark.parametrize(
    ("order", "field"),
    [
        ("nope", "nope"),
        ("-nope", "nope"),
        ("timestamp,+object.nope", "object.nope"),
        ("actor.type", "actor.type"),
    ],
)
def test_order_on_an_unknown_field_is_a_400(records: Records, order: str, field: str) -> None:
    assert records.errors(f"order={order}") == {field: ["Unknown expression group."]}


# ---------------------------------------------------------------- select


def test_select_minus_leaves_fields_out_and_says_so(records: Records) -> None:
    full = {i["id"]: i for i in records.get("")["data"]}
    body = records.get("select=-details,-documents")
    assert body["$meta"] == {
        "pagination": {"offset": 0, "limit": 10, "total": 5},
        "omitted": ["details", "documents"],
    }
    for item in body["data"]:
        expected = {k: v for k, v in full[item["id"]].items() if k not in ("details", "documents")}
        assert item == expected
    assert records.get("")["data"] == list(full.values())  # the stored records are untouched


def test_select_minus_a_nested_field(records: Records) -> None:
    body = records.get("select=-actor.account,-object.name&eq(object.id,'ORD-0002-0002-0002')")
    assert body["$meta"]["omitted"] == ["actor.account", "object.name"]
    (item,) = body["data"]
    assert item["actor"] == {"id": "USR-2222-2222", "name": "Bob"}
    assert item["object"] == {"id": "ORD-0002-0002-0002", "objectType": "Order"}


def test_select_minus_a_field_of_list_elements(records: Records) -> None:
    body = records.get("select=-viewers.name&eq(object.id,'ORD-0002-0002-0002')")
    assert body["$meta"]["omitted"] == ["viewers.name"]
    assert body["data"][0]["viewers"] == [{"id": "ACC-2222-2222", "type": "Client"}]


def test_select_minus_a_required_looking_field(records: Records) -> None:
    body = records.get("select=-object,-event&limit=1")
    assert body["$meta"]["omitted"] == ["object", "event"]
    assert "object" not in body["data"][0]
    assert "event" not in body["data"][0]


@pytest.mark.parametrize(
    "select", ["+actor.account", "actor.account", "+actor.account,details", "%2Bactor.account"]
)
def test_select_plus_changes_nothing_all_fields_are_in_the_default_view(
    records: Records, select: str
) -> None:
    assert records.get(f"select={select}") == records.get("")


def test_select_mixed_as_the_client_sends_it(records: Records) -> None:
    full = records.get("eq(summary,'alpha')")["data"][0]
    body = records.get("select=-object,+actor.account,details&eq(summary,'alpha')")
    assert body["$meta"]["omitted"] == ["object"]
    assert body["data"] == [{k: v for k, v in full.items() if k != "object"}]


@pytest.mark.parametrize(
    ("query", "select"),
    [
        ("select=+actor.account", "+actor.account"),
        ("select=-object,+actor.account,details", "-object,+actor.account,details"),
        ("order=-timestamp,+id&select=%2Ba", "+a"),
        ("select=a+b", "a+b"),
    ],
)
def test_decoding_keeps_a_literal_plus(query: str, select: str) -> None:
    decoded = decode(query)
    assert decoded.params["select"] == select
    assert decoded.filters == []
    if "order" in decoded.params:
        assert decoded.params["order"] == "-timestamp,+id"


def test_selection_parsing() -> None:
    selection = Selection.parse("-a, -b.c,+d,e,-,+")
    assert selection.omitted == ["a", "b.c"]
    assert selection.apply({"a": 1, "b": {"c": 2, "x": 3}, "d": 4}) == {"b": {"x": 3}, "d": 4}
    assert Selection.parse("").omitted == []
    assert Selection.parse(None).omitted == []


def test_decoding_splits_parameters_filters_and_render() -> None:
    decoded = decode(
        "limit=10&offset=20&order=-timestamp&select=id,-actor&"
        + CONTRACT_EQ
        + "&object.id=ORD-1&&render()"
    )
    assert decoded.params == {
        "limit": "10",
        "offset": "20",
        "order": "-timestamp",
        "select": "id,-actor",
        "object.id": "ORD-1",
    }
    assert decoded.filters == [f'eq(details,"{CONTRACT_DETAILS}")']
    assert decoded.render is True
    assert decode("select=a&render%28%29=").render is True
    assert decode("eq(event,'a=b')").filters == ["eq(event,'a=b')"]
    assert decode("eq(event,'a')").render is False


# ---------------------------------------------------------------- paging and the envelope


@pytest.fixture
def twelve(api: Any) -> list[str]:
    return [api.post(RECORDS, json=new_record(summary=f"s{n:02d}")).json["id"] for n in range(12)]


def test_default_limit_is_10_and_the_envelope_is_exact(api: Any, twelve: list[str]) -> None:
    answer = api.get(RECORDS)
    assert answer.status_code == 200
    body = answer.json
    assert list(body) == ["$meta", "data"]
    assert body["$meta"] == {"pagination": {"offset": 0, "limit": 10, "total": 12}}
    assert [i["id"] for i in body["data"]] == twelve[:10]


def test_offset_pages_through(api: Any, twelve: list[str]) -> None:
    body = listing(api, RECORDS, "offset=10")
    assert body["$meta"] == {"pagination": {"offset": 10, "limit": 10, "total": 12}}
    assert [i["id"] for i in body["data"]] == twelve[10:]
    body = listing(api, RECORDS, "limit=5&offset=5")
    assert [i["id"] for i in body["data"]] == twelve[5:10]
    body = listing(api, RECORDS, "limit=5&offset=12")
    assert body == {"$meta": {"pagination": {"offset": 12, "limit": 5, "total": 12}}, "data": []}
    body = listing(api, RECORDS, "offset=1000")
    assert body == {"$meta": {"pagination": {"offset": 1000, "limit": 10, "total": 12}}, "data": []}


def test_limit_0_gives_only_the_total(api: Any, twelve: list[str]) -> None:
    assert listing(api, RECORDS, "limit=0") == {
        "$meta": {"pagination": {"offset": 0, "limit": 0, "total": 12}},
        "data": [],
    }
    assert listing(api, RECORDS, "limit=0&offset=3&like(summary,'s0*')") == {
        "$meta": {"pagination": {"offset": 3, "limit": 0, "total": 10}},
        "data": [],
    }


def test_the_clients_fetch_one(api: Any, twelve: list[str]) -> None:
    body = listing(api, RECORDS, f"limit=1&offset=0&eq(id,'{twelve[3]}')")
    assert body["$meta"] == {"pagination": {"offset": 0, "limit": 1, "total": 1}}
    assert [i["id"] for i in body["data"]] == [twelve[3]]


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("limit=abc", {"limit": ["The value 'abc' is not valid for limit."]}),
        ("limit=-1", {"limit": ["The value must be 0 or more."]}),
        ("limit=1.5", {"limit": ["The value '1.5' is not valid for limit."]}),
        ("offset=abc", {"offset": ["The value 'abc' is not valid for offset."]}),
        ("offset=-1", {"offset": ["The value must be 0 or more."]}),
        (
            "limit=abc&offset=-1",
            {
                "limit": ["The value 'abc' is not valid for limit."],
                "offset": ["The value must be 0 or more."],
            },
        ),
    ],
)
def test_bad_limit_or_offset_is_a_400_keyed_by_the_parameter(
    api: Any, query: str, errors: dict[str, list[str]]
) -> None:
    assert bad_request(api, RECORDS, query) == errors
    assert bad_request(api, EVENT_TYPES, query) == errors


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"limit": "abc"}, {"limit": ["The value 'abc' is not valid for limit."]}),
        (
            {"limit": "-1"},
            {"limit": ["The value '-1' is not valid for limit: it must be 0 or more."]},
        ),
        (
            {"offset": "x", "limit": "-2"},
            {
                "limit": ["The value '-2' is not valid for limit: it must be 0 or more."],
                "offset": ["The value 'x' is not valid for offset."],
            },
        ),
    ],
)
def test_page_checks_limit_and_offset_itself(
    params: dict[str, str], errors: dict[str, list[str]]
) -> None:
    """For specs that do not declare limit and offset (--spec), the handler checks them."""
    with pytest.raises(Problem) as caught:
        page(params)
    assert (caught.value.status, caught.value.errors) == (400, errors)


def test_page_defaults_and_cap() -> None:
    assert (page({}).offset, page({}).limit) == (0, 10)
    assert page({"limit": "100"}).limit == 100
    assert page({"limit": "101"}).limit == 100
    assert page({"limit": "0", "offset": "7"}) == Page(offset=7, limit=0)


@pytest.fixture
def seeded(make_app: Callable[..., Flask]) -> Any:
    return make_app(seed_records=250, faker_seed=7).test_client()


def test_limit_over_100_is_capped(seeded: Any) -> None:
    for limit in ("101", "1000", "2147483647"):
        body = listing(seeded, RECORDS, f"limit={limit}")
        assert body["$meta"]["pagination"] == {"offset": 0, "limit": 100, "total": 250}
        assert len(body["data"]) == 100
    body = listing(seeded, RECORDS, "limit=100&offset=200")
    assert body["$meta"]["pagination"] == {"offset": 200, "limit": 100, "total": 250}
    assert len(body["data"]) == 50


def test_paging_with_order_is_consistent(seeded: Any) -> None:
    everything = fetch_all(seeded, RECORDS)
    assert len(everything) == len({i["id"] for i in everything}) == 250
    by_time = fetch_all(seeded, RECORDS, "order=-timestamp,id")
    expected = sorted(everything, key=lambda i: i["id"])
    expected = sorted(expected, key=lambda i: parse_ts(i["timestamp"]), reverse=True)
    assert [i["id"] for i in by_time] == [i["id"] for i in expected]
    pages = [
        listing(seeded, RECORDS, f"order=-timestamp,id&limit=7&offset={o}")["data"]
        for o in range(0, 250, 7)
    ]
    assert [i["id"] for p in pages for i in p] == [i["id"] for i in expected]


def test_seeded_filters_match_an_independent_oracle(seeded: Any) -> None:
    everything = fetch_all(seeded, RECORDS)
    account = everything[17]["actor"]["account"]["id"]
    object_type = everything[42]["object"]["objectType"]

    def same(query: str, keep: Callable[[dict[str, Any]], bool]) -> None:
        found = fetch_all(seeded, RECORDS, query)
        assert [i["id"] for i in found] == [i["id"] for i in everything if keep(i)], query
        assert found, query  # every case selects something: the assertion means something

    same(f"eq(actor.account.id,'{account}')", lambda i: i["actor"]["account"]["id"] == account)
    same(f"eq(viewers.id,'{account}')", lambda i: any(v["id"] == account for v in i["viewers"]))
    same("eq(type,'Private')", lambda i: i["type"] == "Private")
    same("type=Public", lambda i: i["type"] == "Public")
    same("like(event,'platform.commerce.*')", lambda i: i["event"].startswith("platform.commerce."))
    same(
        "ilike(event,'*.CREATED')&ne(type,'Private')",
        lambda i: i["event"].endswith(".created") and i["type"] != "Private",
    )
    same(
        f"any(documents,eq(objectType,'{object_type}'))",
        lambda i: any(d.get("objectType") == object_type for d in i["documents"].values()),
    )
    same(
        "any(documents,ge(revision,5))",
        lambda i: any(d.get("revision", 0) >= 5 for d in i["documents"].values()),
    )
    same(
        "any(documents,and(eq(status,'Active'),lt(revision,3)))",
        lambda i: any(
            d.get("status") == "Active" and d.get("revision", 9) < 3
            for d in i["documents"].values()
        ),
    )
    same("eq(request.worker,null())", lambda i: "worker" not in i["request"])
    same("ne(request.worker.workerName,null())", lambda i: "worker" in i["request"])
    same("like(actor.id,'TKN-*')", lambda i: i["actor"]["id"].startswith("TKN-"))
    same(
        "or(eq(object.objectType,'Order'),eq(object.objectType,'Agreement'))",
        lambda i: i["object"]["objectType"] in ("Order", "Agreement"),
    )
    same(
        "in(actor.account.accountType,('Client','Operations'))",
        lambda i: i["actor"]["account"]["accountType"] in ("Client", "Operations"),
    )


def test_seeded_date_forms_match_an_independent_oracle(seeded: Any) -> None:
    everything = fetch_all(seeded, RECORDS)
    pivot = parse_ts(everything[125]["timestamp"])  # an instant with milliseconds, in UTC
    naive = pivot.replace(tzinfo=None).isoformat(timespec="microseconds")
    aware = pivot.isoformat(timespec="microseconds")  # ...+00:00
    zulu = pivot.strftime("%Y-%m-%dT%H:%M:%S.") + f"{pivot.microsecond // 1000:03d}Z"
    day = pivot.date().isoformat()
    midnight = datetime(pivot.year, pivot.month, pivot.day, tzinfo=UTC)
    enc = {":": "%3A", "+": "%2B"}

    def encoded(text: str) -> str:
        return "".join(enc.get(c, c) for c in text)

    def ids(query: str) -> list[str]:
        return [i["id"] for i in fetch_all(seeded, RECORDS, query)]

    def oracle(keep: Callable[[datetime], bool]) -> list[str]:
        return [i["id"] for i in everything if keep(parse_ts(i["timestamp"]))]

    for form in (naive, aware, zulu):
        value = encoded(form)
        assert ids(f"gt(timestamp,'{value}')") == oracle(lambda t: t > pivot), form
        assert ids(f"le(timestamp,'{value}')") == oracle(lambda t: t <= pivot), form
        assert ids(f"eq(timestamp,'{value}')") == oracle(lambda t: t == pivot), form
    assert ids(f"ge(timestamp,'{day}')") == oracle(lambda t: t >= midnight)
    assert ids(f"lt(timestamp,{day})") == oracle(lambda t: t < midnight)
    assert ids(f"and(ge(timestamp,'{day}'),lt(timestamp,'{encoded(naive)}'))") == oracle(
        lambda t: midnight <= t < pivot
    )
    assert 0 < len(oracle(lambda t: t > pivot)) < 250


# ---------------------------------------------------------------- event types


def test_event_types_envelope_and_total(api: Any) -> None:
    body = listing(api, EVENT_TYPES, "")
    total = len(catalogue().event_types)
    assert body["$meta"] == {"pagination": {"offset": 0, "limit": 10, "total": total}}
    assert [t["key"] for t in body["data"]] == [t["key"] for t in catalogue().event_types[:10]]
    assert listing(api, EVENT_TYPES, "limit=0")["data"] == []
    assert listing(api, EVENT_TYPES, "limit=500")["$meta"]["pagination"] == {
        "offset": 0,
        "limit": 100,
        "total": total,
    }


def test_event_types_filter_by_key_as_the_client_does(api: Any) -> None:
    body = listing(api, EVENT_TYPES, "limit=100&offset=0&eq(key,'platform.commerce.order.created')")
    (expected,) = [
        t for t in catalogue().event_types if t["key"] == "platform.commerce.order.created"
    ]
    assert body == {
        "$meta": {"pagination": {"offset": 0, "limit": 100, "total": 1}},
        "data": [
            {
                "id": expected["id"],
                "key": "platform.commerce.order.created",
                "name": "Order created",
                "description": "A new order was placed.",
            }
        ],
    }


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        (
            "like(key,'platform.commerce.order.*')",
            lambda t: t["key"].startswith("platform.commerce.order."),
        ),
        ("ilike(name,'*ORDER*')", lambda t: "order" in t["name"].lower()),
        ("like(name,'*order*')", lambda t: "order" in t["name"]),
        (
            "key=platform.accounts.user.invited",
            lambda t: t["key"] == "platform.accounts.user.invited",
        ),
        (
            "in(key,('platform.accounts.user.invited','platform.catalog.product.created'))",
            lambda t: (
                t["key"] in ("platform.accounts.user.invited", "platform.catalog.product.created")
            ),
        ),
        ("not(like(key,'platform.*'))", lambda t: not t["key"].startswith("platform.")),
        (
            "gt(key,'platform.commerce')&lt(key,'platform.commerce.z')",
            lambda t: "platform.commerce" < t["key"] < "platform.commerce.z",
        ),
        ("like(description,'*terminated*')", lambda t: "terminated" in t["description"]),
    ],
)
def test_event_types_filters(api: Any, query: str, keep: Callable[[dict[str, str]], bool]) -> None:
    expected = [t["id"] for t in catalogue().event_types if keep(t)]
    assert expected  # the query selects something
    assert [t["id"] for t in fetch_all(api, EVENT_TYPES, query)] == expected


def test_event_types_order_and_select(api: Any) -> None:
    body = listing(api, EVENT_TYPES, "order=-key&limit=3&select=-description,-name")
    keys = sorted((t["key"] for t in catalogue().event_types), reverse=True)[:3]
    by_key = {t["key"]: t["id"] for t in catalogue().event_types}
    assert body["$meta"] == {
        "pagination": {"offset": 0, "limit": 3, "total": len(by_key)},
        "omitted": ["description", "name"],
    }
    assert body["data"] == [{"id": by_key[k], "key": k} for k in keys]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("eq(event,'platform.commerce.order.created')", "event"),
        ("timestamp=2025-01-01", "timestamp"),
        ("order=timestamp", "timestamp"),
        ("any(documents,eq(id,'X'))", "documents"),
    ],
)
def test_event_types_reject_fields_they_do_not_have(api: Any, query: str, field: str) -> None:
    assert bad_request(api, EVENT_TYPES, query) == {field: ["Unknown expression group."]}
