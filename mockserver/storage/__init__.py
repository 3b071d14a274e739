"""Where items live: the backend interface (`backend`), the embedded memory backend
(`memory`), the Redis backend (`redis`), the shared Python evaluation of searches
(`evaluate`), and `--state-file`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from mockserver.masking import mask_url
from mockserver.storage.backend import Backend, OnEvict
from mockserver.storage.budget import StoreBudget

DEFAULT_PREFIX = "mockserver"


class BackendError(Exception):
    """The store named cannot be used; the message says which and why."""


def make_backend(
    url: str,
    max_items: int,
    on_evict: OnEvict | None = None,
    prefix: str = DEFAULT_PREFIX,
    budget: StoreBudget | None = None,
    cache_bytes: int = 0,
) -> Backend:
    """The backend a store URL names: `memory` (the embedded one, the default; its bytes
    within `budget`), or Redis (`redis://`, `rediss://`, `unix://`; keys under `prefix`),
    checked to answer now; a Redis store's items read by id kept in each process up to
    `cache_bytes` (0: none, `storage.redis_cache`)."""
    if url == "memory":
        from mockserver.storage.memory import MemoryBackend

        if budget is None:
            return MemoryBackend(max_items, on_evict)
        return MemoryBackend(max_items, on_evict, budget)
    from mockserver.storage.redis_connection import SCHEMES, BadStore, Link

    if not url.startswith(SCHEMES):
        raise BackendError(
            f"--store {mask_url(url)}: not a store this server knows "
            "(memory, redis://, rediss:// or unix://)"
        )
    if not prefix or any(c in prefix for c in "{}") or not prefix.isprintable():
        raise BackendError(f"--store-prefix {prefix!r}: printable characters, no braces")
    try:
        link = Link(url, cache_bytes)
        link.check()
    except BadStore as exc:
        raise BackendError(f"--store {mask_url(url)}: {exc}") from None
    from mockserver.storage.redis import RedisBackend

    return RedisBackend.fresh(link, prefix, max_items, on_evict)


def let_go(backend: Backend) -> None:
    """A session's storage is ended: the bytes its embedded collections hold are free in the
    server's budget now, not when the last request using them is done. (A Redis store keeps its
    own accounts.)"""
    from mockserver.storage.memory import MemoryBackend

    if isinstance(backend, MemoryBackend):
        backend.let_go()


def wait_aside(backend: Backend, aside: Callable[[], AbstractContextManager[None]]) -> None:
    """What a request does while it waits on a shared store (`aside`: leave its turn at the
    server's Python work, `http.fair_queue`); nothing for the embedded store."""
    link = getattr(backend, "link", None)
    if link is not None:
        link.aside = aside
