"""Sessions: each caller naming one (`X-Mock-Session`, `?session=` on the control API) gets its
own records, fault rules, journal and coverage on a shared server; everyone else shares the
default session. A new session starts from the start-up state (seed records, event types,
the scenario's rules), copied cheaply: stored records are immutable bytes, shared by all.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mockserver.faults.rules import Faults
from mockserver.sessions.coverage import Coverage
from mockserver.sessions.journal import Journal
from mockserver.storage.backend import Backend

DEFAULT = "default"
HEADER = "HTTP_X_MOCK_SESSION"
NAME_RULE = "A session name is 1 to 64 letters, digits, '.', '_' or '-'."


@dataclass
class Session:
    name: str
    storage: Backend
    faults: Faults
    journal: Journal
    coverage: Coverage


class Sessions:
    """Sessions by name, made on first use from the start-up state."""

    def __init__(
        self,
        initial: Backend,
        make_coverage: Callable[[], Coverage],
        journal_size: int,
        fault_seed: int | None,
        load_rules: Callable[[Session], None],
    ) -> None:
        self.initial = initial
        self._make_coverage = make_coverage
        self._journal_size = journal_size
        self._fault_seed = fault_seed
        self._load_rules = load_rules
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, name: str = DEFAULT) -> Session:
        session = self._sessions.get(name)
        if session is None:
            with self._lock:
                session = self._sessions.get(name)
                if session is None:
                    session = self._sessions[name] = self._new(name, join=True)
        return session

    def _new(self, name: str, join: bool = False) -> Session:
        """A session from the start-up state (`join`: the one another server on the same
        store already made, when there is one)."""
        seed = None if self._fault_seed is None else self._fault_seed + zlib.crc32(name.encode())
        session = Session(
            name,
            self.initial.fork(name, join=join),
            Faults(seed),
            Journal(self._journal_size),
            self._make_coverage(),
        )
        self._load_rules(session)
        return session

    def reset(self, name: str) -> Session:
        """Back to the start-up state: records, rules, journal and coverage."""
        with self._lock:
            session = self._sessions[name] = self._new(name)
        return session

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))
