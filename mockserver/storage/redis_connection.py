"""The link to Redis: a client made from a `--store` URL (`redis://`, `rediss://`, `unix://`),
its password never shown, short timeouts (a lost Redis answers at once, never hangs a
request), and every Redis error of a request turned into `StoreUnavailable` (a 503): Redis
lost, or refusing the commands (`REFUSING`: `StoreRefused`, with Redis's reason).

redis-py's pool reconnects on the next call once Redis is back: service resumes by itself.
A request waits on Redis outside its turn at the server's Python work (`aside`, which the
front sets: `http.fair_queue`).

The commands of a request's path (`call`, `calls`, `run`) go on a connection taken from the
process's free ones for the call (the one used last first, a new one when none is free; a
transaction's calls keep one: `pinned`), packed by hiredis and read back without redis-py's
client around them: the client's bookkeeping (pool, retries, observability, callbacks) costs
about three times the CPU of the round trip itself. A process holds as many connections as it
ever had calls under way at once, not one per server thread (`--threads`, 512 by default).
A command whose first arguments are the same every time (a script's keys, a hash's key) is
packed ahead (`Packed`): a request packs only what is its own.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import hiredis
import redis
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import (
    ClusterDownError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from mockserver import log, sockets
from mockserver.masking import mask_url
from mockserver.storage.backend import StoreRefused, StoreUnavailable
from mockserver.storage.redis_cache import INVALIDATE, ReadCache

SCHEMES = ("redis://", "rediss://", "unix://")
CONNECT_TIMEOUT = 2.0  # seconds to open a connection
READ_TIMEOUT = 10.0  # seconds to wait for an answer (a fork of 100 000 items takes ~0.2 s)
LOST = (RedisConnectionError, RedisTimeoutError, OSError)  # LOADING and MAXCLIENTS as well
# Redis there but refusing what it is asked now: at its `maxmemory` with `noeviction` (OOM), a
# replica (READONLY), an ACL (NOPERM), a cluster or replica down (CLUSTERDOWN, MASTERDOWN,
# TRYAGAIN); and by their code, a failing save (MISCONF) or a script too long (BUSY)
REFUSING = (OutOfMemoryError, ReadOnlyError, NoPermissionError, ClusterDownError, TryAgainError)
REFUSING_CODES = frozenset({"MISCONF", "BUSY"})
Command = Sequence[bytes | str | int | float]
Arg = bytes | str | int  # an argument `Packed` packs: bytes as they are, text as UTF-8, a number


class Packed:
    """A command's first arguments packed once, as hiredis packs them (RESP bulk strings): a
    call packs only the arguments that follow (`with_`, `with_one`). hiredis packs each
    argument with a `sprintf`, and each command at a fixed cost: a change's script, whose keys
    and collection arguments are the same for every request, cost ~75 000 instructions packed
    whole (58 arguments) against ~26 000 for its own ten."""

    __slots__ = ("_args", "_head", "_one")

    def __init__(self, *head: Arg) -> None:
        self._args = head
        self._head = b"".join([bulk(arg) for arg in head])
        self._one = b"*%d\r\n%s" % (len(head) + 1, self._head)  # `with_one`'s start

    def with_(self, tail: Sequence[Arg]) -> Ready:
        """The whole command: the head, then `tail`'s arguments."""
        parts = [b"*%d\r\n" % (len(self._args) + len(tail)), self._head]
        for arg in tail:
            data = _data(arg)
            size = len(data)
            parts += (_SIZES[size] if size < len(_SIZES) else b"$%d\r\n" % size, data, b"\r\n")
        ready = Ready((*self._args, *tail))
        ready.packed = b"".join(parts)
        return ready

    def with_one(self, arg: Arg) -> bytes:
        """The whole command, the head then `arg`, as bytes (what `Link.calls` sends as it is:
        no `Ready`, whose making costs as much as the packing saves for one argument)."""
        data = _data(arg)
        return b"%s$%d\r\n%s\r\n" % (self._one, len(data), data)


