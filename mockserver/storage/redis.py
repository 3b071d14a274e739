"""The Redis backend: a session's items in Redis (`--store redis://...`), shared by every
server on the same store and prefix.

Each collection is a hash of JSON bytes by id, a sorted set of ids by insertion number, and
one sorted set per indexed field (`storage.redis_keys` has the layout); every change is one
Lua script (`storage.redis_scripts`), atomic across processes, but for a batch of new items
(`insert_many`), which the server makes whole and Redis stores in one transaction
(`storage.redis_bulk`). A search is answered inside
Redis when it can be: no filter (a range of the insertion order), an equality on an indexed
field (a range of its index), or an order by an ordered field (`timestamp`: a range of its
index). Any other filter is evaluated in Python (`storage.evaluate`'s predicates) over the
items read in pages of `BATCH`, holding only the matches.

A fork copies the source namespace's keys inside Redis (COPY, in one script): a new session
costs one pass over its start-up items, in Redis, and none of them crosses the network.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, overload

from redis.exceptions import ConnectionError as RedisConnectionError

from mockserver import log
from mockserver.codec import MISSING
from mockserver.query.expression import equalities
from mockserver.query.predicates import getter, predicate
from mockserver.storage import redis_scripts as scripts
from mockserver.storage.backend import (
    Dumped,
    Found,
    Item,
    OnEvict,
    Search,
    Shape,
    StoreRefused,
    StoreUnavailable,
)
from mockserver.storage.encoding import Reader
from mockserver.storage.evaluate import evaluate
from mockserver.storage.redis_bulk import Batch, Numbers, build
from mockserver.storage.redis_connection import Arg, Command, Link, Packed
from mockserver.storage.redis_keys import (
    CollectionKeys,
    Namespace,
    escaped,
    member_id,
    member_value,
)

BATCH = 1000  # items read from Redis at once by a scan, a stream or a dump
# items of an insert sent at once: fewer round trips than 1 000 (100 000 records: ~1 s less
# on 2 cores); the script's fallback unpacks 2 values an item, Lua unpacks at most ~8 000
INSERTS = 2000
LAST = 2**53  # a rank past any collection's end (Redis takes 64-bit ranks; no overflow)
Pairs = list[tuple[str, bytes]]  # (id, bytes) of a page of items


class Scripts:
    """The Lua scripts, registered once per client (redis-py sends EVALSHA, and the script
    again when Redis lost it in a restart)."""

    def __init__(self, link: Link) -> None:
        client = link.client
        self.change = client.register_script(scripts.CHANGE)
        self.page = client.register_script(scripts.PAGE)
        self.slice = client.register_script(scripts.SLICE)
        self.lookup = client.register_script(scripts.LOOKUP)
        self.fork = client.register_script(scripts.FORK)
        self.clear = client.register_script(scripts.CLEAR)


class RedisCollection:
    """A collection's items in Redis; the oldest go first when `max_items` is reached."""

    def __init__(
        self,
        backend: RedisBackend,
        name: str,
        template: str,
        shape: Shape,
    ) -> None:
        self.name = name
        self.template = template
        self.layout = shape.layout
        self.indexed = shape.indexed
        self.ordered = shape.ordered
        self.max_items = backend.max_items
        self.keys: CollectionKeys = backend.namespace.collection(
            name, tuple(dict.fromkeys((*shape.indexed, *shape.ordered)))
        )
        self._getters = [getter(field) for field in self.keys.indexed]
        namespace = backend.namespace
        self._change_keys = [*self.keys.all(), namespace.collections, namespace.keys]
        self._suffixes = self.keys.suffixes()
        self._bound = min(self.max_items, 2**53)
        self._registration: list[Command] = [  # the first insert's (`scripts.CHANGE`'s too)
            ("HSET", namespace.collections, name, template),
            ("SADD", namespace.keys, "collections", *self._suffixes),
        ]
        self._link = backend.link
        self._client: Any = backend.link.client  # redis-py's answers are loosely typed
        self._scripts = backend.scripts
        self._get_head = Packed("HGET", self.keys.items)  # `get`: the item's id follows
        self._heads: dict[tuple[str, str | None], Packed] = {}  # `_change`'s, by mode and guard
        self._on_evict = backend.on_evict
        self._lock = threading.Lock()  # a batch's evictions reported before the next batch's

    # ------------------------------------------------------------ changes

    def insert(self, item: Item) -> bytes:
        raw = self.layout.encode(item)
        self._inserted([(item, raw)])
        self._link.changed(self.keys.items)  # an item of the same id replaced
        return raw

    def insert_many(self, items: Iterable[Item]) -> int:
        """The inserts sent `INSERTS` at a time by one thread while this one makes the next
        batch; evictions reported in order after each batch. A batch of new items is made
        here whole (`redis_bulk`: Redis only stores it); one holding an id twice, or an id
        Redis holds, goes item by item (`scripts.CHANGE`'s insert)."""
        count = 0
        pending: deque[Future[int]] = deque()
        numbers = Numbers(self._link, self.keys.seq, INSERTS)
        with ThreadPoolExecutor(1, thread_name_prefix="redis-insert") as sender:
            for batch in _batches(items, INSERTS):
                pairs = [(item, self.layout.encode(item)) for item in batch]
                built = build(pairs, self._getters, numbers)
                if built is None:
                    pending.append(
                        sender.submit(self._sent, self._args("insert", pairs), len(pairs))
                    )
                else:
                    pending.append(sender.submit(self._sent_built, built))
                if len(pending) > 1:  # one batch on the way, one being made: no more
                    count += pending.popleft().result()
            count += sum(future.result() for future in pending)
        self._link.changed(self.keys.items)
        return count

    def _sent_built(self, batch: Batch) -> int:
        """A batch of new items stored: in a transaction when nothing stands in the way
        (`_stored`), else by the script, which evicts past the bound; item by item when an
        id is held."""
        with self._link.calling(), self._lock:  # off the turn, then in line
            way = self._stored(batch)
            answer: Any = []
            if way == "script":
                head: list[bytes | str | int] = ["built", self._bound, len(batch.ids)]
                head += [self.name, self.template, len(self._suffixes), *self._suffixes]
                answer = self._link.run(
                    self._scripts.change, self._change_keys, batch.script_args(head)
                )
            if way == "held" or answer == [-1]:  # an id held: item by item
                answer = self._scripts.change(
                    keys=self._change_keys, args=self._args("insert", batch.pairs)
                )
            self._evicted(answer)
        return len(batch.pairs)

    def _stored(self, batch: Batch) -> Literal["stored", "held", "script"]:
        """The batch written by plain commands in one transaction ("stored"), unless an id
        of it is held ("held") or the script must write it ("script": an eviction due, the
        collection changed meanwhile, or the connection lost on the way; it checks again)."""
        link = self._link
        with link.pinned():  # the WATCH holds on the connection it was sent on
            _, held, size = link.calls(batch.guard(self.keys))
            if any(held) or size + len(batch.ids) > self._bound:
                link.call("UNWATCH")
                return "held" if any(held) else "script"
            try:
                done = link.calls(batch.commands(self.keys, self._registration), again=False)
            except RedisConnectionError:
                return "script"
        return "stored" if done[-1] is not None else "script"

    def add(self, item: Item) -> bytes | None:
        raw = self.layout.encode(item)
        with self._link.calling():  # no lock held across the call: inserts go at once
            added, *evicted = self._change("add", item, raw)
        if evicted:  # a new id changes no item a copy holds; an eviction does
            self._link.changed(self.keys.items)
        self._evicted(evicted)
        return raw if added else None

    def _evicted(self, evicted: list[bytes]) -> None:
        for gone in evicted:
            if self._on_evict:
                self._on_evict(self.name, gone.decode())

    def _inserted(self, batch: list[tuple[Item, bytes]]) -> int:
        return self._sent(self._args("insert", batch), len(batch))

    def _sent(self, args: list[bytes | str | int], size: int) -> int:
        with self._link.calling(), self._lock:  # off the turn, then in line
            self._evicted(self._scripts.change(keys=self._change_keys, args=args))
        return size

    def replace(self, item: Item) -> bytes | None:
        raw = self.layout.encode(item)
        with self._link.calling():
            held = self._change("replace", item, raw)
        self._link.changed(self.keys.items)
        return raw if held else None

    def remove(self, item_id: str) -> bool:
        with self._link.calling():
            held = self._change("remove", {"id": item_id}, b"")
        self._link.changed(self.keys.items)
        return bool(held)

    def _change(self, mode: str, item: Item, raw: bytes) -> Any:
        """One script call for one item (`scripts.CHANGE`), what is the same for every item
        packed once (`_head`); for a request whose rules' version is not read yet
        (`Link.guard`), the script checks it first and writes nothing when it moved
        (RulesChanged)."""
        link, tail = self._link, self._item_args(mode, item, raw)
        guard = link.guard_change()
        if guard is None:
            return link.run_ready(self._scripts.change, self._head(mode, None).with_(tail))
        key, version = guard
        tail.append(version)
        answer = link.run_ready(self._scripts.change, self._head(mode, key).with_(tail))
        link.change_guarded(answer != scripts.STALE)
        return answer

    def _head(self, mode: str, guard: str | None) -> Packed:
        """The EVALSHA of a change of one item, up to the item's own arguments: the keys (and
        the rules' meta key of a guarded change, whose mode is `g` + mode), then `_args`'s
        head."""
        found = self._heads.get((mode, guard))
        if found is None:
            keys = self._change_keys if guard is None else [*self._change_keys, guard]
            head = self._args_head("g" + mode if guard else mode, 1)
            found = Packed("EVALSHA", str(self._scripts.change.sha), len(keys), *keys, *head)
            if len(self._heads) >= 64:  # a collection is one session's: its meta key, or none
                self._heads.clear()
            self._heads[(mode, guard)] = found
        return found

    def _args(self, mode: str, batch: list[tuple[Item, bytes]]) -> list[bytes | str | int]:
        args = self._args_head(mode, len(batch))
        for item, raw in batch:
            args += self._item_args(mode, item, raw)
        return args

    def _args_head(self, mode: str, count: int) -> list[bytes | str | int]:
        suffixes = self._suffixes
        return [mode, self._bound, count, self.name, self.template, len(suffixes), *suffixes]

    def _item_args(self, mode: str, item: Item, raw: bytes) -> list[Arg]:
        """An item's arguments of `scripts.CHANGE`: its id, its bytes, its index entries."""
        args: list[Arg] = [item["id"], raw]
        if mode == "remove":
            return args + [b"n"] * len(self._getters)
        for get in self._getters:  # what an index holds: a string (escaped), another kind, or none
            value = get(item)
            if isinstance(value, str):
                args.append(b"s" + escaped(value))
            else:
                args.append(b"n" if value is MISSING or value is None else b"o")
        return args

    def clear(self) -> None:
        with self._link.calling():
            kept = self.keys.seq  # insertion numbers keep growing: order stays exact
            self._client.delete(*[key for key in self.keys.all() if key != kept])
        self._link.changed(self.keys.items)

    # ------------------------------------------------------------ reads

    def get(self, item_id: str) -> bytes | None:
        """The item's bytes; from the process's copy when it holds them (`Link.cached`)."""
        link = self._link
        if link.cache is not None:
            kept = link.cached(self.keys.items, item_id)
            if kept is not None:
                return kept
            with link.calling():
                return link.read_kept(self.keys.items, item_id, self._get_head.with_one(item_id))
        with link.calling():
            raw: bytes | None = link.calls([self._get_head.with_one(item_id)])[0]
        return raw

    def __len__(self) -> int:
        with self._link.calling():
            return int(self._client.zcard(self.keys.order))

    def __iter__(self) -> Iterator[bytes]:
        return iter([raw for page in self._pages() for _, raw in page])

    def search(self, search: Search) -> Found:
        with self._link.calling():
            return self._search(search)

    def stream(self, search: Search) -> Found:
        """Every match up to the limit: up to `BATCH` of them read at once (the count is what
        is sent, even as items are evicted); more: the ids found first, their bytes read as
        the answer is sent, `BATCH` at a time (an item removed meanwhile is left out)."""
        with self._link.calling():
            if search.order and not self._sorted_here(search):
                found = self._search(search)
                return Found(len(found.items), found.items)
            ids = self._matching_ids(search)
            if len(ids) <= BATCH:  # read now: the count sent first is what is sent
                items = self._fetch(ids)
                return Found(len(items), items)
        return Found(len(ids), Lazy(ids, self._read))

    def _search(self, search: Search) -> Found:
        if search.where is None and not search.order:
            return self._slice(search.offset, search.limit)
        if self._sorted_here(search):
            ids, total = self._sorted_ids(search, search.offset, search.limit)
            return Found(total, self._fetch(ids))
        reader = Reader(self.layout)
        test = predicate(search.where, reader.access) if search.where is not None else None
        pages = self._candidates(search)
        if search.order:
            matches = [raw for page in pages for _, raw in page if test is None or test(raw)]
            return evaluate(
                matches, Search(None, search.order, search.offset, search.limit), reader.access
            )
        end = search.offset + search.limit
        count, kept = 0, []
        for page in pages:
            for _, raw in page:
                if test is None or test(raw):
                    if search.offset <= count < end:
                        kept.append(raw)
                    count += 1
        return Found(count, kept)

    def _matching_ids(self, search: Search) -> list[str]:
        """The ids of a page of the matches, in the search's order (none, or an order
        answered here)."""
        if self._sorted_here(search):
            return self._sorted_ids(search, search.offset, search.limit)[0]
        if search.where is None:
            return self._order_ids(search.offset, search.limit)
        test = predicate(search.where, Reader(self.layout).access)
        ids: list[str] = []
        end = search.offset + search.limit
        for page in self._candidates(search):
            for item_id, raw in page:
                if len(ids) >= end:
                    return ids[search.offset :]
                if test(raw):
                    ids.append(item_id)
        return ids[search.offset :]

    def _slice(self, offset: int, limit: int) -> Found:
        if limit <= 0:
            return Found(int(self._client.zcard(self.keys.order)), [])
        answer = self._scripts.slice(
            keys=[self.keys.order, self.keys.items], args=[offset, min(offset + limit, LAST) - 1]
        )
        return Found(int(answer[0]), [raw for raw in answer[1:] if raw is not None])

    def _order_ids(self, offset: int, limit: int) -> list[str]:
        if limit <= 0:
            return []
        found = self._client.zrange(self.keys.order, offset, min(offset + limit, LAST) - 1)
        return [item_id.decode() for item_id in found]

    def _candidates(self, search: Search) -> Iterator[Pairs]:
        """Pages of the items a filter may match, oldest first: those its equalities on
        indexed fields allow, or every item."""
        usable = [(f, vs) for f, vs in equalities(search.where) if f in self.keys.indexed]
        if not usable:
            return self._pages()
        keys: list[str] = []
        args: list[bytes | int] = []
        for field, values in usable:
            keys += [self.keys.index(field), self.keys.others(field)]
            unique = list(dict.fromkeys(values))
            args += [len(unique), *(escaped(value) for value in unique)]
        ids = [item_id.decode() for item_id in self._scripts.lookup(keys=keys, args=args)]
        return self._pairs(ids)

    def _pages(self) -> Iterator[Pairs]:
        """Every item, oldest first, `BATCH` at a time (by insertion number, so items
        inserted or evicted meanwhile shift nothing)."""
        after = b"-inf"
        while True:
            with self._link.calling():
                answer = self._scripts.page(
                    keys=[self.keys.order, self.keys.items], args=[after, BATCH]
                )
            if not answer:
                return
            after = answer[0]
            pairs = answer[1:]
            yield [
                (pairs[i].decode(), pairs[i + 1])
                for i in range(0, len(pairs), 2)
                if pairs[i + 1] is not None
            ]
            if len(pairs) < 2 * BATCH:
                return

    def _pairs(self, ids: list[str]) -> Iterator[Pairs]:
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            with self._link.calling():
                raws = self._client.hmget(self.keys.items, chunk)
            yield [(i, raw) for i, raw in zip(chunk, raws, strict=True) if raw is not None]

    def _fetch(self, ids: Sequence[str]) -> list[bytes]:
        return [raw for page in self._pairs(list(ids)) for _, raw in page]

    def _read(self, ids: list[str]) -> Iterator[bytes]:
        """A stream's items as it is sent; Redis lost meanwhile ends it early (the answer's
        status is sent: the client sees fewer items than `MPT-Item-Count`), logged."""
        try:
            for page in self._pairs(ids):
                for _, raw in page:
                    yield raw
        except StoreUnavailable as lost:
            log.logger.warning("stream of %s cut short: %s", self.name, lost)

    # ------------------------------------------------------------ order kept in Redis

    def _sorted_here(self, search: Search) -> bool:
        """Whether Redis gives this search's order: no filter, one ordered field, and every
        item holding a string there (the index then holds every item)."""
        if search.where is not None or len(search.order) != 1:
            return False
        field = search.order[0][0]
        if field not in self.ordered:
            return False
        with self._client.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.order)
            pipe.zcard(self.keys.index(field))
            pipe.zcard(self.keys.others(field))
            total, indexed, others = pipe.execute()
        return bool(total == indexed and others == 0)

    def _sorted_ids(self, search: Search, offset: int, limit: int) -> tuple[list[str], int]:
        """A page of ids by an ordered field, and how many items there are. Ascending, the
        index's order is the answer's (equal values in insertion order). Descending, Redis
        gives equal values newest first: the page is widened to whole runs of equal values,
        each turned back to insertion order, then cut."""
        field, descending = search.order[0]
        key = self.keys.index(field)
        total = int(self._client.zcard(self.keys.order))
        if limit <= 0 or offset >= total:
            return [], total
        stop = min(offset + limit, total) - 1
        if not descending:
            return [member_id(m) for m in self._client.zrange(key, offset, stop)], total
        page = self._client.zrange(key, offset, stop, desc=True)
        if not page:
            return [], total
        first, last = member_value(page[0]), member_value(page[-1])
        with self._client.pipeline(transaction=False) as pipe:
            pipe.zlexcount(key, b"(" + first + b"\x01", b"+")  # values above the first's
            pipe.zlexcount(key, b"[" + last + b"\x00", b"+")  # values from the last's up
            start, through = pipe.execute()
        wide = self._client.zrange(key, start, through - 1, desc=True)
        ids = [member_id(m) for m in _runs_in_order(wide)]
        return ids[offset - start : stop + 1 - start], total


