"""The session bounds' tests (`test_bounds.py`) again, on a Redis store: the journal's cut
bodies and byte budget, ending a session, reads that make no session, idle sessions expiring,
`--max-sessions`, the sessions' listing and `--max-rules` behave as in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from redis_server import RedisServer, forget, unique_prefix
from test_bounds import (  # noqa: F401 - collected here, on Redis
    test_a_large_body_is_journaled_cut_with_its_size_and_hash,
    test_a_session_holds_at_most_max_rules,
    test_an_idle_session_expires,
    test_ending_a_session_frees_its_journal_bytes,
    test_max_sessions_refuses_one_more_with_a_429_naming_it,
    test_reads_and_refused_requests_make_no_session,
    test_the_journals_of_every_session_hold_at_most_journal_bytes,
    test_the_sessions_are_listed_with_what_they_hold,
)


@pytest.fixture
def make_app(make_app: Callable[..., Flask], engine: RedisServer) -> Iterator[Callable[..., Flask]]:
    """Each app on the test's Redis, under a prefix of its own."""
    prefixes: list[str] = []

    def make(**settings: Any) -> Flask:
        prefixes.append(unique_prefix())
        return make_app(store=engine.url, store_prefix=prefixes[-1], **settings)

    yield make
    for prefix in prefixes:
        forget(engine, prefix)
