"""The storage backend conformance suite: what every `Backend` and `Collection` must do.

Every test runs once per backend (the `backend_factory` fixture's params: memory, Redis, and
Redis on Valkey); a backend added later (Redis was) is one more param and passes this file
unchanged. The backends are only ever
made through `mockserver.storage.make_backend`: nothing here names an implementation.

The search cases run a fixed data set (`DATA`, 15 items of varied shapes: members missing, a
number at an indexed path, a string where numbers are, a 25-digit integer, escapes, non-ASCII
text) under several collection shapes (indexed paths, a declared layout, none), which must
all give the same, exact answers.
"""

from __future__ import annotations

import ast
import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import forget, unique_prefix

import mockserver
from mockserver.query.expression import Expression, expression
from mockserver.query.rql import parse
from mockserver.storage import make_backend
from mockserver.storage.backend import Backend, Collection, Search, Shape
from mockserver.storage.encoding import Layout

Item = dict[str, Any]
Make = Callable[..., Backend]
Evictions = list[tuple[str, str]]

BIG = 1234567890123456789012345  # 25 digits: beyond a double, kept exactly
RECORDS = "/public/v1/audit/records"
NESTED = "/public/v1/orders/{id}/lines"

# ---------------------------------------------------------------- backends


@pytest.fixture
def evictions() -> Evictions:
    """What the backends of one test reported evicted: (collection path, item id), in order."""
    return []


@pytest.fixture(params=["memory", "redis", "valkey"])
def backend_factory(request: pytest.FixtureRequest, evictions: Evictions) -> Iterator[Make]:
    """Makes fresh backends of one kind (`make(max_items=...)`), reporting to `evictions`:
    the embedded one, or Redis (a real redis-server, a key prefix of this test's own), or
    Valkey (the same, on a real valkey-server)."""
    made: list[Backend] = []
    url, prefix, server = "memory", "mockserver", None
    if request.param != "memory":
        server = request.getfixturevalue(f"{request.param}_server")
        url, prefix = server.url, unique_prefix()
    lock = threading.Lock()

    def on_evict(path: str, item_id: str) -> None:
        with lock:
            evictions.append((path, item_id))

    def make(max_items: int = 1_000_000) -> Backend:
        backend = make_backend(url, max_items, on_evict, prefix)
        made.append(backend)
        return backend

    yield make
    for backend in made:  # a shared store (Redis) is left as it was found
        backend.clear()
    if server is not None:
        forget(server, prefix)


@pytest.fixture
def backend(backend_factory: Make) -> Backend:
    return backend_factory()


# ---------------------------------------------------------------- helpers


def anything(path: str) -> bool:
    """A `known` that accepts every field."""
    return bool(path)


def where(*texts: str) -> Expression | None:
    """The checked expression of RQL texts (ANDed), as a search carries it."""
    return expression([parse(text) for text in texts], anything)


def ordering(*keys: str) -> tuple[tuple[str, bool], ...]:
    """`("event", "-n")`: by event ascending, then by n descending."""
    return tuple((key.lstrip("-"), key.startswith("-")) for key in keys)


def ids(raws: Iterable[bytes]) -> list[str]:
    return [json.loads(raw)["id"] for raw in raws]


def rid(*numbers: int) -> list[str]:
    return [f"R-{number:02d}" for number in numbers]


def found(
    collection: Collection,
    *texts: str,
    order: tuple[str, ...] = (),
    offset: int = 0,
    limit: int = 1000,
) -> tuple[int, list[str]]:
    """The total and the ids of one page of a search."""
    result = collection.search(Search(where(*texts), ordering(*order), offset, limit))
    return result.total, ids(result.items)


def streamed(
    collection: Collection, *texts: str, order: tuple[str, ...] = (), limit: int = sys.maxsize
) -> tuple[int, list[str]]:
    result = collection.stream(Search(where(*texts), ordering(*order), 0, limit))
    return result.total, ids(result.items)


def numbered(count: int) -> list[Item]:
    return [{"id": f"N-{n:05d}", "n": n} for n in range(count)]


def filled(
    backend: Backend, shape: Shape, items: Iterable[Item], path: str = RECORDS
) -> Collection:
    backend.describe(path, shape)
    collection = backend.open(path)
    for item in items:
        collection.insert(item)
    return collection


# ---------------------------------------------------------------- the data set

LAYOUT = Layout(
    ("id", "event", "details", "timestamp", "n", "name", "flag", "note", "object", "viewers"),
    frozenset({"id", "event", "details", "timestamp", "n", "name", "flag", "note"}),
)

DATA: list[Item] = [
    {
        "id": "R-01",
        "event": "created",
        "timestamp": "2025-01-01T00:00:00Z",
        "n": 5,
        "name": "Alpha",
        "flag": True,
        "note": "x",
        "object": {"id": "O-1", "name": "Order one"},
        "viewers": [{"id": "U-1", "role": "admin"}, {"id": "U-2", "role": "user"}],
        "tags": ["a", "b"],
    },
    {
        "id": "R-02",
        "event": "updated",
        "timestamp": "2025-01-02T12:00:00+02:00",
        "n": 10,
        "name": "beta",
        "flag": False,
        "note": "",
        "object": {"id": "O-2"},
        "viewers": [{"id": "U-2", "role": "user"}],
        "tags": [],
    },
    {
        "id": "R-03",
        "event": "created",
        "timestamp": "2025-01-03",
        "n": -2.5,
        "name": "Straße 5",
        "note": None,
        "object": {"id": "O-1"},
        "viewers": [],
        "tags": ["b"],
    },
    {
        "id": "R-04",
        "event": "deleted",
        "timestamp": "2024-12-31T23:59:59Z",
        "n": 1000.0,
        "name": 'Gamma "quoted" \\ back\nline',
        "flag": True,
        "object": {"id": 7},  # a number at an indexed path
        "viewers": [{"id": "U-3", "role": "admin"}],
    },
    {
        "id": "R-05",
        "event": 7,  # a number at an indexed path
        "details": 'say ":[ and ":{ and "name":',
        "timestamp": "2025-01-05T08:30:00Z",
        "n": "10",  # a string where the others hold numbers
        "name": "日本語",
        "flag": False,
        "object": {"id": "7"},
        "viewers": [{"id": "U-1", "role": "user"}],
    },
    {
        "id": "R-06",  # no event, no n
        "timestamp": "soon",  # not a date
        "name": "ALPHA",
        "object": {"id": "O-3", "name": "alpha"},
        "viewers": [{"role": "admin"}],
    },
    {
        "id": "R-07",
        "event": "created",
        "timestamp": "2025-01-07T00:00:00Z",
        "n": BIG,
        "name": "delta",
        "flag": True,
        "object": {"id": "O-2"},
        "viewers": [{"id": "U-2", "role": "admin"}, {"id": "U-4", "role": "admin"}],
    },
    {
        "id": "R-08",
        "event": "updated",
        "n": 0,
        "name": "",
        "object": {},
        "tags": ["a"],
    },
    {
        "id": "R-09",
        "event": "Created",
        "timestamp": "2025-01-01T00:00:00+00:00",  # the same instant as R-01's
        "n": 5,
        "name": "alpha beta",
        "object": {"id": "O-1"},
        "viewers": [{"id": "U-5", "role": "user"}],
    },
    {
        "id": "R-10",
        "event": None,
        "timestamp": "2025-01-10T00:00:00Z",
        "n": 7.5,
        "name": "epsilon",
        "object": {"id": "O-4"},
    },
    {
        "id": "R-11",
        "event": "created",
        "timestamp": "2025-01-11T00:00:00Z",
        "n": 10,
        "name": "zeta",
        "flag": False,
        "note": "y",
        "object": {"id": "O-1"},
        "viewers": [{"id": "U-1", "role": "admin"}],
    },
    {"id": "R-12"},  # nothing but an id
    {
        "id": "R-13",
        "event": "deleted",
        "n": -1,
        "name": "Theta",
        "flag": True,
        "object": {"id": "O-5", "meta": {"deep": [1, {"x": True}]}},
    },
    {
        "id": "R-14",
        "event": "updated",
        "timestamp": "2025-01-14T00:00:00.500Z",
        "n": 2,
        "name": "straße",
        "object": {"id": "O-2"},
        "viewers": [{"id": "U-1", "role": "admin"}],
        "tags": ["c"],
    },
    {
        "id": "R-15",
        "event": "created",
        "timestamp": "2025-01-15T00:00:00Z",
        "n": 3,
        "name": "Omega",
        "flag": False,
        "note": "z",
        "object": {"id": "O-5"},
        "viewers": [{"id": "U-2", "role": "user"}, {"id": "U-1", "role": "user"}],
    },
]
ALL = list(range(1, 16))

