"""Stateful collections: list, get, create, update and delete on a session's storage.

Which operation does what comes from the spec's shape (see `contract.router.Operation.kind`);
how a collection sets its server-owned fields comes from its `Behaviour` (records, event types,
or the generic one for any other collection of a spec loaded with `--spec`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mockserver import codec
from mockserver.auth.identity import Identity
from mockserver.codec import MISSING
from mockserver.contract import library, responses
from mockserver.contract.router import Match, Operation
from mockserver.contract.schemas import Resolve, fields, flatten, item_schema
from mockserver.contract.spec import Spec
from mockserver.contract.violations import Errors, violations
from mockserver.faults.kinds import StreamParts
from mockserver.problems import Problem
from mockserver.query.expression import FieldCheck, expression
from mockserver.query.params import Query, filtering, ordering, page, stream_limit
from mockserver.query.rql import Call, Value
from mockserver.resources import streaming
from mockserver.resources.behaviour import Behaviour
from mockserver.resources.generated import AnswerKind, Answers, preference
from mockserver.resources.ids import IdFormat, from_schema, guess
from mockserver.settings import Settings
from mockserver.storage.backend import Backend, Collection, Found, Search, Shape, TooCostly
from mockserver.storage.encoding import decode, layout_of


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    record_id: str | None = None


def _unchanged(parts: StreamParts) -> None:
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
    storage: Backend
    streaming: bool = False
    accept: str | None = None  # what a streamed read may be answered in
    stream_changes: Callable[[StreamParts], None] = _unchanged  # a rule's stream faults
    max_export: int = 100_000  # items a streamed read may hold
    prefer: str | None = None  # the request's `Prefer` header


def _within_budget(
    run: Callable[[Search], Found], search: Search, indexed: tuple[str, ...]
) -> Found:
    """The search, or a 400 problem when its filter takes longer than its budget."""
    try:
        return run(search)
    except TooCostly as exc:
        hint = f" on an indexed field ({', '.join(indexed)})" if indexed else ""
        raise Problem(
            400,
            f"The query took longer than the mock allows ({exc.budget * 1000:.0f} ms, "
            f"--query-budget-ms): it had looked at {exc.looked_at} of {exc.candidates} "
            f"items. Narrow it with an eq() or in(){hint}.",
            errors={"rql": ["The query is too costly for the mock's query budget."]},
        ) from None


class Resources:
    """Answers the spec's collection operations from a session's storage."""

    def __init__(
        self,
        operations: list[Operation],
        spec: Spec,
        storage: Backend,
        behaviours: dict[str, type[Behaviour]],
        seed: int | None = None,
    ) -> None:
        resolve: Resolve = spec.schema
        self.spec = spec
        self.answers = Answers(spec, seed)
        self._items: dict[str, Operation] = {}  # item templates: an action's item is one
        self._fields: dict[str, FieldCheck] = {}
        self._behaviours: dict[str, Behaviour] = {}
        self._gets: dict[str, Operation] = {}
        self._item_validators: dict[str, Any] = {}  # made on first use
        self._statuses: dict[tuple[int, int], tuple[Operation, int]] = {}  # see `_success`
        self.query_budget = 0.0  # seconds a list's filter may take (`--query-budget-ms`)
        by_collection: dict[str, list[Operation]] = {}
        for op in operations:
            by_collection.setdefault(op.collection, []).append(op)
            if op.kind == "get":
                self._gets[op.collection] = op
            if op.kind in ("get", "update", "delete"):
                self._items[op.template.rstrip("/")] = op
        for collection, ops in by_collection.items():
            if all(op.kind == "action" for op in ops):
                continue  # no state: answered from the spec's responses
            schema = item_schema(ops, resolve)
            self._fields[collection] = fields(schema, resolve)
            kind = behaviours.get(collection, Behaviour)
            found = id_format(schema, ops, resolve)
            behaviour = kind(found or kind.default_ids or guess(ops[0].resource))
            self._behaviours[collection] = behaviour
            layout = layout_of(schema, resolve)
            storage.describe(collection, Shape(layout, behaviour.indexed, behaviour.ordered))

    def behaviour(self, collection: str) -> Behaviour:
        return self._behaviours[collection]

    def seed(self, storage: Backend, settings: Settings) -> None:
        """Give each collection what its behaviour holds at start-up."""
        for collection, behaviour in self._behaviours.items():
            behaviour.seed(storage.open(collection), settings)

    def kinds(self, operations: list[Operation]) -> dict[str, AnswerKind]:
        """What the mock does for each operation (by `METHOD template`): CRUD, example or
        generated."""
        return {f"{op.method} {op.template}": self.answers.kind(op) for op in operations}

    def handle(self, call: Exchange) -> Reply:
        op = call.match.operation
        if op.kind == "action":
            return self._generated(call, op)
        handler = getattr(self, f"_{op.kind}")
        collection = call.storage.open(op.collection_path(call.match.params), op.collection)
        reply: Reply = handler(call, op, collection)
        return self._declared(call, op, reply)

    def _declared(self, call: Exchange, op: Operation, reply: Reply) -> Reply:
        """The answer with the success status the operation declares (a create that declares
        200 answers 200): no body for 204, a body for a status that has one."""
        status = self._success(op, reply.status)
        if status == reply.status:
            return self._conformed(op, reply)
        reply.status = status
        if status in responses.NO_BODY or 300 <= status < 400:
            reply.body = None
        elif reply.body is None:
            reply.body = self.answers.body(op, status, preference(call.prefer))
        return self._conformed(op, reply)

    def _success(self, op: Operation, wanted: int) -> int:
        """`responses.success`, worked out once per operation and status (it reads the
        operation's responses: a sixth of a GET by id when done per request)."""
        key = (id(op), wanted)  # the operation is kept with its status: its id stays its own
        known = self._statuses.get(key)
        if known is None:
            known = self._statuses[key] = (op, responses.success(op, self.spec.schema, wanted))
        return known[1]

    def _conformed(self, op: Operation, reply: Reply) -> Reply:
        """A generic collection's answer, held to the operation's response schema (a stored
        item may hold members the answer's schema does not allow). Collections with a
        behaviour of their own (records, event types) answer what they store."""
        if type(self._behaviours[op.collection]) is Behaviour and isinstance(reply.body, bytes):
            reply.body = self.answers.conformed(op, reply.status, reply.body)
        return reply

    def _generated(self, call: Exchange, op: Operation) -> Reply:
        """An operation without a CRUD shape: 404 when the item it acts on does not exist,
        else the spec's example or a body made from the response's schema."""
        item_id = self._acted_on(call, op)
        answer = self.answers.answer(op, preference(call.prefer), item_id)
        return Reply(answer.status, answer.body, record_id=item_id)

    def _acted_on(self, call: Exchange, op: Operation) -> str | None:
        """The id of the item an action works on (`/orders/{id}/process`); 404 when no such
        item is stored. None for an action on no item."""
        parts = op.template.rstrip("/").split("/")
        for end in range(len(parts) - 1, 1, -1):
            item_op = self._items.get("/".join(parts[:end]))
            if item_op is None:
                continue
            name = parts[end - 1].strip("{}")
            collection = call.storage.open(
                item_op.collection_path(call.match.params), item_op.collection
            )
            item_id = call.match.params.get(name, "")
            if collection.get(item_id) is None:
                noun = self._behaviours[item_op.collection].noun
                raise Problem(404, f"{noun} {item_id} not found.")
            return item_id
        return None

    def _list(self, call: Exchange, op: Operation, collection: Collection) -> Reply:
        if call.streaming:
            return self._stream(call, op, collection)
        paging = page(call.query.params)
        search = self._search(call, op, paging.offset, paging.limit)
        found = _within_budget(collection.search, search, self.behaviour(op.collection).indexed)
        meta: dict[str, Any] = {
            "pagination": {"offset": paging.offset, "limit": paging.limit, "total": found.total}
        }
        if call.query.selection.omitted:
            meta["omitted"] = call.query.selection.omitted
        shown = self._shown(call, op, found.items)
        data = b"[" + b",".join(shown) + b"]"
        return Reply(200, b'{"$meta":' + codec.dumps(meta) + b',"data":' + data + b"}")

    def browse(self, collection: Collection, query: Query, offset: int, limit: int) -> Found:
        """A page of a collection's items that pass the query's RQL filter and order (400 as
        the API words it for a bad one): the control API's view of a collection."""
        known = self._fields[collection.template]
        where = filtering(query, known)
        order = ordering(query.params.get("order"), known)
        return collection.search(Search(where, tuple(order), offset, limit))

    def _stream(self, call: Exchange, op: Operation, collection: Collection) -> Reply:
        """`MPT-Streaming: true`: every match (at most `limit`), streamed."""
        streaming.refuse_offset(call.query.params)
        media = streaming.media_type(call.accept)
        limit = stream_limit(call.query.params)
        search = self._search(call, op, 0, limit)
        found = _within_budget(collection.stream, search, self.behaviour(op.collection).indexed)
        count = found.total
        streaming.check_cap(count, call.max_export)
        meta: dict[str, Any] = {"pagination": {"offset": 0, "limit": count, "total": count}}
        if call.query.selection.omitted:
            meta["omitted"] = call.query.selection.omitted
        parts = streaming.parts(media, self._shown(call, op, found.items), meta, count)
        call.stream_changes(parts)
        return Reply(200, parts.body(), parts.headers)

    def _search(self, call: Exchange, op: Operation, offset: int, limit: int) -> Search:
        known = self._fields[op.collection]
        where = filtering(call.query, known)
        order = ordering(call.query.params.get("order"), known)
        return Search(where, tuple(order), offset, limit, self.query_budget)

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

    def _get(self, call: Exchange, op: Operation, collection: Collection) -> Reply:
        raw = self._existing(call, op, collection)
        [shown] = self._shown(call, op, [raw])
        return Reply(200, shown)

    def _create(self, call: Exchange, op: Operation, collection: Collection) -> Reply:
        behaviour = self._behaviours[op.collection]
        body = self._owned_removed(call, behaviour)
        _check_unique(behaviour, collection, body, None)
        item_id = behaviour.ids.make()
        raw = collection.add(behaviour.created(body, item_id, call.identity))
        while raw is None:  # the id is held (here, or by another server on the same store)
            item_id = behaviour.ids.make()
            raw = collection.add(behaviour.created(body, item_id, call.identity))
        # the parents' ids percent-encoded too: a Location header is ASCII (uWSGI drops an
        # answer whose header is not)
        parents = {name: quote(value, safe="") for name, value in call.match.params.items()}
        where = f"{op.collection_path(parents)}/{quote(item_id, safe='')}"
        return Reply(201, raw, {"Location": call.base_url + where}, record_id=item_id)

    def _update(self, call: Exchange, op: Operation, collection: Collection) -> Reply:
        behaviour = self._behaviours[op.collection]
        current = decode(self._existing(call, op, collection))
        changes = self._owned_removed(call, behaviour)
        _check_unique(behaviour, collection, changes, current["id"])
        raw = collection.replace({**current, **changes})
        return Reply(200, raw, record_id=current["id"])

    def _delete(self, call: Exchange, op: Operation, collection: Collection) -> Reply:
        item_id = decode(self._existing(call, op, collection))["id"]
        collection.remove(item_id)
        return Reply(204, record_id=item_id)

    def _existing(self, call: Exchange, op: Operation, collection: Collection) -> bytes:
        item_id = list(call.match.params.values())[-1]
        raw = collection.get(item_id)
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

    def item_errors(self, collection: str, items: list[Any]) -> Errors:
        """What is wrong with items put into a collection verbatim (the control API), checked
        against the schema of the collection's get-by-id answer; keyed `[index].path`."""
        if collection not in self._item_validators:
            self._item_validators[collection] = self._item_validator(collection)
        validator = self._item_validators[collection]
        if validator is None:
            return {}
        library.load()
        from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

        found: Errors = {}
        for index, item in enumerate(items):
            try:
                validator.validate(item)
            except InvalidSchemaValue as exc:
                for error in exc.schema_errors:
                    for key, message in violations(error):
                        where = f"[{index}]" + (f".{key}" if key != "$" else "")
                        found.setdefault(where, []).append(message)
        return found

    def _item_validator(self, collection: str) -> Any:
        """openapi-core's validator of the get-by-id answer's JSON schema (None: none)."""
        library.load()
        from openapi_core.validation.schemas import oas30_read_schema_validators_factory

        op = self._gets.get(collection)
        if op is None:
            return None
        content = self.spec.openapi.spec / "paths" / op.template / "get" / "responses" / "200"
        media = content / "content" / "application/json"
        if "content" not in content or "application/json" not in content / "content":
            return None
        if "schema" not in media:
            return None
        return oas30_read_schema_validators_factory.create(self.spec.openapi.spec, media / "schema")


def _check_unique(
    behaviour: Behaviour, collection: Collection, body: dict[str, Any], own_id: str | None
) -> None:
    """409 when another item holds the value of a member that must stay unique."""
    for name in behaviour.unique:
        if name not in body:
            continue
        wanted = body[name]
        for other in _holding(collection, name, wanted):
            if other != own_id:
                raise Problem(
                    409,
                    f"Another {behaviour.noun.lower()} ({other}) "
                    f"already has the {name} '{wanted}'.",
                )


def _holding(collection: Collection, name: str, wanted: Any) -> Iterable[str]:
    """The ids of items whose top-level `name` is `wanted` (an index answers a string)."""
    candidates: Iterable[bytes] = collection
    if isinstance(wanted, str):
        equal = expression([Call("eq", (Value(name), Value(wanted, quoted=True)))], _any)
        candidates = collection.search(Search(equal, limit=len(collection))).items
    for raw in candidates:
        item = decode(raw)
        if item.get(name, MISSING) == wanted:
            yield item["id"]


def _any(path: str) -> bool:
    return True


def id_format(schema: Any, operations: list[Operation], resolve: Resolve) -> IdFormat | None:
    """The id format a collection's schemas declare: the pattern of `id` in its item schema,
    else in what its create takes (an item, or a list of them)."""
    candidates = [schema]
    for op in operations:
        if op.kind == "create":
            body = op.node.get("requestBody", {})
            for entry in body.get("content", {}).values() if isinstance(body, dict) else ():
                found = flatten(entry.get("schema"), resolve) if isinstance(entry, dict) else None
                candidates.append(found)
                if isinstance(found, dict) and "items" in found:
                    candidates.append(found["items"])
    for candidate in candidates:
        id_schema = resolve_property(candidate, "id", resolve)
        fmt = from_schema(flatten(id_schema, resolve))
        if fmt is not None:
            return fmt
    return None


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
