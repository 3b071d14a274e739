"""Browsing a session's journal: the filters of `GET /_mock/requests` (the dashboard's list of
requests), newest or oldest first, one page at a time.

A page turns only its own entries into JSON: the others are looked at through a few
attributes, so a journal at its bound (10 000 entries) answers a page in a few milliseconds.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mockserver.faults.matching import PathPattern
from mockserver.sessions.journal import Entry

DEFAULT_PAGE = 100  # entries a page holds when `limit` is not given
FILTERS = ("order", "after", "method", "path", "operation", "status", "refused", "faulted")

Test = Callable[[Entry], bool]


@dataclass(frozen=True)
class Page:
    total: int  # entries that pass the filters
    entries: list[Entry]  # the page of them
    last: int  # the newest entry's id in the journal (0: none yet), a cursor for `after`


def browse(entries: list[Entry], query: Mapping[str, str]) -> Page:
    """The page of `entries` (oldest first, as the journal keeps them) the query asks for."""
    tests = _tests(query)
    last = entries[-1].id if entries else 0
    if query.get("after"):  # ids grow along the journal: found by bisection, not a scan
        entries = entries[bisect.bisect_right(entries, int(query["after"]), key=_id) :]
    newest_first = query.get("order") == "newest"
    ordered: Iterable[Entry] = reversed(entries) if newest_first else entries
    offset = int(query.get("offset") or 0)
    limit = int(query.get("limit") or DEFAULT_PAGE)
    for test in tests:  # chained C-level filters: no Python loop of our own per entry
        ordered = filter(test, ordered)
    passed = ordered if isinstance(ordered, list) else list(ordered)  # references only
    total, page = len(passed), passed[offset : offset + limit]
    return Page(total, page, last)


def _tests(query: Mapping[str, str]) -> list[Test]:
    """One test per filter given."""
    tests: list[Test] = []
    if query.get("method"):
        method = query["method"].upper()
        tests.append(lambda entry: entry.method == method)
    if query.get("path"):
        pattern = PathPattern(query["path"])
        tests.append(lambda entry: pattern.match(entry.path))
    if query.get("operation"):
        operation = query["operation"]
        tests.append(lambda entry: entry.operation == operation)
    if query.get("status"):
        tests.append(_status_test(query["status"]))
    if query.get("refused") == "true":
        tests.append(refused)
    if query.get("faulted") == "true":
        tests.append(lambda entry: entry.fault is not None)
    return tests


def _id(entry: Entry) -> int:
    return entry.id


def _status_test(given: str) -> Test:
    """`404`: that status; `4xx`: any of its class; `0`: no answer (a connection fault)."""
    if given.endswith("xx"):
        klass = int(given[0])
        return lambda entry: entry.status // 100 == klass
    status = int(given)
    return lambda entry: entry.status == status


def refused(entry: Entry) -> bool:
    """The mock refused it (a 4xx of its own, no fault rule's)."""
    return entry.fault is None and 400 <= entry.status < 500


def page_json(page: Page) -> dict[str, Any]:
    return {
        "total": page.total,
        "last": page.last,
        "data": [entry.as_json() for entry in page.entries],
    }