SHAPES = {
    "indexed": Shape(LAYOUT, ("event", "object.id")),
    "indexed-arrays": Shape(LAYOUT, ("viewers.id", "tags", "name", "n")),
    "layout-only": Shape(LAYOUT),
    "bare": Shape(),
}


@pytest.fixture(params=list(SHAPES))
def records(request: pytest.FixtureRequest, backend: Backend) -> Collection:
    """The data set, in a collection of each shape."""
    return filled(backend, SHAPES[request.param], DATA)


def but(*numbers: int) -> list[int]:
    return [n for n in ALL if n not in numbers]


# (filter, ids of the items found, in insertion order)
SEARCHES: list[tuple[str, list[int]]] = [
    # eq: strings, numbers (a numeric string too), booleans, dates, dotted and array paths
    ("eq(event,created)", [1, 3, 7, 11, 15]),
    ("eq(event,7)", [5]),
    ("eq(n,5)", [1, 9]),
    ("eq(n,10)", [2, 5, 11]),
    ("eq(n,1000)", [4]),
    ("eq(flag,true)", [1, 4, 7, 13]),
    ("eq(flag,false)", [2, 5, 11, 15]),
    ("eq(timestamp,2025-01-01T00:00:00Z)", [1, 9]),
    ("eq(timestamp,2025-01-02T10:00:00Z)", [2]),
    ("eq(name,'Straße 5')", [3]),
    ("eq(name,'Gamma \"quoted\" \\ back\nline')", [4]),
    ("eq(object.id,O-1)", [1, 3, 9, 11]),
    ("eq(object.id,7)", [4, 5]),
    ("eq(viewers.id,U-1)", [1, 5, 11, 14, 15]),
    ("eq(tags,a)", [1, 8]),
    ("eq(object.meta.deep.x,true)", [13]),
    ("eq(event,nothing)", []),
    # ne: the negation of eq (a missing value is not equal)
    ("ne(event,created)", but(1, 3, 7, 11, 15)),
    ("ne(n,10)", but(2, 5, 11)),
    ("ne(viewers.id,U-1)", but(1, 5, 11, 14, 15)),
    ("ne(object.id,O-1)", but(1, 3, 9, 11)),
    # gt, ge, lt, le: numbers with numbers, strings with strings, dates, booleans
    ("gt(n,5)", [2, 4, 7, 10, 11]),
    ("ge(n,5)", [1, 2, 4, 7, 9, 10, 11]),
    ("lt(n,0)", [3, 13]),
    ("le(n,0)", [3, 8, 13]),
    ("le(n,-2.5)", [3]),
    ("lt(n,-2.5)", []),
    ("gt(n,1e24)", [7]),
    ("lt(n,1e25)", [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 13, 14, 15]),
    ("gt(name,delta)", [5, 10, 11, 14]),
    ("le(name,Alpha)", [1, 6, 8]),
    ("gt(timestamp,2025-01-02)", [2, 3, 5, 6, 7, 10, 11, 14, 15]),
    ("lt(timestamp,2025-01-01T01:00:00+01:00)", [4]),
    ("le(timestamp,2025-01-01T01:00:00+01:00)", [1, 4, 9]),
    ("ge(timestamp,2025-01-14T00:00:00.5Z)", [6, 14, 15]),
    ("gt(flag,false)", [1, 4, 7, 13]),
    ("lt(flag,true)", [2, 5, 11, 15]),
    ("gt(object.id,O-4)", [13, 15]),
    # like, ilike: wildcards, case folding (non-ASCII too), escapes in the stored text
    ("like(name,Alpha*)", [1]),
    ("ilike(name,alpha*)", [1, 6, 9]),
    ("ilike(name,ALPHA)", [1, 6]),
    ("ilike(name,*STRASSE*)", [3, 14]),
    ("ilike(name,*straße*)", [3, 14]),
    ("like(name,*STRASSE*)", []),
    ("like(name,Stra*e*)", [3]),
    ("like(name,'*\"quoted\"*')", [4]),
    ("ilike(name,'*\\ BACK*')", [4]),
    ("like(name,*line)", [4]),
    ("like(name,*本*)", [5]),
    ("like(name,*)", but(12)),
    ("like(details,'*\":[*')", [5]),
    ("like(object.name,*one*)", [1]),
    ("ilike(object.name,ALPHA)", [6]),
    ("like(tags,b)", [1, 3]),
    ("ilike(viewers.role,ADMIN)", [1, 4, 6, 7, 11, 14]),
    # in, out
    ("in(event,(created,updated))", [1, 2, 3, 7, 8, 11, 14, 15]),
    ("in(event,created,updated)", [1, 2, 3, 7, 8, 11, 14, 15]),
    ("in(event,(7,deleted))", [4, 5, 13]),
    ("in(event,(created,null()))", [1, 3, 6, 7, 10, 11, 12, 15]),
    ("out(event,(created,updated))", [4, 5, 6, 9, 10, 12, 13]),
    ("in(object.id,(O-2,O-1))", [1, 2, 3, 7, 9, 11, 14]),
    ("in(viewers.id,(U-3,U-4))", [4, 7]),
    ("in(n,(5,10))", [1, 2, 5, 9, 11]),
    ("in(note,(empty()))", but(1, 11, 15)),
    # and, or, not (top-level expressions are ANDed too)
    ("and(eq(event,created),eq(object.id,O-1))", [1, 3, 11]),
    ("and(in(event,(created,updated)),in(object.id,(O-1,O-2)))", [1, 2, 3, 7, 11, 14]),
    ("or(eq(event,deleted),lt(n,0))", [3, 4, 13]),
    ("not(eq(event,created))", but(1, 3, 7, 11, 15)),
    ("and(eq(event,created),not(eq(flag,true)))", [3, 11, 15]),
    ("or(and(eq(event,updated),gt(n,1)),eq(object.id,O-5))", [2, 13, 14, 15]),
    # any, all over an array of objects
    ("any(viewers,eq(role,admin))", [1, 4, 6, 7, 11, 14]),
    ("all(viewers,eq(role,admin))", [3, 4, 6, 7, 11, 14]),
    ("any(viewers,and(eq(role,user),eq(id,U-1)))", [5, 15]),
    ("any(viewers,eq(id,null()))", [6]),
    ("not(any(viewers,eq(role,admin)))", [2, 3, 5, 8, 9, 10, 12, 13, 15]),
    # null(), empty()
    ("eq(event,null())", [6, 10, 12]),
    ("ne(event,null())", but(6, 10, 12)),
    ("eq(note,empty())", but(1, 11, 15)),
    ("ne(note,empty())", [1, 11, 15]),
    ("eq(note,null())", but(1, 2, 11, 15)),
    ("eq(tags,empty())", but(1, 3, 8, 14)),
    ("eq(name,empty())", [8, 12]),
    ("eq(object.id,null())", [8, 12]),
]


