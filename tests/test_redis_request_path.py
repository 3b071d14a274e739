"""An API request's path on Redis: the commands it sends (the rules' version, the item; the
journal entry with the coverage count, one script, by the process's writer; no SCRIPT
EXISTS), the connection they go on (answers in order, an error answer raised
once all are read, a restart and a flushed script cache survived), and the turn at the
server's Python work handed on while the request waits on Redis
(`http.fair_queue.Turns.aside`)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis_server import (
    RedisServer,
    count_round_trips,
    forget,
    hold_first_journal_write,
    unique_prefix,
)
from support import AUTH, RECORDS, new_record

from mockserver.app import create_app
from mockserver.http.fair_queue import Turns
from mockserver.sessions import shared as shared_module
from mockserver.sessions.journal import Entry, Trail
from mockserver.sessions.shared import Shared, SharedJournal
from mockserver.settings import Settings
from mockserver.storage.backend import StoreUnavailable
from mockserver.storage.redis_connection import Link


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def _calls(client: Any) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(found["calls"]) for name, found in stats.items()}


def _sent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name, 0)}


def test_a_get_by_id_sends_the_version_the_item_and_one_script(own_redis: RedisServer) -> None:
    prefix = unique_prefix()
    app = create_app(Settings(store=own_redis.url, store_prefix=prefix, seed_records=3))
    api = app.test_client()
    listed = api.get(f"{RECORDS}?limit=1", headers=AUTH)
    record = listed.get_json()["data"][0]["id"]
    assert api.get(f"{RECORDS}/{record}", headers=AUTH).status_code == 200  # scripts loaded
    writer = app.extensions["mockserver"].sessions.shared.writer
    assert writer.flush()
    looking = own_redis.client()
    before = _calls(looking)
    assert api.get(f"{RECORDS}/{record}", headers=AUTH).status_code == 200
    assert writer.flush()  # the journal entry and the count, written by the process's writer
    sent = _sent(before, _calls(looking))
    sent.pop("info", None)  # this test's own INFO
    sent.pop("hset", None)  # the session's last use, written once a second
    sent.pop("hgetall", None)  # every server's sessions, looked at once a second
    scripted = {"incrby", "xadd", "hincrby", "zadd", "xlen"}  # inside the journal's script
    assert {k: v for k, v in sent.items() if k not in scripted} == {"hget": 2, "evalsha": 1}
    journal = api.get("/_mock/requests", headers=AUTH).get_json()
    assert [entry["path"] for entry in journal["data"]][-1] == f"{RECORDS}/{record}"
    coverage = api.get("/_mock/coverage").get_json()
    by_operation = {op["path"] + " " + op["method"]: op for op in coverage["operations"]}
    assert by_operation[f"{RECORDS}/{{id}} GET"]["statuses"]["200"] == 2  # in the same script
    forget(own_redis, prefix)


def test_the_front_hands_its_turn_on_while_a_request_waits_on_redis(
    own_redis: RedisServer,
) -> None:
    prefix = unique_prefix()
    app = create_app(Settings(store=own_redis.url, store_prefix=prefix))
    state = app.extensions["mockserver"]
    link = state.sessions.initial.link
    front = app.wsgi_app.app  # SessionPrefix -> Front
    assert link.aside == front.turns.aside
    forget(own_redis, prefix)


def test_a_turn_set_aside_goes_to_the_next_and_comes_back_before_newcomers() -> None:
    line = Turns(patience=30)
    order: list[str] = []
    waiting_on_redis = threading.Event()
    redis_answers = threading.Event()

    def first() -> None:
        turn = line.take()
        with line.aside():  # waits on Redis: the turn goes on
            waiting_on_redis.set()
            redis_answers.wait(5)
        order.append("first, back from Redis")
        line.leave(turn)

    def later(name: str) -> None:
        turn = line.take()
        order.append(name)
        if name == "second":
            redis_answers.set()  # the first returns while the second holds the turn
            deadline = time.monotonic() + 5
            while line.waiting < 2 and time.monotonic() < deadline:
                time.sleep(0.001)
        line.leave(turn)

    one = threading.Thread(target=first)
    one.start()
    assert waiting_on_redis.wait(5)
    third = threading.Thread(target=later, args=("third",))
    line_before = line.take()  # the turn is free: held here while the others queue
    assert line_before
    second = threading.Thread(target=later, args=("second",))
    second.start()
    deadline = time.monotonic() + 5
    while line.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    third.start()
    while line.waiting < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    line.leave(line_before)
    for thread in (one, second, third):
        thread.join(5)
    assert order == ["second", "first, back from Redis", "third"]
    assert line.take()  # free again
    assert line.waiting == 0


def test_aside_without_a_turn_changes_nothing() -> None:
    line = Turns(patience=30)
    with line.aside():
        assert line.waiting == 0
    assert line.take()


def test_a_link_s_connection_answers_in_order_and_survives_errors_and_restarts(
    own_redis: RedisServer,
) -> None:
    link = Link(own_redis.url)
    assert link.calls([("SET", "k", "1"), ("GET", "k"), ("GET", "nothing")]) == [b"OK", b"1", None]
    with pytest.raises(Exception, match="WRONGTYPE"):
        link.calls([("HGET", "k", "f"), ("INCR", "k")])  # the error raised once both are read
    assert link.call("GET", "k") == b"2"  # the INCR after the error was done, and read
    script = link.client.register_script("return ARGV[1] .. KEYS[1]")
    assert link.run(script, ["a"], ["b"]) == b"ba"
    link.call("SCRIPT", "FLUSH")
    assert link.run(script, ["c"], ["d"]) == b"dc"  # loaded again
    own_redis.stop()
    own_redis.start()
    assert link.call("PING") == b"PONG"  # a closed connection opened again, once
    assert link.run(script, ["e"], ["f"]) == b"fe"  # the restarted Redis lost the script
    others: list[Any] = []
    thread = threading.Thread(target=lambda: others.append(link.call("CLIENT", "ID")))
    thread.start()
    thread.join(5)
    assert len(others) == 1
    assert others[0] == link.call("CLIENT", "ID")  # one after the other: the free one


def test_answers_larger_than_a_read_and_a_connection_redis_closed(own_redis: RedisServer) -> None:
    """The answers are read from the socket in pieces (redis-py's 64 KB buffer) into hiredis's
    reader; a connection Redis closed (`CLIENT KILL`) is opened again once."""
    link = Link(own_redis.url)
    big = bytes(range(256)) * 4096  # 1 MB: sixteen reads or more
    assert link.calls([("SET", "big", big), ("GET", "big"), ("STRLEN", "big")]) == [
        b"OK",
        big,
        len(big),
    ]
    killer = own_redis.client()
    mine = link.call("CLIENT", "ID")
    killer.client_kill_filter(_id=mine)
    assert link.calls([("GET", "big"), ("PING",)]) == [big, b"PONG"]  # opened again, once
    assert link.call("CLIENT", "ID") != mine


def test_requests_done_together_are_written_together_and_each_returns_once_written(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one request's journal write is under way, five more finish: they wait, and the
    first of them writes all five in one script call; each returns with its entry in Redis."""
    prefix = unique_prefix()
    app = create_app(Settings(store=own_redis.url, store_prefix=prefix))
    api = app.test_client()
    assert api.get(RECORDS, headers=AUTH).status_code == 200  # the session made
    shared = app.extensions["mockserver"].sessions.shared
    spied = hold_first_journal_write(monkeypatch, shared)
    statuses: list[int] = []

    def one() -> None:
        statuses.append(app.test_client().get(RECORDS, headers=AUTH).status_code)

    first = threading.Thread(target=one)
    first.start()
    assert spied.held.wait(10)
    others = [threading.Thread(target=one) for _ in range(5)]
    for thread in others:
        thread.start()
    coverage = app.extensions["mockserver"].sessions.get().coverage
    deadline = time.monotonic() + 10
    while sum(coverage._counters.values()) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)  # the five counted, waiting for the next write
    assert statuses == []  # none returned before its entry was written
    spied.let_go.set()
    for thread in [first, *others]:
        thread.join(10)
    assert statuses == [200] * 6
    assert spied.writes == [1, 5]
    journal = api.get("/_mock/requests?limit=100").get_json()["data"]
    assert len([entry for entry in journal if entry["path"] == RECORDS]) == 7
    forget(own_redis, prefix)


