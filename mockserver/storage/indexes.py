"""Equality indexes: for one field path, the ids of the items holding each string value.

Only string values are looked up exactly; items whose value at the path is not a string (a
number, a date-like text compared as a date aside) are kept apart in `others` and always stay
candidates, since RQL compares them by type. A path through an array (`viewers.name`) gives a
list: the item is found under each of its strings (RQL's `eq` on a list matches any of them),
and in `others` when the list holds anything else. A value held by one item costs one dict
slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mockserver.codec import MISSING
from mockserver.query.predicates import getter

Ids = dict[str, None]  # insertion-ordered set of ids


class Index:
    def __init__(self, path: str) -> None:
        self.path = path
        self._get: Callable[[Any], Any] = getter(path)
        self._ids: dict[str, str | Ids] = {}
        self.others: Ids = {}
        self.shuffled = False  # an id was added back out of insertion order (a replace)

    def add(self, item: dict[str, Any]) -> None:
        value, item_id = self._get(item), item["id"]
        if value is MISSING or value is None:
            return
        if isinstance(value, list):
            for each in _strings(value, item_id, self.others):
                self._add(each, item_id)
            return
        if not isinstance(value, str):
            self.others[item_id] = None
            return
        self._add(value, item_id)

    def _add(self, value: str, item_id: str) -> None:
        held = self._ids.get(value)
        if held is None:
            self._ids[value] = item_id
        elif isinstance(held, str):
            self._ids[value] = {held: None, item_id: None}
        else:
            held[item_id] = None

    def replaced(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """An item replaced in place: indexed anew only when its value here changed (its id
        then joins the new value's ids last, out of insertion order)."""
        if self._get(old) != self._get(new):
            self.discard(old)
            self.add(new)
            self.shuffled = True

    def discard(self, item: dict[str, Any]) -> None:
        value, item_id = self._get(item), item["id"]
        self.others.pop(item_id, None)
        if isinstance(value, list):
            for each in _strings(value, item_id, {}):
                self._discard(each, item_id)
        elif isinstance(value, str):
            self._discard(value, item_id)

    def _discard(self, value: str, item_id: str) -> None:
        held = self._ids.get(value)
        if held == item_id:
            del self._ids[value]
        elif isinstance(held, dict):
            held.pop(item_id, None)
            if not held:
                del self._ids[value]

    def lookup(self, values: Iterable[str]) -> list[str]:
        """Ids holding any of the values (and the `others`), each value's ids in insertion order."""
        found: list[str] = []
        for value in values:
            held = self._ids.get(value)
            if isinstance(held, str):
                found.append(held)
            elif held:
                found.extend(held)
        found.extend(self.others)
        return found

    def copy(self) -> Index:
        twin = Index(self.path)
        twin._ids = {
            value: ids if isinstance(ids, str) else dict(ids) for value, ids in self._ids.items()
        }
        twin.others = dict(self.others)
        twin.shuffled = self.shuffled
        return twin

    def clear(self) -> None:
        self._ids.clear()
        self.others.clear()
        self.shuffled = False


def _strings(values: list[Any], item_id: str, others: Ids) -> list[str]:
    """The distinct strings of a list, in order; the item goes to `others` when the list holds
    anything else (which only a scan can compare)."""
    strings = [value for value in values if isinstance(value, str)]
    if len(strings) < len(values):
        others[item_id] = None
    return strings if len(strings) < 2 else list(dict.fromkeys(strings))
