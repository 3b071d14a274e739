"""Each process's copy of what it reads by id from Redis (`--read-cache-bytes`,
`storage.redis_cache`): a value read once is served without a round trip; Redis's message
about a change by any client is taken in before the next look; a read that spans a change is
not kept; a flush, a lost Redis, a change of the process's own forget at once; the copy keeps
within its bytes; a request that changed what a copy may hold waits for one more round trip
before its answer. Then two servers (apps) on one store with copies stay exact: a change made
on one, a fault rule added on one, a reset, are seen at once on the other."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from redis_server import RedisServer, count_round_trips, forget, hold_first_journal_write
from redis_server import unique_prefix as new_prefix
from support import AUTH, EVENT_TYPES, RECORDS, Server, new_record

from mockserver.app import create_app
from mockserver.settings import Settings
from mockserver.storage import redis_cache
from mockserver.storage.redis_connection import Link, Packed

MIB = 2**20


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def _hget(key: str, field: str) -> bytes:
    return Packed("HGET", key).with_one(field)


def _link(url: str, size: int = MIB) -> Link:
    """A link with a copy whose listener is open (else the first read opens it)."""
    link = Link(url, size)
    assert link.cache is not None
    link.cache.open()
    return link


def _kept(link: Link, key: str, field: str) -> bytes | None:
    """The value as a request reads it: from the copy, else from Redis (kept)."""
    return link.cached(key, field) or link.read_kept(key, field, _hget(key, field))


def test_a_value_read_once_is_served_again_without_a_round_trip(
    redis_server: RedisServer, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"{redis_prefix}:h"
    writer = redis_server.client()
    writer.hset(key, "a", b"one")
    link = _link(redis_server.url)
    assert link.cached(key, "a") is None
    assert link.read_kept(key, "a", _hget(key, "a")) == b"one"
    trips = count_round_trips(monkeypatch)
    assert [link.cached(key, "a") for _ in range(3)] == [b"one"] * 3
    assert trips == []
    assert link.cache is not None
    assert link.cache.state()[0] == 1


def test_a_change_by_any_client_is_seen_by_the_next_look_after_a_round_trip(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """The fence: once the changing client has had one more answer from Redis, the message is
    waiting for every listener, so the next look misses and reads the new value; 200 times."""
    key = f"{redis_prefix}:h"
    other = redis_server.client()
    other.hset(key, "a", b"0")
    link = _link(redis_server.url)
    for n in range(1, 201):
        assert _kept(link, key, "a") == str(n - 1).encode()
        assert link.cached(key, "a") == str(n - 1).encode()
        other.hset(key, "a", str(n).encode())
        other.ping()  # the changing request's one more round trip
        assert link.cached(key, "a") is None
    assert _kept(link, key, "a") == b"200"


def test_a_script_and_a_delete_are_changes_too(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    key = f"{redis_prefix}:h"
    other = redis_server.client()
    other.hset(key, "a", b"1")
    link = _link(redis_server.url)
    assert _kept(link, key, "a") == b"1"
    other.eval("redis.call('HSET', KEYS[1], 'b', 'x')", 1, key)  # another field, same key
    other.ping()
    assert link.cached(key, "a") is None
    assert _kept(link, key, "a") == b"1"
    other.delete(key)
    other.ping()
    assert link.cached(key, "a") is None
    assert _kept(link, key, "a") is None


def test_a_read_that_spans_a_change_is_not_kept(
    redis_server: RedisServer, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The value is read, then another client changes it before the reader keeps it: the
    message taken in first means the value read may be old, so it is not kept."""
    from mockserver.storage import redis_connection

    key = f"{redis_prefix}:h"
    other = redis_server.client()
    other.hset(key, "a", b"old")
    link = _link(redis_server.url)
    assert link.read_kept(key, "a", _hget(key, "a")) == b"old"  # the listener is up
    link.changed(key)  # forgotten: the next read goes to Redis
    real = redis_connection._tracked

    def changed_meanwhile(*args: Any) -> list[Any]:
        answers = real(*args)
        other.hset(key, "a", b"new")
        other.ping()
        return answers

    monkeypatch.setattr(redis_connection, "_tracked", changed_meanwhile)
    assert link.read_kept(key, "a", _hget(key, "a")) == b"old"  # read before the change
    monkeypatch.undo()
    assert link.cached(key, "a") is None
    assert _kept(link, key, "a") == b"new"