def test_written_behind_requests_hand_their_entries_over_and_are_written_together(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written behind, a request does not wait for its journal entry: the process's writer
    writes it. While one write is under way, five more requests are answered; the next write
    holds all five, in one script call. A read of the journal (here: another server's) waits
    for them."""
    prefix = unique_prefix()
    settings = Settings(store=own_redis.url, store_prefix=prefix, journal_write_behind=True)
    app = create_app(settings)
    reader = create_app(Settings(store=own_redis.url, store_prefix=prefix)).test_client()
    api = app.test_client()
    assert api.get(RECORDS, headers=AUTH).status_code == 200  # the session made
    shared = app.extensions["mockserver"].sessions.shared
    assert shared.writer.flush()
    spied = hold_first_journal_write(monkeypatch, shared)
    assert api.get(RECORDS, headers=AUTH).status_code == 200  # answered, not waiting
    assert spied.held.wait(10)
    statuses = [api.get(RECORDS, headers=AUTH).status_code for _ in range(5)]
    assert statuses == [200] * 5  # answered while the first write is held
    read: list[Any] = []
    reading = threading.Thread(
        target=lambda: read.append(reader.get("/_mock/requests?limit=100").get_json()["data"])
    )
    reading.start()
    reading.join(0.3)
    assert read == []  # the read waits for what was answered before it
    spied.let_go.set()
    reading.join(10)
    assert spied.writes == [1, 5]
    [journal] = read
    assert len([entry for entry in journal if entry["path"] == RECORDS]) == 7
    forget(own_redis, prefix)


def test_a_read_by_id_is_two_round_trips_and_meets_a_rule_another_server_just_added(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no rules held, a GET's rules version goes with its item (one round trip), then
    its journal entry (a second; written behind, the writer's). A rule added meanwhile on
    another server is found by that version: the GET is decided again and the rule's answer
    given."""
    prefix = unique_prefix()
    one, two = (
        create_app(Settings(store=own_redis.url, store_prefix=prefix, seed_records=3))
        for _ in range(2)
    )
    api, other = one.test_client(), two.test_client()
    record = api.get(f"{RECORDS}?limit=1", headers=AUTH).get_json()["data"][0]["id"]
    by_id = f"{RECORDS}/{record}"
    assert api.get(by_id, headers=AUTH).status_code == 200  # the rules (none) read
    trips = count_round_trips(monkeypatch)
    assert api.get(by_id, headers=AUTH).status_code == 200
    assert trips == [2, 1]  # (version, item), then the journal's script
    added = other.post("/_mock/faults", json=[{"method": "GET", "path": by_id, "status": 503}])
    assert added.status_code == 201
    trips.clear()
    assert api.get(by_id, headers=AUTH).status_code == 503  # the rule, found with the item
    assert api.get(by_id, headers=AUTH).status_code == 503  # held now: decided first
    assert other.delete("/_mock/faults").status_code == 204
    assert api.get(by_id, headers=AUTH).status_code == 200  # gone: read again
    faulted = other.post("/_mock/faults", json=[{"method": "POST", "path": RECORDS, "status": 429}])
    assert faulted.status_code == 201
    assert other.delete("/_mock/faults").status_code == 204
    assert api.get(by_id, headers=AUTH).status_code == 200  # changed, nothing applies
    journal = api.get("/_mock/requests?limit=100").get_json()["data"]
    assert [e["status"] for e in journal if e["path"] == by_id][-4:] == [503, 503, 200, 200]
    forget(own_redis, prefix)


def test_entries_held_while_redis_was_lost_are_written_after_in_bounded_calls(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests answered 503 while Redis is down leave their journal entries with the
    server; the first write once Redis is back sends them 100 to a script call (what one
    call holds stays bounded: a restart under load grew the workers' memory), and at most
    `PENDING` of them are held."""
    monkeypatch.setattr(shared_module, "PENDING", 180)
    prefix = unique_prefix()
    app = create_app(Settings(store=own_redis.url, store_prefix=prefix))
    api = app.test_client()
    assert api.get(RECORDS, headers=AUTH).status_code == 200
    own_redis.stop()
    assert {api.get(RECORDS, headers=AUTH).status_code for _ in range(250)} == {503}
    own_redis.start()
    shared = app.extensions["mockserver"].sessions.shared
    calls: list[int] = []
    real_run = shared.link.run

    def run(script: Any, keys: Any, args: list[Any]) -> Any:
        if script is shared.add:
            calls.append(len(args) - 6 - 2 * int(args[5]))
        return real_run(script, keys, args)

    monkeypatch.setattr(shared.link, "run", run)
    assert api.get(RECORDS, headers=AUTH).status_code == 200
    assert shared.writer.flush()
    assert calls == [100, 80]  # 180 held: the newest 179 503s (the oldest dropped), this one
    journal = api.get("/_mock/requests?limit=1000").get_json()["data"]
    assert [entry["status"] for entry in journal] == [503] * 179 + [200]
    forget(own_redis, prefix)


def test_entries_held_while_redis_was_lost_stay_within_the_journal_s_bytes(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a process holds not yet written is bounded in bytes too (`--journal-bytes`, every
    session together, or HELD_AT_LEAST), not only in count: past it, the session's oldest held
    entries go; once Redis is back the newest are written and nothing is held."""
    monkeypatch.setattr(shared_module, "HELD_AT_LEAST", 0)
    prefix = unique_prefix()
    limit = 400_000
    app = create_app(Settings(store=own_redis.url, store_prefix=prefix, journal_bytes=limit))
    api = app.test_client()
    held = app.extensions["mockserver"].sessions.shared.held
    assert api.get(RECORDS, headers=AUTH).status_code == 200
    own_redis.stop()
    body = b'{"padding": "' + b"x" * 30_000 + b'"}'  # an entry of ~35 KB
    highest = 0
    for _ in range(60):  # ~2 MB in all
        answer = api.post(RECORDS, data=body, headers={**AUTH, "Content-Type": "application/json"})
        assert answer.status_code == 503
        highest = max(highest, held.used)
    assert limit - 40_000 < highest <= limit
    own_redis.start()  # empty: no persistence
    assert api.get(RECORDS, headers=AUTH).status_code == 200
    assert app.extensions["mockserver"].sessions.shared.writer.flush()
    assert held.used == 0
    journal = api.get("/_mock/requests?limit=100").get_json()["data"]
    assert [entry["status"] for entry in journal] == [503] * (len(journal) - 1) + [200]
    assert [entry["bodySize"] for entry in journal[:-1]] == [len(body)] * (len(journal) - 1)
    assert 9 <= len(journal) - 1 <= 11  # the newest the bytes held
    forget(own_redis, prefix)


def test_a_write_that_failed_as_redis_went_is_made_once_it_is_back(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer stands, and its count and journal entry are kept for the next write (they
    were dropped: a soak with three Redis restarts found a fault's count missing)."""
    prefix = unique_prefix()
    app = create_app(Settings(store=own_redis.url, store_prefix=prefix))
    api = app.test_client()
    shared = app.extensions["mockserver"].sessions.shared
    assert api.get(RECORDS, headers=AUTH).status_code == 200
    real_run = shared.link.run
    failed: list[int] = []

    def run(script: Any, keys: Any, args: list[Any]) -> Any:
        if script is shared.add and not failed:
            failed.append(1)
            raise StoreUnavailable("Redis at test", "lost as it was written")
        return real_run(script, keys, args)

    monkeypatch.setattr(shared.link, "run", run)
    assert api.get(RECORDS, headers=AUTH).status_code == 200
    assert failed == [1]
    assert shared.writer.flush()
    coverage = api.get("/_mock/coverage").get_json()
    [listed] = [
        op for op in coverage["operations"] if op["path"] == RECORDS and op["method"] == "GET"
    ]
    assert listed["statuses"]["200"] == 2
    journal = api.get("/_mock/requests").get_json()["data"]
    assert [(entry["path"], entry["status"]) for entry in journal] == [(RECORDS, 200)] * 2
    assert shared.held.used == 0
    forget(own_redis, prefix)


def test_a_session_finds_no_room_while_the_others_hold_every_byte(
    own_redis: RedisServer,
) -> None:
    shared = Shared(Link(own_redis.url), unique_prefix(), 1)
    shared.held.limit = 100_000
    one, two = SharedJournal(1000, shared, "one"), SharedJournal(1000, shared, "two")

    def open_(journal: SharedJournal, size: int) -> Entry:
        return journal.open(0.0, "POST", "/p", "", ((), ()), b"x" * size, "s", Trail())

    first = [open_(one, 20_000) for _ in range(3)]  # in flight: not written
    assert shared.held.used == sum(entry.cost for entry in first) > 75_000  # ~25 KB each
    open_(two, 20_000)  # no room: one holds the bytes
    assert not two.holding
    open_(one, 20_000)  # room made by one's oldest
    assert one._pending[0] is first[1]
    assert shared.held.used <= 100_000
    for entry in one._pending:
        entry.trail.ended = 1.0
    assert len(one.done()) == 3
    assert shared.held.used == 0
    open_(one, 20_000)
    one.clear()  # a reset: what it held is given back
    assert shared.held.used == 0


def test_a_forked_worker_opens_a_connection_of_its_own(own_redis: RedisServer) -> None:
    """uWSGI forks its workers from the process that built the app (and seeded it, on the
    link's connections) without Python's at-fork hooks: a worker must never talk on its
    parent's socket."""
    link = Link(own_redis.url)
    mine = link.call("CLIENT", "ID")  # the main thread's connection, made before the fork
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(writing, str(int(link.call("CLIENT", "ID"))).encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    theirs = int(os.read(reading, 100).decode())
    os.close(reading)
    assert theirs != mine
    assert link.call("CLIENT", "ID") == mine  # the parent's connection untouched


def test_written_behind_a_read_by_id_and_a_post_are_one_round_trip_each(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = unique_prefix()
    settings = Settings(
        store=own_redis.url, store_prefix=prefix, seed_records=3, journal_write_behind=True
    )
    api = create_app(settings).test_client()
    record = api.get(f"{RECORDS}?limit=1", headers=AUTH).get_json()["data"][0]["id"]
    assert api.get(f"{RECORDS}/{record}", headers=AUTH).status_code == 200  # rules (none) read
    assert api.post(RECORDS, headers=AUTH, json=new_record()).status_code == 201  # ids reserved
    trips = count_round_trips(monkeypatch)
    assert api.get(f"{RECORDS}/{record}", headers=AUTH).status_code == 200
    assert api.post(RECORDS, headers=AUTH, json=new_record()).status_code == 201
    assert trips == [2, 1]  # (version, item); the insert checking the version
    monkeypatch.undo()
    journal = api.get("/_mock/requests").get_json()["data"]
    assert [entry["method"] for entry in journal][-2:] == ["GET", "POST"]
    forget(own_redis, prefix)