@pytest.mark.parametrize(("text", "expected"), SEARCHES, ids=[text for text, _ in SEARCHES])
def test_search_finds_exactly_the_matching_items(
    records: Collection, text: str, expected: list[int]
) -> None:
    """Every RQL operator, on every shape of collection: the exact ids, in insertion order."""
    assert found(records, text) == (len(expected), rid(*expected))


def test_top_level_expressions_are_anded(records: Collection) -> None:
    assert found(records, "eq(event,created)", "gt(n,4)") == (3, rid(1, 7, 11))
    assert found(records, "in(object.id,(O-1,O-2))", "ne(event,created)") == (3, rid(2, 9, 14))


def test_no_filter_finds_every_item(records: Collection) -> None:
    assert found(records) == (15, rid(*ALL))


# ---------------------------------------------------------------- order

ORDERS: list[tuple[tuple[str, ...], list[int]]] = [
    # missing values first ascending; numbers before strings; ties in insertion order
    (("n",), [6, 12, 3, 13, 8, 14, 15, 1, 9, 10, 2, 11, 4, 7, 5]),
    # descending: the exact reverse of the ranks, ties still in insertion order
    (("-n",), [5, 7, 4, 2, 11, 10, 1, 9, 15, 14, 8, 13, 3, 6, 12]),
    (("flag",), [3, 6, 8, 9, 10, 12, 14, 2, 5, 11, 15, 1, 4, 7, 13]),
    (("-flag",), [1, 4, 7, 13, 2, 5, 11, 15, 3, 6, 8, 9, 10, 12, 14]),
    (("name",), [12, 8, 6, 1, 4, 15, 3, 13, 9, 2, 7, 10, 14, 11, 5]),
    (("object.id",), [8, 12, 4, 5, 1, 3, 9, 11, 2, 7, 14, 6, 10, 13, 15]),
    (("event", "-n"), [10, 6, 12, 5, 9, 7, 11, 1, 15, 3, 4, 13, 2, 14, 8]),
    (("-event", "n"), [8, 14, 2, 13, 4, 3, 15, 1, 11, 7, 9, 5, 6, 12, 10]),
    (("object.id", "-name"), [8, 12, 4, 5, 11, 9, 3, 1, 14, 7, 2, 6, 10, 13, 15]),
]


@pytest.mark.parametrize(
    ("order", "expected"), ORDERS, ids=[",".join(order) for order, _ in ORDERS]
)
def test_search_orders(records: Collection, order: tuple[str, ...], expected: list[int]) -> None:
    assert found(records, order=order) == (15, rid(*expected))


def test_order_with_a_filter_and_a_page(records: Collection) -> None:
    # created, by n descending: R-07 (BIG), R-11 (10), R-01 (5), R-15 (3), R-03 (-2.5)
    assert found(records, "eq(event,created)", order=("-n",)) == (5, rid(7, 11, 1, 15, 3))
    assert found(records, "eq(event,created)", order=("-n",), offset=1, limit=2) == (
        5,
        rid(11, 1),
    )
    assert found(records, "eq(object.id,O-1)", order=("-n", "name")) == (4, rid(11, 1, 9, 3))


# ---------------------------------------------------------------- paging


@pytest.mark.parametrize(
    ("offset", "limit", "expected"),
    [
        (0, 5, [1, 2, 3, 4, 5]),
        (10, 10, [11, 12, 13, 14, 15]),
        (14, 1, [15]),
        (15, 10, []),
        (100, 10, []),
        (0, 0, []),
        (3, 0, []),
        (0, 15, ALL),
    ],
)
def test_paging_counts_every_match(
    records: Collection, offset: int, limit: int, expected: list[int]
) -> None:
    assert found(records, offset=offset, limit=limit) == (15, rid(*expected))


def test_paging_a_filtered_search(records: Collection) -> None:
    assert found(records, "eq(event,created)", offset=2, limit=2) == (5, rid(7, 11))
    assert found(records, "eq(event,created)", offset=4, limit=2) == (5, rid(15))
    assert found(records, "eq(event,created)", offset=5, limit=2) == (5, [])
    assert found(records, "eq(event,created)", limit=0) == (5, [])
    assert found(records, "eq(event,nothing)", offset=3, limit=0) == (0, [])


# ---------------------------------------------------------------- stream


