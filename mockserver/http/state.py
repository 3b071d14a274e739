"""What one request carries through the layers, in one place of its WSGI environ: its trail
(for the log line, the journal and coverage), its session, what a fault rule decided for it,
and its body as the front read it. Every layer reads it through `of(environ)`; no other
environ key of ours exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mockserver.auth.identity import Identity
from mockserver.contract.router import Match
from mockserver.faults.rules import Action
from mockserver.sessions.journal import Entry, Trail
from mockserver.sessions.session import Session

KEY = "mockserver.request"


@dataclass(slots=True)
class RequestState:
    """A request's trail (what its log line, journal entry and coverage keep), and what it
    carries from the front to the app. The trail is an object of its own: the journal keeps
    it, and it refers to nothing that refers back to it (a cycle would leave every entry the
    journal drops to the cyclic garbage collector, whose passes then stall requests)."""

    trail: Trail
    session: Session | None = None  # an API request's (the front picks it)
    action: Action | None = None  # what a fault rule (or `Prefer`) does to it
    body: bytes | None = None  # read once by the front, for the app not to read again
    entry: Entry | None = None  # its journal entry
    match: Match | None = None  # its operation, when the front found it and auth let it in
    identity: Identity | None = None  # who auth found it was, then


def begin(environ: dict[str, Any]) -> RequestState:
    """The state of a request that has just arrived."""
    state = environ[KEY] = RequestState(Trail(time.perf_counter()))
    return state


def of(environ: dict[str, Any]) -> RequestState:
    """The request's state (made now for a request that did not come through the front,
    e.g. one a test hands the Flask app)."""
    found: RequestState | None = environ.get(KEY)
    return found if found is not None else begin(environ)
