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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mockserver import codec
from mockserver.documents import syntax_error
from mockserver.faults.checking import RuleBook
from mockserver.sessions.session import Sessions
from mockserver.storage.backend import Backend, Item

VERSION = 1
Checks = Mapping[str, Callable[[Any], str]]  # collection template -> why an item breaks the spec
_COUNTED = (("id", str), ("rule", dict), ("matched", int), ("fired", int))


class StateFileError(Exception):
    """The state file cannot be used; the message names the file and the problem."""


@dataclass
class _Saved:
    """One session as the file holds it: its rules, and its storage filled as the file is
    read."""

    storage: Backend
    rules: list[dict[str, Any]] = field(default_factory=list)
    items: int = 0  # item lines read (a skipped collection's too)
    collections: list[str] = field(default_factory=list)  # the paths loaded

    def stored(self) -> int:
        """How many items its storage holds."""
        return sum(len(self.storage.open(path)) for path in self.collections)


def check_writable(path: Path) -> None:
    """StateFileError unless the state file can be written where it is meant to be: its
    folder exists and a file can be made in it (tried, as permissions alone do not tell)."""
    folder = path.parent
    if not folder.is_dir():
        raise StateFileError(f"{path}: cannot write the state file: no folder {folder}")
    probe = folder / f".{path.name}.{os.getpid()}.probe"
    try:
        probe.open("xb").close()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StateFileError(f"{path}: cannot write the state file in {folder}: {reason}") from exc


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
        out.write(_line("rules", session.faults.states()))
        for collection in session.storage.dump():
            out.write(
                _line("collection", {"path": collection.path, "template": collection.template})
            )
            for raw in collection.items:
                out.write(b'["item",' + raw + b"]\n")
                items += 1
    out.write(_line("end", {"sessions": count, "items": items}))
    return items


def _line(kind: str, payload: Any) -> bytes:
    return codec.dumps([kind, payload]) + b"\n"  # integers of any size, as JSON holds them


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: Path, sessions: Sessions, book: RuleBook, templates: Checks) -> tuple[int, int]:
    """Restore the sessions `path` holds (each rule checked by `book`; collections that
    are not `templates` of this spec skipped, the others' items checked by theirs);
    (sessions, items) restored. Nothing changes unless the whole file is sound:
    StateFileError, naming the line, otherwise."""
    saved = read(path, lambda: _empty(sessions.initial), templates)
    documented = {
        name: [_checked(state, book, path) for state in content.rules]
        for name, content in saved.items()
    }
    for name, content in saved.items():
        session = sessions.get(name)
        session.storage = content.storage
        session.faults.clear()
        for state, ok in zip(content.rules, documented[name], strict=True):
            session.faults.restore(state, ok)
    items = sum(content.stored() for content in saved.values())
    return len(saved), items


def _checked(state: dict[str, Any], book: RuleBook, path: Path) -> bool:
    """Whether a saved rule's status is documented; StateFileError for a rule not valid."""
    if not all(isinstance(state.get(key), kind) for key, kind in _COUNTED):
        raise StateFileError(f"{path}: a saved rule has an id, its rule and its counters")
    refused = book.refusal(state["rule"])
    if refused:
        raise StateFileError(f"{path}: rule {state['id']} is not valid: {refused}")
    return book.check(state["rule"])


def _empty(initial: Backend) -> Backend:
    storage = initial.fork()
    storage.clear()
    return storage


def read(path: Path, make: Callable[[], Backend], templates: Checks) -> dict[str, _Saved]:
    """The sessions a state file holds, by name, their items in the storage `make` gives (of
    collections that are `templates`); StateFileError for anything else."""
    try:
        with path.open("rb") as lines:
            return _Reader(enumerate(lines, 1), path).sessions(make, templates)
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read the state file: {exc.strerror or exc}") from exc


