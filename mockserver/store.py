"""Where items live: the storage interface and its in-memory, thread-safe, bounded kind.

Items go in as dicts and are kept as compact JSON bytes (see `layout`); reads hand back those
bytes, which a response can carry as they are. Equality indexes answer the most common filters
(`eq`/`in` on the paths a collection indexes) without looking at every item.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mockserver.index import Index
from mockserver.layout import Item, Layout, Reader, decode
from mockserver.rql import Predicate

OnEvict = Callable[[str, str], None]


@dataclass
class Search:
    """A query on a store: filter (compiled with the store's reader), index hints, order, page."""

    reader: Reader
    where: Predicate | None = None
    equalities: list[tuple[str, list[str]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    offset: int = 0
    limit: int = 10


@dataclass(frozen=True)
class Found:
    """One page of a query (stored bytes) and how many items matched in all."""

    total: int
    items: list[bytes]


class Store(Protocol):
    """What the handlers need from a collection's storage; another backend implements the same."""

    def insert(self, item: Item) -> bytes: ...
    def get(self, item_id: str) -> bytes | None: ...
    def replace(self, item: Item) -> bytes | None: ...
    def remove(self, item_id: str) -> bool: ...
    def reader(self) -> Reader: ...
    def find(self, search: Search) -> Found: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[bytes]: ...


class MemoryStore:
    """Items by id in insertion order; the oldest go first when `max_items` is reached."""

    def __init__(
        self,
        name: str,
        max_items: int,
        layout: Layout | None = None,
        indexed: tuple[str, ...] = (),
        on_evict: OnEvict | None = None,
        template: str | None = None,
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

    def insert(self, item: Item) -> bytes:
        raw = self.layout.encode(item)
        evicted = []
        with self._lock:
            old = self._items.pop(item["id"], None)
            if old is not None:
                self._unindex(decode(old))
            self._items[item["id"]] = raw
            self._index(item)
            while len(self._items) > self.max_items:
                oldest = next(iter(self._items))
                self._unindex(decode(self._items.pop(oldest)))
                evicted.append(oldest)
            if evicted:
                self._compact(len(evicted))
        for item_id in evicted:
            if self._on_evict:
                self._on_evict(self.name, item_id)
        return raw

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
            self._unindex(decode(old))
            self._items[item["id"]] = raw
            self._index(item)
        return raw

    def remove(self, item_id: str) -> bool:
        with self._lock:
            old = self._items.pop(item_id, None)
            if old is not None:
                self._unindex(decode(old))
        return old is not None

    def reader(self) -> Reader:
        return Reader(self.layout)

    def find(self, search: Search) -> Found:
        items = self._candidates(search.equalities)
        if search.where is not None:
            where = search.where
            items = [raw for raw in items if where(raw)]
        if search.order:
            items = sort(items, search.order, search.reader.access)
        return Found(len(items), items[search.offset : search.offset + search.limit])

    def _candidates(self, equalities: list[tuple[str, list[str]]]) -> list[bytes]:
        """Every item, or the ones the indexes allow, in insertion order."""
        usable = [
            (self._indexes[path], values) for path, values in equalities if path in self._indexes
        ]
        with self._lock:
            if not usable:
                return list(self._items.values())
            chosen: list[str] | None = None
            for index, values in usable:
                ids = index.lookup(values)
                if chosen is None or len(ids) < len(chosen):
                    chosen = ids
            assert chosen is not None
            if len(chosen) > 1 and any(len(v) > 1 or i.others for i, v in usable):
                wanted = set(chosen)  # several lists were joined: back to insertion order
                chosen = [item_id for item_id in self._items if item_id in wanted]
            items = self._items
            return [items[i] for i in dict.fromkeys(chosen) if i in items]

    def _index(self, item: Item) -> None:
        for index in self._indexes.values():
            index.add(item)

    def _unindex(self, item: Item) -> None:
        for index in self._indexes.values():
            index.discard(item)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            for index in self._indexes.values():
                index.clear()

    def copy(self) -> MemoryStore:
        """Another store holding the same items (the bytes are shared, being immutable)."""
        twin = MemoryStore(
            self.name, self.max_items, self.layout, (), self._on_evict, self.template
        )
        with self._lock:
            twin._items = dict(self._items)
            twin._indexes = {path: index.copy() for path, index in self._indexes.items()}
        return twin

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[bytes]:
        with self._lock:
            return iter(list(self._items.values()))


def sort(
    items: list[bytes], order: list[tuple[str, bool]], access: Callable[[str], Callable[[Any], Any]]
) -> list[bytes]:
    """Stable multi-key sort; missing values first in ascending order, as SQL does with NULLs."""
    for path, descending in reversed(order):
        get = access(path)

        def key(raw: bytes, get: Callable[[Any], Any] = get) -> tuple[int, Any]:
            return _rank(get(raw))

        items = sorted(items, key=key, reverse=descending)
    return items


def _rank(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return 1, int(value)
    if isinstance(value, int | float):
        return 1, value
    if isinstance(value, str):
        return 2, value
    if value is None or not isinstance(value, list | dict):
        return 0, 0
    return 3, str(value)


@dataclass(frozen=True)
class Shape:
    """How a collection stores its items: layout and indexed paths."""

    layout: Layout = field(default_factory=Layout)
    indexed: tuple[str, ...] = ()


class Stores:
    """One store per collection path, made on first use."""

    def __init__(self, max_items: int, on_evict: OnEvict | None = None) -> None:
        self.max_items = max_items
        self.shapes: dict[str, Shape] = {}
        self._stores: dict[str, MemoryStore] = {}
        self._lock = threading.Lock()
        self._on_evict = on_evict

    def open(self, collection: str, template: str | None = None) -> MemoryStore:
        """The store of a concrete collection path (`template`: its spec path, for its shape)."""
        store = self._stores.get(collection)
        if store is None:
            shape = self.shapes.get(template or collection, Shape())
            with self._lock:
                store = self._stores.setdefault(
                    collection,
                    MemoryStore(
                        collection,
                        self.max_items,
                        shape.layout,
                        shape.indexed,
                        self._on_evict,
                        template,
                    ),
                )
        return store

    def __getitem__(self, collection: str) -> MemoryStore:
        return self.open(collection)

    def __iter__(self) -> Iterator[MemoryStore]:
        return iter(list(self._stores.values()))

    def clear(self) -> None:
        for store in self:
            store.clear()

    def copy(self) -> Stores:
        """Stores holding the same items, to be changed independently."""
        twin = Stores(self.max_items, self._on_evict)
        twin.shapes = self.shapes
        with self._lock:
            twin._stores = {path: store.copy() for path, store in self._stores.items()}
        return twin