class Ready(tuple[Arg, ...]):
    """A command's arguments (what `Link.calls` is handed, as any command), and its bytes,
    packed already (`packed`: what is sent)."""

    packed: bytes


_SIZES = [b"$%d\r\n" % size for size in range(1024)]  # a bulk string's start, by its size


def _data(arg: Arg) -> bytes:
    """An argument's bytes: text as UTF-8, a number as its decimal text (as hiredis sends)."""
    return arg if isinstance(arg, bytes) else arg.encode() if isinstance(arg, str) else b"%d" % arg


def bulk(arg: Arg) -> bytes:
    """One argument as RESP sends it: `$` its size, then its bytes (`_data`)."""
    data = _data(arg)
    return b"$%d\r\n%s\r\n" % (len(data), data)


class BadStore(Exception):
    """The URL cannot be used (not a Redis URL, or Redis cannot be reached at start-up)."""


class RulesChanged(BaseException):  # a signal to the front, as GeneratorExit is
    """A change refused, nothing written: the session's fault rules changed since the request
    was decided on (`Link.guard`). The front decides again and serves the request anew (or
    the rule that applies now). A signal to the front, not an error: it passes the lane's
    `except Exception` (no answer is made of it, none is checked or logged)."""


# What `Link.guarded` says of the rules' version a request was decided with.
FRESH, CHANGED, REFUSED, UNKNOWN = "fresh", "changed", "refused", "unknown"