def test_stream_gives_every_match(records: Collection) -> None:
    assert streamed(records) == (15, rid(*ALL))
    assert streamed(records, "eq(event,created)") == (5, rid(1, 3, 7, 11, 15))
    assert streamed(records, "eq(event,created)", limit=5) == (5, rid(1, 3, 7, 11, 15))
    assert streamed(records, "eq(event,nothing)") == (0, [])


def test_stream_stops_at_the_limit_and_counts_what_it_holds(records: Collection) -> None:
    """`total` is how many items the stream holds (at most the limit), not every match."""
    assert streamed(records, "eq(event,created)", limit=3) == (3, rid(1, 3, 7))
    assert streamed(records, limit=1) == (1, rid(1))
    assert streamed(records, limit=0) == (0, [])
    assert streamed(records, "eq(event,created)", order=("-n",), limit=2) == (2, rid(7, 11))
    assert streamed(records, order=("n",), limit=4) == (4, rid(6, 12, 3, 13))


def test_stream_in_order(records: Collection) -> None:
    assert streamed(records, "eq(event,created)", order=("-n",)) == (5, rid(7, 11, 1, 15, 3))
    assert streamed(records, order=("-flag", "name"), limit=15) == (
        15,
        rid(1, 4, 13, 7, 15, 2, 11, 5, 12, 8, 6, 3, 9, 10, 14),
    )


# ---------------------------------------------------------------- collections


def test_describe_then_open(backend: Backend) -> None:
    backend.describe(RECORDS, SHAPES["indexed"])
    collection = backend.open(RECORDS)
    assert collection.name == RECORDS
    assert collection.template == RECORDS  # the path itself by default
    assert backend.open(RECORDS) is collection
    assert backend.open(RECORDS, RECORDS) is collection
    assert len(collection) == 0
    assert list(collection) == []
    assert found(collection, "eq(event,created)") == (0, [])


def test_a_collection_never_described_still_works(backend: Backend) -> None:
    collection = backend.open("/never/described")
    collection.insert({"id": "A", "event": "x"})
    assert found(collection, "eq(event,x)") == (1, ["A"])


def test_nested_paths_are_separate_collections(backend: Backend) -> None:
    backend.describe(NESTED, Shape(LAYOUT, ("event",)))
    first = backend.open("/public/v1/orders/X-1/lines", NESTED)
    second = backend.open("/public/v1/orders/X-2/lines", NESTED)
    assert first is not second
    assert (first.name, first.template) == ("/public/v1/orders/X-1/lines", NESTED)
    assert (second.name, second.template) == ("/public/v1/orders/X-2/lines", NESTED)
    assert backend.open("/public/v1/orders/X-1/lines", NESTED) is first
    first.insert({"id": "L-1", "event": "a"})
    first.insert({"id": "L-2", "event": "b"})
    second.insert({"id": "L-1", "event": "b"})  # the same id, another collection
    assert ids(first) == ["L-1", "L-2"]
    assert ids(second) == ["L-1"]
    assert json.loads(first.get("L-1") or b"null")["event"] == "a"
    assert json.loads(second.get("L-1") or b"null")["event"] == "b"
    assert found(first, "eq(event,b)") == (1, ["L-2"])
    assert found(second, "eq(event,b)") == (1, ["L-1"])
    assert first.remove("L-1") is True
    assert second.get("L-1") is not None
    assert len(first) == 1
    assert len(second) == 1


def test_open_from_16_threads_gives_one_collection(backend: Backend) -> None:
    backend.describe(RECORDS, SHAPES["indexed"])
    opened: list[Collection] = []

    def work(number: int) -> None:
        collection = backend.open(RECORDS)
        collection.insert({"id": f"T-{number:02d}", "event": "x"})
        opened.append(collection)

    run_threads(16, work)
    assert len(opened) == 16
    assert all(collection is opened[0] for collection in opened)
    assert len(backend.open(RECORDS)) == 16
    assert found(backend.open(RECORDS), "eq(event,x)")[0] == 16


def test_insert_get_replace_remove(backend: Backend) -> None:
    collection = filled(backend, SHAPES["indexed"], [])
    raw = collection.insert({"id": "A", "event": "x", "n": 1})
    assert json.loads(raw) == {"id": "A", "event": "x", "n": 1}
    assert collection.get("A") == raw
    assert collection.get("B") is None
    assert len(collection) == 1

    replaced = collection.replace({"id": "A", "event": "y", "n": 2})
    assert replaced is not None
    assert json.loads(replaced) == {"id": "A", "event": "y", "n": 2}
    assert collection.get("A") == replaced
    assert found(collection, "eq(event,x)") == (0, [])
    assert found(collection, "eq(event,y)") == (1, ["A"])

    assert collection.replace({"id": "B", "event": "y"}) is None  # never inserts
    assert collection.get("B") is None
    assert len(collection) == 1
    assert found(collection, "eq(event,y)") == (1, ["A"])

    assert collection.remove("A") is True
    assert collection.remove("A") is False
    assert collection.remove("never") is False
    assert collection.get("A") is None
    assert len(collection) == 0
    assert list(collection) == []
    assert found(collection, "eq(event,y)") == (0, [])


def test_add_inserts_only_an_id_not_held(backend_factory: Make, evictions: Evictions) -> None:
    backend = backend_factory(max_items=2)
    collection = filled(backend, SHAPES["indexed"], DATA[:2])
    assert collection.add({**DATA[0], "name": "again"}) is None  # held: nothing changes
    assert ids(collection) == rid(1, 2)
    assert json.loads(collection.get("R-01") or b"null") == DATA[0]
    assert found(collection, "eq(name,again)") == (0, [])
    assert evictions == []
    raw = collection.add(DATA[2])
    assert raw is not None
    assert json.loads(raw) == DATA[2]
    assert collection.get("R-03") == raw
    assert ids(collection) == rid(2, 3)
    assert evictions == [(RECORDS, "R-01")]
    assert found(collection, "eq(event,created)") == (1, rid(3))


def test_threads_adding_the_same_ids_add_each_once(backend: Backend) -> None:
    collection = filled(backend, SHAPES["indexed"], [])
    added: list[str] = []
    lock = threading.Lock()

    def work(number: int) -> None:
        for n in range(100):
            if collection.add({"id": f"A-{n:03d}", "event": f"t{number}"}) is not None:
                with lock:
                    added.append(f"A-{n:03d}")

    run_threads(8, work)
    assert sorted(added) == [f"A-{n:03d}" for n in range(100)]
    assert len(collection) == 100


