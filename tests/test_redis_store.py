"""The Redis store beyond the conformance suite: what it answers inside Redis (equalities on
indexed fields, order by an ordered field) gives exactly the memory backend's answers; the
key layout; sessions joined by name across servers; bad URLs and a Redis that cannot be
reached at start-up (a one-line error, the password masked).

The conformance suite (`test_backend_conformance.py`) runs every backend test on Redis too.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from redis_server import RedisServer
from support import MOCKSERVER, free_port

from mockserver.query.expression import expression
from mockserver.query.rql import parse
from mockserver.storage import BackendError, make_backend
from mockserver.storage.backend import Backend, Collection, Search, Shape
from mockserver.storage.encoding import Layout
from mockserver.storage.redis import RedisCollection

RECORDS = "/public/v1/audit/records"
LAYOUT = Layout(
    ("id", "event", "timestamp", "n", "object"), frozenset({"id", "event", "timestamp", "n"})
)
SHAPE = Shape(LAYOUT, ("event", "object.id"), ("timestamp",))


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def pair(redis_url: str, redis_prefix: str) -> Iterator[tuple[Backend, Backend]]:
    """The same records in memory and on Redis."""
    memory = make_backend("memory", 1_000_000)
    stored = make_backend(redis_url, 1_000_000, None, redis_prefix)
    for backend in (memory, stored):
        backend.describe(RECORDS, SHAPE)
    yield memory, stored
    stored.clear()


def records(count: int, seed: int) -> list[dict[str, Any]]:
    """Records with many equal timestamps (runs of ties), a few events and objects."""
    rng = random.Random(seed)
    return [
        {
            "id": f"AUD-{n:05d}",
            "event": rng.choice(["created", "updated", "deleted"]),
            "timestamp": f"2025-01-{rng.randint(1, 9):02d}T00:00:0{rng.randint(0, 3)}Z",
            "n": rng.randint(0, 50),
            "object": {"id": f"ORD-{rng.randint(1, 20)}"},
        }
        for n in range(count)
    ]


def fill(backends: tuple[Backend, Backend], items: list[dict[str, Any]]) -> list[Collection]:
    collections = [backend.open(RECORDS) for backend in backends]
    for item in items:
        for collection in collections:
            collection.insert(item)
    return collections


def ids(raws: Any) -> list[str]:
    return [json.loads(raw)["id"] for raw in raws]


def search(text: str | None = None, order: str = "", offset: int = 0, limit: int = 10) -> Search:
    where = expression([parse(text)], bool) if text else None
    keys = tuple((key.lstrip("-"), key.startswith("-")) for key in order.split(",") if key)
    return Search(where, keys, offset, limit)


def no_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, a Redis search that reads the whole collection fails the test."""

    def scanned(self: RedisCollection) -> Iterator[Any]:
        raise AssertionError("a scan of the whole collection")

    monkeypatch.setattr(RedisCollection, "_pages", scanned)