class Link:
    """One client (thread-safe, pooled) and the URL it was made from, masked."""

    def __init__(self, url: str, cache_bytes: int = 0) -> None:
        self.shown = mask_url(url)
        if not HIREDIS_AVAILABLE:  # the request path reads the answers with hiredis's reader
            raise BadStore("needs hiredis, not installed (pip install 'redis[hiredis]')")
        self.aside: Callable[[], AbstractContextManager[None]] = nullcontext
        try:
            self.client: redis.Redis = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=READ_TIMEOUT,
                retry=Retry(NoBackoff(), 1),  # once, at once: a connection Redis closed
                retry_on_timeout=False,  # a change may have been made: never twice
                client_name="mockserver",
            )
        except (ValueError, TypeError) as exc:
            raise BadStore(f"not a Redis URL ({exc})") from None
        self._own = _Own()  # each thread's pinned connection (`pinned`), its guard
        self._versions: dict[str, bytes] = {}  # `HGET key version`, packed, by key (`calls`)
        self._free: list[Any] = []  # connections no call is using, the last used on top
        self._pid = 0  # the process `_free` belongs to (uWSGI forks without at-fork hooks)
        self._forked = threading.Lock()
        self.opened = 0  # connections this process opened for calls
        # the process's copy of what it read by id (`--read-cache-bytes`): `cached`, `read_kept`
        self.cache = ReadCache(self.listener, cache_bytes) if cache_bytes else None

    def calls(self, commands: Sequence[Command], again: bool = True) -> list[Any]:
        """Commands sent at once on one connection (the thread's pinned one, or a free one of
        the process for the call), their answers in order (an error answer raised once every
        answer is read); a command may come packed already (`Ready`, or bytes). A connection
        Redis closed (a restart) is opened again once, as redis-py's client does (`again`; not
        for a transaction whose `WATCH` went with the connection). Redis lost: its errors
        (`calling` turns them into StoreUnavailable)."""
        own = self._own
        packed = b"".join(
            [
                command
                if type(command) is bytes  # packed already (`Packed`)
                else command.packed
                if type(command) is Ready
                else hiredis.pack_command(tuple(command))  # type: ignore[arg-type]
                for command in commands
            ]
        )
        guard = own.guard
        if guard is None:
            return self._sent(packed, len(commands), again)
        own.guard = None  # the rules' version, read with the first commands of a read
        answers = self._sent(self._version_read(guard[0]) + packed, len(commands) + 1, again)
        own.settle(guard, answers[0] or b"0")
        return answers[1:]

    def _version_read(self, key: str) -> bytes:
        """`HGET key version`, packed once per key (a session's rules' meta)."""
        found = self._versions.get(key)
        if found is None:
            if len(self._versions) >= 1024:  # sessions come and go: begin again
                self._versions.clear()
            found = self._versions[key] = Packed("HGET", key, "version").with_(()).packed
        return found

    def _sent(self, packed: bytes, count: int, again: bool) -> list[Any]:
        """Packed commands sent on the thread's pinned connection, or on a free one for the
        call; their `count` answers read back."""
        connection = self._own.connection
        if connection is not None:
            return _sent_on(connection, packed, count, again)
        connection = self._borrow()
        try:
            return _sent_on(connection, packed, count, again)
        finally:
            self._free.append(connection)  # every answer read (or it was closed): clean

    def _connection(self) -> Any:
        """A new connection, not yet open, made as the client makes its own."""
        pool = self.client.connection_pool
        return pool.connection_class(**pool.connection_kwargs)

    def listener(self) -> tuple[Any, int]:
        """A new connection subscribed to Redis's invalidations, and its client id: the copy's
        listener (`storage.redis_cache`). Its client id is read first (a RESP2 connection
        subscribed answers nothing else); the subscription's answer is left to the copy's
        reads of it. Redis out of reach: its errors."""
        connection = self._connection()
        _opened(connection)
        (client,) = _answers(connection, _CLIENT_ID, 1)
        connection._sock.sendall(_SUBSCRIBE)
        return connection, int(client)

    def _borrow(self) -> Any:
        """A free connection of this process (the one used last), or a new one."""
        pid = os.getpid()
        if self._pid != pid:  # the first call of a forked worker: the parent's are not its
            with self._forked:
                if self._pid != pid:
                    self._free, self._pid = [], pid
        try:
            return self._free.pop()
        except IndexError:
            self.opened += 1
            return self._connection()

    # ------------------------------------------------------------ the copy (`--read-cache-bytes`)

    def cached(self, key: str, field: str) -> bytes | None:
        """The value of a hash's field as the process's copy holds it, with the rules' version
        of the request's `guard` when it has one (the guard then ends here); None when the
        copy does not hold both (or there is none): `read_kept` reads them."""
        cache = self.cache
        if cache is None:
            return None
        own = self._own
        guard = own.guard
        with cache.lock:
            if cache.listening() is None:
                return None
            value = cache.get(key, field)
            if value is None:
                return None
            version = cache.get(guard[0], "version") if guard is not None else b""
            if version is None:
                return None
        if guard is not None:
            own.settle(guard, version)
        return value

    def read_kept(self, key: str, field: str, command: bytes) -> bytes | None:
        """`HGET key field` (`command`, packed), read with `CLIENT CACHING YES` so that Redis
        tells the process's listener when it changes, and kept in the copy unless a message
        came in meanwhile (the request's guard read and kept alike); a plain `calls` when the
        copy has no listener."""
        cache = self.cache
        assert cache is not None
        with cache.lock:
            redirect, generation = cache.listening(), cache.generation
        if redirect is None:  # none yet, or lost: opened now (off the turn), used next time
            cache.open()
        own = self._own
        if redirect is None or own.connection is not None:
            return self._plain(command)
        guard = own.guard
        commands = [_CACHING, self._version_read(guard[0])] if guard is not None else []
        commands += [_CACHING, command]
        connection = self._borrow()
        try:
            answers = _tracked(connection, redirect, b"".join(commands), len(commands))
        except ResponseError:  # the listener gone meanwhile: read plainly
            return self._plain(command)
        finally:
            self._free.append(connection)
        version = (answers[1] or b"0") if guard is not None else b""
        value: bytes | None = answers[-1]
        with cache.lock:
            if cache.listening() == redirect and cache.generation == generation:
                if guard is not None:
                    cache.put(guard[0], "version", version)
                if value is not None:
                    cache.put(key, field, value)
        if guard is not None:
            own.settle(guard, version)
        return value

    def _plain(self, command: bytes) -> bytes | None:
        raw: bytes | None = self.calls([command])[0]
        return raw

    def changed(self, key: str | None) -> None:
        """This thread's request changed `key` (a hash the copies may hold; None: any key):
        this process's copy forgets it now, and the request waits for one more round trip
        before its answer (`fence`), so that every other process has Redis's message first."""
        cache = self.cache
        if cache is not None:
            cache.forget(key)
            self._own.changed = True

    def take_changed(self) -> bool:
        """Whether this thread changed what a copy may hold since it was last asked."""
        own = self._own
        changed, own.changed = own.changed, False
        return changed

    def fence(self) -> None:
        """One round trip, when this thread's request changed what a copy may hold: Redis has
        then written every message the change caused (Redis lost: the copies are forgotten
        with their listeners, nothing to wait for)."""
        if self.take_changed():
            try:
                self.call("PING")
            except (*LOST, redis.exceptions.RedisError):
                pass

    def pinned(self) -> _Pinned:
        """The calls of this thread inside go on one connection (a transaction: `WATCH`)."""
        return _Pinned(self)

    @property
    def free(self) -> int:
        """Connections of this process no call is using now."""
        return len(self._free) if self._pid == os.getpid() else 0

    def guard(self, key: str, version: bytes) -> None:
        """The next commands of this thread read the field `version` of `key` too (in the same
        round trip), or a change's script checks it first (`guard_change`): `guarded` then
        says whether it still held `version`."""
        own = self._own
        own.guard, own.fresh, own.refused = (key, version), None, False

    def guard_change(self) -> tuple[str, bytes] | None:
        """For a change of this thread: the (key, version) its script checks before writing
        anything (the guard not read yet; it ends here), or None when none is pending.
        RulesChanged, nothing sent, when a read of the request found the version changed."""
        own = self._own
        guard = own.guard
        if guard is not None:
            own.guard = None
            return guard
        if own.fresh is False:
            own.refused = True
            raise RulesChanged()
        return None

    def change_guarded(self, held: bool) -> None:
        """What a guarded change's script found: the version `held` (written), or not
        (refused: RulesChanged raised)."""
        own = self._own
        own.fresh = held
        if not held:
            own.refused = True
            raise RulesChanged()

    def guarded(self) -> str:
        """What became of the version `guard` asked for; the guard ends. FRESH: still held
        when the request's first commands read it; CHANGED: it moved (what was read stands,
        nothing was refused); REFUSED: it moved and a change was refused, nothing written
        (the request is to be served again); UNKNOWN: no command read it."""
        own = self._own
        fresh, refused = own.fresh, own.refused
        own.guard = own.fresh = None
        own.refused = False
        if refused:
            return REFUSED
        return UNKNOWN if fresh is None else FRESH if fresh else CHANGED

    def call(self, *command: bytes | str | int | float) -> Any:
        """One command (`calls`)."""
        return self.calls([command])[0]

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """A script by its SHA-1 (EVALSHA), loaded first when Redis does not hold it."""
        return self.run_ready(script, ("EVALSHA", str(script.sha), len(keys), *keys, *args))

    def run_ready(self, script: Script, command: Command) -> Any:
        """`run` of the script's EVALSHA made already (`Packed`: a `Ready` command)."""
        try:
            return self.calls([command])[0]
        except NoScriptError:
            source: Any = script.script
            self.call("SCRIPT", "LOAD", source)
            return self.calls([command])[0]

    def check(self) -> None:
        """BadStore naming why Redis cannot be used now (at start-up)."""
        try:
            self.client.ping()
        except redis.exceptions.AuthenticationError as exc:
            raise BadStore(f"Redis refused the credentials ({exc})") from None
        except redis.exceptions.ResponseError as exc:
            raise BadStore(f"Redis refused the connection ({exc})") from None
        except LOST as exc:
            raise BadStore(f"cannot reach Redis ({_reason(exc)})") from None
        policy = self.eviction()
        if policy.startswith("allkeys-"):
            log.logger.warning(
                "store %s: Redis's maxmemory-policy is %s: at its maxmemory Redis may evict "
                "the mock's keys (records, rules, the journal) and they are lost; with "
                "noeviction, a full Redis refuses changes (503) and keeps what it holds",
                self.shown,
                policy,
            )

    def eviction(self) -> str:
        """Redis's `maxmemory-policy` (`INFO memory`); "" when INFO is not allowed."""
        try:
            return str(self.client.info("memory").get("maxmemory_policy", ""))
        except (*LOST, redis.exceptions.RedisError):  # an ACL without INFO; Redis gone since
            return ""

    def reachable(self) -> bool:
        try:
            return bool(self.client.ping())
        except (*LOST, redis.exceptions.RedisError):
            return False

    def refusal(self, key: str) -> str | None:
        """Why Redis refuses writes now (`REFUSING`: its reason), or None when it takes them:
        `key` set and deleted, as a probe. Redis lost: None (`reachable` says it)."""
        try:
            self.calls([("SET", key, "1", "PX", 1000), ("DEL", key)])
        except ResponseError as exc:
            if _refusing(exc):
                return _refusal(exc)
            raise
        except LOST:
            pass
        return None

    def calling(self) -> _Calling:
        """Redis lost → StoreUnavailable naming the store (a 503, not a traceback); the wait
        spent outside the request's turn (`aside`)."""
        return _Calling(self)