class Lazy(Sequence[bytes]):
    """The items of a stream, read from Redis as they are iterated."""

    def __init__(self, ids: list[str], read: Callable[[list[str]], Iterator[bytes]]) -> None:
        self._ids = ids
        self._read = read

    def __iter__(self) -> Iterator[bytes]:
        return self._read(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        return list(self)[index]


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _runs_in_order(members: list[bytes]) -> list[bytes]:
    """Members by value descending, each run of equal values back in insertion order."""
    ordered: list[bytes] = []
    run: list[bytes] = []
    for member in members:
        if run and member_value(member) != member_value(run[0]):
            ordered += reversed(run)
            run = []
        run.append(member)
    return ordered + list(reversed(run))


class RedisBackend:
    """One session's collections in a namespace of the store."""

    shared = True  # what it holds is seen by every server on the store and prefix

    def __init__(
        self,
        link: Link,
        namespace: Namespace,
        max_items: int = sys.maxsize,
        on_evict: OnEvict | None = None,
        scripts_: Scripts | None = None,
        shapes: dict[str, Shape] | None = None,
    ) -> None:
        self.link = link
        self.namespace = namespace
        self.max_items = max_items
        self.on_evict = on_evict
        self.scripts = scripts_ or Scripts(link)
        self._shapes: dict[str, Shape] = {} if shapes is None else shapes
        self._collections: dict[str, RedisCollection] = {}
        self._lock = threading.Lock()
        self.owned = False  # this server's alone: deleted when it stops (`release`)

    @classmethod
    def fresh(
        cls, link: Link, prefix: str, max_items: int, on_evict: OnEvict | None
    ) -> RedisBackend:
        """A backend in a namespace of its own (`base.N`, N from the store's counter)."""
        with link.calling():
            number = link.client.incr(f"{prefix}:namespaces")
        made = cls(link, Namespace(prefix, f"base.{number}"), max_items, on_evict)
        made.owned = True
        return made

    def describe(self, template: str, shape: Shape) -> None:
        self._shapes[template] = shape

    def open(self, path: str, template: str | None = None) -> RedisCollection:
        found = self._collections.get(path)
        if found is not None:
            return found
        with self.link.calling(), self._lock:  # off the turn, then in line
            found = self._collections.get(path)
            if found is None:
                made = RedisCollection(
                    self, path, template or path, self._shapes.get(template or path, Shape())
                )
                self._register(made)
                found = self._collections[path] = made
        return found

    def _register(self, collection: RedisCollection) -> None:
        """The collection and its keys, known to every server (for dump, clear and fork);
        known already, as another process made it, when Redis refuses writes now (reads go
        on)."""
        namespace = self.namespace
        try:
            with self.link.calling(), self.link.client.pipeline(transaction=False) as pipe:
                pipe.hset(namespace.collections, collection.name, collection.template)
                pipe.sadd(namespace.keys, "collections", *collection.keys.suffixes())
                pipe.execute()
        except StoreRefused:
            with self.link.calling():
                if not self.link.client.hexists(namespace.collections, collection.name):
                    raise

    def fork(self, name: str | None = None, *, join: bool = False) -> RedisBackend:
        if name is None:
            with self.link.calling():
                number = self.link.client.incr(f"{self.namespace.prefix}:namespaces")
            target = Namespace(self.namespace.prefix, f"fork.{number}")
        else:
            target = Namespace(self.namespace.prefix, f"session.{name}")
        twin = RedisBackend(
            self.link, target, self.max_items, self.on_evict, self.scripts, self._shapes
        )
        source = self.namespace
        with self.link.calling():
            self.scripts.fork(
                keys=[source.keys, target.made, target.keys],
                args=[source.root, target.root, 1 if join else 0],
            )
        self.link.changed(None)  # a session made again: its keys' values are new
        return twin

    def clear(self) -> None:
        with self.link.calling():
            self.scripts.clear(keys=[self.namespace.keys], args=[self.namespace.root])
        self.link.changed(None)

    def dump(self) -> Iterator[Dumped]:
        with self.link.calling():
            known: dict[bytes, bytes] = self.link.client.hgetall(  # type: ignore[assignment]
                self.namespace.collections
            )
        for path, template in known.items():
            collection = self.open(path.decode(), template.decode())
            pages = collection._pages()
            yield Dumped(collection.name, collection.template, _flat(pages))

    def load(self, path: str, template: str, items: Iterable[Item]) -> int:
        collection = self.open(path, template)
        collection.clear()
        return collection.insert_many(items)

    def release(self) -> None:
        """The namespace's keys deleted, when it is this server's own (`fresh`: its start-up
        state); a session's namespace is shared, and stays."""
        if not self.owned:
            return
        namespace = self.namespace
        with self.link.calling():
            client = self.link.client
            suffixes = [s.decode() for s in client.smembers(namespace.keys)]  # type: ignore[union-attr]
            keys = [f"{namespace.root}:{suffix}" for suffix in suffixes]
            client.delete(*keys, namespace.keys, namespace.made, namespace.collections)
        self.link.changed(None)

    def health(self) -> dict[str, Any]:
        """`refusing`: why Redis refuses writes now (its `maxmemory` reached, a replica)."""
        found: dict[str, Any] = {"kind": "redis", "url": self.link.shown}
        found["reachable"] = reachable = self.link.reachable()
        refusal = self.link.refusal(f"{self.namespace.prefix}:probe") if reachable else None
        if refusal is not None:
            found["refusing"] = refusal
        cache = self.link.cache
        if cache is not None:  # this process's copy (`--read-cache-bytes`)
            values, size, listening = cache.state()
            found["readCache"] = {
                "values": values,
                "bytes": size,
                "bytesLimit": cache.limit,
                "listening": listening,
            }
        return found


def _flat(pages: Iterator[Pairs]) -> Iterator[bytes]:
    for page in pages:
        for _, raw in page:
            yield raw
