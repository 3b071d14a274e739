"""The journal and coverage of a Redis store: what a process's requests leave to write, and
the fence that keeps reads exact when they are written behind.

A request hands its journal entry and its coverage count to its process's `Writer` before its
answer is sent. By default it then waits for the pass that writes them, made by the first of
the requests done meanwhile (a group commit): the entry is in Redis before the answer goes, so
the journal keeps the order of a client's requests across processes and servers. Written
behind (`--journal-write-behind`), it does not wait: the writer's own thread, once woken,
writes what is pending (one script call per session that has something) while the next batch
collects; when other requests are in flight it first lets the batch gather for LINGER. A
request then spends no round trip on its journal; two answers given by different processes
within about a millisecond may be listed either way.

A read of a journal, a coverage tally or the journal's bytes (on any server) first raises the
`Fence`: it publishes a token on `PREFIX:journal:flush`; every worker process on the store
that writes behind listens on that channel (from its first request on), writes all it holds,
then pushes the token back on `PREFIX:journal:flushed:TOKEN`; the reader waits for as many as
the publication reached (at most FENCE_WAIT). Whatever any server answered before the read
began is then in Redis, as when each request writes its own entry before answering. Only the
processes that write behind listen: by default a read's publication reaches none, and it
waits for nothing (servers of both kinds may share a store).

A pass that could not write (Redis lost, or refusing writes) keeps what it held; the next
request's pass tries again, and the process's retry thread makes one when no request did for
RETRY_EVERY: the entries of the requests answered meanwhile reach Redis once it is back,
whether or not more requests come.

A process forked after the app was made (uWSGI's workers) starts its own threads on its first
request (threads do not survive a fork), and writes what it holds as it stops (at exit).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import uuid
from typing import Any, Protocol

import redis

from mockserver import log
from mockserver.storage.backend import StoreUnavailable
from mockserver.storage.redis_connection import LOST, Link

FENCE_WAIT = 2.0  # seconds a read waits for every process to write what it holds
LINGER = 0.001  # seconds a batch gathers while requests are in flight (a read's fence: none)
WRITE_WAIT = 12.0  # seconds a request waits for its entry's write (Redis's own timeout is 10)
LISTEN_POLL = 1.0  # seconds between two looks at whether the listener is to stop
RETRY_AFTER = 0.5  # seconds before the listener subscribes again once Redis was lost
GIVE_UP = 10  # tries in a row after which the listener ends (the next request starts it again)
NOT_WRITTEN_EVERY = 5.0  # seconds between two lines saying a pass could not write
RETRY_EVERY = 0.5  # seconds between two passes while the last one could not write


class Pending(Protocol):
    """What a writer writes: a session's coverage counts and its journal's finished entries."""

    def write_pending(self) -> None:
        """Write what is pending (StoreUnavailable: Redis lost, it is kept for the next)."""

    def idle(self) -> bool:
        """Nothing is left to write, nor being made (a journal entry of a request in flight)."""

    def in_flight(self) -> bool:
        """A request has an entry here that is not done yet (it will be, soon)."""


class Writer:
    """One per process: what its requests leave to write, written in passes. A pass takes
    everything pending as it starts, and is made by whichever thread finds none under way:
    a request waiting for its entry (the requests done meanwhile wait for the next pass, which
    the first of them makes: a group commit), a read's fence, or, written behind, the writer's
    own thread. `add` says which pass will hold a request's entry. A pass that ends wakes its
    own waiters and one of the next pass's, which makes it: the others sleep on until it ends
    (waking them all sent all but one back to sleep: ~1.7 context switches a GET by id on
    Redis x 2, bench/README.md)."""

    def __init__(self, behind: bool = False) -> None:
        self.behind = behind  # the writer's own thread writes; requests do not wait
        self._pid = 0
        self._made()

    def _made(self) -> None:
        lock = threading.Lock()  # one made before a fork may be held in the child: made anew
        self._lock = lock
        self._wake = threading.Condition(lock)  # the writer's own thread waits on it
        # those waiting for a pass to end, by the parity of its number: a pass that ends
        # wakes all of its own waiters and one of the next's (to make it), not all of those
        self._done = (threading.Condition(lock), threading.Condition(lock))
        self._pending: dict[int, Pending] = {}
        self._ready = False  # something was added since the last pass began
        self._hurry = False  # someone waits: no lingering
        self._writing = False  # a pass is under way
        self._taken = 0  # passes started
        self._written = 0  # passes ended
        self._unwritten = False  # the last pass could not write all it held
        self._retrying = False  # the retry thread runs

    def hold(self, pending: Pending) -> None:
        """`pending` will have something to write (a journal entry opened): kept in view."""
        self._started()
        with self._lock:
            self._pending[id(pending)] = pending

    def add(self, pending: Pending) -> int:
        """`pending` has something to write now (a request done); written behind, the
        writer's thread wakes for it. The number of the pass that will write it (`wait`)."""
        self._started()
        with self._lock:
            self._pending[id(pending)] = pending
            if not self._ready:
                self._ready = True
                if self.behind:
                    self._wake.notify()
            return self._taken + 1

    def wait(self, ticket: int, timeout: float = WRITE_WAIT) -> bool:
        """Until pass `ticket` has written (or failed to), made here when none is under way;
        False when `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._written < ticket:
                if not self._writing:
                    self._make_pass()
                    continue
                self._hurry = True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done[ticket % 2].wait(left)
        return True

    def flush(self, timeout: float = FENCE_WAIT) -> bool:
        """Wait until everything pending now is written; False when `timeout` passed first."""
        self._started()
        with self._lock:
            self._ready = True
            ticket = self._taken + 1
        return self.wait(ticket, timeout)

    def _make_pass(self) -> None:
        """One pass, the lock held as it starts and as it ends, not while it writes."""
        self._writing, self._ready, self._hurry = True, False, False
        self._taken += 1
        batch = list(self._pending.values())
        self._lock.release()
        written = False
        try:
            written = _write(batch)
        finally:
            self._lock.acquire()
            self._unwritten = not written
            if not written and not self._retrying:
                self._retrying = True
                threading.Thread(target=self._retry, name="journal-retry", daemon=True).start()
            for pending in batch:
                if pending.idle():
                    self._pending.pop(id(pending), None)
            self._written += 1
            self._writing = False
            self._done[self._written % 2].notify_all()
            self._done[(self._written + 1) % 2].notify()
            if self._ready and self.behind:
                self._wake.notify()  # more came meanwhile

    def _started(self) -> None:
        pid = os.getpid()
        if self._pid != pid:  # made before a fork (uWSGI's workers), or never started
            with _lock_of(pid):
                if self._pid != pid:
                    self._start(pid)

    def _start(self, pid: int) -> None:
        self._made()
        if self.behind:
            threading.Thread(target=self._run, name="journal-writer", daemon=True).start()
        self._pid = pid
        atexit.register(self._at_exit, pid)  # a stop writes what is pending (`serving.stop`)

    def _at_exit(self, pid: int) -> None:
        if os.getpid() == pid and not self.flush():
            log.logger.warning("stopping: journal entries not written within %.0f s", FENCE_WAIT)

    def _run(self) -> None:
        with self._lock:
            while True:
                while not self._ready or self._writing:
                    self._wake.wait()
                if not self._hurry and self._busy():  # those in flight join this batch
                    self._wake.wait(LINGER)
                    if self._writing:  # a reader's fence made it meanwhile
                        continue
                self._make_pass()

    def _retry(self) -> None:
        """A pass every RETRY_EVERY while the last one could not write all it held, unless
        requests made one meanwhile (theirs try as well)."""
        seen = -1
        while True:
            time.sleep(RETRY_EVERY)
            with self._lock:
                if not self._unwritten:
                    self._retrying = False
                    return
                if self._taken != seen:  # a pass since the last look: not needed yet
                    seen = self._taken
                    continue
                self._ready = True
                ticket = self._taken + 1
            self.wait(ticket)

    def _busy(self) -> bool:
        """Other requests are in flight: a batch is worth waiting for. (None: the entries
        are written at once, before the client can ask another process for more.)"""
        return any(pending.in_flight() for pending in self._pending.values())


def _write(batch: list[Pending]) -> bool:
    """Whether every write of the pass was made (or failed for good: logged)."""
    written = True
    for pending in batch:
        try:
            pending.write_pending()
        except StoreUnavailable as lost:  # the answers were sent: their record waits
            _not_written(lost.detail or "")
            written = False
        except Exception:  # never let a pass fail its callers: log it, go on
            log.logger.exception("journal writer: a write failed")
    return written


_said = [0.0, 0]  # when a pass that could not write was last logged; those since


def _not_written(why: str) -> None:
    """A pass that could not write, logged at most every NOT_WRITTEN_EVERY seconds (a store
    that refuses writes while reads go on fails every request's pass)."""
    now = time.monotonic()
    if now - _said[0] < NOT_WRITTEN_EVERY:
        _said[1] += 1
        return
    more = f" ({_said[1]} more passes since the last such line)" if _said[1] else ""
    _said[:] = [now, 0]
    log.logger.warning("coverage and journal not written yet: %s%s", why, more)


class Fence:
    """The reads' side: the token published, the acknowledgements awaited; and this process's
    listener, which writes what it holds when another server reads."""

    def __init__(self, link: Link, prefix: str, writer: Writer) -> None:
        self._link = link
        self._client: Any = link.client
        self._writer = writer
        self.channel = f"{prefix}:journal:flush"
        self._acked = f"{prefix}:journal:flushed:"
        self._pid = 0
        self._subscribed = threading.Event()

    def listen(self) -> None:
        """This process listens from now on (returns once subscribed, or Redis is lost);
        nothing when the journal is written before the answers."""
        pid = os.getpid()
        if self._pid == pid or not self._writer.behind:
            return
        with _lock_of(pid):
            if self._pid == pid:
                return
            self._subscribed = threading.Event()
            threading.Thread(target=self._listen, name="journal-fence", daemon=True).start()
            self._pid = pid
        self._subscribed.wait(FENCE_WAIT)

    def raise_(self) -> None:
        """Every process on the store has written what it held (or FENCE_WAIT passed): only
        processes that write behind listen, so with none the publication reaches nobody and
        nothing is waited for."""
        self._writer.flush()
        token = uuid.uuid4().hex
        key = self._acked + token
        acked = 0
        with self._link.calling():
            reached = int(self._client.publish(self.channel, token))
            if reached:  # none by default: nothing to wait for, nothing pushed to delete
                acked = self._wait(key, reached)
                self._client.delete(key)
        if acked < reached:
            log.logger.warning(
                "journal read: %d of %d server processes did not write theirs within %.0f s",
                reached - acked,
                reached,
                FENCE_WAIT,
            )

    def _wait(self, key: str, reached: int) -> int:
        deadline, acked = time.monotonic() + FENCE_WAIT, 0
        while acked < reached:
            left = deadline - time.monotonic()
            if left <= 0 or self._client.blpop([key], timeout=left) is None:
                break
            acked += 1
        return acked

    def _listen(self) -> None:
        subscription: Any = None
        failed = 0
        while failed < GIVE_UP:
            try:
                if subscription is None:
                    subscription = self._subscribe()
                    failed = 0
                message = subscription.get_message(timeout=LISTEN_POLL)
                if message is not None and message["type"] == "message":
                    self._answer(message["data"])
            except (*LOST, redis.exceptions.RedisError):
                _close(subscription)
                subscription, failed = None, failed + 1
                self._subscribed.set()  # nobody waits on a lost Redis
                time.sleep(RETRY_AFTER)
        self._pid = 0  # Redis lost for long: the next request of this process listens again

    def _subscribe(self) -> Any:
        """Subscribed once Redis says so: a publication after that reaches this process."""
        subscription = self._client.pubsub()
        subscription.subscribe(self.channel)
        deadline = time.monotonic() + FENCE_WAIT
        while time.monotonic() < deadline:
            message = subscription.get_message(timeout=FENCE_WAIT)
            if message is not None and message["type"] == "subscribe":
                self._subscribed.set()
                return subscription
        raise redis.exceptions.TimeoutError("no answer to SUBSCRIBE")

    def _answer(self, token: bytes) -> None:
        self._writer.flush()
        key = self._acked + token.decode()
        self._client.rpush(key, 1)
        self._client.expire(key, int(FENCE_WAIT) * 5)


_LOCKS: dict[int, threading.Lock] = {}  # per process: a lock made before a fork may be held


def _lock_of(pid: int) -> threading.Lock:
    return _LOCKS.setdefault(pid, threading.Lock())  # atomic: the first thread's lock wins


def _close(subscription: Any) -> None:
    if subscription is not None:
        with contextlib.suppress(Exception):  # already gone with its connection
            subscription.close()
