"""How a collection behaves beyond CRUD: the server-owned fields it sets on create, what must
stay unique, what it indexes, how `render()` shows an item, and what it holds at start-up.

A collection of a spec with no behaviour of its own gets this generic one, which only sets
`id`. `create_app(settings, behaviours={template: Behaviour subclass})` plugs in others.
"""

from __future__ import annotations

import time
from typing import Any

from mockserver.auth.identity import Identity
from mockserver.resources.ids import IdFormat
from mockserver.settings import Settings
from mockserver.storage.backend import Collection, Item


class Behaviour:
    """How one collection fills server-owned fields; the generic behaviour only sets `id`."""

    noun = "Item"
    label: str | None = None  # its name in the control API (`records`): health counts it
    server_fields: tuple[str, ...] = ("id",)
    unique: tuple[str, ...] = ()
    indexed: tuple[str, ...] = ()  # paths with an equality index
    ordered: tuple[str, ...] = ()  # paths lists are often ordered by (a store may keep them so)
    default_ids: IdFormat | None = None  # when the spec's id pattern does not say

    def __init__(self, ids: IdFormat) -> None:
        self.ids = ids

    def created(self, body: dict[str, Any], item_id: str, identity: Identity) -> Item:
        return {"id": item_id, **body}

    def render(self, item: Item) -> Item:
        """The item as `render()` shows it (records fill their `details` template)."""
        return item

    def seed(self, collection: Collection, settings: Settings) -> None:
        """Fill the collection with what it holds at start-up (nothing, by default)."""


def now() -> str:
    """UTC, millisecond precision, `Z`: how the platform writes timestamps. The date and time
    of day are formatted once a second."""
    second, fraction = divmod(time.time_ns() // 1_000_000, 1000)
    last = _last[0]  # read once: another thread may replace it meanwhile
    if last[0] != second:
        last = _last[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{last[1]}.{fraction:03d}Z"


_last: list[tuple[int, str]] = [(-1, "")]  # the last second formatted, and its text