def test_order_by_timestamp_is_answered_inside_redis_as_memory_answers_it(
    pair: tuple[Backend, Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    memory, stored = fill(pair, records(400, seed=1))
    stored.replace({**json.loads(stored.get("AUD-00007") or b""), "n": 99})  # keeps its place
    memory.replace({**json.loads(memory.get("AUD-00007") or b""), "n": 99})
    no_scan(monkeypatch)
    for order in ("timestamp", "-timestamp"):
        for offset, limit in [(0, 10), (3, 7), (0, 400), (95, 30), (390, 20), (400, 5), (0, 0)]:
            asked = search(None, order, offset, limit)
            want, got = memory.search(asked), stored.search(asked)
            assert (got.total, ids(got.items)) == (want.total, ids(want.items)), (order, offset)
        streamed = stored.stream(search(None, order, 0, 50))
        assert ids(streamed.items) == ids(memory.stream(search(None, order, 0, 50)).items)
    for asked in (
        Search(None, (), 3, sys.maxsize),
        Search(None, (("timestamp", True),), 3, sys.maxsize),
    ):
        want, got = memory.search(asked), stored.search(asked)
        assert (got.total, ids(got.items)) == (want.total, ids(want.items))
        assert ids(stored.stream(asked).items) == ids(memory.stream(asked).items)


def test_equalities_on_indexed_fields_are_answered_inside_redis(
    pair: tuple[Backend, Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    memory, stored = fill(pair, records(300, seed=2))
    for item_id in ("AUD-00010", "AUD-00011"):  # moved between values: places kept
        for collection in (memory, stored):
            item = json.loads(collection.get(item_id) or b"")
            collection.replace({**item, "event": "updated", "object": {"id": "ORD-3"}})
    no_scan(monkeypatch)
    for text in [
        "eq(object.id,ORD-3)",
        "eq(event,updated)",
        "in(event,(created,deleted))",
        "and(eq(event,created),gt(n,20))",
        "and(eq(object.id,ORD-3),eq(event,updated))",
        "eq(object.id,nothing)",
    ]:
        for order in ("", "-timestamp", "n"):
            asked = search(text, order, 2, 25)
            want, got = memory.search(asked), stored.search(asked)
            assert (got.total, ids(got.items)) == (want.total, ids(want.items)), (text, order)
            want, got = memory.stream(asked), stored.stream(asked)
            assert (got.total, ids(got.items)) == (want.total, ids(want.items)), (text, order)


def test_an_ordered_field_holding_other_kinds_is_sorted_as_memory_sorts_it(
    pair: tuple[Backend, Backend],
) -> None:
    items = records(50, seed=3)
    items[5]["timestamp"] = 7  # a number: the index cannot order it, the scan does
    del items[9]["timestamp"]
    memory, stored = fill(pair, items)
    for order in ("timestamp", "-timestamp"):
        asked = search(None, order, 0, 50)
        assert ids(stored.search(asked).items) == ids(memory.search(asked).items)


def test_the_keys_are_under_the_prefix_and_a_namespace(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    backend = make_backend(redis_server.url, 100, None, redis_prefix)
    backend.describe(RECORDS, SHAPE)
    backend.open(RECORDS).insert(records(1, seed=4)[0])
    session = backend.fork("default")
    keys = sorted(key.decode() for key in redis_server.client().scan_iter(f"{redis_prefix}:*"))
    assert keys[0] == f"{redis_prefix}:namespaces"
    base = f"{redis_prefix}:{{base.1}}"
    collection = f"{base}:c:{RECORDS}"
    assert f"{collection}:items" in keys
    assert f"{collection}:order" in keys
    assert f"{collection}:ix:event" in keys
    assert f"{collection}:ix:timestamp" in keys
    assert f"{redis_prefix}:{{session.default}}:c:{RECORDS}:items" in keys
    assert f"{redis_prefix}:{{session.default}}:made" in keys
    assert all(key.startswith(f"{redis_prefix}:") for key in keys)
    assert len(session.open(RECORDS)) == 1


def test_a_named_session_is_joined_by_a_second_server(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """Two servers on one store and prefix: the first makes the session from its start-up
    state, the second joins it; a reset (a fork not joining) makes it afresh for both."""
    first = make_backend(redis_server.url, 100, None, redis_prefix)
    second = make_backend(redis_server.url, 100, None, redis_prefix)
    first.open(RECORDS).insert({"id": "SEED-1"})
    second.open(RECORDS).insert({"id": "OTHER-SEED"})
    mine = first.fork("team", join=True)
    theirs = second.fork("team", join=True)
    mine.open(RECORDS).insert({"id": "NEW-1"})
    assert ids(theirs.open(RECORDS)) == ["SEED-1", "NEW-1"]
    second.fork("team")  # a reset on the second server
    assert ids(mine.open(RECORDS)) == ["OTHER-SEED"]


def test_two_anonymous_forks_are_separate(redis_server: RedisServer, redis_prefix: str) -> None:
    backend = make_backend(redis_server.url, 100, None, redis_prefix)
    backend.open(RECORDS).insert({"id": "A"})
    one, two = backend.fork(), backend.fork()
    one.open(RECORDS).insert({"id": "B"})
    assert ids(two.open(RECORDS)) == ["A"]
    assert ids(one.open(RECORDS)) == ["A", "B"]


def test_a_collection_is_known_again_after_redis_lost_its_data(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """Its first insert into an emptied store registers it again (dump and fork see it)."""
    backend = make_backend(redis_server.url, 100, None, redis_prefix)
    collection = backend.open(RECORDS)
    collection.insert({"id": "A"})
    client = redis_server.client()
    client.delete(*client.keys(f"{redis_prefix}:{{base.*"))
    collection.insert({"id": "B"})
    assert [(d.path, ids(d.items)) for d in backend.dump()] == [(RECORDS, ["B"])]
    assert ids(backend.fork().open(RECORDS)) == ["B"]


# ---------------------------------------------------------------- bad stores


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://u:secret@host/db", "--store mysql://u:***@host/db: not a store this server"),
        ("redis://u:secret@host:port/0", "--store redis://u:***@host:port/0: not a Redis URL"),
        ("redis://127.0.0.1:notaport", "--store redis://127.0.0.1:notaport: not a Redis URL"),
    ],
)
def test_a_bad_url_names_the_option(url: str, said: str) -> None:
    with pytest.raises(BackendError) as raised:
        make_backend(url, 10)
    assert str(raised.value).startswith(said)
    assert "secret" not in str(raised.value)


def test_a_bad_prefix_names_the_option(redis_server: RedisServer) -> None:
    with pytest.raises(BackendError, match="--store-prefix"):
        make_backend(redis_server.url, 10, None, "a{b}")


def started_on(url: str) -> subprocess.CompletedProcess[str]:
    """The command run on the store `url`, when it stops at start-up (its output captured)."""
    return subprocess.run(
        [str(MOCKSERVER), "--port", str(free_port()), "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_redis_unreachable_at_start_up_stops_the_command_naming_the_url() -> None:
    """One line naming the URL, its password masked, and exit 1."""
    port = free_port()  # nothing listens there
    url = f"redis://app:hunter2-secret@127.0.0.1:{port}/0"
    done = started_on(url)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"mockserver: error: --store redis://app:***@127.0.0.1:{port}/0: cannot reach Redis "
        f"(Error 111 connecting to 127.0.0.1:{port}. Connection refused)"
    ]
    assert "hunter2" not in done.stdout + done.stderr


def test_a_bad_store_variable_stops_the_command_naming_the_option() -> None:
    done = subprocess.run(
        [str(MOCKSERVER), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MOCKSERVER_STORE": "postgres://u:pw@db/x", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "mockserver: error: --store postgres://u:***@db/x: not a store this server knows "
        "(memory, redis://, rediss:// or unix://)"
    ]


def test_an_acl_user_with_the_documented_rights_is_enough(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """The ACL line docs/redis.md gives (for this test's prefix) lets the store do it all."""
    user, password = f"mock-{redis_prefix}", "acl-S3cret"
    admin = redis_server.client()
    admin.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", f"~{redis_prefix}:*",
        "+@read", "+@write", "+@scripting", "+ping", "+hello", "+client|setname", "+info",
    )  # fmt: skip
    try:
        url = f"redis://{user}:{password}@127.0.0.1:{redis_server.port}/0"
        backend = make_backend(url, 3, None, redis_prefix)
        backend.describe(RECORDS, SHAPE)
        fill((backend, backend.fork("default")), records(5, seed=5))
        twin = backend.fork()
        assert len(twin.open(RECORDS)) == 3
        kept = records(5, seed=5)[2:]
        found = twin.open(RECORDS).search(search("eq(event,updated)", limit=5))
        assert ids(found.items) == [r["id"] for r in kept if r["event"] == "updated"]
        backend.clear()
        assert [ids(d.items) for d in backend.dump()] == [[]]
        assert backend.health()["url"] == f"redis://{user}:***@127.0.0.1:{redis_server.port}/0"
    finally:
        admin.execute_command("ACL", "DELUSER", user)


def test_a_stream_whose_redis_is_lost_ends_early_without_an_error(redis_prefix: str) -> None:
    """The items are read as the answer is sent: Redis lost meanwhile cuts the stream short
    (its status is already sent), logged, never an exception out of the answer's body."""
    own = RedisServer().start()
    try:
        backend = make_backend(own.url, 10_000, None, redis_prefix)
        collection = backend.open(RECORDS)
        collection.insert_many({"id": f"S-{n:04d}"} for n in range(2500))
        found = collection.stream(Search(None, (), 0, 3000))
        assert found.total == 2500
        items = iter(found.items)
        assert json.loads(next(items))["id"] == "S-0000"
        own.stop()
        rest = list(items)  # the first page (1 000) was read; the next one is lost
        assert len(rest) == 999
    finally:
        own.stop()


@pytest.mark.parametrize("case", ["new", "held", "twice"])
def test_a_batch_insert_gives_what_inserts_one_by_one_give(
    redis_url: str, redis_prefix: str, case: str
) -> None:
    """`insert_many` sends a batch in one script: new items take its bulk path (each key
    written once); a batch holding an id already stored, or one id twice, the item-by-item
    path. Either way the items, their order, the indexes and the evictions past the bound
    are those of the memory backend."""
    evicted: dict[str, list[str]] = {"memory": [], "redis": []}
    memory = make_backend("memory", 150, lambda _, i: evicted["memory"].append(i))
    stored = make_backend(redis_url, 150, lambda _, i: evicted["redis"].append(i), redis_prefix)
    batch = records(200, seed=7)
    if case == "twice":
        batch[120] = {**batch[3], "n": 99}
    for backend in (memory, stored):
        backend.describe(RECORDS, SHAPE)
        if case == "held":
            backend.open(RECORDS).insert(batch[50])
        backend.open(RECORDS).insert_many(batch)
    [mine, theirs] = [list(map(json.loads, b.open(RECORDS))) for b in (memory, stored)]
    assert theirs == mine
    assert len(theirs) == 150
    assert evicted["redis"] == evicted["memory"] != []
    for query in ["eq(event,created)", "eq(object.id,ORD-3)", "gt(n,25)"]:
        search = Search(expression([parse(query)], bool), (("timestamp", True),), 0, 500)
        here, there = [b.open(RECORDS).search(search) for b in (memory, stored)]
        assert there.total == here.total > 0
        assert list(map(json.loads, there.items)) == list(map(json.loads, here.items))
    stored.clear()


def test_items_inserted_in_a_built_batch_are_replaced_and_removed_exactly(
    redis_url: str, redis_prefix: str
) -> None:
    """A batch of new items is made by the server (insertion numbers reserved, index members
    and metas built in Python, `CHANGE`'s `built` mode); Redis reads those metas back to
    change or remove an item: the indexes then answer as memory's do."""
    memory = make_backend("memory", 1_000_000)
    stored = make_backend(redis_url, 1_000_000, None, redis_prefix)
    batch = records(300, seed=11)
    batch[5]["object"] = None  # an index entry of no value
    batch[6]["event"] = 7  # one of another kind
    for backend in (memory, stored):
        backend.describe(RECORDS, SHAPE)
        collection = backend.open(RECORDS)
        collection.insert_many(batch)
        for item in batch[:40:3]:
            collection.replace({**item, "event": "renamed", "object": {"id": "ORD-9"}})
        for item in batch[1:60:4]:
            assert collection.remove(item["id"])
        collection.replace({**batch[6], "event": "created"})
    for query in ["eq(event,created)", "eq(event,renamed)", "eq(object.id,ORD-9)", "gt(n,25)"]:
        search = Search(expression([parse(query)], bool), (("timestamp", True),), 0, 500)
        here, there = [b.open(RECORDS).search(search) for b in (memory, stored)]
        assert there.total == here.total > 0
        assert list(map(json.loads, there.items)) == list(map(json.loads, here.items))
    members = stored.link.client.zcard(stored.open(RECORDS).keys.index("event"))  # type: ignore[attr-defined]
    assert members == 300 - 15  # one per item held, none left behind
    stored.clear()
