"""Sessions: each caller naming one (`X-Mock-Session`, `?session=` on the control API) gets its
own records, fault rules, journal and coverage on a shared server; everyone else shares the
default session. A new session starts from the start-up state (seed records, event types,
the scenario's rules) without copying it: its collections share the start-up ones until they
are first written (the storage's fork is copy-on-write).

Sessions are bounded: only an API request that passes auth, or a control-API write, makes one
(a read of an unknown session looks at a fresh one it does not keep); an idle session ends
after `--session-ttl` seconds; at most `--max-sessions` live at once (a new one beyond that is
refused with 429); `DELETE /_mock/sessions/NAME` ends one.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mockserver.faults.rules import FaultRules, Faults
from mockserver.problems import Problem
from mockserver.sessions.coverage import Coverage
from mockserver.sessions.journal import Budget, Journal
from mockserver.storage import let_go
from mockserver.storage.backend import Backend

DEFAULT = "default"
HEADER = "HTTP_X_MOCK_SESSION"
NAME_RULE = "A session name is 1 to 64 letters, digits, '.', '_' or '-', other than '.' and '..'."


@dataclass
class Session:
    name: str
    storage: Backend
    faults: FaultRules  # `Faults`, or shared on Redis (`sessions.shared`)
    journal: Journal
    coverage: Coverage
    used: float = field(default_factory=time.monotonic)  # when a request last named it


@dataclass(frozen=True)
class Limits:
    """How many sessions live at once, and how long an idle one lives (seconds; 0: ever)."""

    max_sessions: int = 1000
    ttl: float = 3600.0
    max_rules: int = 1000  # each session's


SWEEP_EVERY = 1.0  # seconds between two looks for idle sessions


class Sessions:
    """Sessions by name, made on first use from the start-up state."""

    def __init__(
        self,
        initial: Backend,
        make_coverage: Callable[[], Coverage],
        make_journal: Callable[[], Journal],
        fault_seed: int | None,
        load_rules: Callable[[Session], None],
        limits: Limits | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.initial = initial
        self.limits = limits or Limits()
        self.budget = budget  # the one every journal `make_journal` makes shares
        self._make_coverage = make_coverage
        self._make_journal = make_journal
        self._fault_seed = fault_seed
        self._load_rules = load_rules
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def get(self, name: str = DEFAULT) -> Session:
        """The session, made now if it is new; a 429 Problem when that would be one more than
        `--max-sessions`."""
        now = time.monotonic()
        if now - self._swept > SWEEP_EVERY:
            self._sweep(now)
        session = self._sessions.get(name)
        if session is None:
            with self._lock:
                session = self._sessions.get(name)
                if session is None:
                    self._room_for_one()
                    session = self._sessions[name] = self._new(name, join=True)
        session.used = now
        return session

    def peek(self, name: str = DEFAULT) -> Session:
        """The session to read: the live one, or a fresh one that is not kept (a read makes no
        session)."""
        session = self._sessions.get(name)
        if session is None:
            return self._new(name, kept=False)
        session.used = time.monotonic()
        return session

    def end(self, name: str) -> bool:
        """End a session (its records, rules, journal and coverage); whether it was live."""
        with self._lock:
            gone = self._sessions.pop(name, None)
        if gone is not None:
            _let_go(gone)
        return gone is not None

    def _named(self) -> int:
        """How many named sessions (the default one aside) live."""
        return len(self._sessions) - (DEFAULT in self._sessions)

    def _room_for_one(self) -> None:
        """A 429 Problem when the named sessions are at the cap."""
        named = self._named()
        if named >= self.limits.max_sessions:
            raise Problem(
                429,
                f"The mock holds {named} sessions, its --max-sessions: end one "
                "(DELETE /_mock/sessions/NAME) or wait for an idle one to expire "
                "(--session-ttl).",
                headers={"Retry-After": "1"},
            )

    def _sweep(self, now: float) -> None:
        """End the sessions idle for longer than the ttl (never the default one)."""
        self._swept = now
        if not self.limits.ttl:
            return
        with self._lock:
            idle = [
                name
                for name, session in self._sessions.items()
                if name != DEFAULT and now - session.used > self.limits.ttl
            ]
            ended = [self._sessions.pop(name) for name in idle]
        for session in ended:
            _let_go(session)

    def _new(self, name: str, kept: bool = True, join: bool = False) -> Session:
        """A session as the start-up state makes it (`join`: the one another server on the
        same store already made, when there is one); one that is not `kept` journals
        nothing."""
        seed = None if self._fault_seed is None else self._fault_seed + zlib.crc32(name.encode())
        session = Session(
            name,
            self.initial.fork(name, join=join or not kept),
            Faults(seed, self.limits.max_rules),
            self._make_journal() if kept else Journal(0),
            self._make_coverage(),
        )
        self._load_rules(session)
        return session

    def reset(self, name: str) -> Session:
        """Back to the start-up state: records, rules, journal and coverage."""
        with self._lock:
            old = self._sessions.get(name)
            if old is None:
                self._room_for_one()
            session = self._sessions[name] = self._new(name)
        if old is not None:
            _let_go(old)
        return session

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))


def _let_go(session: Session) -> None:
    """An ended session's bytes go back to the server's budgets: its journal's, its store's."""
    session.journal.clear()
    let_go(session.storage)
