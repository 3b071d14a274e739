"""A session's fault rules on Redis (`--store redis://...`): every server and worker process on
the same store and prefix holds the same rules, and each decision is one Lua script, so
`times`, `after` and `probability` are exact across all of them.

The rules live under the session's namespace (`PREFIX:{session.NAME}:faults:...`):

    ...:faults:rules     hash: rule id -> {"rule": given, "documented": bool} (JSON)
    ...:faults:order     list: the rule ids in the order they were added
    ...:faults:meta      hash: version (a new one on every change, from PREFIX:faults:versions),
                         next (the last id's number), made (set once the rules are in place)
    ...:faults:counts    hash: m:ID and f:ID (matched and fired), draws (the random draws made)

A server keeps the rules it last read with their version. A request reads the version (one
HGET, `rules`; with none held, it goes with the request's first command, or its change's
script checks it: `defer`); when a rule may match (method, path and conditions are matched
here, as in memory) the decision script is handed that version and the candidates' `times`,
`after` and `probability`: it answers "stale" when the rules changed meanwhile (they are read
again and the decision retried), else moves the counters and names the rule that fired. A
probability draws from a seeded sequence in Redis (SHA-1 of the seed and the draw's number),
so a seed gives the same run whichever server draws.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import orjson

from mockserver.faults.matching import Conditions, Seen
from mockserver.faults.rules import Action, Delay, Rule, candidates
from mockserver.problems import Problem
from mockserver.storage.redis_connection import Link

ADD = """
local limit, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local held = redis.call('LLEN', KEYS[2])
if held + n > limit then return {-1, held} end
local made = {}
for i = 0, n - 1 do
  local given, id = ARGV[3 + i * 4], ARGV[4 + i * 4]
  if id == '' then
    id = 'rule-' .. redis.call('HINCRBY', KEYS[3], 'next', 1)
  else
    local number = tonumber(string.match(id, '^rule%-(%d+)$') or '0')
    if number > tonumber(redis.call('HGET', KEYS[3], 'next') or '0') then
      redis.call('HSET', KEYS[3], 'next', number)
    end
    if redis.call('HEXISTS', KEYS[1], id) == 1 then redis.call('LREM', KEYS[2], 0, id) end
  end
  redis.call('HSET', KEYS[1], id, given)
  redis.call('RPUSH', KEYS[2], id)
  redis.call('HSET', KEYS[4], 'm:' .. id, ARGV[5 + i * 4], 'f:' .. id, ARGV[6 + i * 4])
  made[#made + 1] = id
end
redis.call('HSET', KEYS[3], 'version', redis.call('INCR', KEYS[5]))
return made
"""

REMOVE = """
if redis.call('LREM', KEYS[2], 0, ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], 'm:' .. ARGV[1], 'f:' .. ARGV[1])
redis.call('HSET', KEYS[3], 'version', redis.call('INCR', KEYS[5]))
return 1
"""

# ARGV[1]: 'clear' (the rules go, ids go on), 'reset' (ids from rule-1 again, the session made
# now), 'end' (the session gone, its meta too). A version is drawn from the store's counter
# (KEYS[5]): never the same twice, even for a session of the same name made again.
CLEAR = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
if ARGV[1] == 'reset' then redis.call('HSET', KEYS[3], 'next', 0, 'made', 1) end
if ARGV[1] == 'end' then redis.call('DEL', KEYS[3]) return 1 end
redis.call('HSET', KEYS[3], 'version', redis.call('INCR', KEYS[5]))
return 1
"""

# ARGV: the version the candidates were read at, the seed, then per candidate: id, times
# (-1: no bound), after, probability (-1: always). Answers {0, version} (stale), {2} (none
# fired) or {1, id, draw number}.
DECIDE = """
local version = redis.call('HGET', KEYS[1], 'version') or '0'
if version ~= ARGV[1] then return {0, version} end
for at = 3, #ARGV - 1, 4 do
  local id, times = ARGV[at], tonumber(ARGV[at + 1])
  local fired = tonumber(redis.call('HGET', KEYS[2], 'f:' .. id) or '0')
  if times < 0 or fired < times then
    local matched = redis.call('HINCRBY', KEYS[2], 'm:' .. id, 1)
    if matched > tonumber(ARGV[at + 2]) then
      local chance = tonumber(ARGV[at + 3])
      local draw = redis.call('HINCRBY', KEYS[2], 'draws', 1)
      local passes = true
      if chance >= 0 then
        local hex = string.sub(redis.sha1hex(ARGV[2] .. ':' .. draw), 1, 13)
        passes = tonumber(hex, 16) / 4503599627370496 < chance
      end
      if passes then
        redis.call('HINCRBY', KEYS[2], 'f:' .. id, 1)
        return {1, id, draw}
      end
    end
  end
end
return {2}
"""

