"""The link to Redis: a client made from a `--store` URL (`redis://`, `rediss://`, `unix://`),
its password never shown, short timeouts (a lost Redis answers at once, never hangs a
request), and every Redis error of a request turned into `StoreUnavailable` (a 503).

redis-py's pool reconnects on the next call once Redis is back: service resumes by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from mockserver.masking import mask_url
from mockserver.storage.backend import StoreUnavailable

SCHEMES = ("redis://", "rediss://", "unix://")
CONNECT_TIMEOUT = 2.0  # seconds to open a connection
READ_TIMEOUT = 10.0  # seconds to wait for an answer (a fork of 100 000 items takes ~0.2 s)
LOST = (RedisConnectionError, RedisTimeoutError, OSError)


class BadStore(Exception):
    """The URL cannot be used (not a Redis URL, or Redis cannot be reached at start-up)."""


class Link:
    """One client (thread-safe, pooled) and the URL it was made from, masked."""

    def __init__(self, url: str) -> None:
        self.shown = mask_url(url)
        try:
            self.client: redis.Redis = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=READ_TIMEOUT,
                retry=Retry(NoBackoff(), 1),  # once, at once: a connection Redis closed
                retry_on_timeout=False,  # a change may have been made: never twice
                client_name="mockserver",
            )
        except (ValueError, TypeError) as exc:
            raise BadStore(f"not a Redis URL ({exc})") from None

    def check(self) -> None:
        """BadStore naming why Redis cannot be used now (at start-up)."""
        try:
            self.client.ping()
        except redis.exceptions.AuthenticationError as exc:
            raise BadStore(f"Redis refused the credentials ({exc})") from None
        except redis.exceptions.ResponseError as exc:
            raise BadStore(f"Redis refused the connection ({exc})") from None
        except LOST as exc:
            raise BadStore(f"cannot reach Redis ({_reason(exc)})") from None

    def reachable(self) -> bool:
        try:
            return bool(self.client.ping())
        except (*LOST, redis.exceptions.RedisError):
            return False

    @contextmanager
    def calling(self) -> Iterator[None]:
        """Redis lost → StoreUnavailable naming the store (a 503, not a traceback)."""
        try:
            yield
        except LOST as exc:
            raise StoreUnavailable(f"Redis at {self.shown}", _reason(exc)) from None


def _reason(exc: BaseException) -> str:
    """An error's first line, without the password a URL in it may hold."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.rstrip(".")