def test_a_change_of_the_process_s_own_is_forgotten_at_once(
    redis_server: RedisServer, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without waiting for Redis's message (its listener made deaf here)."""
    key = f"{redis_prefix}:h"
    redis_server.client().hset(key, "a", b"1")
    link = _link(redis_server.url)
    assert _kept(link, key, "a") == b"1"
    monkeypatch.setattr(redis_cache.ReadCache, "_drain", lambda self: None)
    link.changed(key)
    assert link.cached(key, "a") is None
    assert link.take_changed() is True  # the request fences before its answer
    assert link.take_changed() is False


def test_a_flush_and_a_lost_redis_forget_everything(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(redis_cache, "RETRY_AFTER", 0.0)
    caplog.set_level(logging.INFO, logger="mockserver")
    other = own_redis.client()
    other.hset("k", "a", b"1")
    link = _link(own_redis.url)
    assert _kept(link, "k", "a") == b"1"
    other.flushdb()
    other.ping()
    assert link.cached("k", "a") is None
    other.hset("k", "a", b"2")
    assert _kept(link, "k", "a") == b"2"
    assert link.cached("k", "a") == b"2"
    own_redis.stop()
    assert link.cached("k", "a") is None  # the listener closed: nothing held is trusted
    assert link.cache is not None
    assert link.cache.state()[:2] == (0, 0)
    own_redis.start()
    own_redis.client().hset("k", "a", b"3")
    assert _kept(link, "k", "a") == b"3"  # read plainly, the listener opened meanwhile
    assert link.cached("k", "a") is None
    assert _kept(link, "k", "a") == b"3"  # read on connections told again, and kept
    assert link.cached("k", "a") == b"3"
    own_redis.client().hset("k", "a", b"4")
    own_redis.client().ping()
    assert link.cached("k", "a") is None
    said = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("read cache: Redis's messages lost") for line in said)
    listening = [line for line in said if line.startswith("read cache: listening")]
    assert len(listening) == 2  # at first, and again once Redis was back


def test_the_copy_keeps_within_its_bytes(redis_server: RedisServer, redis_prefix: str) -> None:
    key = f"{redis_prefix}:h"
    redis_server.client().hset(key, mapping={f"f{n}": b"x" * 1000 for n in range(20)})
    redis_server.client().hset(key, "big", b"y" * 20_000)
    link = _link(redis_server.url, 10_000)
    cache = link.cache
    assert cache is not None
    for n in range(20):
        assert _kept(link, key, f"f{n}") == b"x" * 1000
        assert cache.state()[1] <= 10_000
    held, _, _ = cache.state()
    assert 5 <= held < 20
    assert link.cached(key, "f19") is not None
    assert link.cached(key, "f0") is None  # the oldest went first
    assert _kept(link, key, "big") == b"y" * 20_000  # larger than the copy: read, not kept
    assert link.cached(key, "big") is None


# ---------------------------------------------------------------- through the app


def _app(url: str, prefix: str, behind: bool = True) -> Any:
    settings = Settings(
        store=url,
        store_prefix=prefix,
        seed_records=3,
        read_cache_bytes=MIB,
        journal_write_behind=behind,
    )
    return create_app(settings)


def test_a_get_by_id_from_the_copy_costs_no_round_trip(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = new_prefix()
    api = _app(redis_server.url, prefix).test_client()
    record = api.get(f"{RECORDS}?limit=1", headers=AUTH).get_json()["data"][0]
    path = f"{RECORDS}/{record['id']}"
    for _ in range(2):  # read as the listener opens, then read and kept
        assert api.get(path, headers=AUTH).get_json() == record
    trips = count_round_trips(monkeypatch)
    for _ in range(3):
        assert api.get(path, headers=AUTH).get_json() == record
    assert trips == []  # neither the item nor the rules' version: the journal goes behind
    monkeypatch.undo()
    copy = api.get("/_mock/health").get_json()["store"]["readCache"]
    assert copy["values"] == 2  # the item and the rules' version
    assert copy["bytes"] > len(api.get(path, headers=AUTH).data)
    assert (copy["bytesLimit"], copy["listening"]) == (MIB, True)
    forget(redis_server, prefix)


def test_a_change_waits_for_its_fence_and_an_insert_does_not(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written behind, a request does not wait for its journal entry; one that changed what a
    copy may hold does (the entry's write is its one more round trip): its answer is held while
    the write is."""
    prefix = new_prefix()
    app = _app(redis_server.url, prefix)
    api = app.test_client()
    kind = api.get(EVENT_TYPES, headers=AUTH).get_json()["data"][0]
    shared = app.extensions["mockserver"].sessions.shared
    assert shared.writer.flush()
    created = api.post(RECORDS, json=new_record(), headers=AUTH)  # an insert: no fence
    assert created.status_code == 201
    spied = hold_first_journal_write(monkeypatch, shared)
    answers: list[int] = []
    changing = threading.Thread(
        target=lambda: answers.append(
            api.put(f"{EVENT_TYPES}/{kind['id']}", json={"name": "X"}, headers=AUTH).status_code
        )
    )
    changing.start()
    assert spied.held.wait(10)
    changing.join(0.5)
    assert answers == []  # held with its fence
    spied.let_go.set()
    changing.join(10)
    assert answers == [200]
    forget(redis_server, prefix)


def test_two_apps_with_copies_see_each_other_s_changes_at_once(
    redis_server: RedisServer,
) -> None:
    """Each a server of its own (its link, its copy, its listener) on one store and prefix."""
    prefix = new_prefix()
    one = _app(redis_server.url, prefix).test_client()
    two = _app(redis_server.url, prefix).test_client()
    kind = one.get(EVENT_TYPES, headers=AUTH).get_json()["data"][0]
    path = f"{EVENT_TYPES}/{kind['id']}"
    for n in range(30):
        writer, reader = (one, two) if n % 2 else (two, one)
        assert reader.get(path, headers=AUTH).status_code == 200  # held in the copy
        assert writer.put(path, json={"name": f"name {n}"}, headers=AUTH).status_code == 200
        assert reader.get(path, headers=AUTH).get_json()["name"] == f"name {n}"

    record = one.post(RECORDS, json=new_record(), headers=AUTH).get_json()
    item = f"{RECORDS}/{record['id']}"
    assert [two.get(item, headers=AUTH).status_code for _ in range(2)] == [200, 200]
    rule = {"method": "GET", "path": item, "status": 503, "times": 2}
    assert one.post("/_mock/faults", json=rule).status_code == 201
    statuses = [two.get(item, headers=AUTH).status_code, one.get(item, headers=AUTH).status_code]
    assert [*statuses, two.get(item, headers=AUTH).status_code] == [503, 503, 200]
    assert one.post("/_mock/reset").status_code in (200, 204)
    assert two.get(item, headers=AUTH).status_code == 404  # the reset's records are others
    forget(redis_server, prefix)


def test_two_servers_of_two_processes_with_copies_stay_exact(
    start_server: Any, own_redis: RedisServer
) -> None:
    """The console script, each worker process with its copy; requests alternate between the
    servers, each change seen by the next request on the other; reads of what does not change
    are the copies'."""
    more = ["--processes", "2", "--read-cache-bytes", str(MIB), "--journal-write-behind"]
    servers: list[Server] = [
        start_server("--store", own_redis.url, "--store-prefix", "p", *more) for _ in range(2)
    ]
    kinds = requests.get(servers[0].api_url + "/audit/event-types", headers=AUTH, timeout=10)
    path = f"/audit/event-types/{kinds.json()['data'][0]['id']}"
    with requests.Session() as first, requests.Session() as second:
        clients = [(first, servers[0]), (second, servers[1])]
        for n in range(60):
            (writer, at), (reader, other) = clients[n % 2], clients[1 - n % 2]
            for _ in range(3):  # read, kept, then from the copy
                assert reader.get(other.api_url + path, headers=AUTH, timeout=10).ok
            changed = writer.put(at.api_url + path, json={"name": f"n{n}"}, headers=AUTH)
            assert changed.status_code == 200
            seen = reader.get(other.api_url + path, headers=AUTH, timeout=10)
            assert seen.json()["name"] == f"n{n}"
        own_redis.client().config_resetstat()
        for session, server in clients * 25:  # nothing changes: the copies answer
            assert session.get(server.api_url + path, headers=AUTH, timeout=10).ok
    stats: Any = own_redis.client().info("commandstats")
    assert stats.get("cmdstat_hget", {"calls": 0})["calls"] <= 8  # 2 a process, at most
