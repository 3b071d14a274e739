"""Stateful collections: list, get, create, update and delete on the in-memory stores.

Which operation does what comes from the spec's shape (see `router.Operation.kind`); how a
collection sets its server-owned fields comes from its `Behaviour` (records, event types, or the
generic one for any other collection of a spec loaded with `--spec`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mockserver import codec, stream
from mockserver.auth import Identity
from mockserver.ids import IdFormat, from_schema, guess
from mockserver.layout import Item, decode
from mockserver.problems import Problem
from mockserver.query import Query, filtering, ordering, page, stream_limit
from mockserver.router import Match, Operation
from mockserver.rql import FieldCheck
from mockserver.schema import Resolve, fields, item_schema, layout
from mockserver.store import Search, Shape, Store, Stores
from mockserver.stream import StreamFault


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    record_id: str | None = None


def _nothing() -> None:
    pass


@dataclass
class Exchange:
    """What a handler needs to know of one request."""

    match: Match
    query: Query
    body: Any
    identity: Identity
    base_url: str
    warnings: list[str]
    stores: Stores
    streaming: bool = False
    accept: str | None = None  # what a streamed read may be answered in
    stream_fault: StreamFault | None = None
    cut: Callable[[], None] = _nothing  # breaks the connection (a stream fault)
    max_export: int = 100_000  # items a streamed read may hold


class Behaviour:
    """How one collection fills server-owned fields; the generic behaviour only sets `id`."""

    noun = "Item"
    server_fields: tuple[str, ...] = ("id",)
    unique: tuple[str, ...] = ()
    indexed: tuple[str, ...] = ()  # paths with an equality index
    default_ids: IdFormat | None = None  # when the spec's id pattern does not say

    def __init__(self, ids: IdFormat) -> None:
        self.ids = ids

    def created(self, body: dict[str, Any], item_id: str, identity: Identity) -> Item:
        return {"id": item_id, **body}

    def render(self, item: Item) -> Item:
        """The item as `render()` shows it (records fill their `details` template)."""
        return item


def now() -> str:
    """UTC, millisecond precision, `Z`: how the platform writes timestamps. The date and time
    of day are formatted once a second."""
    second, fraction = divmod(time.time_ns() // 1_000_000, 1000)
    last = _last[0]  # read once: another thread may replace it meanwhile
    if last[0] != second:
        last = _last[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{last[1]}.{fraction:03d}Z"


_last: list[tuple[int, str]] = [(-1, "")]  # the last second formatted, and its text


class Resources:
    """Answers the spec's collection operations from the stores."""

    def __init__(
        self,
        operations: list[Operation],
        resolve: Resolve,
        stores: Stores,
        behaviours: dict[str, type[Behaviour]],
    ) -> None:
        self.stores = stores
        self._fields: dict[str, FieldCheck] = {}
        self._behaviours: dict[str, Behaviour] = {}
        by_collection: dict[str, list[Operation]] = {}
        for op in operations:
            by_collection.setdefault(op.collection, []).append(op)
        for collection, ops in by_collection.items():
            schema = item_schema(ops, resolve)
            self._fields[collection] = fields(schema, resolve)
            id_schema = resolve_property(schema, "id", resolve)
            kind = behaviours.get(collection, Behaviour)
            behaviour = kind(from_schema(id_schema) or kind.default_ids or guess(ops[0].resource))
            self._behaviours[collection] = behaviour
            stores.shapes[collection] = Shape(layout(schema, resolve), behaviour.indexed)

    def behaviour(self, collection: str) -> Behaviour:
        return self._behaviours[collection]

    def handle(self, call: Exchange) -> Reply:
        op = call.match.operation
        handler = getattr(self, f"_{op.kind}")
        store = call.stores.open(op.collection_path(call.match.params), op.collection)
        reply: Reply = handler(call, op, store)
        return reply

    def _list(self, call: Exchange, op: Operation, store: Store) -> Reply:
        if call.streaming:
            return self._stream(call, op, store)
        paging = page(call.query.params)
        found = store.find(self._search(call, op, store, paging.offset, paging.limit))
        meta: dict[str, Any] = {
            "pagination": {"offset": paging.offset, "limit": paging.limit, "total": found.total}
        }
        if call.query.selection.omitted:
            meta["omitted"] = call.query.selection.omitted
        shown = self._shown(call, op, found.items)
        data = b"[" + b",".join(shown) + b"]"
        return Reply(200, b'{"$meta":' + codec.dumps(meta) + b',"data":' + data + b"}")

    def _stream(self, call: Exchange, op: Operation, store: Store) -> Reply:
        """`MPT-Streaming: true`: every match (at most `limit`), streamed."""
        stream.refuse_offset(call.query.params)
        media = stream.media_type(call.accept)
        limit = stream_limit(call.query.params)
        found = store.find(self._search(call, op, store, 0, limit))
        count = min(found.total, limit)
        stream.check_cap(count, call.max_export)
        meta: dict[str, Any] = {"pagination": {"offset": 0, "limit": count, "total": count}}
        if call.query.selection.omitted:
            meta["omitted"] = call.query.selection.omitted
        items = self._shown(call, op, found.items)
        body = stream.body(media, items, meta, call.stream_fault, call.cut)
        return Reply(200, body, stream.headers(media, count, call.stream_fault))

    def _search(
        self, call: Exchange, op: Operation, store: Store, offset: int, limit: int
    ) -> Search:
        known = self._fields[op.collection]
        reader = store.reader()
        chosen = filtering(call.query, known, reader.access)
        order = ordering(call.query.params.get("order"), known)
        return Search(reader, chosen.where, chosen.equalities, order, offset, limit)

    def _shown(self, call: Exchange, op: Operation, items: Iterable[bytes]) -> Iterable[bytes]:
        """The stored bytes as the query asks to see them: `select` and `render()` applied
        (made one by one as they are read: a stream never holds them all)."""
        selection, render = call.query.selection, call.query.render
        if not selection.exclude and not render:
            return items
        behaviour = self._behaviours[op.collection]

        def shown(raw: bytes) -> bytes:
            item = decode(raw)
            if render:
                item = behaviour.render(item)
            return codec.dumps(selection.apply(item))

        return map(shown, items)

    def _get(self, call: Exchange, op: Operation, store: Store) -> Reply:
        raw = self._existing(call, op, store)
        [shown] = self._shown(call, op, [raw])
        return Reply(200, shown)

    def _create(self, call: Exchange, op: Operation, store: Store) -> Reply:
        behaviour = self._behaviours[op.collection]
        body = self._owned_removed(call, behaviour)
        self._check_unique(behaviour, store, body, None)
        item_id = behaviour.ids.make()
        while store.get(item_id) is not None:
            item_id = behaviour.ids.make()
        raw = store.insert(behaviour.created(body, item_id, call.identity))
        where = f"{op.collection_path(call.match.params)}/{quote(item_id, safe='')}"
        return Reply(201, raw, {"Location": call.base_url + where}, record_id=item_id)

    def _update(self, call: Exchange, op: Operation, store: Store) -> Reply:
        behaviour = self._behaviours[op.collection]
        current = decode(self._existing(call, op, store))
        changes = self._owned_removed(call, behaviour)
        self._check_unique(behaviour, store, changes, current["id"])
        raw = store.replace({**current, **changes})
        return Reply(200, raw, record_id=current["id"])

    def _delete(self, call: Exchange, op: Operation, store: Store) -> Reply:
        item_id = decode(self._existing(call, op, store))["id"]
        store.remove(item_id)
        return Reply(204, record_id=item_id)

    def _action(self, call: Exchange, op: Operation, store: Store) -> Reply:
        raise Problem(501, f"The mock does not simulate {op.method} {op.template}.")

    def _existing(self, call: Exchange, op: Operation, store: Store) -> bytes:
        item_id = list(call.match.params.values())[-1]
        raw = store.get(item_id)
        if raw is None:
            noun = self._behaviours[op.collection].noun
            raise Problem(404, f"{noun} {item_id} not found.")
        return raw

    @staticmethod
    def _owned_removed(call: Exchange, behaviour: Behaviour) -> dict[str, Any]:
        """The body without server-owned members, which the server sets itself."""
        body = dict(call.body) if isinstance(call.body, dict) else {}
        for name in behaviour.server_fields:
            if name in body:
                del body[name]
                call.warnings.append(f"read-only member '{name}' ignored")
        return body

    @staticmethod
    def _check_unique(
        behaviour: Behaviour, store: Store, body: dict[str, Any], own_id: str | None
    ) -> None:
        for name in behaviour.unique:
            if name not in body:
                continue
            reader = store.reader()
            get, wanted = reader.access(name), body[name]

            def same(raw: bytes, get: Any = get, wanted: Any = wanted) -> bool:
                return bool(get(raw) == wanted)

            search = Search(reader, same, limit=2)
            for raw in store.find(search).items:
                other = decode(raw)["id"]
                if other != own_id:
                    raise Problem(
                        409,
                        f"Another {behaviour.noun.lower()} ({other}) "
                        f"already has the {name} '{wanted}'.",
                    )


def resolve_property(schema: Any, name: str, resolve: Resolve) -> Any:
    """The schema of one property of an object schema (following `$ref` and `allOf`)."""
    while isinstance(schema, dict) and "$ref" in schema:
        schema = resolve(schema["$ref"])
    if not isinstance(schema, dict):
        return None
    if name in schema.get("properties", {}):
        return schema["properties"][name]
    for part in schema.get("allOf", []):
        found = resolve_property(part, name, resolve)
        if found is not None:
            return found
    return None
