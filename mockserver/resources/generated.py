"""Answers for the operations without a CRUD shape (actions, and anything else): the status the
spec declares, with its example or a body made from its schema (`contract.examples`).

How the answer is chosen follows Prism's `Prefer` header:

* `Prefer: code=202`: that declared success status (another status is a fault: see
  `faults.rules.preferred`);
* `Prefer: example=NAME`: the response's named example (404 when it has no such example);
* `Prefer: dynamic=true`: a body made from the schema, new on every request, even where the
  spec has an example; `dynamic=false` (the default): the example, else a body made from the
  schema that is the same on every request (seeded with `--faker-seed` and the operation).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Any, Literal

from mockserver import codec
from mockserver.contract import responses
from mockserver.contract.examples import READING, Maker
from mockserver.contract.router import Operation
from mockserver.contract.spec import Spec
from mockserver.problems import Problem

AnswerKind = Literal["crud", "generated", "example"]
KINDS: tuple[AnswerKind, ...] = ("crud", "generated", "example")
_CRUD = frozenset({"list", "create", "get", "update", "delete"})
_PREFER = re.compile(r"\b(code|example|dynamic)\s*=\s*(\"[^\"]*\"|[^\s,;]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Preference:
    """What a request's `Prefer` header asks of the answer."""

    code: int | None = None
    example: str | None = None
    dynamic: bool | None = None


def preference(header: str | None) -> Preference:
    """`Prefer: code=200, example=created, dynamic=true` (any of them, any order)."""
    if not header:
        return Preference()
    found = {name.lower(): value.strip('"') for name, value in _PREFER.findall(header)}
    code = found.get("code", "")
    dynamic = found.get("dynamic", "").lower()
    return Preference(
        code=int(code) if code.isdigit() and len(code) == 3 else None,
        example=found.get("example") or None,
        dynamic={"true": True, "false": False}.get(dynamic),
    )


@dataclass
class Generated:
    """A generated answer: its status, and its body (bytes; None: no body)."""

    status: int
    body: bytes | None


class Answers:
    """Answers one spec's operations from their responses' examples and schemas."""

    def __init__(self, spec: Spec, seed: int | None) -> None:
        self.spec = spec
        self.seed = seed
        self.maker = Maker(spec.schema)
        self._rng = random.Random(seed)  # dynamic answers: a new value each time
        self._lock = threading.Lock()  # Faker and the random source are not thread-safe

    def kind(self, operation: Operation) -> AnswerKind:
        """What the mock does for an operation: CRUD, the spec's example, or a made body."""
        if operation.kind in _CRUD:
            return "crud"
        status = responses.success(operation, self.spec.schema, 200)
        declared = responses.response(operation, self.spec.schema, status)
        entry = responses.content(declared, responses.media_type(declared))
        found, _ = responses.example(entry, self.spec.schema)
        return "example" if found else "generated"

    def answer(self, operation: Operation, prefer: Preference, item_id: str | None) -> Generated:
        """The answer to an operation the mock has no state for."""
        status = responses.success(operation, self.spec.schema, prefer.code or 200)
        if status in responses.NO_BODY:
            return Generated(status, None)
        return Generated(status, self.body(operation, status, prefer, item_id))

    def body(
        self, operation: Operation, status: int, prefer: Preference, item_id: str | None = None
    ) -> bytes | None:
        """The body of a declared answer: its example, or made from its schema."""
        declared = responses.response(operation, self.spec.schema, status)
        media = responses.media_type(declared)
        entry = responses.content(declared, media)
        if media is None:
            return None
        if prefer.example is not None:
            return _encoded(self._named(operation, status, entry, prefer.example), media)
        found, value = responses.example(entry, self.spec.schema)
        if not found or prefer.dynamic:
            value = self.made(operation, status, entry, dynamic=bool(prefer.dynamic))
            if item_id is not None and isinstance(value, dict) and "id" in value:
                value["id"] = item_id  # an action on an item answers about that item
        return _encoded(value, media)

    def made(
        self, operation: Operation, status: int, entry: dict[str, Any], *, dynamic: bool
    ) -> Any:
        """A value made from the media type's schema: the same one each time, or a new one."""
        schema = entry.get("schema")
        if schema is None:
            return {}
        with self._lock:
            rng = (
                random.Random(self._rng.getrandbits(64))
                if dynamic
                else random.Random(f"{self.seed}:{operation.operation_id}:{status}")
            )
            return self.maker.value(schema, rng, READING)

    def conformed(self, operation: Operation, status: int, body: bytes) -> bytes:
        """A JSON answer made to conform to the schema the operation declares for it."""
        declared = responses.response(operation, self.spec.schema, status)
        media = responses.media_type(declared)
        schema = responses.content(declared, media).get("schema")
        if schema is None or media is None or "json" not in media:
            return body
        with self._lock:
            rng = random.Random(f"{self.seed}:{operation.operation_id}:{status}")
            return codec.dumps(self.maker.conform(codec.loads(body), schema, rng))

    def _named(self, operation: Operation, status: int, entry: dict[str, Any], name: str) -> Any:
        named = responses.examples(entry, self.spec.schema)
        if name not in named:
            known = ", ".join(named) or "none"
            raise Problem(
                404,
                f"The {status} answer of {operation.method} {operation.template} has no "
                f"example '{name}' (examples: {known}).",
            )
        return named[name]


def _encoded(value: Any, media: str) -> bytes:
    if "json" in media:
        return codec.dumps(value)
    return value.encode() if isinstance(value, str) else codec.dumps(value)
