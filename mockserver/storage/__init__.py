"""Where items live: the backend interface (`backend`), the embedded memory backend
(`memory`), the shared Python evaluation of searches (`evaluate`), and `--state-file`."""

from __future__ import annotations

from mockserver.storage.backend import Backend, OnEvict


class BackendError(Exception):
    """The store named cannot be used; the message says which and why."""


def make_backend(url: str, max_items: int, on_evict: OnEvict | None = None) -> Backend:
    """The backend a store URL names (`memory`: the embedded one, the default)."""
    if url == "memory":
        from mockserver.storage.memory import MemoryBackend

        return MemoryBackend(max_items, on_evict)
    raise BackendError(f"{url}: not a store this server knows (only 'memory')")