class _Own(threading.local):
    """A thread's own: the connection its calls keep (`Link.pinned`), and the guard of its
    request (`Link.guard`); the class's values until the thread sets its own."""

    connection: Any = None
    guard: tuple[str, bytes] | None = None
    fresh: bool | None = None
    refused = False
    changed = False  # the request changed what a copy may hold (`Link.changed`)

    def settle(self, guard: tuple[str, bytes], version: bytes) -> None:
        """The guard's version read (`version`): it ends, and says whether it held."""
        self.guard = None
        self.fresh = version == guard[1]


class _Calling:
    """`Link.calling` (a class: a generator's context manager costs a request ~10 µs more,
    entered four times or more)."""

    __slots__ = ("_aside", "_link")

    def __init__(self, link: Link) -> None:
        self._link = link
        self._aside = link.aside()

    def __enter__(self) -> None:
        self._aside.__enter__()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        try:
            if isinstance(exc, LOST):
                link = self._link
                raise StoreUnavailable(f"Redis at {link.shown}", _reason(exc)) from None
            if isinstance(exc, ResponseError) and _refusing(exc):
                raise StoreRefused(f"Redis at {self._link.shown}", _refusal(exc)) from None
        finally:
            self._aside.__exit__(None, None, None)


class _Pinned:
    """`Link.pinned`: a connection taken for the thread's calls, given back at the end (closed
    first when an error left the block: a `WATCH` may still hold on it)."""

    __slots__ = ("_link",)

    def __init__(self, link: Link) -> None:
        self._link = link

    def __enter__(self) -> None:
        self._link._own.connection = self._link._borrow()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        own = self._link._own
        connection, own.connection = own.connection, None
        if exc is not None:
            connection.disconnect()
        self._link._free.append(connection)


