"""Sessions on a Redis store (`--store redis://...`): what a caller can observe of a session is
shared by every server and worker process on the same store and prefix.

- The registry `PREFIX:sessions` (hash: name -> when a request last named it, Unix seconds)
  lists the sessions of every server; `--max-sessions` counts it, `--session-ttl` ends an
  idle one for all of them (each server looks once a second, and drops the sessions another
  server ended). A session only looked at (an unknown name read, or a request refused by
  auth) makes nothing: it reads the start-up state.
- The records live in the session's namespace (`storage.redis`); the fault rules and their
  counters beside them (`faults.redis_rules`).
- The journal is a Redis stream per session (`PREFIX:{session.NAME}:journal`, ids from
  `...:journal:ids`), written when the request is done, with the coverage tally
  (`...:coverage`) in the same round trip. It is bounded as in memory: `--journal-size` entries
  per session, and `--journal-bytes` for every session's together, the oldest entries of any
  session going first (`PREFIX:journal`: a sorted set of every entry by age, with its size;
  `PREFIX:journal:bytes`: the bytes held). An entry is stored as the journal shows it (secrets
  masked), so a header condition of `POST /_mock/requests/count` sees masked values.
- A reset on any server makes the session afresh for all of them: records, rules, journal
  and coverage.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from mockserver.codec import MISSING
from mockserver.contract.router import Operation
from mockserver.faults.matching import Seen
from mockserver.faults.redis_rules import RedisFaults, RuleScripts
from mockserver.query.params import decode
from mockserver.sessions.coverage import Coverage
from mockserver.sessions.journal import Budget, Entry, Headers, Journal, Trail, cost, cut
from mockserver.sessions.session import DEFAULT, SWEEP_EVERY, Limits, Session, Sessions
from mockserver.sessions.writer import Fence, Writer
from mockserver.storage.backend import Backend, StoreRefused, StoreUnavailable
from mockserver.storage.redis_connection import Link

TOUCH_EVERY = 1.0  # seconds between two writes of a session's last use to the registry
PENDING = 2_000  # journal entries a session holds not yet written (past it: the oldest dropped)
HELD_AT_LEAST = 16 * 1024 * 1024  # bytes a process may hold not yet written, however small
# --journal-bytes is (entries of requests in flight: Redis counts an entry's JSON, less)
WRITTEN_AT_ONCE = 100  # journal entries written by one script call (bounds what one call holds)

# KEYS: the stream, its ids counter, PREFIX:journal (every entry by age), PREFIX:journal:bytes,
# the session's coverage. ARGV: the session's size bound, the byte bound, the session's name,
# the stream key's prefix and suffix around a session name, how many coverage counters, each
# counter's field and increment, then the entries' JSON (without their ids), oldest first.
# The coverage counted and the entries added in one call: the batch's ids, ages and bytes
# counted once, the session's bound trimmed once (its oldest entries, in one XDEL).
JOURNAL_ADD = """
local bound, limit, name = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local counters = tonumber(ARGV[6])
for at = 7, 6 + 2 * counters, 2 do
  redis.call('HINCRBY', KEYS[5], ARGV[at], ARGV[at + 1])
