"""`--state-file`: the records, event types and fault rules of every session, saved when the
server stops and loaded when it starts, so a restarted mock keeps its data.

The file is JSON Lines, one `[kind, payload]` array a line, written record by record (no copy
of the store in memory) to a temporary file next to it, flushed to disk, then renamed over the
old one: a crash or `kill -9` during the write leaves the previous file as it was. Its last
line counts what it holds, so a file cut short by other means is refused, not half loaded.

    ["state", {"version": 1, "saved": "2026-11-26T17:00:00Z", "spec": "Audit API 1.0"}]
    ["session", "default"]
    ["rules", [{"id": "rule-1", "rule": {...}, "matched": 3, "fired": 2, "documented": true}]]
    ["collection", {"path": "/public/v1/audit/records", "template": "/public/v1/audit/records"}]
    ["item", {"id": "AUD-...", ...}]
    ["end", {"sessions": 1, "items": 1}]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from mockserver.scenario import RuleBook
from mockserver.session import Sessions
from mockserver.store import MemoryStore, Stores

VERSION = 1
_COUNTED = (("id", str), ("rule", dict), ("matched", int), ("fired", int))


class StateFileError(Exception):
    """The state file cannot be used; the message names the file and the problem."""


@dataclass
class _Saved:
    """One session as the file holds it: its rules, and its stores filled as the file is read."""

    stores: Stores
    rules: list[dict[str, Any]] = field(default_factory=list)
    items: int = 0  # item lines read (a skipped collection's too)


def save(path: Path, sessions: Sessions, spec: str) -> int:
    """Write every session to `path` atomically; the number of items written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as out:
            items = _write(out, sessions, spec)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)
    return items


def _write(out: IO[bytes], sessions: Sessions, spec: str) -> int:
    saved = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out.write(_line("state", {"version": VERSION, "saved": saved, "spec": spec}))
    count, items = 0, 0
    for session in sessions:
        count += 1
        out.write(_line("session", session.name))
        out.write(_line("rules", [rule.state() for rule in session.faults.rules]))
        for store in session.stores:
            out.write(_line("collection", {"path": store.name, "template": store.template}))
            for raw in store:
                out.write(b'["item",' + raw + b"]\n")
                items += 1
    out.write(_line("end", {"sessions": count, "items": items}))
    return items


def _line(kind: str, payload: Any) -> bytes:
    return orjson.dumps([kind, payload]) + b"\n"


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: Path, sessions: Sessions, book: RuleBook, templates: set[str]) -> tuple[int, int]:
    """Restore the sessions `path` holds (each rule checked by `book`; collections that
    are not `templates` of this spec skipped); (sessions, items) restored. Nothing changes
    unless the whole file is sound: StateFileError otherwise."""
    saved = read(path, lambda: _empty(sessions.initial), templates)
    documented = {
        name: [_checked(state, book, path) for state in content.rules]
        for name, content in saved.items()
    }
    for name, content in saved.items():
        session = sessions.get(name)
        session.stores = content.stores
        session.faults.clear()
        for state, ok in zip(content.rules, documented[name], strict=True):
            session.faults.restore(state, ok)
    items = sum(len(store) for content in saved.values() for store in content.stores)
    return len(saved), items


def _checked(state: dict[str, Any], book: RuleBook, path: Path) -> bool:
    """Whether a saved rule's status is documented; StateFileError for a rule not valid."""
    if not all(isinstance(state.get(key), kind) for key, kind in _COUNTED):
        raise StateFileError(f"{path}: a saved rule has an id, its rule and its counters")
    refused = book.refusal(state["rule"])
    if refused:
        raise StateFileError(f"{path}: rule {state['id']} is not valid: {refused}")
    return book.check(state["rule"])


def _empty(initial: Stores) -> Stores:
    stores = initial.copy()
    stores.clear()
    return stores


def read(path: Path, make: Callable[[], Stores], templates: set[str]) -> dict[str, _Saved]:
    """The sessions a state file holds, by name, their items in stores `make` gives (of
    collections that are `templates`); StateFileError for anything else."""
    try:
        with path.open("rb") as lines:
            return _parse(enumerate(lines, 1), path, make, templates)
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read the state file: {exc.strerror or exc}") from exc


def _parse(
    lines: Iterator[tuple[int, bytes]],
    path: Path,
    make: Callable[[], Stores],
    templates: set[str],
) -> dict[str, _Saved]:
    sessions: dict[str, _Saved] = {}
    current: _Saved | None = None
    store: MemoryStore | None = None
    for number, line in lines:
        kind, payload = _entry(line, number, path)
        try:
            if number == 1:
                _check_header(kind, payload, path)
            elif kind == "session":
                current, store = sessions.setdefault(payload, _Saved(make())), None
            elif kind == "end":
                return _ended(sessions, payload, path)
            elif current is None:
                raise StateFileError(f"{path}:{number}: {kind!r} outside a session")
            elif kind == "rules":
                current.rules = [dict(state) for state in payload]
            elif kind == "collection":
                store = _collection(current, payload["path"], payload["template"], templates)
            elif kind == "item":
                if store is not None:
                    store.insert(payload)
                current.items += 1
            else:
                raise StateFileError(f"{path}:{number}: unexpected {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"{path}:{number}: a {kind!r} line that makes no sense") from exc
    raise StateFileError(f"{path}: the file is cut short (no 'end' line): not loaded")


def _check_header(kind: str, payload: Any, path: Path) -> None:
    if kind != "state" or not isinstance(payload, dict) or payload.get("version") != VERSION:
        raise StateFileError(f"{path}: not a mockserver state file (version {VERSION})")


def _collection(
    saved: _Saved, collection: str, template: str, templates: set[str]
) -> MemoryStore | None:
    """The store for a saved collection's items; None (skip them) when the spec has no such
    collection."""
    if template not in templates:
        return None
    store = saved.stores.open(collection, template)
    store.clear()
    return store


def _entry(line: bytes, number: int, path: Path) -> tuple[str, Any]:
    try:
        kind, payload = orjson.loads(line)
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise StateFileError(f"{path}:{number}: not a [kind, payload] JSON line: {exc}") from exc
    if not isinstance(kind, str):
        raise StateFileError(f"{path}:{number}: not a [kind, payload] JSON line")
    return kind, payload


def _ended(sessions: dict[str, _Saved], payload: Any, path: Path) -> dict[str, _Saved]:
    found = {"sessions": len(sessions), "items": sum(s.items for s in sessions.values())}
    if payload != found:
        raise StateFileError(f"{path}: its end line says {payload}, it holds {found}: not loaded")
    return sessions