class _Reader:
    """The lines of a state file, each read as `[kind, payload]`, one of them held back when
    the items of a collection end."""

    def __init__(self, lines: Iterator[tuple[int, bytes]], path: Path) -> None:
        self._lines = lines
        self.path = path
        self._held: tuple[int, str, Any] | None = None

    def next(self) -> tuple[int, str, Any] | None:
        if self._held is not None:
            held, self._held = self._held, None
            return held
        for number, line in self._lines:
            return (number, *_entry(line, number, self.path))
        return None

    def sessions(self, make: Callable[[], Backend], templates: Checks) -> dict[str, _Saved]:
        sessions: dict[str, _Saved] = {}
        current: _Saved | None = None
        while (entry := self.next()) is not None:
            number, kind, payload = entry
            try:
                if number == 1:
                    _check_header(kind, payload, self.path)
                elif kind == "session":
                    current = sessions.setdefault(payload, _Saved(make()))
                elif kind == "end":
                    return self._last(_ended(sessions, payload, self.path))
                elif current is None:
                    raise StateFileError(f"{self.path}:{number}: {kind!r} outside a session")
                else:
                    self._part(current, kind, payload, number, templates)
            except (KeyError, TypeError, ValueError) as exc:
                where = f"{self.path}:{number}"
                raise StateFileError(f"{where}: a {kind!r} line that makes no sense") from exc
        raise StateFileError(f"{self.path}: the file is cut short (no 'end' line): not loaded")

    def _part(self, saved: _Saved, kind: str, payload: Any, number: int, templates: Checks) -> None:
        if kind == "rules":
            saved.rules = [dict(state) for state in payload]
        elif kind == "collection":
            path, template = str(payload["path"]), str(payload["template"])
            if template in templates:  # else skipped: the spec has no such collection
                saved.storage.load(path, template, self._items(saved, templates[template]))
                saved.collections.append(path)
            else:
                for _ in self._items(saved, _anything):
                    pass
        elif kind == "item":
            saved.items += 1  # an item outside a collection: skipped
        else:
            raise StateFileError(f"{self.path}:{number}: unexpected {kind!r}")

    def _last(self, sessions: dict[str, _Saved]) -> dict[str, _Saved]:
        """The sessions read, when nothing follows the end line."""
        for number, _ in self._lines:
            raise StateFileError(f"{self.path}:{number}: a line after the 'end' line")
        return sessions

    def _items(self, saved: _Saved, check: Callable[[Any], str]) -> Iterator[Item]:
        """The items of the collection just read, up to the next line of another kind; each
        with an id of its own and as the spec describes it (`check`)."""
        ids: set[str] = set()
        while (entry := self.next()) is not None:
            number, kind, payload = entry
            if kind != "item":
                self._held = entry
                return
            if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
                raise StateFileError(f"{self.path}:{number}: a 'item' line that makes no sense")
            if payload["id"] in ids:
                raise StateFileError(f"{self.path}:{number}: id {payload['id']} again")
            ids.add(payload["id"])
            wrong = check(payload)
            if wrong:
                raise StateFileError(
                    f"{self.path}:{number}: item {payload['id']} breaks the spec: {wrong}"
                )
            saved.items += 1
            yield payload


def _anything(item: Any) -> str:
    return ""


def _check_header(kind: str, payload: Any, path: Path) -> None:
    if kind != "state" or not isinstance(payload, dict) or payload.get("version") != VERSION:
        raise StateFileError(f"{path}: not a mockserver state file (version {VERSION})")


def _entry(line: bytes, number: int, path: Path) -> tuple[str, Any]:
    line = line.rstrip(b"\r\n")  # one JSON value per line: an error is on that line
    try:
        found = codec.loads(line)
    except (ValueError, RecursionError) as exc:  # JSON's errors are ValueErrors
        raise StateFileError(syntax_error(path, line, exc, number)) from exc
    if not (isinstance(found, list) and len(found) == 2 and isinstance(found[0], str)):
        raise StateFileError(f"{path}:{number}:1: not a [kind, payload] JSON line")
    kind, payload = found
    return kind, payload


def _ended(sessions: dict[str, _Saved], payload: Any, path: Path) -> dict[str, _Saved]:
    found = {"sessions": len(sessions), "items": sum(s.items for s in sessions.values())}
    if payload != found:
        raise StateFileError(f"{path}: its end line says {payload}, it holds {found}: not loaded")
    return sessions
