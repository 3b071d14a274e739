"""Fault rules: when they fire, and what they do.

A rule (see `Rule` in openapi/control.yaml) matches on method, path (exact or a spec template)
and extra conditions (`faults.matching`); it answers a status (with a body shaped by the spec
unless it gives one), breaks the connection or a streamed answer (`faults.kinds`), and/or
waits. `after` lets N matching requests through first, `times` fires N times then stops,
`probability` fires at random with the session's seeded RNG. Rules are tried in order: the
first that matches and fires decides; one that lets a request through leaves it to the next.
The decision is taken under the session's lock, so counts are exact however many requests
come at once. `faults.apply` does what the decision says.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mockserver.codec import MISSING
from mockserver.faults.kinds import StreamFault
from mockserver.faults.matching import Conditions, Seen
from mockserver.problems import Problem


@dataclass(frozen=True)
class Delay:
    """A fixed wait, or one drawn from a uniform or log-normal distribution (milliseconds)."""

    fixed: float | None = None
    low: float = 0.0
    high: float = 0.0
    median: float = 0.0
    sigma: float = 0.0
    kind: str = "fixed"

    @classmethod
    def parse(cls, given: Any) -> Delay:
        if isinstance(given, int | float):
            return cls(fixed=float(given))
        if "uniform" in given:
            low, high = sorted(given["uniform"])
            return cls(low=low, high=high, kind="uniform")
        shape = given["lognormal"]
        return cls(median=shape["median"], sigma=shape.get("sigma", 0.5), kind="lognormal")

    def draw(self, rng: random.Random) -> float:
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "lognormal":
            return min(self.median * math.exp(self.sigma * rng.gauss(0.0, 1.0)), 600_000.0)
        return self.fixed or 0.0


@dataclass(frozen=True)
class Action:
    """What to do to one request."""

    rule: str
    status: int | None = None
    body: Any = MISSING
    headers: Mapping[str, str] = field(default_factory=dict)
    fault: str | None = None
    delay_ms: float = 0.0
    stream: StreamFault | None = None  # what happens to a streamed answer


@dataclass
class Rule:
    id: str
    given: dict[str, Any]
    conditions: Conditions
    documented: bool = True
    delay: Delay | None = None
    matched: int = 0
    fired: int = 0

    @property
    def active(self) -> bool:
        times = self.given.get("times")
        return times is None or self.fired < times

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.given,
            "matched": self.matched,
            "fired": self.fired,
            "documented": self.documented,
            "active": self.active,
        }

    def action(self, rng: random.Random) -> Action:
        given = self.given
        return Action(
            rule=self.id,
            status=given.get("status"),
            body=given.get("body", MISSING),
            headers=given.get("headers") or {},
            fault=given.get("fault"),
            delay_ms=self.delay.draw(rng) if self.delay else 0.0,
            stream=StreamFault.parse(given.get("stream")),
        )


class FaultRules(Protocol):
    """A session's rules: `Faults` (in this process), or `faults.redis_rules.RedisFaults`
    (shared by every server on a Redis store)."""

    limit: int
    fresh: bool  # made now (a scenario's rules go in), not joined

    @property
    def rules(self) -> list[Rule]: ...

    def states(self) -> list[dict[str, Any]]: ...

    def room(self, count: int) -> None: ...

    def add(self, given: dict[str, Any], documented: bool = True) -> Rule: ...

    def restore(self, state: dict[str, Any], documented: bool) -> Rule: ...

    def remove(self, rule_id: str) -> bool: ...

    def clear(self) -> None: ...

    def end(self) -> None: ...

    def decide(self, seen: Seen) -> Action | None: ...


class Faults:
    """One session's rules, in order, with exact counters; at most `limit` of them. A request
    is tried against the rules for its method and those for any method only (`_by_method`),
    in the order they were added."""

    def __init__(self, seed: int | None = None, limit: int = 1000) -> None:
        self.rules: list[Rule] = []
        self.limit = limit
        self._by_method: dict[str | None, list[Rule]] = {}
        self._order: dict[str, int] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)

    fresh = True  # a session's rules in this process are always its own

    def states(self) -> list[dict[str, Any]]:
        return [rule.state() for rule in self.rules]

    def end(self) -> None:
        """Nothing to do: the rules go with the session."""

    def room(self, count: int) -> None:
        """A 429 Problem unless `count` more rules fit."""
        if len(self.rules) + count > self.limit:
            raise Problem(
                429,
                f"A session holds at most {self.limit} fault rules (--max-rules); it holds "
                f"{len(self.rules)}: remove some (DELETE /_mock/faults) first.",
            )

    def add(self, given: dict[str, Any], documented: bool = True) -> Rule:
        rule = Rule(
            f"rule-{next(self._ids)}",
            given,
            Conditions.parse(given),
            documented,
            Delay.parse(given["delay_ms"]) if "delay_ms" in given else None,
        )
        with self._lock:
            self.room(1)
            self.rules = [*self.rules, rule]
            self._index()
        return rule

    def _index(self) -> None:
        """The rules by method (under the lock)."""
        by_method: dict[str | None, list[Rule]] = {}
        for rule in self.rules:
            by_method.setdefault(rule.conditions.method, []).append(rule)
        self._by_method = by_method
        self._order = {rule.id: place for place, rule in enumerate(self.rules)}

    def restore(self, state: dict[str, Any], documented: bool) -> Rule:
        """A saved rule (`Rule.state()`) back, with its id and counters."""
        rule = self.add(state["rule"], documented)
        rule.id, rule.matched, rule.fired = state["id"], state["matched"], state["fired"]
        digits = rule.id.rpartition("-")[2]
        number = int(digits) if rule.id.startswith("rule-") and digits.isdigit() else 0
        with self._lock:
            self._ids = itertools.count(max(number + 1, next(self._ids)))
            self._index()  # by its saved id
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            kept = [rule for rule in self.rules if rule.id != rule_id]
            found = len(kept) != len(self.rules)
            self.rules = kept
            self._index()
        return found

    def clear(self) -> None:
        with self._lock:
            self.rules = []
            self._index()

    def _candidates(self, method: str) -> Iterable[Rule]:
        return candidates(self._by_method, self._order, method)

    def decide(self, seen: Seen) -> Action | None:
        """The action of the first rule that matches and fires; its counters move."""
        with self._lock:
            for rule in self._candidates(seen.method):
                if not rule.active or not rule.conditions.match(seen):
                    continue
                rule.matched += 1
                if rule.matched <= rule.given.get("after", 0):
                    continue
                chance = rule.given.get("probability")
                if chance is not None and self._rng.random() >= chance:
                    continue
                rule.fired += 1
                return rule.action(self._rng)
        return None


_PREFER = re.compile(r"(code|delay)\s*=\s*([0-9]+)", re.IGNORECASE | re.ASCII)


def preferred(header: str) -> Action | None:
    """`Prefer: code=403` and/or `delay=200` (Prism's convention) as an action."""
    found = {name.lower(): _whole(value) for name, value in _PREFER.findall(header)}
    if not found:
        return None
    status = found.get("code")
    if status is not None and not 200 <= status <= 599:  # a 1xx cannot end an exchange
        status = None
    return Action(rule="prefer", status=status, delay_ms=float(min(found.get("delay", 0), 600_000)))


def _whole(digits: str) -> int:
    """ASCII digits as a number; more than 9 of them (past int()'s 4300, too) is 10**9."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 9 else 10**9


def candidates(
    by_method: Mapping[str | None, list[Rule]], order: Mapping[str, int], method: str
) -> Iterable[Rule]:
    """The rules that may match a request of `method` (its own and those for any method,
    `by_method[None]`), in the order they were added (`order`: a rule's place by id)."""
    own, anyone = by_method.get(method), by_method.get(None)
    if own is None or anyone is None:
        return own or anyone or ()
    return heapq.merge(own, anyone, key=lambda rule: order[rule.id])
