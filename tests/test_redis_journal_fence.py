"""The journal and coverage on Redis, written by each process's writer (`sessions.writer`): a
client's requests keep their order across servers (a request waits for its entry's write);
written behind (`--journal-write-behind`), a read on any server still holds what every server
answered before it (the fence), a process that does not answer the fence holds a read up for
FENCE_WAIT at most, a reset is not undone by entries written after it, a listener lost with
Redis listens again, and a stopping server writes what it holds; by default no process
listens (a read's fence reaches nobody)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from redis_server import RedisServer, forget, hold_first_journal_write, unique_prefix
from support import AUTH, Server, new_record

from mockserver.app import create_app
from mockserver.sessions import writer as writer_module
from mockserver.settings import Settings

RECORDS = "/public/v1/audit/records"
Start = Callable[..., Server]


def _count(base: str) -> int:
    found = requests.post(f"{base}/_mock/requests/count", json={}, timeout=10)
    assert found.status_code == 200, found.text
    return int(found.json()["count"])


def test_each_answer_is_in_a_read_made_right_after_it_on_another_server(
    start_server: Start, redis_server: RedisServer, redis_prefix: str
) -> None:
    """Written behind: two processes answer, a second server counts the journal after every
    answer: the count is exact each time, and the coverage tally too."""
    flags = ("--store", redis_server.url, "--store-prefix", redis_prefix, "--journal-write-behind")
    one = start_server(*flags, "--processes", "2")
    two = start_server(*flags)
    session = requests.Session()
    for made in range(1, 41):
        if made % 2:
            sent = session.post(one.api_url + "/audit/records", json=new_record(), headers=AUTH)
            assert sent.status_code == 201
        else:
            assert session.get(one.api_url + "/audit/records", headers=AUTH).status_code == 200
        assert _count(two.url) == made
    coverage = requests.get(f"{two.url}/_mock/coverage", timeout=10).json()
    answered = {
        f"{op['method']} {op['path']}": {code: n for code, n in op["statuses"].items() if n}
        for op in coverage["operations"]
    }
    assert answered[f"POST {RECORDS}"] == {"201": 20}
    assert answered[f"GET {RECORDS}"] == {"200": 20}


def test_a_process_that_does_not_answer_holds_a_read_up_for_the_fence_wait_only(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(writer_module, "FENCE_WAIT", 1.0)
    prefix = unique_prefix()
    app = create_app(
        Settings(store=redis_server.url, store_prefix=prefix, journal_write_behind=True)
    )
    api = app.test_client()
    silent = redis_server.client().pubsub()  # a process that listens and never writes back
    silent.subscribe(f"{prefix}:journal:flush")
    assert silent.get_message(timeout=5) is not None  # subscribed
    try:
        assert api.get(RECORDS, headers=AUTH).status_code == 200
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="mockserver"):
            journal = api.get("/_mock/requests").get_json()["data"]
        took = time.monotonic() - started
        assert [entry["path"] for entry in journal] == [RECORDS]
        assert 1.0 <= took < 6  # the read raises the fence twice (its entries, their count)
        assert "1 of 2 server processes did not write theirs" in caplog.text
    finally:
        silent.close()
        forget(redis_server, prefix)


def test_entries_answered_before_a_reset_on_another_server_are_not_written_after_it(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server one's writer is held with an entry pending; a reset on server two waits for it
    (the fence) and then clears: the journal after the reset is empty on both."""
    prefix = unique_prefix()
    behind = Settings(store=redis_server.url, store_prefix=prefix, journal_write_behind=True)
    one = create_app(behind)
    two = create_app(behind).test_client()
    api = one.test_client()
    assert api.get(RECORDS, headers=AUTH).status_code == 200
    shared = one.extensions["mockserver"].sessions.shared
    assert shared.writer.flush()
    spied = hold_first_journal_write(monkeypatch, shared)
    assert api.get(RECORDS, headers=AUTH).status_code == 200
    assert spied.held.wait(10)
    reset: list[int] = []
    resetting = threading.Thread(target=lambda: reset.append(two.post("/_mock/reset").status_code))
    resetting.start()
    resetting.join(0.3)
    assert reset == []  # the reset waits for what was answered before it
    spied.let_go.set()
    resetting.join(10)
    assert reset == [200]
    assert two.get("/_mock/requests").get_json()["data"] == []
    assert api.get("/_mock/requests").get_json()["data"] == []
    forget(redis_server, prefix)


