"""The bytes the embedded store may hold (`--max-store-bytes`): one budget for every collection
of every session of a server.

Each collection is charged what it stores itself (an item's JSON bytes and an estimate of what
keeping it costs besides); an item a session shares with the start-up data, copy-on-write, is
charged once, to the start-up collection. When a write takes the server past its budget, the
collection charged most (the one filling the store) loses its oldest items until the server
is back within it, each one logged as `--max-records` evictions are.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Protocol

ITEM_BYTES = 160  # what an item costs besides its JSON: its dict slot, id, bytes header, indexes

OnSpill = Callable[[str, str], None]  # (collection path, id of the item evicted)


class Account:
    """What one collection is charged; it outlives the collection (see `forget`)."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0


class Holder(Protocol):
    """A collection as the budget sees it."""

    name: str
    account: Account

    def evict_oldest(self) -> str | None:
        """Drop the oldest item (the budget credited for it); its id, None when empty."""


class StoreBudget:
    def __init__(self, limit: int, on_spill: OnSpill | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.on_spill = on_spill
        self._lock = threading.Lock()
        self._holders: weakref.WeakSet[Holder] = weakref.WeakSet()

    def charge(self, holder: Holder, amount: int) -> None:
        """Count bytes in (positive) or out (negative) for a collection."""
        with self._lock:
            holder.account.bytes += amount
            self.used += amount
            if amount > 0:
                self._holders.add(holder)

    def forget(self, account: Account) -> None:
        """A collection is gone (its session ended): what it was charged is free again."""
        with self._lock:
            self.used -= account.bytes
            account.bytes = 0

    def settle(self) -> None:
        """Back within the limit: the oldest items of the collection charged most go first.
        Called after a write, holding no collection's lock."""
        while self.used > self.limit:
            with self._lock:
                charged = [h for h in self._holders if h.account.bytes > 0]
            if not charged:
                return
            victim = max(charged, key=_charged)
            gone = victim.evict_oldest()
            if gone is None:
                with self._lock:
                    self._holders.discard(victim)
                continue
            if self.on_spill is not None:
                self.on_spill(victim.name, gone)


def _charged(holder: Holder) -> int:
    return holder.account.bytes
