"""The embedded backend: items in this process's memory, thread-safe and bounded.

Items are kept as compact JSON bytes (see `storage.encoding`); reads hand back those bytes,
which a response can carry as they are. Equality indexes answer the most common filters
(`eq`/`in` on the paths a collection indexes) without looking at every item; the rest of a
search is evaluated in Python (`storage.evaluate`).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from mockserver.query.expression import equalities
from mockserver.storage.backend import Dumped, Found, Item, OnEvict, Search, Shape
from mockserver.storage.budget import ITEM_BYTES, Account, StoreBudget
from mockserver.storage.encoding import Layout, Reader, decode
from mockserver.storage.evaluate import evaluate
from mockserver.storage.indexes import Index

_UNBOUNDED = StoreBudget(sys.maxsize)


class MemoryCollection:
    """Items by id in insertion order; the oldest go first when `max_items` is reached, or
    when the server's byte budget is (`storage.budget`)."""

    def __init__(
        self,
        name: str,
        max_items: int,
        layout: Layout | None = None,
        indexed: tuple[str, ...] = (),
        on_evict: OnEvict | None = None,
        template: str | None = None,
        budget: StoreBudget = _UNBOUNDED,
    ) -> None:
        self.name = name
        self.template = template or name  # the spec's path of the collection
        self.max_items = max_items
        self.layout = layout or Layout()
        self._items: dict[str, bytes] = {}
        self._holes = 0  # items evicted since `_items` was last compacted
        self._indexes = {path: Index(path) for path in indexed}
        self._lock = threading.Lock()
        self._on_evict = on_evict
        self._shared = False  # `_items` and `_indexes` are another collection's too
        self._inherited: dict[str, bytes] = {}  # what it shares with the one it was copied from
        self.budget = budget
        self.account = Account()  # bytes the budget counts for it (what it stored itself)
        weakref.finalize(self, budget.forget, self.account)

    def _own(self) -> None:
        """Copy what is shared with a twin before the first change (under the lock)."""
        if self._shared:
            self._items = dict(self._items)
            self._indexes = {path: index.copy() for path, index in self._indexes.items()}
            self._holes = 0
            self._shared = False

    def insert(self, item: Item) -> bytes:
        raw = self.layout.encode(item)
        with self._lock:
            self._report(self._insert(item, raw))
        self._settle()
        return raw

    def add(self, item: Item) -> bytes | None:
        raw = self.layout.encode(item)
        with self._lock:
            if item["id"] in self._items:
                return None
            self._report(self._insert(item, raw))
        self._settle()
        return raw

    def _cost(self, item_id: str, raw: bytes) -> int:
        """What the budget counts for a stored item: nothing for one shared with the
        collection this one was copied from (counted there)."""
        return 0 if self._inherited.get(item_id) is raw else len(raw) + ITEM_BYTES

    def _report(self, evicted: list[str]) -> None:
        """Say which items went, under the lock: in the order they went."""
        for item_id in evicted:
            if self._on_evict:
                self._on_evict(self.name, item_id)

    def _settle(self) -> None:
        """Past the server's byte budget, the oldest items go (other collections' locks are
        taken then: never under this one's)."""
        if self.budget.used > self.budget.limit:
            self.budget.settle()

    def _insert(self, item: Item, raw: bytes) -> list[str]:
        """The item stored (under the lock); the ids evicted for it."""
        evicted = []
        self._own()
        item_id = item["id"]
        change = len(raw) + ITEM_BYTES
        old = self._items.pop(item_id, None)
        if old is not None:
            change -= self._cost(item_id, old)
            self._unindex(decode(old))
        self._items[item_id] = raw
        self._index(item)
        while len(self._items) > self.max_items:
            oldest = next(iter(self._items))
            gone = self._items.pop(oldest)
            change -= self._cost(oldest, gone)
            self._unindex(decode(gone))
            evicted.append(oldest)
        if evicted:
            self._compact(len(evicted))
        self.budget.charge(self, change)
        return evicted

    def evict_oldest(self) -> str | None:
        """Drop the oldest item for the server's byte budget; its id (None: nothing left)."""
        with self._lock:
            if not self._items:
                return None
            self._own()
            oldest = next(iter(self._items))
            gone = self._items.pop(oldest)
            self._unindex(decode(gone))
            self._compact(1)
            self.budget.charge(self, -self._cost(oldest, gone))
        return oldest

    def insert_many(self, items: Iterable[Item]) -> int:
        count = 0
        for item in items:
            self.insert(item)
            count += 1
        return count

    def _compact(self, evicted: int) -> None:
        """A dict keeps a hole for each item taken from its front until it grows again, and
        finding the oldest item walks past them all (~1 ns each: 160 us an insert at a bound
        of 100 000); rebuilt every so often, the walk stays short."""
        self._holes += evicted
        if self._holes > max(1024, len(self._items) // 32):
            self._items = dict(self._items)
            self._holes = 0

    def get(self, item_id: str) -> bytes | None:
        return self._items.get(item_id)

    def replace(self, item: Item) -> bytes | None:
        raw = self.layout.encode(item)
        with self._lock:
            old = self._items.get(item["id"])
            if old is None:
                return None
            self._own()
            former = decode(old)
            self._items[item["id"]] = raw
            for index in self._indexes.values():
                index.replaced(former, item)
            self.budget.charge(self, len(raw) + ITEM_BYTES - self._cost(item["id"], old))
        self._settle()
        return raw

    def remove(self, item_id: str) -> bool:
        with self._lock:
            if item_id not in self._items:
                return False
            self._own()
            old = self._items.pop(item_id)
            self._unindex(decode(old))
            self.budget.charge(self, -self._cost(item_id, old))
        return True

    def reader(self) -> Reader:
        """Field access to this collection's stored bytes, for one search."""
        return Reader(self.layout)

    def search(self, search: Search) -> Found:
        candidates = self._candidates(equalities(search.where))
        return evaluate(candidates, search, self.reader().access)

    def stream(self, search: Search) -> Found:
        found = self.search(search)  # the matches are references to the stored bytes
        return Found(len(found.items), found.items)

    def _candidates(self, equal: list[tuple[str, list[str]]]) -> list[bytes]:
        """Every item, or the ones the indexes allow, in insertion order."""
        usable = [(self._indexes[path], values) for path, values in equal if path in self._indexes]
        with self._lock:
            items = self._items
            if not usable:
                return list(items.values())
            chosen = _shortest(usable)
            if len(chosen) > 1 and _joined(usable):
                wanted = set(chosen)  # several lists were joined: back to insertion order
                chosen = [item_id for item_id in items if item_id in wanted]
            return [items[i] for i in dict.fromkeys(chosen) if i in items]

    def _index(self, item: Item) -> None:
        for index in self._indexes.values():
            index.add(item)

    def _unindex(self, item: Item) -> None:
        for index in self._indexes.values():
            index.discard(item)

    def clear(self) -> None:
        with self._lock:
            self.budget.charge(self, -self.account.bytes)
            self._inherited = {}
            if self._shared:  # nothing to copy: new, empty ones
                self._items = {}
                self._indexes = {path: Index(path) for path in self._indexes}
                self._shared = False
                return
            self._items.clear()
            for index in self._indexes.values():
                index.clear()

    def copy(self) -> MemoryCollection:
        """Another collection holding the same items, copy-on-write: both share the items
        and indexes until either changes (then it copies them: the item bytes themselves,
        immutable, stay shared)."""
        twin = MemoryCollection(
            self.name, self.max_items, self.layout, (), self._on_evict, self.template, self.budget
        )
        with self._lock:
            twin._items, twin._indexes, twin._holes = self._items, self._indexes, self._holes
            twin._inherited = self._items  # never changed again: both copy before a change
            self._shared = twin._shared = True
        return twin

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[bytes]:
        with self._lock:
            return iter(list(self._items.values()))


def _shortest(usable: list[tuple[Index, list[str]]]) -> list[str]:
    """The shortest of the lists of ids the indexes find for their values (the first of equally
    short ones; a loop, since min() with a key is slower here)."""
    chosen: list[str] | None = None
    for index, values in usable:
        ids = index.lookup(values)
        if chosen is None or len(ids) < len(chosen):
            chosen = ids
    assert chosen is not None
    return chosen


def _joined(usable: list[tuple[Index, list[str]]]) -> bool:
    """Whether the ids a lookup found may be out of insertion order: several lists joined (for
    several values, or a value and the index's `others`; each list is in insertion order, not
    the whole), or a list an item was replaced into."""
    return any(len(values) > 1 or index.others or index.shuffled for index, values in usable)


class MemoryBackend:
    """One session's collections, each made on first use."""

    def __init__(
        self,
        max_items: int = sys.maxsize,
        on_evict: OnEvict | None = None,
        budget: StoreBudget = _UNBOUNDED,
    ) -> None:
        self.max_items = max_items
        self.budget = budget  # bytes, shared by its forks (every session of the server)
        self._shapes: dict[str, Shape] = {}
        self._collections: dict[str, MemoryCollection] = {}
        self._lock = threading.Lock()
        self._on_evict = on_evict

    def describe(self, template: str, shape: Shape) -> None:
        self._shapes[template] = shape

    def open(self, path: str, template: str | None = None) -> MemoryCollection:
        found = self._collections.get(path)
        if found is None:
            shape = self._shapes.get(template or path, Shape())
            made = MemoryCollection(
                path,
                self.max_items,
                shape.layout,
                shape.indexed,
                self._on_evict,
                template,
                self.budget,
            )
            with self._lock:
                found = self._collections.setdefault(path, made)
        return found

    def fork(self, name: str | None = None, *, join: bool = False) -> MemoryBackend:
        twin = MemoryBackend(self.max_items, self._on_evict, self.budget)
        twin._shapes = self._shapes
        with self._lock:
            twin._collections = {path: c.copy() for path, c in self._collections.items()}
        return twin

    def clear(self) -> None:
        for collection in self._all():
            collection.clear()

    def dump(self) -> Iterator[Dumped]:
        for collection in self._all():
            yield Dumped(collection.name, collection.template, iter(collection))

    def load(self, path: str, template: str, items: Iterable[Item]) -> int:
        collection = self.open(path, template)
        collection.clear()
        return collection.insert_many(items)

    def release(self) -> None:
        """Nothing to do: the memory goes with the process."""

    def let_go(self) -> None:
        """Its collections' bytes out of the budget (its session ended; a request still using
        them charges what it adds, credited when they are collected)."""
        for collection in self._all():
            self.budget.forget(collection.account)

    def health(self) -> dict[str, Any]:
        budget = self.budget
        return {
            "kind": "memory",
            "reachable": True,
            "bytes": budget.used,
            "bytesLimit": budget.limit,
        }

    def _all(self) -> list[MemoryCollection]:
        with self._lock:
            return list(self._collections.values())