def test_the_listener_listens_again_once_redis_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis lost and back: the process's listener subscribes again by itself, and a read on
    another server once more waits for what this one holds."""
    monkeypatch.setattr(writer_module, "RETRY_AFTER", 0.05)
    own = RedisServer().start()
    try:
        prefix = unique_prefix()
        app = create_app(Settings(store=own.url, store_prefix=prefix, journal_write_behind=True))
        api = app.test_client()
        assert api.get(RECORDS, headers=AUTH).status_code == 200
        channel = f"{prefix}:journal:flush"
        assert _subscribers(own, channel) == 1
        own.stop()
        time.sleep(0.3)
        own.start()
        deadline = time.monotonic() + 10
        while _subscribers(own, channel) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _subscribers(own, channel) == 1
        assert api.get(RECORDS, headers=AUTH).status_code == 200
        reader = create_app(Settings(store=own.url, store_prefix=prefix)).test_client()
        journal = reader.get("/_mock/requests").get_json()["data"]
        assert [entry["status"] for entry in journal][-1] == 200
    finally:
        own.stop()


def _subscribers(server: RedisServer, channel: str) -> int:
    try:
        found: Any = server.client().pubsub_numsub(channel)
    except Exception:  # not up yet
        return -1
    return int(found[0][1])


def test_a_stopping_server_writes_what_it_holds(
    start_server: Start, redis_server: RedisServer, redis_prefix: str
) -> None:
    """Written behind: answers given just before SIGTERM are in the journal another server
    reads after."""
    flags = ("--store", redis_server.url, "--store-prefix", redis_prefix, "--journal-write-behind")
    one = start_server(*flags)
    session = requests.Session()
    for _ in range(20):
        assert session.get(one.api_url + "/audit/records", headers=AUTH).status_code == 200
    one.stop()
    two = start_server(*flags)
    assert _count(two.url) == 20


def test_a_client_s_requests_keep_their_order_across_servers(
    start_server: Start, redis_server: RedisServer, redis_prefix: str
) -> None:
    """One client's requests, sent in turn to two servers (one of two processes): the journal
    lists them in the order they were answered (each waited for its entry's write)."""
    flags = ("--store", redis_server.url, "--store-prefix", redis_prefix)
    servers = [start_server(*flags, "--processes", "2"), start_server(*flags)]
    sessions = [requests.Session(), requests.Session()]
    for sent in range(120):
        at = sent % 2
        target = f"{servers[at].api_url}/audit/records?offset={sent}"
        assert sessions[at].get(target, headers=AUTH).status_code == 200
    found = requests.get(f"{servers[0].url}/_mock/requests?limit=1000", timeout=10).json()["data"]
    offsets = [int(entry["query"].split("=")[1]) for entry in found if entry["query"]]
    assert offsets == list(range(120))


def test_by_default_no_process_listens_and_a_read_holds_every_answer(
    redis_server: RedisServer,
) -> None:
    """Written before the answers, there is nothing to wait for: no process listens."""
    prefix = unique_prefix()
    one = create_app(Settings(store=redis_server.url, store_prefix=prefix)).test_client()
    two = create_app(Settings(store=redis_server.url, store_prefix=prefix)).test_client()
    assert one.get(RECORDS, headers=AUTH).status_code == 200
    assert _subscribers(redis_server, f"{prefix}:journal:flush") == 0
    before = redis_server.client().info("commandstats")
    assert [entry["path"] for entry in two.get("/_mock/requests").get_json()["data"]] == [RECORDS]
    after = redis_server.client().info("commandstats")
    deleted = after.get("cmdstat_del", {}).get("calls", 0) - before.get("cmdstat_del", {}).get(
        "calls", 0
    )
    assert deleted == 0  # the fence reached nobody: no acknowledgements to wait for or delete
    forget(redis_server, prefix)