end
local first = 7 + 2 * counters
local count = #ARGV - first + 1
if count <= 0 then return 1 end
local id = redis.call('INCRBY', KEYS[2], count) - count
local seq = redis.call('HINCRBY', KEYS[4], 'seq', count) - count
local aged, added = {}, 0
for at = first, #ARGV do
  id, seq = id + 1, seq + 1
  local json = '{"id":' .. id .. ',' .. string.sub(ARGV[at], 2)
  local cost = string.len(json) + 64
  local sid = redis.call('XADD', KEYS[1], '*', 'e', json, 'c', cost)
  aged[#aged + 1] = seq
  aged[#aged + 1] = name .. ' ' .. sid .. ' ' .. cost
  added = added + cost
end
redis.call('ZADD', KEYS[3], unpack(aged))
local used = redis.call('HINCRBY', KEYS[4], 'used', added)
local over = redis.call('XLEN', KEYS[1]) - bound
if over > 0 then
  local ids, gone, freed = {}, {}, 0
  for _, oldest in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', over)) do
    ids[#ids + 1] = oldest[1]
    gone[#gone + 1] = name .. ' ' .. oldest[1] .. ' ' .. oldest[2][4]
    freed = freed + tonumber(oldest[2][4])
  end
  redis.call('XDEL', KEYS[1], unpack(ids))
  redis.call('ZREM', KEYS[3], unpack(gone))
  used = redis.call('HINCRBY', KEYS[4], 'used', -freed)
end
while used > limit do
  local first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not first then break end
  local session, entry, size = string.match(first, '^(%S+) (%S+) (%S+)$')
  redis.call('XDEL', ARGV[4] .. session .. ARGV[5], entry)
  redis.call('ZREM', KEYS[3], first)
  used = redis.call('HINCRBY', KEYS[4], 'used', -tonumber(size))
end
return 1
"""

# KEYS: the stream, its ids counter, PREFIX:journal, PREFIX:journal:bytes. ARGV: the session's
# name, 'ids' to start the ids again (a reset) or ''.
JOURNAL_CLEAR = """
local total = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  redis.call('ZREM', KEYS[3], ARGV[1] .. ' ' .. entry[1] .. ' ' .. entry[2][4])
  total = total + tonumber(entry[2][4])
end
redis.call('DEL', KEYS[1])
if ARGV[2] == 'ids' then redis.call('DEL', KEYS[2]) end
if total > 0 then redis.call('HINCRBY', KEYS[4], 'used', -total) end
return total
"""

# KEYS: the namespace's keys set, made, collections. ARGV: its root. Its storage deleted.
FORGET = """
for _, suffix in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('DEL', ARGV[1] .. ':' .. suffix)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""


class Held:
    """The bytes of the journal entries a process holds not yet written, every session's
    together: at most `limit` (`--journal-bytes`, what the journals may keep in all, or
    HELD_AT_LEAST). They pile up only while Redis is lost (the entries of the requests
    answered meanwhile)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, cost: int) -> bool:
        """Room for `cost` more bytes, counted in; False (nothing counted) when there is none."""
        with self._lock:
            if self.used + cost > self.limit:
                return False
            self.used += cost
            return True

    def give(self, cost: int) -> None:
        with self._lock:
            self.used -= cost


class Shared:
    """The link, the keys every session shares, and the scripts."""

    def __init__(
        self, link: Link, prefix: str, journal_bytes: int, write_behind: bool = False
    ) -> None:
        self.link = link
        self.client: Any = link.client  # redis-py's answers are loosely typed
        self.prefix = prefix
        self.registry = f"{prefix}:sessions"
        self.entries = f"{prefix}:journal"
        self.bytes = f"{prefix}:journal:bytes"
        self.journal_bytes = journal_bytes
        self.held = Held(max(journal_bytes, HELD_AT_LEAST))  # this process's, not yet written
        self.writer = Writer(write_behind)  # this process's journal and coverage writes
        self.fence = Fence(link, prefix, self.writer)  # a read sees every server's writes
        self.rules = RuleScripts(link)
        self.add = link.client.register_script(JOURNAL_ADD)
        self.clear = link.client.register_script(JOURNAL_CLEAR)
        self.forget = link.client.register_script(FORGET)

    def root(self, name: str) -> str:
        """The session's namespace (`storage.redis_keys.Namespace`)."""
        return f"{self.prefix}:{{session.{name}}}"


class SharedBudget(Budget):
    """`--journal-bytes` as Redis counts it, for every server on the store."""

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared.journal_bytes)
        self._shared = shared

    @property
    def used(self) -> int:
        self._shared.fence.raise_()
        with self._shared.link.calling():
            return int(self._shared.client.hget(self._shared.bytes, "used") or 0)

    @used.setter
    def used(self, value: int) -> None:
        pass  # counted in Redis


class SharedEntry(Entry):
    """A journal entry as Redis holds it: as the journal shows it."""

    shown: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> SharedEntry:
        shown = orjson.loads(raw)
        entry = cls(
            shown["id"], 0.0, shown["method"], shown["path"], "", ((), ()), b"", "", Trail()
        )
        entry.fault, entry.shown = shown.get("fault"), shown
        return entry

    @property
    def status(self) -> int:
        return int(self.shown["status"])

    @property
    def operation(self) -> str | None:
        found: str | None = self.shown.get("operation")
        return found

    def seen(self) -> Seen:
        shown = self.shown
        body = shown.get("body") if not shown.get("bodyTruncated") else None
        return Seen(
            self.method,
            self.path,
            decode(shown.get("query") or "").params,
            {name.lower(): value for name, value in (shown.get("headers") or {}).items()},
            MISSING if body is None else body,
        )

    def as_json(self) -> dict[str, Any]:
        return self.shown


class SharedJournal(Journal):
    """A session's journal in a Redis stream: an entry is made here as the request comes, and
    written (by `SharedCoverage.count`) when it is done."""

    def __init__(self, size: int, shared: Shared, name: str) -> None:
        super().__init__(size)
        self._shared = shared
        self._name = name
        root = shared.root(name)
        self._keys = [f"{root}:journal", f"{root}:journal:ids", shared.entries, shared.bytes]
        self._stream_at = (f"{shared.prefix}:{{session.", "}:journal")
        self.coverage = f"{root}:coverage"
        self._pending: collections.deque[Entry] = collections.deque()
        self._lock = threading.Lock()
        self.owner: SharedCoverage | None = None  # what the writer writes (its coverage)

    def open(
        self,
        time: float,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        body: bytes,
        session: str,
        trail: Trail,
    ) -> Entry:
        body, size, digest = cut(body)
        entry = Entry(0, time, method, path, query, headers, body, session, trail, None, size)
        entry.sha256 = digest
        if self.size:
            entry.cost = cost(entry)
            self._hold(entry)
            self._shared.fence.listen()  # before its answer: a later read finds it
            if self.owner is not None:
                self._shared.writer.hold(self.owner)
        return entry

    def _hold(self, entry: Entry) -> None:
        """The entry held to be written, this session's oldest dropped past PENDING entries or
        the process's bytes (not written for long: Redis lost); not held when other sessions'
        entries hold every byte."""
        held = self._shared.held
        with self._lock:
            pending = self._pending
            while pending and (len(pending) >= PENDING or held.used + entry.cost > held.limit):
                held.give(pending.popleft().cost)
            if held.take(entry.cost):
                pending.append(entry)

    def put_back(self, entries: list[Entry]) -> None:
        """Entries taken to be written and not written (Redis lost), held again before the
        newer ones, within the same bounds (the oldest go first)."""
        held = self._shared.held
        with self._lock:
            kept: list[Entry] = []
            for entry in reversed(entries):  # the newest first
                if len(kept) + len(self._pending) >= PENDING or not held.take(entry.cost):
                    break
                kept.append(entry)
            self._pending.extendleft(kept)

    @property
    def holding(self) -> bool:
        """Entries not written yet (their requests in flight, or done)."""
        return bool(self._pending)

    @property
    def in_flight(self) -> bool:
        """Entries of requests not done yet."""
        return any(not entry.trail.ended for entry in self._pending)

    def done(self) -> list[Entry]:
        """The entries of the requests that are done, taken off the pending ones."""
        with self._lock:
            done = [entry for entry in self._pending if entry.trail.ended]
            if done:
                self._pending = collections.deque(e for e in self._pending if not e.trail.ended)
                self._shared.held.give(sum(entry.cost for entry in done))
        return done

    @staticmethod
    def shown(entries: list[Entry]) -> list[bytes]:
        """Entries as Redis keeps them: JSON, without their ids (the script gives them)."""
        found = []
        for entry in entries:
            shown = entry.as_json()
            del shown["id"]
            found.append(orjson.dumps(shown))
        return found

    def _entries_now(self) -> list[SharedEntry]:
        self._shared.fence.raise_()
        with self._shared.link.calling():
            found = self._shared.client.xrange(self._keys[0])
        return [SharedEntry.parse(fields[b"e"]) for _, fields in found]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries_now())

    def __len__(self) -> int:
        self._shared.fence.raise_()
        with self._shared.link.calling():
            return int(self._shared.client.xlen(self._keys[0]))

    @property
    def bytes(self) -> int:
        self._shared.fence.raise_()
        with self._shared.link.calling():
            found = self._shared.client.xrange(self._keys[0])
        return sum(int(fields[b"c"]) for _, fields in found)

    def clear(self, ids: bool = False) -> None:
        self._shared.fence.raise_()  # nothing answered before the clear is written after it
        with self._lock:
            self._shared.held.give(sum(entry.cost for entry in self._pending))
            self._pending.clear()
        with self._shared.link.calling():
            self._shared.clear(keys=self._keys, args=[self._name, "ids" if ids else ""])


class SharedCoverage(Coverage):
    """A session's coverage tally in Redis (a hash of counters); its counts and its journal's
    finished entries are written together, in one script call, by the process's writer
    (`sessions.writer`): a request hands them over before its answer goes, and waits for the
    write that holds them (the requests done meanwhile share it), unless the journal is written
    behind (`--journal-write-behind`). A read of either first raises the fence, so it holds
    what every server answered before."""

    def __init__(self, operations: list[Operation], shared: Shared, journal: SharedJournal) -> None:
        super().__init__(operations)
        self._shared = shared
        self._journal = journal
        journal.owner = self
        self._key = journal.coverage
        self._counted = threading.Lock()
        self._counters: collections.Counter[str] = collections.Counter()

    def count(self, operation: str | None, status: int, fault: str | None, times: int = 1) -> None:
        """The answer counted; the count and the journal's finished entries written, with
        those of the requests done meanwhile, before this returns (written behind: soon, and
        before any read of them)."""
        with self._counted:
            self._counters[f"a\0{operation or ''}\0{status}"] += times
            if fault:
                self._counters[f"f\0{fault}"] += times
        shared = self._shared
        ticket = shared.writer.add(self)
        changed = shared.link.take_changed()  # what a copy holds: its write is the fence
        if changed or not shared.writer.behind:  # before the answer: in order everywhere
            with shared.link.calling():  # off the turn while it is written
                shared.writer.wait(ticket)

    def idle(self) -> bool:
        return not self._counters and not self._journal.holding

    def in_flight(self) -> bool:
        return self._journal.in_flight

    def write_pending(self) -> None:
        """The counts and the finished entries pending, in Redis (the writer's thread)."""
        with self._counted:
            counters, self._counters = self._counters, collections.Counter()
        journal, shared = self._journal, self._shared
        done = journal.done()
        if not counters and not done:
            return
        args: list[Any] = [journal.size, shared.journal_bytes, journal._name, *journal._stream_at]
        args.append(len(counters))
        for field, times in counters.items():
            args += [field, times]
        keys = [*journal._keys, self._key]
        start = 0
        try:
            with shared.link.calling():
                shared.link.run(shared.add, keys, args + journal.shown(done[:WRITTEN_AT_ONCE]))
                for start in range(WRITTEN_AT_ONCE, len(done), WRITTEN_AT_ONCE):
                    chunk = journal.shown(done[start : start + WRITTEN_AT_ONCE])
                    shared.link.run(shared.add, keys, [*args[:5], 0, *chunk])
        except StoreUnavailable:  # Redis lost: what was not written is written once it is back
            if start == 0:
                with self._counted:
                    self._counters.update(counters)
            journal.put_back(done[start:])
            raise

    def report(self) -> dict[str, Any]:
        self._shared.fence.raise_()
        with self._shared.link.calling():
            counted = self._shared.client.hgetall(self._key)
        answers: collections.Counter[tuple[str | None, int]] = collections.Counter()
        faults: collections.Counter[str] = collections.Counter()
        for key, value in counted.items():
            kind, *rest = key.decode().split("\0")
            if kind == "a":
                answers[(rest[0] or None, int(rest[1]))] = int(value)
            else:
                faults[rest[0]] = int(value)
        with self._lock:
            self._answers, self._faults = answers, faults
        return super().report()

    def clear(self) -> None:
        self._shared.fence.raise_()  # nothing counted before the clear is written after it
        with self._counted:
            self._counters.clear()
        with self._shared.link.calling():
            self._shared.client.delete(self._key)


class SharedSessions(Sessions):
    """`Sessions` whose registry, rules, journal and coverage are in Redis."""

    def __init__(
        self,
        initial: Backend,
        operations: list[Operation],
        journal_size: int,
        fault_seed: int | None,
        load_rules: Callable[[Session], None],
        limits: Limits,
        shared: Shared,
    ) -> None:
        super().__init__(
            initial,
            lambda: Coverage(operations),
            lambda: Journal(0),
            fault_seed,
            load_rules,
            limits,
            SharedBudget(shared),
        )
        self.shared = shared
        self._operations = operations
        self._journal_size = journal_size
        self._touched: dict[str, float] = {}

    # ------------------------------------------------------------ a request's session

    def get(self, name: str = DEFAULT) -> Session:
        now = time.monotonic()
        if now - self._swept > SWEEP_EVERY:
            self._sweep(now)
        session = self._sessions.get(name)
        if session is None:
            with self.shared.link.calling(), self._lock:  # off the turn, then in line
                session = self._sessions.get(name)
                if session is None:
                    listed = self._listed(name)
                    if not listed:
                        self._room_for_one()
                    session = self._new(name, join=True)
                    if listed:  # joined: its last use is bookkeeping
                        self._touched_if_it_can(name, now)
                    else:  # made here: listed for the other servers, or refused (503)
                        self._touch(name, now)
                    self._sessions[name] = session
        elif now - self._touched.get(name, 0.0) > TOUCH_EVERY:
            self._touched_if_it_can(name, now)
        session.used = now
        return session

    def peek(self, name: str = DEFAULT) -> Session:
        """The live session, here or on another server; else the start-up state, read as it
        is (nothing is made, in Redis or here)."""
        session = self._sessions.get(name)
        if session is not None:
            return session
        try:
            listed = self._listed(name)
        except StoreUnavailable:  # health still answers (saying so)
            listed = False
        if listed:
            return self._new(name, join=True)
        faults = RedisFaults(self.shared.link, self.shared.root(name), None, 0, self.shared.rules)
        return Session(name, self.initial, faults, Journal(0), Coverage(self._operations))

    def _listed(self, name: str) -> bool:
        with self.shared.link.calling():
            return bool(self.shared.client.hexists(self.shared.registry, name))

    def _touched_if_it_can(self, name: str, now: float) -> None:
        """A listed session's last use written, unless Redis refuses writes now: its requests'
        reads go on (its changes are refused, 503)."""
        with contextlib.suppress(StoreRefused):
            self._touch(name, now)

    def _touch(self, name: str, now: float) -> None:
        self._touched[name] = now
        with self.shared.link.calling():
            self.shared.client.hset(self.shared.registry, name, repr(time.time()))

    def _new(self, name: str, kept: bool = True, join: bool = False) -> Session:
        """The session as Redis holds it (`join`), or made afresh in Redis (a reset)."""
        shared = self.shared
        seed = None if self._fault_seed is None else self._fault_seed + zlib.crc32(name.encode())
        faults = RedisFaults(
            shared.link, shared.root(name), seed, self.limits.max_rules, shared.rules
        )
        journal = SharedJournal(self._journal_size, shared, name)
        coverage = SharedCoverage(self._operations, shared, journal)
        storage = self.initial.fork(name, join=join)
        faults.start(join=join, kept=True)
        if not join:
            journal.clear(ids=True)
            coverage.clear()
        session = Session(name, storage, faults, journal, coverage)
        if faults.fresh:  # the first server to make the session loads its scenario rules
            self._load_rules(session)
        return session

    def reset(self, name: str) -> Session:
        with self._lock:
            if not self._listed(name):
                self._room_for_one()
            session = self._sessions[name] = self._new(name)
            self._touch(name, time.monotonic())
        return session

    # ------------------------------------------------------------ every server's sessions

    def __iter__(self) -> Iterator[Session]:
        with self.shared.link.calling():
            names = sorted(name.decode() for name in self.shared.client.hkeys(self.shared.registry))
        return iter([self._sessions.get(name) or self._new(name, join=True) for name in names])

    def _named(self) -> int:
        """The named sessions of every server on the store."""
        with self.shared.link.calling():
            held = int(self.shared.client.hlen(self.shared.registry))
        return held - self._listed(DEFAULT)

    def end(self, name: str) -> bool:
        """End a session for every server: its records, rules, journal and coverage."""
        shared = self.shared
        with shared.link.calling():
            listed = bool(shared.client.hdel(shared.registry, name))
        with self._lock:
            gone = self._sessions.pop(name, None)
        if not listed:  # ended already (by another server, maybe: then here it goes too)
            return False
        session = gone or self._new(name, join=True)
        journal = session.journal
        if isinstance(journal, SharedJournal):
            journal.clear(ids=True)
        if isinstance(session.coverage, SharedCoverage):
            session.coverage.clear()
        session.faults.end()
        root = shared.root(name)
        with shared.link.calling():
            shared.forget(keys=[f"{root}:keys", f"{root}:made", f"{root}:collections"], args=[root])
        return True

    def _sweep(self, now: float) -> None:
        """Once a second: the sessions another server ended are let go of here; those idle for
        longer than the ttl everywhere are ended (never the default one)."""
        self._swept = now
        try:
            with self.shared.link.calling():
                listed = self.shared.client.hgetall(self.shared.registry)
        except StoreUnavailable:
            return
        used = {name.decode(): float(when) for name, when in listed.items()}
        with self._lock:
            for name in [name for name in self._sessions if name not in used]:
                self._sessions.pop(name)
        if not self.limits.ttl:
            return
        wall = time.time()
        for name, when in used.items():
            if name != DEFAULT and wall - when > self.limits.ttl:
                self.end(name)
