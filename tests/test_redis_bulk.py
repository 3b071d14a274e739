"""A batch of new items on Redis (`storage.redis_bulk`: seeding, `--state-file`): written by
plain commands in one transaction when nothing stands in the way, by the script when an
eviction is due or the collection changed between the check and the writes, item by item
when an id is held; whichever way, what is stored is what the memory backend holds, and
every index entry is an item's."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis_server import RedisServer
from test_redis_store import RECORDS, SHAPE, records

from mockserver.query.expression import expression
from mockserver.query.rql import parse
from mockserver.storage import make_backend
from mockserver.storage.backend import Backend, Search
from mockserver.storage.redis import RedisBackend
from mockserver.storage.redis_bulk import Numbers
from mockserver.storage.redis_connection import Link

Sent = list[tuple[str, bool]]  # the first command of each `calls`, and `again`
QUERIES = ["eq(event,created)", "eq(object.id,ORD-3)", "gt(n,25)"]


def recorded(backend: Backend, after: Callable[[Sequence[Any], bool], None] | None = None) -> Sent:
    """The commands the backend's link sends (`Link.calls`), the first of each send named;
    `after` runs once each send is answered (or before, raising, to lose it)."""
    assert isinstance(backend, RedisBackend)
    link = backend.link
    calls = link.calls
    sent: Sent = []

    def spy(commands: Sequence[Any], again: bool = True) -> list[Any]:
        sent.append((str(commands[0][0]).upper(), again))
        answers = calls(commands, again)
        if after is not None:
            after(commands, again)
        return answers

    link.calls = spy  # type: ignore[method-assign]
    return sent


def same_as_memory(stored: Backend, items: list[dict[str, Any]], bound: int = 10**6) -> None:
    """The items, their order and the indexes' answers are memory's; one entry per item in
    each index."""
    memory = make_backend("memory", bound)
    memory.describe(RECORDS, SHAPE)
    memory.open(RECORDS).insert_many(items)
    [mine, theirs] = [list(map(json.loads, b.open(RECORDS))) for b in (memory, stored)]
    assert theirs == mine
    for query in QUERIES:
        search = Search(expression([parse(query)], bool), (("timestamp", True),), 0, 500)
        here, there = [b.open(RECORDS).search(search) for b in (memory, stored)]
        assert there.total == here.total > 0
        assert list(map(json.loads, there.items)) == list(map(json.loads, here.items))
    assert isinstance(stored, RedisBackend)
    client: Any = stored.link.client
    keys = stored.open(RECORDS).keys
    assert client.zcard(keys.index("event")) == client.hlen(keys.meta) == len(mine)


@pytest.fixture
def stored(redis_server: RedisServer, redis_prefix: str) -> Backend:
    backend = make_backend(redis_server.url, 10**6, None, redis_prefix)
    backend.describe(RECORDS, SHAPE)
    return backend


def test_new_items_are_written_in_a_transaction_without_a_script(stored: Backend) -> None:
    """Each batch (2 000 items): its check (`WATCH`, `HMGET`, `ZCARD`), then its writes in
    one `MULTI`/`EXEC`; the insertion numbers reserved twice for three batches (2 000,
    then 4 000)."""
    sent = recorded(stored)
    items = records(4500, seed=3)
    assert stored.open(RECORDS).insert_many(items) == 4500
    names = [name for name, _ in sent]  # two threads: the builder's, the sender's
    assert {name: names.count(name) for name in names} == {"INCRBY": 2, "WATCH": 3, "MULTI": 3}
    assert ("MULTI", False) in sent
    assert ("MULTI", True) not in sent  # a transaction is never sent twice
    same_as_memory(stored, items)


def test_a_collection_changed_between_the_check_and_the_writes_goes_by_the_script(
    stored: Backend, redis_server: RedisServer
) -> None:
    """Another server's insert after a batch's check aborts its transaction (`WATCH`): the
    script then checks again and writes the batch; nothing is written twice."""
    assert isinstance(stored, RedisBackend)
    other = RedisBackend(Link(redis_server.url), stored.namespace)
    other.describe(RECORDS, SHAPE)
    early = {"id": "AUD-90000", "event": "created", "timestamp": "2025-01-01T00:00:00Z"}
    done: list[str] = []

    def meanwhile(commands: Sequence[Any], again: bool) -> None:
        if commands[0][0] == "WATCH" and not done:
            done.append("inserted")
            other.open(RECORDS).insert(early | {"n": 1, "object": {"id": "ORD-3"}})

    sent = recorded(stored, meanwhile)
    items = records(1000, seed=5)
    stored.open(RECORDS).insert_many(items)
    assert [name for name, _ in sent] == ["INCRBY", "WATCH", "MULTI", "EVALSHA"]
    kept = list(map(json.loads, stored.open(RECORDS)))
    assert kept[-1]["id"] == "AUD-90000"  # numbered after the numbers the batch reserved
    same_as_memory(stored, [*items, early | {"n": 1, "object": {"id": "ORD-3"}}])


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_transaction_whose_connection_is_lost_goes_by_the_script(
    stored: Backend, when: str
) -> None:
    """The connection lost with the transaction sent (before Redis ran it, or after, its
    answer lost): it is not sent again (its `WATCH` went with the connection); the script
    checks and writes, and finds the ids held when Redis had run it (then item by item:
    each item written once)."""
    assert isinstance(stored, RedisBackend)
    link = stored.link
    calls = link.calls
    lost: list[str] = []

    def losing(commands: Sequence[Any], again: bool = True) -> list[Any]:
        if commands[0][0] == "MULTI" and not lost:
            lost.append("lost")
            if when == "after":
                calls(commands, again)
            raise RedisConnectionError("Connection closed by server.")
        return calls(commands, again)

    link.calls = losing  # type: ignore[method-assign]
    items = records(800, seed=9)
    stored.open(RECORDS).insert_many(items)
    assert lost == ["lost"]
    same_as_memory(stored, items)


def test_a_batch_past_the_bound_goes_by_the_script_which_evicts(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """Under the bound a batch goes in a transaction; the batch that would pass it goes by
    the script, which evicts the oldest in the same step (reported in order); a whole batch
    (2 000 items) too."""
    evicted: dict[str, list[str]] = {"memory": [], "redis": []}
    stored = make_backend(
        redis_server.url, 2500, lambda _, i: evicted["redis"].append(i), redis_prefix
    )
    memory = make_backend("memory", 2500, lambda _, i: evicted["memory"].append(i))
    stored.describe(RECORDS, SHAPE)
    memory.describe(RECORDS, SHAPE)
    sent = recorded(stored)
    items = records(4500, seed=13)
    for backend in (memory, stored):
        backend.open(RECORDS).insert_many(items)
    names = [name for name, _ in sent]
    loaded = [at for at, name in enumerate(names) if name == "SCRIPT"]  # Redis lacked it
    kept = [name for at, name in enumerate(names) if at + 1 not in loaded]  # its first try
    scripted = [name for name in kept if name in ("MULTI", "EVALSHA")]
    assert scripted == ["MULTI", "EVALSHA", "EVALSHA"]
    assert evicted["redis"] == evicted["memory"] == [item["id"] for item in items[:2000]]
    assert list(map(json.loads, stored.open(RECORDS))) == items[2000:]


def test_numbers_are_reserved_ahead_in_growing_blocks(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """The first block is the first batch's size (a small insert reserves what it uses),
    each next one twice the last, up to 16 batches; numbers are consecutive within a block
    and never given twice, across `Numbers` of one key."""
    link = Link(redis_server.url)
    key = f"{redis_prefix}:seq"
    reserved: list[int] = []
    call = link.call

    def spy(*command: Any) -> Any:
        reserved.append(int(command[2]))
        return call(*command)

    link.call = spy  # type: ignore[method-assign]
    first, second = Numbers(link, key, 10), Numbers(link, key, 10)
    assert [first.take(3), first.take(10), first.take(10)] == [1, 4, 14]
    assert reserved == [3, 10, 20]
    assert second.take(10) == 34  # after the 33 the first reserved
    taken = [first.take(10) for _ in range(60)]
    assert taken[:2] == [24, 44]  # the rest of its block, then a block after the second's
    assert len(set(taken)) == 60
    assert taken == sorted(taken)
    assert reserved == [3, 10, 20, 10, 40, 80, 160, 160, 160]  # 1 + 4 + 8 + 3 x 16 takes


# A meta as it was made before it kept the escaped value alone: each value's whole member.
OLD_META = r"""
for _, item in ipairs(redis.call('HKEYS', KEYS[1])) do
  local meta = cmsgpack.unpack(redis.call('HGET', KEYS[1], item))
  local tag = string.format('%016x', meta[1])
  for i = 2, #meta do
    if type(meta[i]) == 'string' then meta[i] = meta[i] .. '\0' .. tag .. '\0' .. item end
  end
  redis.call('HSET', KEYS[1], item, cmsgpack.pack(meta))
