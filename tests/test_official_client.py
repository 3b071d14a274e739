"""The official client, `mpt-api-client` 7.0.0, unchanged, against servers the `mockserver` script
starts: the bundled spec (`server`) and the platform's published spec (`published_server`).

Each test makes its own records under an object-id prefix of its own (`TST-<hex>-<n>`) and
narrows every read to that prefix, so the shared servers' other records never interfere.
Event types are shared: a test that changes one puts it back. Tests of `--tokens` start their
own servers (`start_server`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mpt_api_client import MPTClient, RQLQuery
from mpt_api_client.auth import Authentication, BearerTokenAuthentication
from mpt_api_client.exceptions import MPTAPIError
from mpt_api_client.models.meta import Pagination
from support import MARKETPLACE_SPEC, PUBLISHED_SPEC, TOKEN, Server, reference

SPECS = ["server", "published_server"]
RECORD_ID = re.compile(r"^AUD-\d{4}-\d{4}-\d{4}-\d{4}$")
EVENT_TYPE_ID = re.compile(r"^AET-\d{4}-\d{4}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TRACE_ID = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
ORDER_CREATED = "platform.commerce.order.created"
ORDER_CREATED_ID = "AET-6491-7370"  # derived from the key: the same in every run
TOKEN_ACTOR = {
    "id": "TKN-1234-5678",
    "name": "API Token TKN-1234-5678",
    "account": {"id": "ACC-0000-0001", "name": "Mock Account", "accountType": "Vendor"},
}
DEFAULT_VIEWERS = [{"id": "ACC-0000-0001", "name": "Mock Account", "type": "Vendor"}]
VALIDATION = "One or more validation errors occurred."
PROBLEM = "https://tools.ietf.org/html/rfc9110#section-15.5."


# ---------------------------------------------------------------- servers and clients


@pytest.fixture(params=SPECS)
def target(request: pytest.FixtureRequest) -> Server:
    """The shared session server of each spec."""
    server: Server = request.getfixturevalue(request.param)
    return server


class BasicAuthentication(Authentication):
    """The wrong scheme, through the client's own extension point (`Authentication`)."""

    def auth_flow(self, request: Any) -> Iterator[Any]:
        request.headers["Authorization"] = "Basic dXNlcjpzZWNyZXQ="
        yield request


def connect(server: Server, token: str | None = TOKEN, base_url: str | None = None) -> MPTClient:
    """A client as a user builds it. `token=None`: the base `Authentication`, which sends no
    Authorization header; `token="basic"`: a Basic one instead of a bearer token."""
    auth: Authentication
    if token is None:
        auth = Authentication()
    elif token == "basic":
        auth = BasicAuthentication()
    else:
        auth = BearerTokenAuthentication(token)
    client = MPTClient.from_config(authentication=auth, base_url=base_url or server.api_url)
    _OPEN.append(client)
    return client


_OPEN: list[MPTClient] = []


def close_clients() -> None:
    """Close the clients' connections: an idle keep-alive connection makes a server take ~2 s
    longer to stop on SIGTERM."""
    while _OPEN:
        _OPEN.pop().http_client.httpx_client.close()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_clients()


@pytest.fixture
def client(target: Server) -> MPTClient:
    return connect(target)


def spec_of(request: pytest.FixtureRequest, fixture: str) -> str:
    return str(request.node.callspec.params[fixture])


# ---------------------------------------------------------------- records and helpers


def new_prefix() -> str:
    return f"TST-{uuid.uuid4().hex[:12].upper()}"


def body(object_id: str, event: str = ORDER_CREATED, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "object": {"id": object_id, "name": f"Object {object_id}", "objectType": "Order"},
        **extra,
    }


def raw(model: Any) -> Any:
    """The JSON the server answered with (what the client parsed the model from)."""
    return model.meta.response.json()


def create(client: MPTClient, data: dict[str, Any]) -> dict[str, Any]:
    record = client.audit.records.create(data)
    assert record.meta.response.status_code == 201
    answer: dict[str, Any] = raw(record)
    return answer


def under(prefix: str) -> RQLQuery:
    return RQLQuery("object.id").like(f"{prefix}-*")


def when(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["timestamp"])