def test_insert_many_is_insert_of_each(backend_factory: Make, evictions: Evictions) -> None:
    """Past the bound too: the oldest go, reported in order; an id given twice moves last."""
    backend = backend_factory(max_items=2500)
    collection = filled(backend, SHAPES["indexed"], [])
    items = [{**item, "event": f"e{item['n'] % 3}"} for item in numbered(3000)]
    assert collection.insert_many(iter([*items, items[600]])) == 3001
    kept = [item["id"] for item in items[500:] if item is not items[600]] + ["N-00600"]
    assert ids(collection) == kept
    assert evictions == [(RECORDS, item["id"]) for item in items[:500]]
    assert found(collection, "eq(event,e0)", limit=3) == (
        sum(1 for item in items[500:] if item["n"] % 3 == 0),
        ["N-00501", "N-00504", "N-00507"],
    )
    assert collection.insert_many([]) == 0


def test_iteration_is_oldest_first(backend: Backend) -> None:
    collection = filled(backend, SHAPES["indexed"], DATA)
    raws = list(collection)
    assert ids(raws) == rid(*ALL)
    assert [json.loads(raw) for raw in raws] == DATA
    assert raws == [collection.get(item["id"]) for item in DATA]
    assert len(collection) == 15


def test_insert_of_an_existing_id_replaces_it_as_the_newest(backend: Backend) -> None:
    """Inserting an item whose id is held replaces it, and the item moves to the newest place
    (iteration, unordered searches, and eviction see it as just inserted); `replace` instead
    keeps its place."""
    collection = filled(backend, SHAPES["indexed"], DATA[:4])
    collection.insert({**DATA[0], "name": "again"})
    assert ids(collection) == rid(2, 3, 4, 1)
    assert len(collection) == 4
    assert json.loads(collection.get("R-01") or b"null")["name"] == "again"
    assert found(collection, "eq(event,created)") == (2, rid(3, 1))
    assert found(collection, "eq(name,Alpha)") == (0, [])
    assert found(collection, "eq(name,again)") == (1, rid(1))


def test_replace_keeps_the_place_of_the_item(records: Collection) -> None:
    """`replace` leaves an item where it was: in iteration and in every unordered search,
    whether or not the search is answered by an index."""
    assert records.replace({**DATA[0], "name": "renamed"}) is not None
    assert ids(records) == rid(*ALL)
    assert found(records, "eq(event,created)") == (5, rid(1, 3, 7, 11, 15))
    assert found(records, "eq(object.id,O-1)") == (4, rid(1, 3, 9, 11))
    assert found(records, "eq(viewers.id,U-1)") == (5, rid(1, 5, 11, 14, 15))


def test_replace_keeps_the_place_of_the_item_in_an_indexed_search(backend: Backend) -> None:
    """The same with only strings at the indexed paths (the data set also holds numbers there,
    which an index answers differently) and a value that leaves and comes back."""
    collection = filled(
        backend,
        SHAPES["indexed"],
        [{"id": f"S-{n}", "event": "x", "object": {"id": "O"}} for n in range(1, 4)],
    )
    assert collection.replace({"id": "S-1", "event": "x", "object": {"id": "O"}, "n": 1})
    assert collection.replace({"id": "S-2", "event": "y", "object": {"id": "O"}})
    assert collection.replace({"id": "S-2", "event": "x", "object": {"id": "O"}})
    assert ids(collection) == ["S-1", "S-2", "S-3"]
    assert found(collection) == (3, ["S-1", "S-2", "S-3"])
    assert found(collection, "eq(event,x)") == (3, ["S-1", "S-2", "S-3"])
    assert found(collection, "eq(object.id,O)") == (3, ["S-1", "S-2", "S-3"])
    assert found(collection, "in(event,(x,y))") == (3, ["S-1", "S-2", "S-3"])


def test_replace_moving_an_item_between_indexed_values_keeps_its_place(
    records: Collection,
) -> None:
    changed = {**DATA[1], "event": "created", "object": {"id": "O-1"}}
    assert records.replace(changed) is not None
    assert ids(records) == rid(*ALL)
    assert found(records, "eq(event,created)") == (6, rid(1, 2, 3, 7, 11, 15))
    assert found(records, "eq(event,updated)") == (2, rid(8, 14))
    assert found(records, "eq(object.id,O-1)") == (5, rid(1, 2, 3, 9, 11))
    assert found(records, "eq(object.id,O-2)") == (2, rid(7, 14))


def test_clear_a_collection(backend: Backend) -> None:
    collection = filled(backend, SHAPES["indexed"], DATA)
    other = filled(backend, SHAPES["indexed"], DATA[:2], "/other")
    collection.clear()
    assert len(collection) == 0
    assert list(collection) == []
    assert collection.get("R-01") is None
    assert found(collection) == (0, [])
    assert found(collection, "eq(event,created)") == (0, [])
    assert found(collection, "eq(object.id,O-1)") == (0, [])
    assert ids(other) == rid(1, 2)  # the others are untouched
    collection.insert(DATA[2])
    assert found(collection, "eq(event,created)") == (1, rid(3))
    assert backend.open(RECORDS) is collection


# ---------------------------------------------------------------- JSON round trip

ODD: list[Item] = [
    {
        "id": "J-1",
        "text": "naïve café — 日本語 — emoji 🎉 — Straße",
        "escapes": 'quote " backslash \\ slash / newline \n tab \t cr \r nul \x00 bell \x07',
        "separators": "\u2028\u2029",
        "tricky": '":{ ":[ "text": } ] ,',
    },
    {
        "id": "J-2",
        "big": BIG,
        "negative": -BIG,
        "nested": {"a": {"b": [BIG, {"c": [1, 2, [3, [4]]]}]}},
        "zero": 0,
    },
    {
        "id": "J-3",
        "floats": [0.1, -2.5, 1e-7, 1.5e300, 123456.789, 0.0],
        "booleans": [True, False],
        "null": None,
        "empty": {"object": {}, "array": [], "text": ""},
    },
    {
        "id": 'J-4 "quoted" \\ ünïcödé',
        "list": [None, True, 1, 1.5, "s", [], {}],
    },
]


def test_items_round_trip_as_json(backend: Backend) -> None:
    collection = filled(backend, SHAPES["layout-only"], ODD)
    for item in ODD:
        raw = collection.get(item["id"])
        assert raw is not None
        assert json.loads(raw) == item
    assert [json.loads(raw) for raw in collection] == ODD
    nested = json.loads(collection.get("J-2") or b"null")
    assert nested["big"] == BIG
    assert type(nested["big"]) is int
    assert nested["nested"]["a"]["b"][0] == BIG
    assert [json.loads(raw) for raw in collection.search(Search(limit=100)).items] == ODD


def test_insert_returns_the_bytes_stored(backend: Backend) -> None:
    collection = filled(backend, SHAPES["layout-only"], [])
    for item in ODD:
        raw = collection.insert(item)
        assert isinstance(raw, bytes)
        assert json.loads(raw) == item
        assert collection.get(item["id"]) == raw
    replaced = collection.replace({**ODD[1], "big": -BIG})
    assert replaced is not None
    assert json.loads(replaced)["big"] == -BIG
    assert collection.get("J-2") == replaced


