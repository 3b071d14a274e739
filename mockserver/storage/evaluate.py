"""The shared helper of every storage backend: a search evaluated in Python over candidate
items (all of a collection, or those its indexes allow): the filter, the order, the page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from mockserver.query.predicates import Access, Predicate, predicate
from mockserver.storage.backend import Found, Search, TooCostly

SLICE = 2048  # items filtered between two looks at the clock


def evaluate(candidates: Iterable[bytes], search: Search, access: Access) -> Found:
    """The page of `candidates` that match `search`, in its order; `access` reads a dotted path
    of a stored item."""
    items = candidates if isinstance(candidates, list) else list(candidates)
    if search.where is not None:
        where = predicate(search.where, access)
        if search.budget and len(items) > SLICE:
            items = _within(items, where, search.budget)
        else:
            items = [raw for raw in items if where(raw)]
    if search.order:
        items = sort(items, search.order, access)
    return Found(len(items), items[search.offset : search.offset + search.limit])


def _within(items: list[bytes], where: Predicate, budget: float) -> list[bytes]:
    """The items that match, filtered in slices; TooCostly once `budget` seconds are spent."""
    deadline = time.perf_counter() + budget
    kept: list[bytes] = []
    for start in range(0, len(items), SLICE):
        if time.perf_counter() > deadline:
            raise TooCostly(budget, start, len(items))
        kept += [raw for raw in items[start : start + SLICE] if where(raw)]
    return kept


def sort(
    items: list[bytes],
    order: Iterable[tuple[str, bool]],
    access: Access,
) -> list[bytes]:
    """Stable multi-key sort; missing values first in ascending order, as SQL does with NULLs."""
    for path, descending in reversed(list(order)):
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
