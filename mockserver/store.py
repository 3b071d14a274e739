"""Where items live: the storage interface and its in-memory, thread-safe, bounded kind."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from mockserver.rql import Predicate, getter

Item = dict[str, Any]
OnEvict = Callable[[str, Item], None]


@dataclass(frozen=True)
class Found:
    """One page of a query and how many items matched in all."""

    total: int
    items: list[Item]


class Store(Protocol):
    """What the handlers need from a collection's storage; another backend implements the same."""

    def insert(self, item: Item) -> None: ...
    def get(self, item_id: str) -> Item | None: ...
    def replace(self, item: Item) -> None: ...
    def remove(self, item_id: str) -> bool: ...
    def find(
        self, where: Predicate | None, order: list[tuple[str, bool]], offset: int, limit: int
    ) -> Found: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Item]: ...


class MemoryStore:
    """Items by id in insertion order; the oldest go first when `max_items` is reached."""

    def __init__(self, name: str, max_items: int, on_evict: OnEvict | None = None) -> None:
        self.name = name
        self.max_items = max_items
        self._items: dict[str, Item] = {}
        self._lock = threading.Lock()
        self._on_evict = on_evict

    def insert(self, item: Item) -> None:
        evicted = []
        with self._lock:
            self._items[item["id"]] = item
            while len(self._items) > self.max_items:
                oldest = next(iter(self._items))
                evicted.append(self._items.pop(oldest))
        for old in evicted:
            if self._on_evict:
                self._on_evict(self.name, old)

    def get(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    def replace(self, item: Item) -> None:
        with self._lock:
            if item["id"] in self._items:
                self._items[item["id"]] = item

    def remove(self, item_id: str) -> bool:
        with self._lock:
            return self._items.pop(item_id, None) is not None

    def find(
        self, where: Predicate | None, order: list[tuple[str, bool]], offset: int, limit: int
    ) -> Found:
        with self._lock:
            items: list[Item] = list(self._items.values())
        if where is not None:
            items = [item for item in items if where(item)]
        if order:
            items = sort(items, order)
        return Found(len(items), list(islice(items, offset, offset + limit)))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        with self._lock:
            return iter(list(self._items.values()))


def sort(items: list[Item], order: list[tuple[str, bool]]) -> list[Item]:
    """Stable multi-key sort; missing values first in ascending order, as SQL does with NULLs."""
    for path, descending in reversed(order):
        get = getter(path)

        def key(item: Item, get: Callable[[Any], Any] = get) -> tuple[int, Any]:
            return _rank(get(item))

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


class Stores:
    """One store per collection path, made on first use."""

    def __init__(self, max_items: int, on_evict: OnEvict | None = None) -> None:
        self.max_items = max_items
        self._stores: dict[str, MemoryStore] = {}
        self._lock = threading.Lock()
        self._on_evict = on_evict

    def __getitem__(self, collection: str) -> MemoryStore:
        store = self._stores.get(collection)
        if store is None:
            with self._lock:
                store = self._stores.setdefault(
                    collection, MemoryStore(collection, self.max_items, self._on_evict)
                )
        return store

    def __iter__(self) -> Iterator[MemoryStore]:
        return iter(list(self._stores.values()))

    def clear(self) -> None:
        for store in self:
            store.clear()
