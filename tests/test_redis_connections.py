"""The connections of a process to Redis (`storage.redis_connection.Link`): a call takes a free
one (the one used last) and gives it back, so a process holds as many as it ever had calls
under way at once, not one per server thread; a transaction's calls keep one (`pinned`). A
forked process opens its own: tests/test_redis_request_path.py. Its timeouts are kept by the
kernel, and a call Redis does not answer in time is given up, never sent again."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest
import requests
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis_server import RedisServer
from support import AUTH, Server

from mockserver.storage import redis_connection
from mockserver.storage.backend import StoreUnavailable
from mockserver.storage.redis_connection import Link


def connection_id(link: Link) -> int:
    return int(link.call("CLIENT", "ID"))


def in_thread(call: Callable[[], object]) -> object:
    found: list[object] = []
    thread = threading.Thread(target=lambda: found.append(call()))
    thread.start()
    thread.join()
    return found[0]


def test_calls_of_many_threads_one_after_another_share_one_connection(
    redis_server: RedisServer,
) -> None:
    link = Link(redis_server.url)
    ids = {in_thread(lambda: connection_id(link)) for _ in range(50)}
    assert len(ids) == 1
    assert (link.opened, link.free) == (1, 1)


def test_a_process_holds_as_many_connections_as_calls_were_under_way_at_once(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    link = Link(redis_server.url)
    keys = [f"{redis_prefix}:wait:{n}" for n in range(8)]
    waiting = [threading.Thread(target=link.call, args=("BLPOP", key, 10)) for key in keys]
    for thread in waiting:
        thread.start()
    client = redis_server.client()
    while sum(1 for c in client.client_list() if c["cmd"] == "blpop") < 8:
        pass  # every call under way at once
    for key in keys:
        client.rpush(key, "go")
    for thread in waiting:
        thread.join(10)
    assert (link.opened, link.free) == (8, 8)
    ids = {in_thread(lambda: connection_id(link)) for _ in range(100)}
    assert len(ids) == 1  # the one used last, every time
    assert (link.opened, link.free) == (8, 8)
    client.delete(*keys)


def test_a_pinned_connection_is_the_threads_alone_until_the_block_ends(
    redis_server: RedisServer,
) -> None:
    link = Link(redis_server.url)
    other = connection_id(link)
    with link.pinned():
        mine = connection_id(link)
        assert connection_id(link) == mine
        assert in_thread(lambda: connection_id(link)) != mine  # not given to another call
    assert mine == other  # the free one was taken
    assert link.free == 2


def test_a_block_left_by_an_error_closes_its_connection_watch_and_all(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    link = Link(redis_server.url)
    key = f"{redis_prefix}:watched"

    def watch_then_fail() -> None:
        with link.pinned():
            link.call("WATCH", key)
            raise RuntimeError("the transaction did not go on")

    with pytest.raises(RuntimeError):
        watch_then_fail()
    redis_server.client().set(key, "changed")  # would void an EXEC under the WATCH
    with link.pinned():
        assert link.calls([("MULTI",), ("SET", key, "mine"), ("EXEC",)])[-1] == [b"OK"]
    assert redis_server.client().get(key) == b"mine"


def test_a_server_keeps_few_connections_whichever_threads_serve_it(
    start_server: Callable[..., Server],
) -> None:
    own = RedisServer().start()  # its clients are this server's alone
    try:
        server = start_server("--store", own.url, "--threads", "64")
        for _ in range(150):  # each on a new connection: served by one thread or another
            answer = requests.get(f"{server.api_url}/audit/records?limit=1", headers=AUTH)
            assert answer.status_code == 200
        names = [c["name"] for c in own.client().client_list()]
        assert 1 <= names.count("mockserver") <= 6  # one per thread that served: ~70 before
        assert server.stop() == 0
    finally:
        own.stop()


def test_a_call_redis_does_not_answer_in_time_is_given_up_and_not_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection's timeouts are the kernel's (no poll before each send and read: `sockets`),
    and still a call Redis does not answer within READ_TIMEOUT raises its timeout, once: a
    change may have been made, so it is never sent again."""
    monkeypatch.setattr(redis_connection, "READ_TIMEOUT", 0.3)
    server = RedisServer().start()
    try:
        link = Link(server.url)
        assert link.call("PING") == b"PONG"
        sock = link._free[0]._sock
        assert sock.gettimeout() is None
        limit = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
        assert struct.unpack("ll", limit) == (0, 300_000)
        admin = server.client()
        admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")  # every client's commands wait
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            link.call("INCR", "counted")
        assert time.monotonic() - started < 1.2
        time.sleep(1.5)  # the pause over: a command sent again would have run now
        assert admin.get("counted") is None  # its connection closed: it never ran
        assert link.call("INCR", "counted") == 1  # a new connection for the next call
        admin.close()
    finally:
        server.stop()


def test_a_link_without_hiredis_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The request path reads Redis's answers with hiredis's reader: without it, start-up
    stops saying what to install, not a call failing later."""
    monkeypatch.setattr(redis_connection, "HIREDIS_AVAILABLE", False)
    with pytest.raises(redis_connection.BadStore, match=r"needs hiredis.*redis\[hiredis\]"):
        Link("redis://127.0.0.1:1/0")


def test_an_error_answer_redis_py_does_not_call_a_response_error_is_raised_too(
    redis_server: RedisServer,
) -> None:
    """LOADING (Redis reading its data back after a restart) is a ConnectionError to redis-py:
    it was handed back as the call's answer, and the rules' read failed on it with a 500."""
    link = Link(redis_server.url)
    loading = "return redis.error_reply('LOADING Redis is loading the dataset in memory')"
    with pytest.raises(StoreUnavailable, match="loading the dataset"), link.calling():
        link.call("EVAL", loading, 0)
    assert link.call("PING") == b"PONG"  # and the link goes on
