"""Commands packed ahead (`storage.redis_connection.Packed`): a request's change and its read
of an item pack only their own arguments, the rest (a script's keys, a collection's
arguments) packed once. What is sent is byte for byte what hiredis packs of the whole
command, and the command `Link.calls` is handed still reads as its arguments."""

from __future__ import annotations

from typing import Any

import hiredis
import pytest
from redis_server import RedisServer

from mockserver.storage import make_backend
from mockserver.storage.backend import Shape
from mockserver.storage.encoding import Layout
from mockserver.storage.redis import RedisBackend
from mockserver.storage.redis_connection import Link, Packed, Ready

RECORDS = "/public/v1/audit/records"
ARGS: list[Any] = [
    "",
    "text",
    "ünïcödé ✓",
    b"",
    b"\r\n\x00\x01$*",  # RESP's own markers inside an argument
    b"x" * 1023,
    b"y" * 1024,  # a size past the table of sizes
    "z" * 5000,
    0,
    -7,
    2**53,
    2**70,
]


@pytest.mark.parametrize("head", [(), ("PING",), ("EVALSHA", "ab" * 20, 3, "k1", b"k2", 0)])
def test_a_packed_command_is_what_hiredis_packs_of_it_whole(head: tuple[Any, ...]) -> None:
    packed = Packed(*head)
    for count in range(len(ARGS) + 1):
        tail = ARGS[:count]
        made = packed.with_(tail)
        assert made.packed == hiredis.pack_command((*head, *tail))
        assert isinstance(made, Ready)
        assert made == (*head, *tail)
    for arg in ARGS:
        assert packed.with_one(arg) == hiredis.pack_command((*head, arg))


def test_ready_commands_go_with_others_and_answer_in_order(redis_server: RedisServer) -> None:
    link = Link(redis_server.url)
    key = "test-packed:hash"
    link.call("DEL", key)
    hset = Packed("HSET", key)
    assert link.calls([hset.with_(["a", b"\x00\r\n"]), ("HGET", key, "a")]) == [1, b"\x00\r\n"]
    with pytest.raises(Exception, match="wrong number of arguments"):  # raised once all are read
        link.calls([hset.with_one("b"), Packed("HGET", key).with_one("a")])
    assert link.calls([Packed("HGET", key).with_one("a"), ("DEL", key)]) == [b"\x00\r\n", 1]


def test_a_change_sends_what_the_whole_argument_list_says(
    redis_server: RedisServer, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item's add, replace and remove, guarded or not: the command sent is the EVALSHA of
    the change's keys and `_args` (what a batch sends), the guard's key and version last."""
    backend = make_backend(redis_server.url, 1000, None, redis_prefix)
    assert isinstance(backend, RedisBackend)
    backend.describe(RECORDS, Shape(Layout(), ("event", "object.id"), ("timestamp",)))
    collection = backend.open(RECORDS)
    link = backend.link
    sent: list[tuple[Any, ...]] = []
    real_calls = link.calls

    def calls(commands: Any, again: bool = True) -> list[Any]:
        sent.extend(tuple(command) for command in commands)
        return real_calls(commands, again)

    monkeypatch.setattr(link, "calls", calls)
    item = {"id": "AUD-1", "event": "created", "object": {"id": "é\x00"}, "timestamp": 7}
    sha = str(backend.scripts.change.sha)
    keys = collection._change_keys
    guard = f"{redis_prefix}:{{session.x}}:faults:meta"
    with link.calling():
        assert collection.add({"id": "AUD-0"}) is not None  # the script loaded (NOSCRIPT first)
        sent.clear()
        raw = collection.add(item)
        assert raw is not None
        expected = ("EVALSHA", sha, len(keys), *keys, *collection._args("add", [(item, raw)]))
        assert sent == [expected]
        assert collection.get("AUD-1") == raw
        sent.clear()
        link.guard(guard, b"0")  # the session holds no rules: no version, read as "0"
        changed = {**item, "event": "updated"}
        raw = collection.replace(changed)
        assert raw is not None
        args = collection._args("replace", [(changed, raw)])
        args[0] = "greplace"
        assert sent == [("EVALSHA", sha, len(keys) + 1, *keys, guard, *args, b"0")]
        assert link.guarded() == "fresh"
        sent.clear()
        assert collection.remove("AUD-1")
        args = collection._args("remove", [({"id": "AUD-1"}, b"")])
        assert sent == [("EVALSHA", sha, len(keys), *keys, *args)]
        assert collection.get("AUD-1") is None
    backend.clear()