class Spy:
    """Records the URLs the client asks for (the client itself is untouched)."""

    def __init__(self, client: MPTClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.urls: list[str] = []
        http = client.http_client
        original = http.request

        def request(method: str, url: str, **kwargs: Any) -> Any:
            self.urls.append(f"{method.upper()} {url}")
            return original(method, url, **kwargs)

        monkeypatch.setattr(http, "request", request)


def assert_problem(
    error: MPTAPIError,
    status: int,
    title: str,
    detail: str,
    errors: dict[str, list[str]] | None = None,
) -> None:
    assert error.status_code == status
    assert error.status == status
    assert error.title == title
    assert error.detail == detail
    assert TRACE_ID.match(error.trace_id or ""), error.trace_id
    assert error.errors == errors
    section = {400: "1", 401: "2", 403: "4", 404: "5", 409: "10"}[status]
    assert error.payload["type"] == PROBLEM + section
    members = {"type", "title", "status", "detail", "traceId"} | ({"errors"} if errors else set())
    assert set(error.payload) == members
    expected = f"{status} {title} - {detail} ({error.trace_id})"
    if errors:
        expected += "\n" + json.dumps(errors, indent=2)
    assert str(error) == expected


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("suffix", ["/public/v1", "", "/public", "/public/v1/", "/"])
def test_from_config_works_with_every_base_url_form(target: Server, suffix: str) -> None:
    client = connect(target, base_url=target.url + suffix)
    created = create(client, body(f"{new_prefix()}-0"))
    assert raw(client.audit.records.get(created["id"])) == created


# ---------------------------------------------------------------- create


def test_create_returns_the_stored_record_with_the_server_set_fields(
    client: MPTClient,
) -> None:
    object_id = f"{new_prefix()}-0"
    sent = {
        "event": ORDER_CREATED,
        "object": {"id": object_id, "name": "Commande n° 1 — 注文", "objectType": "Order"},
        "summary": "Order created",
        "details": "créé ✓ — Größe 注文 📦 \u2028 «end»",
        "request": {
            "api": {
                "ip": "203.0.113.7",
                "userAgent": "swo-marketplace-client/1.0",
                "geolocation": {"countryCode": "NL", "countryName": "Netherlands"},
            },
            "log": {"requestId": "req-1", "operationId": "op-1"},
        },
        "documents": {"order": {"id": object_id, "lines": [{"qty": 2, "sku": "ß-1"}]}},
    }
    before = datetime.now(UTC) - timedelta(seconds=1)
    record = client.audit.records.create(sent)
    after = datetime.now(UTC) + timedelta(seconds=1)
    answer = raw(record)
    assert record.meta.response.status_code == 201
    assert RECORD_ID.match(answer["id"])
    assert TIMESTAMP.match(answer["timestamp"])
    assert before <= when(answer) <= after
    assert answer == {
        **sent,
        "id": answer["id"],
        "timestamp": answer["timestamp"],
        "actor": TOKEN_ACTOR,
        "type": "Public",
        "viewers": DEFAULT_VIEWERS,
    }
    # the model the client built from it
    assert record.id == answer["id"]
    assert record.details == sent["details"]
    assert record.object.object_type == "Order"
    assert record.actor.account.account_type == "Vendor"
    assert record.request.api.user_agent == "swo-marketplace-client/1.0"
    # and it is what the server stored
    assert raw(client.audit.records.get(answer["id"])) == answer


def test_values_for_read_only_fields_and_unknown_members_are_not_stored(
    client: MPTClient,
) -> None:
    object_id = f"{new_prefix()}-0"
    sent = {
        "id": "AUD-0000-0000-0000-0001",
        "timestamp": "2020-01-01T00:00:00.000Z",
        "actor": {"id": "USR-9999-9999", "name": "Mallory", "type": "User"},
        "type": "Private",
        "viewers": [{"id": "ACC-9999-9999", "name": "Other", "type": "Client"}],
        "event": ORDER_CREATED,
        "object": {"id": object_id, "objectType": "Order", "status": "Draft"},
        "request": {"api": {"ip": "198.51.100.1", "port": 443}},
        "payload": {"anything": 1},
        "documents": {"order": {"unknownToTheSpec": {"deep": [1, {"x": None}]}}},
    }
    answer = create(client, sent)
    assert answer["id"] != sent["id"]
    assert RECORD_ID.match(answer["id"])
    assert answer["timestamp"] != sent["timestamp"]
    assert answer == {
        "id": answer["id"],
        "timestamp": answer["timestamp"],
        "event": ORDER_CREATED,
        "object": {"id": object_id, "objectType": "Order"},
        "request": {"api": {"ip": "198.51.100.1"}},
        "documents": sent["documents"],  # free-form: kept as sent
        "actor": TOKEN_ACTOR,
        "type": "Public",
        "viewers": DEFAULT_VIEWERS,
    }
    assert raw(client.audit.records.get(answer["id"])) == answer


@pytest.mark.parametrize(
    ("token", "actor_id", "actor_name"),
    [
        ("idt:TKN-9876-5432:another-secret", "TKN-9876-5432", "API Token TKN-9876-5432"),
        ("a-plain-token", "USR-0000-0001", "Mock User"),
    ],
)
def test_the_actor_is_the_caller(
    target: Server, token: str, actor_id: str, actor_name: str
) -> None:
    answer = create(connect(target, token), body(f"{new_prefix()}-0"))
    assert answer["actor"] == {**TOKEN_ACTOR, "id": actor_id, "name": actor_name}
    assert answer["viewers"] == DEFAULT_VIEWERS


# ---------------------------------------------------------------- get


def test_get_with_select_leaving_out_details_and_nested_members(client: MPTClient) -> None:
    created = create(client, body(f"{new_prefix()}-0", details="shown", summary="s"))
    fetched = client.audit.records.get(created["id"], select=["-details", "+actor.account"])
    assert raw(fetched) == {k: v for k, v in created.items() if k != "details"}
    assert fetched.meta.omitted == []
    nested = client.audit.records.get(created["id"], select="-actor.account,-summary")
    expected = {k: v for k, v in created.items() if k != "summary"}
    expected["actor"] = {k: v for k, v in created["actor"].items() if k != "account"}
    assert raw(nested) == expected


def test_get_with_select_leaving_out_object(client: MPTClient) -> None:
    records = client.audit.records
    created = create(client, body(f"{new_prefix()}-0", details="kept"))
    fetched = records.get(created["id"], select=["-object", "+actor.account", "details"])
    answer = raw(fetched)
    assert "object" not in answer
    assert answer == {k: v for k, v in created.items() if k != "object"}
    assert answer["actor"]["account"] == TOKEN_ACTOR["account"]
    assert answer["details"] == "kept"
    assert raw(records.get(created["id"])) == created  # the stored record keeps it


def test_list_with_select_leaving_out_object(client: MPTClient) -> None:
    prefix = new_prefix()
    created = [create(client, body(f"{prefix}-{n}")) for n in range(2)]
    page = (
        client.audit.records.filter(under(prefix))
        .order_by("object.id")
        .select("-object", "+actor.account")
        .fetch_page(limit=10)
    )
    assert page.meta.omitted == ["object"]
    assert page.to_list() == [{k: v for k, v in c.items() if k != "object"} for c in created]


# ---------------------------------------------------------------- collection reads


def test_iterate_walks_every_page_in_order(
    client: MPTClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = new_prefix()
    created = [create(client, body(f"{prefix}-{n}", details=f"d{n}")) for n in range(7)]
    query = client.audit.records.filter(under(prefix)).order_by("-object.id").select("-details")
    spy = Spy(client, monkeypatch)
    found = list(query.iterate(batch_size=3))
    assert [r.id for r in found] == [c["id"] for c in reversed(created)]
    assert [r.to_dict() for r in found] == [
        {k: v for k, v in c.items() if k != "details"} for c in reversed(created)
    ]
    tail = f"order=-object.id&select=-details&like(object.id,'{prefix}-*')"
    assert spy.urls == [
        f"GET /public/v1/audit/records?limit=3&offset={offset}&{tail}" for offset in (0, 3, 6)
    ]


def test_iterate_follows_the_server_when_it_caps_the_page_size(
    client: MPTClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = new_prefix()
    created = [create(client, body(f"{prefix}-{n:03d}")) for n in range(105)]
    query = client.audit.records.filter(under(prefix)).order_by("object.id")
    spy = Spy(client, monkeypatch)
    assert [r.id for r in query.iterate(batch_size=150)] == [c["id"] for c in created]
    tail = f"order=object.id&like(object.id,'{prefix}-*')"
    assert spy.urls == [
        f"GET /public/v1/audit/records?limit=150&offset={offset}&{tail}" for offset in (0, 100)
    ]


def test_order_by_timestamp(client: MPTClient) -> None:
    prefix = new_prefix()
    created = []
    for n in range(4):
        created.append(create(client, body(f"{prefix}-{n}")))
        time.sleep(0.002)
    query = client.audit.records.filter(under(prefix))
    newest_first = query.order_by("-timestamp").fetch_page(limit=10)
    assert [r.id for r in newest_first] == [c["id"] for c in reversed(created)]
    oldest_first = query.order_by("timestamp").fetch_page(limit=10)
    assert [r.id for r in oldest_first] == [c["id"] for c in created]


def test_order_by_several_keys(client: MPTClient) -> None:
    prefix = new_prefix()
    events = ["platform.commerce.order.updated", ORDER_CREATED] * 3
    created = [create(client, body(f"{prefix}-{n}", event=e)) for n, e in enumerate(events)]
    found = client.audit.records.filter(under(prefix)).order_by("event", "-object.id").iterate(2)
    expected = sorted(created, key=lambda r: r["object"]["id"], reverse=True)
    expected = sorted(expected, key=lambda r: r["event"])
    assert [r.id for r in found] == [r["id"] for r in expected]


def test_fetch_page_reports_the_pagination(client: MPTClient) -> None:
    prefix = new_prefix()
    created = [create(client, body(f"{prefix}-{n}", details="x")) for n in range(5)]
    ids = [c["id"] for c in created]
    query = client.audit.records.filter(under(prefix)).order_by("object.id")

    page = query.fetch_page(limit=2, offset=2)
    assert page.meta.pagination == Pagination(limit=2, offset=2, total=5)
    assert [r.id for r in page] == ids[2:4]
    assert page.to_list() == created[2:4]
    assert page.meta.omitted == []

    last = query.fetch_page(limit=2, offset=4)
    assert last.meta.pagination == Pagination(limit=2, offset=4, total=5)
    assert [r.id for r in last] == ids[4:]

    beyond = query.fetch_page(limit=2, offset=10)
    assert beyond.meta.pagination == Pagination(limit=2, offset=10, total=5)
    assert len(beyond) == 0

    count = query.fetch_page(limit=0)
    assert count.meta.pagination == Pagination(limit=0, offset=0, total=5)
    assert len(count) == 0

    capped = query.fetch_page(limit=1000)
    assert capped.meta.pagination == Pagination(limit=100, offset=0, total=5)
    assert [r.id for r in capped] == ids

    selected = query.select("-details").fetch_page(limit=5)
    assert selected.meta.omitted == ["details"]
    assert selected.to_list() == [{k: v for k, v in c.items() if k != "details"} for c in created]


def test_fetch_one(client: MPTClient) -> None:
    prefix = new_prefix()
    created = [create(client, body(f"{prefix}-{n}")) for n in range(3)]
    records = client.audit.records.filter(under(prefix))
    one = records.filter(RQLQuery(object__id=f"{prefix}-1")).fetch_one()
    assert one.id == created[1]["id"]
    assert one.to_dict() == created[1]
    with pytest.raises(ValueError, match=r"^Expected one result, but got zero results$"):
        records.filter(RQLQuery(object__id=f"{prefix}-9")).fetch_one()
    with pytest.raises(ValueError, match=r"^Expected one result, but got 3 results$"):
        records.fetch_one()


# ---------------------------------------------------------------- RQL filters


def filter_set(prefix: str) -> list[dict[str, Any]]:
    """Five records that the filter cases below tell apart."""
    return [
        {
            "event": ORDER_CREATED,
            "object": {"id": f"{prefix}-0", "name": "Order Alpha", "objectType": "Order"},
            "details": "Order Alpha créé ✓",
        },
        {
            "event": "platform.commerce.order.updated",
            "object": {"id": f"{prefix}-1", "name": "Order Beta", "objectType": "Order"},
            "details": "ORDER beta changed",
        },
        {
            "event": "platform.accounts.user.invited",
            "object": {"id": f"{prefix}-2", "name": "", "objectType": "User"},
        },
        {
            "event": "platform.catalog.product.created",
            "object": {"id": f"{prefix}-3", "name": None, "objectType": "Product"},
            "details": "a&b c+d/e,f(g)h'i#%",
            "documents": {"product": {"id": "PRD-1111-2222", "price": 7.5, "active": True}},
        },
        {
            "event": "extension.billing.invoice.issued",
            "object": {"id": f"{prefix}-4", "objectType": "Invoice"},
            "details": "",
            "documents": {"invoice": {"id": "INV-1111-2222-3333", "price": 3, "active": False}},
        },
    ]


Records = list[dict[str, Any]]
Build = Callable[[Records], RQLQuery]
Expect = list[int] | Callable[[Records], list[int]]


def matching(test: Callable[[datetime], bool]) -> Callable[[Records], list[int]]:
    return lambda records: [n for n, r in enumerate(records) if test(when(r))]


def at(records: Records, n: int) -> datetime:
    return when(records[n])


FILTERS: list[tuple[str, Build, Expect]] = [
    ("eq-kwarg", lambda r: RQLQuery(event=ORDER_CREATED), [0]),
    ("eq-nested-kwarg", lambda r: RQLQuery(object__objectType="User"), [2]),
    ("eq-nested-name", lambda r: RQLQuery("object.name").eq("Order Beta"), [1]),
    (
        "eq-actor-account",
        lambda r: RQLQuery("actor.account.id").eq("ACC-0000-0001"),
        [0, 1, 2, 3, 4],
    ),
    ("eq-through-array", lambda r: RQLQuery(viewers__id="ACC-0000-0001"), [0, 1, 2, 3, 4]),
    ("eq-through-array-no-match", lambda r: RQLQuery(viewers__id="ACC-9999-9999"), []),
    ("ne-attribute-chain", lambda r: RQLQuery().object.objectType.ne("Order"), [2, 3, 4]),
    (
        "and-operator",
        lambda r: RQLQuery(event__like="platform.commerce.*") & RQLQuery(object__name="Order Beta"),
        [1],
    ),
    ("and-kwargs", lambda r: RQLQuery(event=ORDER_CREATED, object__objectType="Order"), [0]),
    (
        "or",
        lambda r: (
            RQLQuery(event="platform.accounts.user.invited")
            | RQLQuery(object__objectType="Invoice")
        ),
        [2, 4],
    ),
    ("not", lambda r: ~RQLQuery(object__objectType="Order"), [2, 3, 4]),
    (
        "not-or",
        lambda r: ~(RQLQuery(object__objectType="Order") | RQLQuery(details__null=True)),
        [3, 4],
    ),
    (
        "in",
        lambda r: RQLQuery("event").in_(
            ["platform.commerce.order.updated", "platform.catalog.product.created"]
        ),
        [1, 3],
    ),
    ("in-kwarg", lambda r: RQLQuery(object__objectType__in=("User", "Invoice")), [2, 4]),
    ("out", lambda r: RQLQuery("event").out([ORDER_CREATED, "nothing.at.all.here"]), [1, 2, 3, 4]),
    ("like", lambda r: RQLQuery("event").like("platform.commerce.*"), [0, 1]),
    ("like-is-case-sensitive", lambda r: RQLQuery("details").like("*order*"), []),
    ("like-middle", lambda r: RQLQuery("event").like("*.created"), [0, 3]),
    ("ilike", lambda r: RQLQuery("details").ilike("*order*"), [0, 1]),
    ("ilike-non-ascii", lambda r: RQLQuery("details").ilike("*CRÉÉ ✓"), [0]),
    ("eq-special-characters", lambda r: RQLQuery(details="a&b c+d/e,f(g)h'i#%"), [3]),
    ("null-kwarg", lambda r: RQLQuery(details__null=True), [2]),
    ("not-null", lambda r: RQLQuery("details").null(False), [0, 1, 3, 4]),
    ("empty", lambda r: RQLQuery("object.name").empty(), [2, 3, 4]),
    ("not-empty", lambda r: RQLQuery("object.name").empty(False), [0, 1]),
    ("empty-kwarg", lambda r: RQLQuery(details__empty=True), [2, 4]),
    ("any-documents", lambda r: RQLQuery(id="PRD-1111-2222").any("documents"), [3]),
    ("any-viewers", lambda r: RQLQuery(id="ACC-0000-0001").any("viewers"), [0, 1, 2, 3, 4]),
    ("all-documents", lambda r: RQLQuery(active=True).all("documents"), [3]),
    ("number-gt", lambda r: RQLQuery(documents__product__price__gt=5), [3]),
    ("decimal-le", lambda r: RQLQuery(documents__invoice__price__le=Decimal("3.00")), [4]),
    ("boolean", lambda r: RQLQuery("documents.invoice.active").eq(False), [4]),
    (
        "from-string",
        lambda r: RQLQuery.from_string("or(eq(event,platform.accounts.user.invited),eq(details,))"),
        [2, 4],
    ),
    (
        "datetime-utc",
        lambda r: RQLQuery("timestamp").ge(at(r, 2)),
        lambda r: matching(lambda t: t >= at(r, 2))(r),
    ),
    (
        "datetime-other-offset",
        lambda r: RQLQuery("timestamp").gt(at(r, 1).astimezone(timezone(timedelta(hours=2)))),
        lambda r: matching(lambda t: t > at(r, 1))(r),
    ),
    (
        "datetime-naive",
        lambda r: RQLQuery(timestamp__lt=at(r, 3).replace(tzinfo=None)),
        lambda r: matching(lambda t: t < at(r, 3))(r),
    ),
    (
        "datetime-string-z",
        lambda r: RQLQuery("timestamp").le(r[1]["timestamp"]),
        lambda r: matching(lambda t: t <= at(r, 1))(r),
    ),
    (
        "date-range",
        lambda r: (
            RQLQuery(timestamp__ge=at(r, 0).date())
            & RQLQuery(timestamp__lt=at(r, 0).date() + timedelta(days=1))
        ),
        lambda r: matching(lambda t: t.date() == at(r, 0).date())(r),
    ),
    ("date-in-the-past", lambda r: RQLQuery(timestamp__lt=date(2000, 1, 1)), []),
    (
        "between-two-datetimes",
        lambda r: RQLQuery(timestamp__gt=at(r, 0)) & RQLQuery(timestamp__lt=at(r, 4)),
        lambda r: matching(lambda t: at(r, 0) < t < at(r, 4))(r),
    ),
]


@pytest.mark.parametrize(
    ("build", "expect"), [pytest.param(b, e, id=name) for name, b, e in FILTERS]
)
def test_filter(client: MPTClient, build: Build, expect: Expect) -> None:
    prefix = new_prefix()
    created = []
    for data in filter_set(prefix):
        created.append(create(client, data))
        time.sleep(0.002)  # distinct timestamps (ms precision), so the date cases split the set
    assert [when(r) for r in created] == sorted({when(r) for r in created})
    expected = expect(created) if callable(expect) else expect
    page = (
        client.audit.records.filter(under(prefix))
        .filter(build(created))
        .order_by("object.id")
        .fetch_page(limit=10)
    )
    assert [r.object.id for r in page] == [f"{prefix}-{n}" for n in expected]
    assert [r.id for r in page] == [created[n]["id"] for n in expected]
    assert page.meta.pagination == Pagination(limit=10, offset=0, total=len(expected))


# ---------------------------------------------------------------- event types


def test_event_types_fetch_page_and_iterate(client: MPTClient) -> None:
    event_types = client.audit.event_types
    page = event_types.fetch_page(limit=5)
    assert page.meta.pagination == Pagination(limit=5, offset=0, total=50)
    first = page[0].to_dict()
    assert first == {
        "id": ORDER_CREATED_ID,
        "key": ORDER_CREATED,
        "name": "Order created",
        "description": "A new order was placed.",
    }
    assert all(EVENT_TYPE_ID.match(t.id) for t in page)
    everything = event_types.fetch_page(limit=100)
    assert everything.meta.pagination == Pagination(limit=100, offset=0, total=50)
    assert page.to_list() == everything.to_list()[:5]
    walked = [t.to_dict() for t in event_types.iterate(batch_size=7)]
    assert walked == everything.to_list()
    assert len({t["id"] for t in walked}) == len({t["key"] for t in walked}) == 50


def test_event_types_filter_order_select(client: MPTClient) -> None:
    event_types = client.audit.event_types
    everything = event_types.fetch_page(limit=100).to_list()
    users = event_types.filter(RQLQuery("key").like("platform.accounts.user.*")).order_by("-key")
    expected = sorted(
        (t for t in everything if t["key"].startswith("platform.accounts.user.")),
        key=lambda t: t["key"],
        reverse=True,
    )
    assert [t.to_dict() for t in users.iterate(batch_size=2)] == expected
    assert [t["key"] for t in expected] == [
        "platform.accounts.user.updated",
        "platform.accounts.user.invited",
        "platform.accounts.user.deleted",
        "platform.accounts.user.blocked",
    ]
    slim = users.select("-description").fetch_page(limit=2)
    assert slim.meta.omitted == ["description"]
    assert slim.to_list() == [
        {k: v for k, v in t.items() if k != "description"} for t in expected[:2]
    ]


def test_event_types_by_key_and_id(client: MPTClient) -> None:
    event_types = client.audit.event_types
    by_key = event_types.filter(RQLQuery(key=ORDER_CREATED))
    page = by_key.fetch_page()
    assert page.meta.pagination == Pagination(limit=100, offset=0, total=1)
    assert [t.id for t in page] == [ORDER_CREATED_ID]
    one = by_key.fetch_one()
    assert one.to_dict() == page[0].to_dict()
    got = event_types.get(ORDER_CREATED_ID)
    assert raw(got) == page[0].to_dict()
    slim = event_types.get(ORDER_CREATED_ID, select=["-description", "+name"])
    assert raw(slim) == {"id": ORDER_CREATED_ID, "key": ORDER_CREATED, "name": "Order created"}
    with pytest.raises(ValueError, match=r"^Expected one result, but got zero results$"):
        event_types.filter(RQLQuery(key="platform.none.such.thing")).fetch_one()


def test_event_types_update_and_read_back(client: MPTClient) -> None:
    event_types = client.audit.event_types
    type_id = event_types.filter(RQLQuery(key="platform.catalog.product.updated")).fetch_one().id
    original = raw(event_types.get(type_id))
    try:
        changed = event_types.update(
            type_id,
            {"id": "AET-0000-0000", "name": "Produit modifié ✓", "description": "Changed"},
        )
        assert changed.meta.response.status_code == 200
        expected = {**original, "name": "Produit modifié ✓", "description": "Changed"}
        assert raw(changed) == expected
        assert raw(event_types.get(type_id)) == expected
        found = event_types.filter(RQLQuery(name="Produit modifié ✓")).fetch_one()
        assert found.to_dict() == expected
        renamed = event_types.update(type_id, {"key": "platform.catalog.product.changed"})
        assert raw(renamed) == {**expected, "key": "platform.catalog.product.changed"}
        assert (
            event_types.filter(RQLQuery(key="platform.catalog.product.changed")).fetch_one().id
            == type_id
        )
    finally:
        restored = event_types.update(
            type_id,
            {k: original[k] for k in ("key", "name", "description")},
        )
    assert raw(restored) == original
    assert raw(event_types.get(type_id)) == original


# ---------------------------------------------------------------- errors


def test_unknown_record_is_404(client: MPTClient) -> None:
    with pytest.raises(MPTAPIError) as caught:
        client.audit.records.get("AUD-0000-0000-0000-0000")
    assert_problem(
        caught.value, 404, "Not Found", "Audit record AUD-0000-0000-0000-0000 not found."
    )


def test_unknown_event_type_is_404(client: MPTClient) -> None:
    with pytest.raises(MPTAPIError) as caught:
        client.audit.event_types.get("AET-0000-0000")
    assert_problem(caught.value, 404, "Not Found", "Audit event type AET-0000-0000 not found.")
    with pytest.raises(MPTAPIError) as caught:
        client.audit.event_types.update("AET-0000-0000", {"name": "x"})
    assert_problem(caught.value, 404, "Not Found", "Audit event type AET-0000-0000 not found.")


@pytest.mark.parametrize(
    ("sent", "errors"),
    [
        pytest.param(
            {"event": 5, "object": {"id": "ORD-1"}},
            {"event": ["The value must be a string, not an integer."]},
            id="event-not-a-string",
        ),
        pytest.param(
            {"event": ORDER_CREATED, "object": "ORD-1"},
            {"object": ["The value must be an object, not a string."]},
            id="object-not-an-object",
        ),
        pytest.param(
            {"event": ORDER_CREATED, "object": {"id": "ORD-1"}, "type": "Public", "details": 1},
            {"details": ["The value must be a string, not an integer."]},
            id="details-not-a-string",
        ),
        pytest.param(
            {
                "event": ORDER_CREATED,
                "object": {"id": "ORD-1", "name": 5},
                "request": {"api": {"ip": 7}},
            },
            {
                "object.name": ["The value must be a string, not an integer."],
                "request.api.ip": ["The value must be a string, not an integer."],
            },
            id="nested-members-keyed-by-path",
        ),
        pytest.param(
            {"event": ORDER_CREATED, "object": {"id": "ORD-1"}, "documents": [1]},
            {"documents": ["The value must be an object, not an array."]},
            id="documents-not-a-map",
        ),
        pytest.param(
            [{"event": ORDER_CREATED, "object": {"id": "ORD-1"}}],
            {"$": ["The value must be an object, not an array."]},
            id="body-an-array",
        ),
    ],
)
def test_invalid_create_body_is_400(
    client: MPTClient, sent: Any, errors: dict[str, list[str]]
) -> None:
    with pytest.raises(MPTAPIError) as caught:
        client.audit.records.create(sent)
    assert_problem(caught.value, 400, "Bad Request", VALIDATION, errors)


def test_create_breaking_the_bundled_spec_only(
    request: pytest.FixtureRequest, client: MPTClient
) -> None:
    """Our spec requires `event` and `object.id` and gives `event` its documented form; the
    published one declares none of that, and the mock follows the spec it runs (README,
    "Fidelity choices"), so there these bodies are stored."""
    prefix = new_prefix()
    cases = [
        ({"object": {"id": f"{prefix}-0"}}, {"event": ["The event field is required."]}),
        (
            {"details": "nothing"},
            {
                "event": ["The event field is required."],
                "object": ["The object field is required."],
            },
        ),
        (
            {"event": ORDER_CREATED, "object": {"name": f"{prefix}-1"}},
            {"object.id": ["The id field is required."]},
        ),
        (
            {"event": "order-created", "object": {"id": f"{prefix}-2"}},
            {
                "event": [
                    "The value 'order-created' does not match the pattern "
                    r"^(platform|extension)(\.[A-Za-z0-9_-]+){3}$."
                ]
            },
        ),
    ]
    for sent, errors in cases:
        if spec_of(request, "target") == "published_server":
            answer = create(client, sent)
            assert RECORD_ID.match(answer["id"])
            assert answer == {
                **sent,
                "id": answer["id"],
                "timestamp": answer["timestamp"],
                "actor": TOKEN_ACTOR,
                "type": "Public",
                "viewers": DEFAULT_VIEWERS,
            }
            continue
        with pytest.raises(MPTAPIError) as caught:
            client.audit.records.create(sent)
        assert_problem(caught.value, 400, "Bad Request", VALIDATION, errors)


def test_invalid_event_type_update_is_400(client: MPTClient) -> None:
    event_types = client.audit.event_types
    before = raw(event_types.get(ORDER_CREATED_ID))
    with pytest.raises(MPTAPIError) as caught:
        event_types.update(ORDER_CREATED_ID, {"name": 3, "description": ["x"]})
    assert_problem(
        caught.value,
        400,
        "Bad Request",
        VALIDATION,
        {
            "name": ["The value must be a string, not an integer."],
            "description": ["The value must be a string, not an array."],
        },
    )
    assert raw(event_types.get(ORDER_CREATED_ID)) == before


@pytest.mark.parametrize(
    ("build", "errors"),
    [
        pytest.param(
            lambda records: records.filter(RQLQuery(bogus="x")),
            {"bogus": ["Unknown expression group."]},
            id="unknown-field",
        ),
        pytest.param(
            lambda records: records.filter(RQLQuery("object.bogus").eq("x")),
            {"object.bogus": ["Unknown expression group."]},
            id="unknown-nested-field",
        ),
        pytest.param(
            lambda records: records.order_by("nope"),
            {"nope": ["Unknown expression group."]},
            id="unknown-order-field",
        ),
        pytest.param(
            lambda records: records.filter(RQLQuery.from_string("eq(event")),
            {"eq(event": ["Missing ')' at the end of 'eq(event'."]},
            id="malformed",
        ),
        pytest.param(
            lambda records: records.filter(RQLQuery.from_string("sorta(event,x)")),
            {"sorta(event,x)": ["Unknown operator 'sorta'."]},
            id="unknown-operator",
        ),
    ],
)
def test_bad_query_is_400(
    client: MPTClient, build: Callable[[Any], Any], errors: dict[str, list[str]]
) -> None:
    with pytest.raises(MPTAPIError) as caught:
        build(client.audit.records).fetch_page()
    assert_problem(caught.value, 400, "Bad Request", VALIDATION, errors)


def test_event_type_key_clash_is_409(client: MPTClient) -> None:
    event_types = client.audit.event_types
    updated = event_types.filter(RQLQuery(key="platform.commerce.order.updated")).fetch_one()
    with pytest.raises(MPTAPIError) as caught:
        event_types.update(updated.id, {"key": ORDER_CREATED})
    assert_problem(
        caught.value,
        409,
        "Conflict",
        f"Another audit event type ({ORDER_CREATED_ID}) already has the key '{ORDER_CREATED}'.",
    )
    assert event_types.get(updated.id).key == "platform.commerce.order.updated"


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (None, "An 'Authorization: Bearer <token>' header is required."),
        ("basic", "The Authorization header must be 'Bearer <token>'."),
    ],
)
def test_missing_token_is_401(target: Server, token: str | None, detail: str) -> None:
    client = connect(target, token)
    for call in (
        lambda: client.audit.records.fetch_page(),
        lambda: client.audit.records.create(body(f"{new_prefix()}-0")),
        lambda: client.audit.event_types.get(ORDER_CREATED_ID),
    ):
        with pytest.raises(MPTAPIError) as caught:
            call()
        assert_problem(caught.value, 401, "Unauthorized", detail)


TOKENS_FILE = """\
tokens:
  - token: idt:TKN-1111-2222:writer
    actor: {id: USR-1111-2222, name: Jane Doe}
    account: {id: ACC-1111-2222, name: Acme, type: Client}
  - token: idt:TKN-3333-4444:reader
    rights: ["records:read", "event-types:read"]
  - token: idt:TKN-5555-6666:records-only
    rights: ["records:*"]
"""


@pytest.fixture(params=["bundled", "published", "whole"])
def tokens_server(
    request: pytest.FixtureRequest, start_server: Callable[..., Server], tmp_path: Path
) -> Iterator[Server]:
    """A server of each spec started with `--tokens`."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(TOKENS_FILE, encoding="utf-8")
    flags = ["--tokens", str(tokens)]
    if request.param == "published":
        flags += ["--spec", str(reference(PUBLISHED_SPEC))]
    if request.param == "whole":  # the platform's whole document: the audit paths the same
        flags += ["--spec", str(reference(MARKETPLACE_SPEC))]
    yield start_server(*flags)
    close_clients()  # before start_server stops it


def test_tokens_file_gives_401_and_403(
    request: pytest.FixtureRequest, tokens_server: Server
) -> None:
    server = tokens_server
    prefix = new_prefix()

    # a token the file does not list: 401, whatever it looks like
    for unknown in (TOKEN, "idt:TKN-1111-2222:wrong-secret", "anything"):
        with pytest.raises(MPTAPIError) as caught:
            connect(server, unknown).audit.records.fetch_page()
        assert_problem(caught.value, 401, "Unauthorized", "The access token is not valid.")

    # the identity of the file: actor and viewers
    writer = connect(server, "idt:TKN-1111-2222:writer")
    written = create(writer, body(f"{prefix}-0"))
    assert written["actor"] == {
        "id": "USR-1111-2222",
        "name": "Jane Doe",
        "account": {"id": "ACC-1111-2222", "name": "Acme", "accountType": "Client"},
    }
    assert written["viewers"] == [{"id": "ACC-1111-2222", "name": "Acme", "type": "Client"}]

    # read rights only: reads work, writes are 403 naming the missing right
    reader = connect(server, "idt:TKN-3333-4444:reader")
    assert [r.id for r in reader.audit.records.filter(under(prefix)).iterate()] == [written["id"]]
    assert reader.audit.event_types.get(ORDER_CREATED_ID).key == ORDER_CREATED
    with pytest.raises(MPTAPIError) as caught:
        reader.audit.records.create(body(f"{prefix}-1"))
    assert_problem(
        caught.value,
        403,
        "Forbidden",
        "The token is not allowed to do this: the 'records:write' right is missing.",
    )
    with pytest.raises(MPTAPIError) as caught:
        reader.audit.event_types.update(ORDER_CREATED_ID, {"name": "x"})
    assert_problem(
        caught.value,
        403,
        "Forbidden",
        "The token is not allowed to do this: the 'event-types:write' right is missing.",
    )

    # rights for one collection only; an API token without an actor in the file is the actor
    records_only = connect(server, "idt:TKN-5555-6666:records-only")
    own = create(records_only, body(f"{prefix}-2"))
    assert own["actor"] == {**TOKEN_ACTOR, "id": "TKN-5555-6666", "name": "API Token TKN-5555-6666"}
    with pytest.raises(MPTAPIError) as caught:
        records_only.audit.event_types.fetch_page()
    assert_problem(
        caught.value,
        403,
        "Forbidden",
        "The token is not allowed to do this: the 'event-types:read' right is missing.",
    )
    assert [
        r.id for r in writer.audit.records.filter(under(prefix)).order_by("object.id").iterate()
    ] == [
        written["id"],
        own["id"],
    ]
    if spec_of(request, "tokens_server") == "bundled":  # our spec declares 401 and 403
        assert findings(server) == 0


# ---------------------------------------------------------------- the server's self-check


def findings(server: Server) -> int:
    return int(server.health()["responseFindings"])


def test_self_check_accepts_the_problem_answers(
    request: pytest.FixtureRequest, target: Server
) -> None:
    """Every error answer conforms to the spec the server runs; the published spec declares only
    403 and 404, so there only the 404 is checked (the others are 'undocumented')."""
    client = connect(target)
    calls: list[Callable[[], Any]] = [lambda: client.audit.records.get("AUD-0000-0000-0000-0000")]
    if spec_of(request, "target") == "server":
        calls += [
            lambda: client.audit.records.create({"event": 1}),
            lambda: client.audit.records.filter(RQLQuery(bogus=1)).fetch_page(),
            lambda: connect(target, None).audit.records.fetch_page(),
            lambda: client.audit.event_types.update(  # 409: another type's key
                ORDER_CREATED_ID, {"key": "platform.commerce.order.updated"}
            ),
        ]
    before = findings(target)
    for call in calls:
        with pytest.raises(MPTAPIError):
            call()
    assert findings(target) == before


def test_self_check_accepts_select_leaving_out_object(target: Server) -> None:
    client = connect(target)
    created = create(client, body(f"{new_prefix()}-0"))
    before = findings(target)
    client.audit.records.get(created["id"], select=["-object"])
    assert findings(target) == before


# ---------------------------------------------------------------- streaming


def test_stream_reads_what_iterate_reads(client: MPTClient) -> None:
    """Streaming (more in test_streaming.py): the same records, in the same order."""
    prefix = new_prefix()
    created = [create(client, body(f"{prefix}-{n}")) for n in range(5)]
    query = client.audit.records.filter(under(prefix)).order_by("object.id")
    assert [r.id for r in query.stream()] == [r.id for r in query.iterate()]
    assert [r.id for r in query.stream()] == [c["id"] for c in created]