def test_searching_odd_values(backend: Backend) -> None:
    collection = filled(backend, Shape(LAYOUT, ("text", "id")), ODD)
    assert found(collection, "gt(big,1e24)") == (1, ["J-2"])
    assert found(collection, "lt(negative,-1e24)") == (1, ["J-2"])
    assert found(collection, "eq(nested.a.b.c,2)") == (1, ["J-2"])
    assert found(collection, "ilike(text,*STRASSE)") == (1, ["J-1"])
    assert found(collection, "like(escapes,'*backslash \\ slash*')") == (1, ["J-1"])
    assert found(collection, "like(tricky,'*\":{ \":[*')") == (1, ["J-1"])
    assert found(collection, "eq(null,null())") == (4, [item["id"] for item in ODD])
    assert found(collection, "ne(null,null())") == (0, [])
    assert found(collection, "eq(empty.text,empty())") == (4, [item["id"] for item in ODD])
    assert found(collection, "eq(empty.object,empty())") == (4, [item["id"] for item in ODD])
    assert found(collection, "ne(booleans,empty())") == (1, ["J-3"])
    assert found(collection, "eq(floats,0.1)") == (1, ["J-3"])
    assert found(collection, "eq(id,'J-4 \"quoted\" \\ ünïcödé')") == (
        1,
        ['J-4 "quoted" \\ ünïcödé'],
    )
    assert found(collection, "eq(list,s)") == (1, ['J-4 "quoted" \\ ünïcödé'])


def test_backslashes_at_the_end_of_declared_members(backend: Backend) -> None:
    """Strings ending in backslashes, before other members the layout declares."""
    items: list[Item] = [
        {"id": "B-1", "details": "one \\", "name": "\\\\", "note": "x\\"},
        {"id": "B-2", "details": '\\"', "name": "two", "note": "x"},
    ]
    collection = filled(backend, SHAPES["layout-only"], items)
    assert [json.loads(raw) for raw in collection] == items
    assert found(collection, "eq(note,x)") == (1, ["B-2"])
    assert found(collection, "like(note,x*)") == (2, ["B-1", "B-2"])
    assert found(collection, "eq(name,two)") == (1, ["B-2"])
    assert found(collection, "like(name,'*\\')") == (1, ["B-1"])
    assert found(collection, "like(details,'*\\')") == (1, ["B-1"])
    assert found(collection, "like(details,'*\"')") == (1, ["B-2"])
    assert found(collection, order=("-note",)) == (2, ["B-1", "B-2"])


def test_a_member_holding_another_kind_than_the_layout_declares(backend: Backend) -> None:
    """The layout describes the items a collection expects; an item that holds an array or an
    object where it declares a scalar (as a hand-written `--state-file` may) is still
    searched by its JSON, as it would be without a layout."""
    items: list[Item] = [
        {"id": "K-1", "event": ["created", "updated"], "name": {"first": "Ann"}},
        {"id": "K-2", "event": "created", "name": "Bob"},
        {"id": "K-3", "object": {"event": "created", "name": "nested"}},
    ]
    for shape in ("indexed", "layout-only", "bare"):
        collection = filled(backend, SHAPES[shape], items, f"/kinds/{shape}")
        assert found(collection, "eq(event,created)") == (2, ["K-1", "K-2"]), shape
        assert found(collection, "eq(event,updated)") == (1, ["K-1"]), shape
        assert found(collection, "eq(event,null())") == (1, ["K-3"]), shape
        assert found(collection, "eq(name.first,Ann)") == (1, ["K-1"]), shape
        assert found(collection, "like(name,*)") == (1, ["K-2"]), shape
        assert found(collection, "eq(object.name,nested)") == (1, ["K-3"]), shape


# ---------------------------------------------------------------- eviction


def test_eviction_takes_the_oldest_first(backend_factory: Make, evictions: Evictions) -> None:
    backend = backend_factory(max_items=3)
    collection = filled(backend, SHAPES["indexed"], DATA[:5])
    assert len(collection) == 3
    assert ids(collection) == rid(3, 4, 5)
    assert evictions == [(RECORDS, "R-01"), (RECORDS, "R-02")]
    assert collection.get("R-01") is None
    assert collection.get("R-02") is None
    assert found(collection) == (3, rid(3, 4, 5))


def test_the_bound_is_per_collection(backend_factory: Make, evictions: Evictions) -> None:
    backend = backend_factory(max_items=3)
    first = filled(backend, SHAPES["indexed"], DATA[:3])
    second = filled(backend, SHAPES["indexed"], DATA[3:6], "/other")
    assert (len(first), len(second)) == (3, 3)
    assert evictions == []
    second.insert(DATA[6])
    assert evictions == [("/other", "R-04")]
    assert ids(first) == rid(1, 2, 3)


def test_eviction_in_a_nested_collection_names_its_path(
    backend_factory: Make, evictions: Evictions
) -> None:
    backend = backend_factory(max_items=1)
    backend.describe(NESTED, Shape(LAYOUT, ("event",)))
    lines = backend.open("/public/v1/orders/X-9/lines", NESTED)
    lines.insert({"id": "L-1"})
    lines.insert({"id": "L-2"})
    assert evictions == [("/public/v1/orders/X-9/lines", "L-1")]


def test_re_insert_at_the_bound_evicts_nothing(backend_factory: Make, evictions: Evictions) -> None:
    """A re-inserted id replaces its item (no eviction) and becomes the newest: the next
    insert past the bound evicts the item that is now the oldest."""
    backend = backend_factory(max_items=3)
    collection = filled(backend, SHAPES["indexed"], DATA[:3])
    collection.insert({**DATA[0], "name": "again"})
    assert evictions == []
    assert ids(collection) == rid(2, 3, 1)
    collection.insert(DATA[3])
    assert evictions == [(RECORDS, "R-02")]
    assert ids(collection) == rid(3, 1, 4)
    assert collection.replace(DATA[4]) is None  # replace never inserts, never evicts
    assert evictions == [(RECORDS, "R-02")]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_indexes_forget_evicted_items(
    backend_factory: Make, evictions: Evictions, shape: str
) -> None:
    backend = backend_factory(max_items=5)
    collection = filled(backend, SHAPES[shape], DATA)
    assert ids(collection) == rid(11, 12, 13, 14, 15)
    assert evictions == [(RECORDS, item_id) for item_id in rid(*range(1, 11))]
    assert found(collection, "eq(event,created)") == (2, rid(11, 15))
    assert found(collection, "eq(object.id,O-1)") == (1, rid(11))
    assert found(collection, "in(object.id,(O-1,O-2,7))") == (2, rid(11, 14))
    assert found(collection, "eq(event,7)") == (0, [])
    assert found(collection, "eq(viewers.id,U-1)") == (3, rid(11, 14, 15))
    assert found(collection, "eq(tags,a)") == (0, [])
    assert found(collection, "eq(name,Alpha)") == (0, [])
    assert found(collection, "eq(n,10)") == (1, rid(11))