def _sent_on(connection: Any, packed: bytes, count: int, again: bool) -> list[Any]:
    """`_answers`, once more on the connection opened again when Redis had closed it (`again`)."""
    try:
        return _answers(connection, packed, count)
    except RedisConnectionError:
        connection.disconnect()
        if not again:
            raise
        return _answers(connection, packed, count)


_PUSH = hiredis.PushNotification  # RESP3's out-of-band messages (`tracking-redir-broken`)
_CACHING: bytes = Packed("CLIENT", "CACHING", "YES").with_(()).packed
_CLIENT_ID: bytes = Packed("CLIENT", "ID").with_(()).packed
_SUBSCRIBE: bytes = Packed("SUBSCRIBE", INVALIDATE).with_(()).packed


def _tracked(connection: Any, redirect: int, packed: bytes, count: int) -> list[Any]:
    """`_answers` on a connection whose reads Redis tracks for the listener `redirect`
    (`CLIENT TRACKING ON ... OPTIN` sent first when its socket has not been told yet); once
    more on the connection opened again when Redis had closed it."""
    for again in (True, False):
        if connection._sock is None:
            _opened(connection)
        known = getattr(connection, "mock_tracking", None)  # (the socket told, the listener)
        told = known is not None and known[0] is connection._sock and known[1] == redirect
        head = b"" if told else _tracking(redirect)
        try:
            answers = _answers(connection, head + packed, count + (0 if told else 1))
        except RedisConnectionError:
            if again:
                continue
            raise
        except ResponseError:
            connection.mock_tracking = None
            raise
        connection.mock_tracking = (connection._sock, redirect)
        return answers if told else answers[1:]
    raise AssertionError("unreachable")