end
"""


@pytest.mark.parametrize("made", ["now", "before"])
def test_items_are_changed_and_evicted_exactly_whichever_meta_they_hold(
    redis_server: RedisServer, redis_prefix: str, made: str
) -> None:
    """A meta holds each indexed value (escaped); one made before held its whole index
    member: either way a replace, a remove and an eviction take out exactly the item's
    index entries."""
    stored = make_backend(redis_server.url, 2300, None, redis_prefix)
    memory = make_backend("memory", 2300)
    items = records(2100, seed=17)
    items[4]["event"] = ""  # an empty value: its member starts with the NUL
    for backend in (memory, stored):
        backend.describe(RECORDS, SHAPE)
        backend.open(RECORDS).insert_many(items)
    assert isinstance(stored, RedisBackend)
    client: Any = stored.link.client
    keys = stored.open(RECORDS).keys
    if made == "before":
        client.eval(OLD_META, 1, keys.meta)
    for backend in (memory, stored):
        collection = backend.open(RECORDS)
        for item in items[:40:3]:
            collection.replace({**item, "event": "renamed", "object": {"id": "ORD-9"}})
        for item in items[1:60:4]:
            assert collection.remove(item["id"])
        collection.insert_many(records(2400, seed=19)[2100:])  # 300 more: 85 evicted
    assert client.zcard(keys.index("event")) == client.zcard(keys.index("object.id")) == 2300
    [mine, theirs] = [list(map(json.loads, b.open(RECORDS))) for b in (memory, stored)]
    assert theirs == mine
    for query in [*QUERIES, "eq(event,renamed)", "eq(object.id,ORD-9)"]:
        search = Search(expression([parse(query)], bool), (("timestamp", True),), 0, 3000)
        here, there = [b.open(RECORDS).search(search) for b in (memory, stored)]
        assert there.total == here.total
        assert list(map(json.loads, there.items)) == list(map(json.loads, here.items))