def test_thousands_of_inserts_past_the_bound(backend_factory: Make, evictions: Evictions) -> None:
    backend = backend_factory(max_items=100)
    collection = filled(backend, Shape(LAYOUT, ("event",)), [])
    items = [{**item, "event": f"e{item['n'] % 7}"} for item in numbered(3000)]
    for item in items:
        collection.insert(item)
        assert len(collection) <= 100
    assert len(collection) == 100
    kept = [item["id"] for item in items[-100:]]
    assert ids(collection) == kept
    assert evictions == [(RECORDS, item["id"]) for item in items[:-100]]
    expected = [item["id"] for item in items[-100:] if item["event"] == "e3"]
    assert found(collection, "eq(event,e3)") == (len(expected), expected)
    assert found(collection, "lt(n,2900)") == (0, [])
    assert found(collection, order=("-n",), limit=2) == (100, ["N-02999", "N-02998"])


# ---------------------------------------------------------------- fork


def test_fork_holds_the_same_items(backend: Backend) -> None:
    records = filled(backend, SHAPES["indexed"], DATA)
    lines = filled(backend, SHAPES["indexed"], DATA[:2], "/public/v1/orders/X-1/lines")
    twin = backend.fork()
    twin_records = twin.open(RECORDS)
    assert twin_records is not records
    assert list(twin_records) == list(records)
    assert list(twin.open("/public/v1/orders/X-1/lines")) == list(lines)
    for text, expected in SEARCHES:
        assert found(twin_records, text) == (len(expected), rid(*expected)), text


def test_changes_after_a_fork_stay_on_their_side(backend: Backend) -> None:
    original = filled(backend, SHAPES["indexed"], DATA)
    twin = backend.fork().open(RECORDS)

    original.insert({"id": "R-99", "event": "created", "object": {"id": "O-1"}})
    original.replace({**DATA[0], "event": "deleted"})
    original.remove("R-03")
    assert found(original, "eq(event,created)") == (4, rid(7, 11, 15, 99))
    assert found(original, "eq(event,deleted)") == (3, rid(1, 4, 13))
    assert found(original, "eq(object.id,O-1)") == (4, rid(1, 9, 11, 99))
    assert found(twin, "eq(event,created)") == (5, rid(1, 3, 7, 11, 15))
    assert found(twin, "eq(event,deleted)") == (2, rid(4, 13))
    assert found(twin, "eq(object.id,O-1)") == (4, rid(1, 3, 9, 11))
    assert twin.get("R-99") is None
    assert json.loads(twin.get("R-01") or b"null") == DATA[0]
    assert len(twin) == 15
    assert len(original) == 15

    twin.insert({"id": "T-1", "event": "updated"})
    twin.replace({**DATA[6], "event": "updated"})
    twin.remove("R-11")
    assert found(twin, "eq(event,updated)") == (5, [*rid(2, 7, 8, 14), "T-1"])
    assert found(original, "eq(event,updated)") == (3, rid(2, 8, 14))
    assert original.get("T-1") is None
    assert original.get("R-11") is not None

    twin.clear()
    assert len(twin) == 0
    assert len(original) == 15
    assert found(original, "eq(event,created)") == (4, rid(7, 11, 15, 99))


def test_a_fork_of_a_fork_and_clearing_the_original(backend: Backend) -> None:
    original = filled(backend, SHAPES["indexed"], DATA)
    first = backend.fork()
    second = first.fork()
    backend.clear()
    assert len(original) == 0
    assert found(first.open(RECORDS), "eq(object.id,O-1)") == (4, rid(1, 3, 9, 11))
    first.open(RECORDS).remove("R-01")
    assert found(second.open(RECORDS), "eq(object.id,O-1)") == (4, rid(1, 3, 9, 11))
    assert found(first.open(RECORDS), "eq(object.id,O-1)") == (3, rid(3, 9, 11))


def test_a_fork_knows_the_shapes_described(backend: Backend) -> None:
    backend.describe(NESTED, Shape(LAYOUT, ("event",)))
    twin = backend.fork()
    lines = twin.open("/public/v1/orders/X-1/lines", NESTED)
    assert lines.template == NESTED
    lines.insert({"id": "L-1", "event": "a"})
    lines.insert({"id": "L-2", "event": 1})
    assert found(lines, "eq(event,a)") == (1, ["L-1"])
    assert found(lines, "eq(event,1)") == (1, ["L-2"])


# ---------------------------------------------------------------- clear, dump, load


def test_clear_empties_every_collection(backend: Backend) -> None:
    records = filled(backend, SHAPES["indexed"], DATA)
    lines = filled(backend, SHAPES["indexed"], DATA[:3], "/public/v1/orders/X-1/lines")
    backend.clear()
    for collection in (records, lines):
        assert len(collection) == 0
        assert list(collection) == []
        assert found(collection) == (0, [])
        assert found(collection, "eq(event,created)") == (0, [])
    assert backend.open(RECORDS) is records
    assert all(not list(dumped.items) for dumped in backend.dump())
    records.insert(DATA[0])
    assert found(records, "eq(event,created)") == (1, rid(1))


def stocked(backend: Backend) -> None:
    """Records, two nested collections (one through its template), one left empty."""
    filled(backend, SHAPES["indexed"], DATA)
    backend.describe(NESTED, Shape(LAYOUT, ("event",)))
    first = backend.open("/public/v1/orders/X-1/lines", NESTED)
    second = backend.open("/public/v1/orders/X-2/lines", NESTED)
    for item in DATA[4:8]:
        first.insert(item)
    second.insert(DATA[9])
    first.remove("R-06")
    backend.open("/public/v1/empty")


def dumped(backend: Backend) -> dict[str, tuple[str, list[bytes]]]:
    """What `dump` gives, by path (the collections holding items)."""
    seen: dict[str, tuple[str, list[bytes]]] = {}
    for collection in backend.dump():
        assert collection.path not in seen
        items = list(collection.items)
        if items:
            seen[collection.path] = (collection.template, items)
    return seen


