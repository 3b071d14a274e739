"""The storage backend interface: what a session needs from the place its items live.

A `Backend` holds one session's collections; a `Collection` holds the items of one concrete
collection path (`/public/v1/audit/records`, or a nested one with its parent's id in it).
Items go in as dicts and come back as the bytes of their JSON, which an answer carries as
they are. A search reaches the backend as the checked RQL expression (`query.expression`)
with its order and page, so a backend evaluates what it can natively (an index, a sorted set)
and hands the rest to the shared helper (`storage.evaluate`), which evaluates it in Python.

`storage.memory` is the embedded backend. Another backend implements these two protocols and
passes the conformance suite (`tests/test_backend_conformance.py`) unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from mockserver.problems import Problem
from mockserver.query.expression import Expression
from mockserver.storage.encoding import Layout

Item = dict[str, Any]
OnEvict = Callable[[str, str], None]  # (collection path, id of the item evicted)


@dataclass(frozen=True)
class Shape:
    """How a collection's items look: their declared top-level members (`layout`), the
    paths worth an equality index, and those lists are often ordered by (`ordered`: a
    backend may keep them sorted; the memory backend sorts when asked)."""

    layout: Layout = field(default_factory=Layout)
    indexed: tuple[str, ...] = ()
    ordered: tuple[str, ...] = ()


@dataclass(frozen=True)
class Search:
    """A query on a collection: the filter (None: every item), the order (path, descending),
    and the page."""

    where: Expression | None = None
    order: tuple[tuple[str, bool], ...] = ()
    offset: int = 0
    limit: int = 10
    budget: float = 0.0  # seconds its filter may take (0: no limit); else TooCostly


class TooCostly(Exception):
    """A search's filter took longer than its budget; how many items it had looked at."""

    def __init__(self, budget: float, looked_at: int, candidates: int) -> None:
        super().__init__(f"over {budget:.3f}s after {looked_at} of {candidates} items")
        self.budget, self.looked_at, self.candidates = budget, looked_at, candidates


@dataclass(frozen=True)
class Found:
    """The items of one search, oldest first unless ordered, and how many matched in all."""

    total: int
    items: Sequence[bytes]


class StoreUnavailable(Problem):
    """The store cannot be reached now (Redis lost): the request answers 503 naming it."""

    def __init__(self, store: str, reason: str, detail: str | None = None) -> None:
        said = detail or f"The store {store} cannot be reached ({reason}); try again shortly."
        super().__init__(503, said)
        self.store = store


class StoreRefused(StoreUnavailable):
    """The store is there but refuses the request's commands now (Redis at its `maxmemory`, a
    read-only replica, loading, an ACL that does not allow them): a 503 naming it and why."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(store, reason, f"The store {store} refuses it now ({reason}).")


class Dumped(NamedTuple):
    """One collection as `Backend.dump` gives it."""

    path: str
    template: str
    items: Iterator[bytes]


class Collection(Protocol):
    """The items of one concrete collection path, by id, in insertion order."""

    @property
    def name(self) -> str:
        """The concrete path (`/public/v1/audit/records`)."""
        ...

    @property
    def template(self) -> str:
        """The spec's path of the collection (`/.../orders/{id}/lines` for a nested one)."""
        ...

    def insert(self, item: Item) -> bytes:
        """Store an item (replacing one with its id); past the bound, the oldest go (each
        reported to the backend's `on_evict`). The stored bytes."""
        ...

    def add(self, item: Item) -> bytes | None:
        """`insert` of an item whose id is not held, as one step (two servers drawing the same
        id cannot both add it); None, and nothing changed, when the id is held."""
        ...

    def insert_many(self, items: Iterable[Item]) -> int:
        """`insert` of each item in turn (a remote store sends them in batches); how many."""
        ...

    def get(self, item_id: str) -> bytes | None: ...

    def replace(self, item: Item) -> bytes | None:
        """Replace an existing item (by its id); None when there is none."""
        ...

    def remove(self, item_id: str) -> bool: ...

    def search(self, search: Search) -> Found:
        """One page of the items that match, and how many match in all."""
        ...

    def stream(self, search: Search) -> Found:
        """Every item that matches, up to `search.limit`, for an answer made as it is sent
        (`items` may be produced lazily; `total` is how many it holds)."""
        ...

    def clear(self) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]:
        """Every item, oldest first."""
        ...


class Backend(Protocol):
    """One session's collections."""

    def describe(self, template: str, shape: Shape) -> None:
        """How items of the collections of `template` look (before any is opened)."""
        ...

    def open(self, path: str, template: str | None = None) -> Collection:
        """The collection at a concrete path (made on first use); `template` is its spec path
        (the path itself by default)."""
        ...

    def fork(self, name: str | None = None, *, join: bool = False) -> Backend:
        """Another backend holding the same items, to be changed independently: a new
        session's, from the start-up state. `name` names the session: a store shared by
        several servers keeps one copy per name, and `join` takes the copy another server
        already made instead of making it afresh (an embedded store ignores both)."""
        ...

    def clear(self) -> None:
        """Every collection emptied."""
        ...

    def dump(self) -> Iterator[Dumped]:
        """Every collection with its items, for `--state-file`."""
        ...

    def load(self, path: str, template: str, items: Iterable[Item]) -> int:
        """Replace a collection's items with these (from `--state-file`); how many."""
        ...

    def release(self) -> None:
        """Let go of what this backend keeps for its server alone, when the server stops (a
        Redis store's start-up namespace; what sessions hold stays for the other servers)."""
        ...

    def health(self) -> dict[str, Any]:
        """What health says of the store: `kind` (`memory`, `redis`), the `url` of a remote
        one (its password masked), whether it is `reachable`, and, when it refuses writes
        now, why (`refusing`)."""
        ...