def _tracking(redirect: int) -> bytes:
    return Packed("CLIENT", "TRACKING", "ON", "REDIRECT", redirect, "OPTIN").with_(()).packed


def _answers(connection: Any, packed: bytes, count: int) -> list[Any]:
    """The packed commands sent on `connection`, and their `count` answers read back (an error
    answer raised once every answer is read). The socket and the hiredis reader that redis-py's
    connection made are used directly (its `send_packed_command` and `read_response` cost ~10 µs
    an answer around them: checks, error decoration); a connection not yet open is opened
    first (`_opened`). Its parser is hiredis's (`Link` refuses to start without hiredis)."""
    sock = connection._sock
    if sock is None:
        sock = _opened(connection)
    parser = connection._parser
    reader, buffer = parser._reader, parser._buffer
    answers: list[Any] = []
    error: RedisError | None = None
    try:
        sock.sendall(packed)
        for _ in range(count):
            answer = reader.gets()
            while answer is NOT_ENOUGH_DATA or type(answer) is _PUSH:  # a push: not an answer
                if answer is NOT_ENOUGH_DATA:
                    read = sock.recv_into(buffer)
                    if not read:
                        raise RedisConnectionError("Connection closed by server.")
                    reader.feed(buffer, 0, read)
                answer = reader.gets()
            if isinstance(answer, RedisError):  # every error answer, LOADING's too (a
                error = error or answer  # ConnectionError to redis-py, not a ResponseError)
            answers.append(answer)
    except (TimeoutError, BlockingIOError):  # the socket's timeout (READ_TIMEOUT, `_opened`)
        connection.disconnect()
        raise RedisTimeoutError(f"Timeout reading from {connection._host_error()}") from None
    except OSError as exc:
        connection.disconnect()
        raise RedisConnectionError(f"Error while talking to Redis: {exc}") from None
    except BaseException:  # a protocol error, a closed connection: never read again
        connection.disconnect()
        raise
    if error is not None:
        raise error
    return answers


def _opened(connection: Any) -> Any:
    """The connection opened (redis-py's `connect`, its handshake included), then its socket's
    timeouts left to the kernel when it is a plain one, TCP or Unix (`sockets`: no poll before
    each send and read; a TLS socket keeps Python's). Its socket."""
    connection.connect()
    sock = connection._sock
    if type(sock) is socket.socket:
        sockets.timed_by_the_kernel(sock, READ_TIMEOUT)
    return sock


def _refusing(exc: ResponseError) -> bool:
    """Whether Redis's error answer refuses the command for now (`REFUSING`), rather than
    saying it is wrong."""
    return isinstance(exc, REFUSING) or _code(exc) in REFUSING_CODES


def _code(exc: ResponseError) -> str:
    code = getattr(exc, "status_code", None)  # redis-py takes the known codes off the text
    return code if isinstance(code, str) else str(exc).split(" ", 1)[0]


def _refusal(exc: ResponseError) -> str:
    """Redis's answer as said: its code, its first sentence (not the script's place in it)."""
    text = _reason(exc).split("caused error: ", 1)[-1].split(". script:", 1)[0]  # a pipeline's
    code = _code(exc)
    return text if text.startswith(code) else f"{code} {text}"


def _reason(exc: BaseException) -> str:
    """An error's first line, without the password a URL in it may hold."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.rstrip(".")
