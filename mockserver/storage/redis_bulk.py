"""A batch of new items for the Redis store, made whole by the server (`insert_many`:
seeding, `--state-file`): insertion numbers reserved ahead, index members and metas built
here, so that Redis only stores them.

Redis stores a batch with plain commands in a transaction (`commands`: one `HSET` or `ZADD`
per key for the whole batch), guarded by `WATCH` (`guard`: no id of the batch held, no
eviction due, nothing changed in between); otherwise `scripts.CHANGE`'s `built` mode
(`script_args`), which checks the same atomically and evicts. A script costs Redis about
half again the time of the same commands sent plainly: it turns every argument into a Lua
string and back into a Redis one (measured: 4.5 against 2.9 s of Redis's CPU for 100 000
records).

A meta is MessagePack: `[number, entry per index]`, an entry being the escaped value (a
string: its member is `value NUL number NUL id`), 1 (an id in the index's `others`) or 0
(`scripts.CHANGE` reads it back to change or evict the item).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mockserver.codec import MISSING
from mockserver.storage.redis_connection import Command, Link
from mockserver.storage.redis_keys import CollectionKeys, escaped

Item = dict[str, Any]
Arg = bytes | str | int
MAX_FIELDS = 14  # a meta is a MessagePack fixarray: 15 entries at most
AHEAD = 16  # insertion numbers reserved at most this many batches ahead


class Numbers:
    """Insertion numbers reserved ahead (`INCRBY`, unique across servers): the first
    reservation is the first batch's size, each next one twice the last, up to `AHEAD`
    batches; so a batch waits for Redis's answer (behind the batch Redis is storing) only
    now and then, and a small insert reserves no more than it uses. Numbers reserved and
    not used are a gap in the insertion order, which only orders."""

    def __init__(self, link: Link, key: str, batch: int) -> None:
        self._link = link
        self._key = key
        self._most = batch * AHEAD
        self._next = 0  # the next free number
        self._end = 0  # the last number reserved
        self._block = 0

    def take(self, size: int) -> int:
        """The first of `size` consecutive numbers."""
        if self._end - self._next + 1 < size or self._next == 0:
            self._block = min(max(size, 2 * self._block), max(size, self._most))
            with self._link.calling():
                self._end = int(self._link.call("INCRBY", self._key, self._block))
            self._next = self._end - self._block + 1
        first = self._next
        self._next += size
        return first


@dataclass
class Batch:
    """New items as Redis stores them: the arguments of each key's one write."""

    pairs: list[tuple[Item, bytes]]  # the items and their bytes, in order
    ids: list[str]
    first: int  # the first item's insertion number
    items: list[Arg] = field(default_factory=list)  # id, bytes...
    order: list[Arg] = field(default_factory=list)  # number, id...
    members: list[list[Arg]] = field(default_factory=list)  # per index: 0, member...
    others: list[list[Arg]] = field(default_factory=list)  # per index: number, id...
    metas: list[Arg] = field(default_factory=list)  # id, meta...

    def guard(self, keys: CollectionKeys) -> list[Command]:
        """What `commands` needs checked first, on the same connection: the keys watched,
        whether an id of the batch is held, and how many items there are (for the bound)."""
        return [
            ("WATCH", keys.meta, keys.order),
            ("HMGET", keys.meta, *self.ids),
            ("ZCARD", keys.order),
        ]

    def commands(self, keys: CollectionKeys, register: Sequence[Command]) -> list[Command]:
        """The batch's writes, one transaction (`register` the first insert's too)."""
        writes: list[Command] = [("MULTI",)]
        if self.first == 1:
            writes += register
        writes += [("HSET", keys.items, *self.items), ("ZADD", keys.order, *self.order)]
        for name, members, others in zip(keys.indexed, self.members, self.others, strict=True):
            if members:
                writes.append(("ZADD", keys.index(name), *members))
            if others:
                writes.append(("ZADD", keys.others(name), *others))
        return [*writes, ("HSET", keys.meta, *self.metas), ("EXEC",)]

    def script_args(self, head: list[Arg]) -> list[Arg]:
        """`scripts.CHANGE`'s `built` mode: after `head` (mode, bound, count, the collection,
        its suffixes), the ids, the (id, bytes) pairs, the (number, id) pairs, per index how
        many members then (0, member) pairs and how many others then (number, id) pairs, and
        the (id, meta) pairs."""
        args = [*head, *self.ids, *self.items, *self.order]
        for members, others in zip(self.members, self.others, strict=True):
            args += [len(members) // 2, *members, len(others) // 2, *others]
        return args + self.metas


def build(
    pairs: list[tuple[Item, bytes]], getters: Sequence[Callable[[Any], Any]], numbers: Numbers
) -> Batch | None:
    """A batch of new items, their numbers taken from `numbers`; None when an id comes
    twice (or the indexes are too many for a meta)."""
    ids = [item["id"] for item, _ in pairs]
    if len(set(ids)) < len(ids) or len(getters) > MAX_FIELDS:
        return None
    batch = Batch(pairs, ids, numbers.take(len(pairs)))
    items, order, metas = batch.items, batch.order, batch.metas
    members: list[list[Arg]] = [[] for _ in getters]
    others: list[list[Arg]] = [[] for _ in getters]
    head = bytes([0x90 | (1 + len(getters))])  # a MessagePack array
    indexes = list(zip(getters, members, others, strict=True))
    for number, (item, raw) in enumerate(pairs, batch.first):
        item_id = item["id"]
        items += (item_id, raw)
        order += (number, item_id)
        tail = b"\x00%016x\x00%s" % (number, item_id.encode())
        meta = [head, b"\xcf", number.to_bytes(8, "big")]  # [number, entry per index]
        for get, listed, other in indexes:
            value = get(item)
            if isinstance(value, str):
                kept = escaped(value)
                listed += (0, kept + tail)
                meta += (b"\xdb", len(kept).to_bytes(4, "big"), kept)
            elif value is MISSING or value is None:
                meta.append(b"\x00")
            else:
                other += (number, item_id)
                meta.append(b"\x01")
        metas += (item_id, b"".join(meta))
    batch.members, batch.others = members, others
    return batch