def test_dump_gives_every_collection_oldest_first(backend: Backend) -> None:
    stocked(backend)
    dump = dumped(backend)
    assert {path: (template, ids(items)) for path, (template, items) in dump.items()} == {
        RECORDS: (RECORDS, rid(*ALL)),
        "/public/v1/orders/X-1/lines": (NESTED, rid(5, 7, 8)),
        "/public/v1/orders/X-2/lines": (NESTED, rid(10)),
    }
    assert [json.loads(raw) for raw in dump[RECORDS][1]] == DATA
    assert dump[RECORDS][1] == list(backend.open(RECORDS))


def test_load_gives_the_same_collections(backend: Backend, backend_factory: Make) -> None:
    stocked(backend)
    backend.open(RECORDS).insert({**DATA[0], "name": "moved"})  # R-01 now the newest
    fresh = backend_factory()
    for template in (RECORDS, NESTED):
        fresh.describe(template, Shape(LAYOUT, ("event", "object.id")))
    for path, (template, items) in dumped(backend).items():
        count = fresh.load(path, template, (json.loads(raw) for raw in items))
        assert count == len(items)
    assert dumped(fresh) == dumped(backend)
    for path in ("/public/v1/orders/X-1/lines", "/public/v1/orders/X-2/lines", RECORDS):
        loaded, held = fresh.open(path), backend.open(path)
        assert loaded.template == held.template
        assert list(loaded) == list(held)
        for text, _ in SEARCHES:
            assert found(loaded, text) == found(held, text), (path, text)
        for order, _ in ORDERS:
            assert found(loaded, order=order) == found(held, order=order), (path, order)
    assert ids(fresh.open(RECORDS))[-1] == "R-01"


def test_load_replaces_what_the_collection_held(backend: Backend) -> None:
    collection = filled(backend, SHAPES["indexed"], [{"id": "OLD-1", "event": "created"}])
    collection.insert({"id": "R-02", "event": "gone"})
    count = backend.load(RECORDS, RECORDS, iter(DATA[:3]))
    assert count == 3
    assert backend.open(RECORDS) is collection
    assert ids(collection) == rid(1, 2, 3)
    assert collection.get("OLD-1") is None
    assert found(collection, "eq(event,created)") == (2, rid(1, 3))
    assert found(collection, "eq(event,gone)") == (0, [])
    assert backend.load(RECORDS, RECORDS, []) == 0
    assert len(collection) == 0


def test_load_into_a_nested_collection(backend: Backend) -> None:
    backend.describe(NESTED, Shape(LAYOUT, ("event",)))
    assert backend.load("/public/v1/orders/X-3/lines", NESTED, DATA[:2]) == 2
    lines = backend.open("/public/v1/orders/X-3/lines", NESTED)
    assert lines.template == NESTED
    assert found(lines, "eq(event,updated)") == (1, rid(2))


# ---------------------------------------------------------------- concurrency


def run_threads(count: int, work: Callable[[int], None]) -> None:
    """`work(n)` in `count` threads started together; the first error of any is raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            barrier.wait()
            work(number)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_threads_inserting_and_searching_lose_nothing(backend: Backend) -> None:
    collection = filled(backend, SHAPES["indexed"], [])
    per_thread = 250

    def work(number: int) -> None:
        for n in range(per_thread):
            collection.insert({"id": f"T{number}-{n:04d}", "event": f"t{number}", "n": n})
            if n % 50 == 0:
                total, found_ids = found(collection, f"eq(event,t{number})", limit=per_thread)
                assert total == n + 1
                assert found_ids == [f"T{number}-{k:04d}" for k in range(n + 1)]
                found(collection, "gt(n,240)", order=("-n",), limit=5)

    run_threads(8, work)
    assert len(collection) == 8 * per_thread
    assert sorted(ids(collection)) == sorted(
        f"T{number}-{n:04d}" for number in range(8) for n in range(per_thread)
    )
    for number in range(8):
        assert found(collection, f"eq(event,t{number})", limit=0) == (per_thread, [])
    assert found(collection, "eq(n,7)", limit=0) == (8, [])


def test_threads_past_the_bound_evict_exactly(backend_factory: Make, evictions: Evictions) -> None:
    backend = backend_factory(max_items=500)
    collection = filled(backend, SHAPES["indexed"], [])

    def work(number: int) -> None:
        for n in range(250):
            collection.insert({"id": f"T{number}-{n:03d}", "event": f"t{number}"})

    run_threads(8, work)
    kept = ids(collection)
    evicted = [item_id for _, item_id in evictions]
    assert len(kept) == 500
    assert len(evicted) == 1500
    assert {path for path, _ in evictions} == {RECORDS}
    assert set(kept) | set(evicted) == {f"T{t}-{n:03d}" for t in range(8) for n in range(250)}
    assert not set(kept) & set(evicted)
    for number in range(8):  # each thread's oldest items went, in the order it made them
        mine = [item_id for item_id in evicted if item_id.startswith(f"T{number}-")]
        assert mine == [f"T{number}-{n:03d}" for n in range(len(mine))]
    total = sum(found(collection, f"eq(event,t{number})", limit=0)[0] for number in range(8))
    assert total == 500


# ---------------------------------------------------------------- the seam


MEMORY = "mockserver.storage." + "memory"


def names_memory(source: str, package: str) -> list[int]:
    """The lines of a module (in `package`) that import the memory backend, or name it for
    `importlib`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, `level - 1` packages up
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        if any(name == MEMORY or name.startswith(MEMORY + ".") for name in names):
            lines.append(getattr(node, "lineno", 0))
    return lines


def test_only_storage_names_the_memory_backend() -> None:
    """No module outside `mockserver/storage/` imports `mockserver.storage.memory`: the rest
    of the server reaches storage through `make_backend` and the protocols."""
    for source, package in [
        (f"import {MEMORY}", "mockserver"),
        (f"from {MEMORY} import Anything", "mockserver.http"),
        ("from mockserver.storage import memory", "mockserver"),
        ("from ..storage import memory", "mockserver.sessions"),
        ("from ..storage.memory import Anything", "mockserver.sessions"),
        ("from .memory import Anything", "mockserver.storage"),
        (f"importlib.import_module('{MEMORY}')", "mockserver"),
    ]:
        assert names_memory(source, package) == [1], source  # the check finds each way
    assert names_memory("from mockserver.storage import make_backend", "mockserver") == []
    assert names_memory("from .memory import x", "mockserver.sessions") == []

    root = Path(mockserver.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent)
        if relative.parts[:2] == ("mockserver", "storage"):
            continue
        source = path.read_text(encoding="utf-8")
        if "memory" in source:  # otherwise it cannot name it
            package = ".".join(relative.with_suffix("").parts[:-1])
            offenders += [f"{relative}:{line}" for line in names_memory(source, package)]
    assert offenders == []