# the rules with their version, read at once without a transaction (Redis refuses MULTI's
# commands once at its maxmemory); no writes: it runs on a full Redis and on a replica too
READ = """#!lua flags=no-writes
return {redis.call('HGET', KEYS[1], 'version'), redis.call('LRANGE', KEYS[2], 0, -1),
        redis.call('HGETALL', KEYS[3])}
"""


class RuleScripts:
    """The scripts, registered once per client."""

    def __init__(self, link: Link) -> None:
        client = link.client
        self.add = client.register_script(ADD)
        self.remove = client.register_script(REMOVE)
        self.clear = client.register_script(CLEAR)
        self.decide = client.register_script(DECIDE)
        self.read = client.register_script(READ)


class RedisFaults:
    """One session's rules in Redis; the same methods as `faults.rules.Faults`."""

    def __init__(
        self,
        link: Link,
        root: str,
        seed: int | None,
        limit: int = 1000,
        scripts: RuleScripts | None = None,
    ) -> None:
        self.limit = limit
        self._link = link
        self._client: Any = link.client  # redis-py's answers are loosely typed
        self._scripts = scripts or RuleScripts(link)
        base = f"{root}:faults"
        counter = f"{root[: root.index(':{')]}:faults:versions"
        self._keys = [f"{base}:rules", f"{base}:order", f"{base}:meta", f"{base}:counts", counter]
        self._seed = str(random.SystemRandom().getrandbits(64) if seed is None else seed)
        self._version = b""  # of the rules below; none read yet
        self._rules: list[Rule] = []
        self._by_method: dict[str | None, list[Rule]] = {}
        self._order: dict[str, int] = {}
        self.fresh = False  # whether this server made the session's rules (then loads a scenario)

    # ------------------------------------------------------------ the session's life

    def start(self, *, join: bool, kept: bool) -> RedisFaults:
        """Take the session's rules (`join`: as another server made them), or make them
        afresh (a reset); a session only looked at (`kept` false) changes nothing."""
        meta = self._keys[2]
        with self._link.calling():
            if not kept:
                self.fresh = False
            elif join:
                self.fresh = bool(self._client.hsetnx(meta, "made", 1))
            else:
                self._scripts.clear(keys=self._keys, args=["reset"])
                self._link.changed(meta)
                self.fresh = True
        return self

    def end(self) -> None:
        """The session ended: its rules and counters gone, for every server."""
        with self._link.calling():
            self._scripts.clear(keys=self._keys, args=["end"])
        self._link.changed(self._keys[2])

    # ------------------------------------------------------------ what the control API uses

    @property
    def rules(self) -> list[Rule]:
        """The rules as they are now (one HGET of the version; read again when it moved)."""
        with self._link.calling():
            version = self._link.call("HGET", self._keys[2], "version") or b"0"
            if version != self._version:
                self._read()
        return self._rules

    def defer(self) -> bool:
        """For a request when the rules last read hold none, so none can match: the version
        is read with the request's first command to Redis, or checked by its change's script
        (`Link.guard`), not before; `deferred` then says whether the rules are still those.
        False: decide as usual."""
        if self._rules or not self._version:
            return False
        self._link.guard(self._keys[2], self._version)
        return True

    def deferred(self) -> str:
        """Whether the rules were still those when the request went to Redis: `FRESH`, or
        `CHANGED` (what was read stands), `REFUSED` (a change refused, nothing written) or
        `UNKNOWN` (nothing went); but for `FRESH`, `rules` and `decide` again."""
        return self._link.guarded()

    def states(self) -> list[dict[str, Any]]:
        """Each rule's `Rule.state()`, with its counters as Redis holds them."""
        rules = self.rules
        with self._link.calling():
            counts = self._client.hgetall(self._keys[3])
        states = []
        for rule in rules:
            rule.matched = int(counts.get(f"m:{rule.id}".encode(), 0))
            rule.fired = int(counts.get(f"f:{rule.id}".encode(), 0))
            states.append(rule.state())
        return states

    def room(self, count: int) -> None:
        """A 429 Problem unless `count` more rules fit."""
        with self._link.calling():
            held = int(self._client.llen(self._keys[1]))
        if held + count > self.limit:
            raise _full(self.limit, held)

    def add(self, given: dict[str, Any], documented: bool = True) -> Rule:
        return self._added([(given, documented, "", 0, 0)])[0]

    def add_many(self, rules: Iterable[tuple[dict[str, Any], bool]]) -> list[Rule]:
        """Several rules in one step: all of them, or none (a 429) when they do not fit."""
        return self._added([(given, ok, "", 0, 0) for given, ok in rules])

    def restore(self, state: dict[str, Any], documented: bool) -> Rule:
        """A saved rule (`Rule.state()`) back, with its id and counters."""
        entry = (state["rule"], documented, state["id"], state["matched"], state["fired"])
        rule = self._added([entry])[0]
        rule.matched, rule.fired = state["matched"], state["fired"]
        return rule

    def _added(self, entries: list[tuple[dict[str, Any], bool, str, int, int]]) -> list[Rule]:
        args: list[Any] = [self.limit, len(entries)]
        for given, documented, rule_id, matched, fired in entries:
            args += [orjson.dumps({"rule": given, "documented": documented}), rule_id]
            args += [matched, fired]
        with self._link.calling():
            answer = self._scripts.add(keys=self._keys, args=args)
        self._link.changed(self._keys[2])
        if answer and answer[0] == -1:
            raise _full(self.limit, int(answer[1]))
        return [
            _rule(made.decode(), given, documented)
            for made, (given, documented, *_) in zip(answer, entries, strict=True)
        ]

    def remove(self, rule_id: str) -> bool:
        with self._link.calling():
            removed = bool(self._scripts.remove(keys=self._keys, args=[rule_id]))
        self._link.changed(self._keys[2])
        return removed

    def clear(self) -> None:
        with self._link.calling():
            self._scripts.clear(keys=self._keys, args=["clear"])
        self._link.changed(self._keys[2])

    # ------------------------------------------------------------ the decision

    def decide(self, seen: Seen) -> Action | None:
        """The action of the first rule that matches and fires, decided in Redis (its
        counters move there); the rules read again, and the decision retried, when they
        changed since they were read."""
        while True:
            version = self._version
            chosen = [rule for rule in self._candidates(seen.method) if rule.conditions.match(seen)]
            if not chosen:
                return None
            args: list[Any] = [version, self._seed]
            for rule in chosen:
                given = rule.given
                times, chance = given.get("times"), given.get("probability")
                args += [rule.id, -1 if times is None else times, given.get("after", 0)]
                args.append(-1 if chance is None else repr(float(chance)))
            with self._link.calling():
                answer = self._link.run(self._scripts.decide, self._keys[2:4], args)
                if answer[0] == 0:
                    self._read()
                    continue
            if answer[0] == 2:
                return None
            fired = answer[1].decode()
            rule = next(rule for rule in chosen if rule.id == fired)
            return rule.action(random.Random(f"{self._seed}:{int(answer[2])}"))

    def _candidates(self, method: str) -> Iterable[Rule]:
        return candidates(self._by_method, self._order, method)

    def _read(self) -> None:
        """The rules as Redis holds them (read at once, with their version: `READ`)."""
        rules_key, order_key, meta_key, *_ = self._keys
        version, ids, pairs = self._link.run(
            self._scripts.read, [meta_key, order_key, rules_key], []
        )
        stored = dict(zip(pairs[::2], pairs[1::2], strict=True))
        rules = []
        for rule_id in ids:
            raw = stored.get(rule_id)
            if raw is not None:
                kept = orjson.loads(raw)
                rules.append(_rule(rule_id.decode(), kept["rule"], kept["documented"]))
        by_method: dict[str | None, list[Rule]] = {}
        for rule in rules:
            by_method.setdefault(rule.conditions.method, []).append(rule)
        self._rules, self._by_method = rules, by_method
        self._order = {rule.id: place for place, rule in enumerate(rules)}
        self._version = version or b"0"


def _rule(rule_id: str, given: dict[str, Any], documented: bool) -> Rule:
    delay = Delay.parse(given["delay_ms"]) if "delay_ms" in given else None
    return Rule(rule_id, given, Conditions.parse(given), documented, delay)


def _full(limit: int, held: int) -> Problem:
    return Problem(
        429,
        f"A session holds at most {limit} fault rules (--max-rules); it holds "
        f"{held}: remove some (DELETE /_mock/faults) first.",
    )
