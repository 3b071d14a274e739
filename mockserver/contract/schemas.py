"""Walking the spec's schemas: what a body may hold, so unknown and read-only members can go.

The real server (ASP.NET Core, System.Text.Json) ignores JSON members it does not know and never
lets a client set server-owned fields. `Members` reproduces that from the spec alone: it is built
once per schema and then strips, in place, every member the schema does not declare (where it
says `additionalProperties: false`) and every `readOnly` one. A `null` member whose schema is
OpenAPI 3.0's nullable reference (`allOf: [$ref], nullable: true`, which by the letter of 3.0.3
takes no null: `nullable` needs a `type` beside it) is read as absent, as the server reads a
null reference (the platform's own examples send `"$meta": null`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Resolve = Callable[[str], Any]


@dataclass
class Members:
    """The members one object schema declares; nested schemas for the members worth walking."""

    declared: dict[str, Members | None] = field(default_factory=dict)
    read_only: frozenset[str] = frozenset()
    nulls: frozenset[str] = frozenset()  # nullable references: a null is read as absent
    closed: bool = False
    extra: Members | None = None
    items: Members | None = None

    def strip(self, value: Any) -> list[str]:
        """Remove unknown and read-only members from `value`; say what was removed."""
        removed: list[str] = []
        self._strip(value, (), removed)
        return removed

    def _strip(self, value: Any, path: tuple[str | int, ...], removed: list[str]) -> None:
        """Strip `value` (found at `path`) and what it holds; note each removal in `removed`."""
        if isinstance(value, list):
            if self.items is not None:
                for index, item in enumerate(value):
                    self.items._strip(item, (*path, index), removed)
            return
        if not isinstance(value, dict):
            return
        declared, read_only = self.declared, self.read_only
        undeclared = [k for k in value if k in read_only or k not in declared]
        if self.nulls:
            self._strip_nulls(value, path, removed)
        if undeclared:  # most bodies have none: no call for them
            self._strip_undeclared(value, undeclared, path, removed)
        for key, nested in declared.items():
            if nested is not None and key in value:
                nested._strip(value[key], (*path, key), removed)

    def _strip_nulls(
        self, value: dict[str, Any], path: tuple[str | int, ...], removed: list[str]
    ) -> None:
        for key in self.nulls:
            if key in value and value[key] is None:
                del value[key]
                removed.append(f"null member '{_dotted(path, key)}' read as absent")

    def _strip_undeclared(
        self,
        value: dict[str, Any],
        keys: list[str],
        path: tuple[str | int, ...],
        removed: list[str],
    ) -> None:
        """The read-only members and, where the schema is closed, the unknown ones go; unknown
        members of an open schema are walked with its `additionalProperties` schema."""
        for key in keys:
            if key in self.read_only:
                del value[key]
                removed.append(f"read-only member '{_dotted(path, key)}' ignored")
            elif self.closed:
                del value[key]
                removed.append(f"unknown member '{_dotted(path, key)}' ignored")
            elif self.extra is not None:
                self.extra._strip(value[key], (*path, key), removed)


def _dotted(path: tuple[str | int, ...], key: str) -> str:
    where = ""
    for part in (*path, key):
        where = join(where, part)
    return where


def join(path: str, key: str | int) -> str:
    """A JSON path for error keys: `object.id`, `viewers[0].id`, `documents['a b']`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.replace("_", "a").replace("-", "a").replace("$", "a").isalnum() and not key[0].isdigit():
        return f"{path}.{key}" if path else key
    return f"{path}['{key}']"


def members(schema: Any, resolve: Resolve) -> Members | None:
    """Build the walker for a schema; None when nothing inside it can be stripped."""
    return _Builder(resolve).build(schema)


MAX_DEPTH = 64  # schemas nested deeper than this are not walked (recursive compositions)


class _Builder:
    def __init__(self, resolve: Resolve) -> None:
        self.resolve = resolve
        # by the id of the schema (kept alive with it, so the id is not reused): each schema
        # is built once, and a recursive one ends at its own node
        self.done: dict[int, tuple[Any, Members | None]] = {}
        self.depth = 0
        self.folded: dict[int, tuple[Any, dict[str, Any]]] = {}
        self.combined: dict[tuple[int, int], tuple[Any, Any, dict[str, Any]]] = {}

    def build(self, schema: Any) -> Members | None:
        """The walker for a schema (each one built once); None when it strips nothing."""
        schema, refs = self._deref(schema)
        if not isinstance(schema, dict) or refs is None or self.depth > MAX_DEPTH:
            return None
        key = id(schema)
        if key in self.done:
            return self.done[key][1]
        node = Members()
        self.done[key] = (schema, node)  # recursive schemas end here, at the node being made
        self.depth += 1
        try:
            useful = self._fill(node, self._merge(schema, refs))
        finally:
            self.depth -= 1
        if not useful:
            self.done[key] = (schema, None)
        return node if useful else None

    def _fill(self, node: Members, merged: dict[str, Any]) -> bool:
        """Fill the walker of a schema with its `allOf` parts folded in; whether it strips
        anything."""
        node.closed = merged.get("additionalProperties") is False
        node.extra = self.build(merged.get("additionalProperties"))
        node.items = self.build(merged.get("items"))
        read_only, nulls = [], []
        for key, sub in merged.get("properties", {}).items():
            if self._read_only(sub):
                read_only.append(key)
            else:
                node.declared[key] = self.build(sub)
                if _nullable_reference(sub):
                    nulls.append(key)
        node.read_only = frozenset(read_only)
        node.nulls = frozenset(nulls)
        useful = node.closed or read_only or nulls or node.extra or node.items
        return bool(useful or any(node.declared.values()))

    def _merge(self, schema: dict[str, Any], seen: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Fold `allOf` parts into one schema (properties united, the last word on the rest).
        `seen`: the `$ref`s folded on the way here; a part that comes back to one of them (a
        recursive schema) adds nothing new and is left out. Each schema is folded once."""
        own = id(schema)
        if own in self.folded:
            return self.folded[own][1]
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        properties = dict(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            part, refs = self._deref(part, seen)
            if not isinstance(part, dict) or refs is None:
                continue
            inner = self._merge(part, seen | refs)
            for name, sub in inner.get("properties", {}).items():
                properties[name] = self._both(sub, properties[name]) if name in properties else sub
            for key, value in inner.items():
                if key == "required" and isinstance(merged.get(key), list):
                    merged[key] = list(dict.fromkeys([*merged[key], *value]))
                else:
                    merged.setdefault(key, value)
        if properties:
            merged["properties"] = properties
        self.folded[own] = (schema, merged)
        return merged

    def _both(self, first: Any, second: Any) -> dict[str, Any]:
        """`allOf` of two schemas of one member; the same object for the same two (so that a
        recursive schema comes back to a schema already built)."""
        if first is second or _same_ref(first, second):
            return second if isinstance(second, dict) else {}
        key = (id(first), id(second))
        if key not in self.combined:
            self.combined[key] = (first, second, {"allOf": [first, second]})
        return self.combined[key][2]

    def _deref(
        self, schema: Any, seen: frozenset[str] = frozenset()
    ) -> tuple[Any, frozenset[str] | None]:
        """Follow `$ref`s to a schema; with the refs followed, or None when one of them is in
        `seen` already (a loop)."""
        refs: set[str] = set()
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if ref in seen or ref in refs:
                return schema, None
            refs.add(ref)
            schema = self.resolve(ref)
        return schema, frozenset(refs)

    def _read_only(self, schema: Any, seen: frozenset[str] = frozenset()) -> bool:
        if not isinstance(schema, dict):
            return False
        if schema.get("readOnly") is True:
            return True
        for part in schema.get("allOf", []):
            found, refs = self._deref(part, seen)
            if refs is not None and self._read_only(found, seen | refs):
                return True
        return False


def _nullable_reference(schema: Any) -> bool:
    """OpenAPI 3.0's nullable reference: `nullable: true` beside `allOf` (or `$ref`), no type."""
    return (
        isinstance(schema, dict)
        and schema.get("nullable") is True
        and "type" not in schema
        and ("allOf" in schema or "$ref" in schema)
    )


def _same_ref(first: Any, second: Any) -> bool:
    return (
        isinstance(first, dict)
        and isinstance(second, dict)
        and ("$ref" in first and first.get("$ref") == second.get("$ref") and len(first) == 1)
    )


def folder(resolve: Resolve) -> Callable[[Any], dict[str, Any]]:
    """`flatten` for many schemas of one spec: each schema is folded once (the folds are kept,
    so use one per spec)."""
    builder = _Builder(resolve)

    def fold(schema: Any) -> dict[str, Any]:
        found, refs = builder._deref(schema)
        if not isinstance(found, dict):
            return {}
        return builder._merge(found, refs or frozenset())

    return fold


def flatten(schema: Any, resolve: Resolve) -> Any:
    """Follow `$ref`s and fold `allOf` parts: the effective schema of a node."""
    if not isinstance(schema, dict):
        return schema
    builder = _Builder(resolve)
    found, refs = builder._deref(schema)
    if not isinstance(found, dict):
        return found
    return builder._merge(found, refs or frozenset())


def fields(schema: Any, resolve: Resolve) -> Callable[[str], bool]:
    """Whether a dotted path names a field of items of this schema (for RQL `Unknown expression
    group.`). Free-form parts (such as `documents`) accept any path below them."""
    cache: dict[str, bool] = {}

    def known(path: str) -> bool:
        if path not in cache:
            cache[path] = _known(schema, path.split("."), resolve)
        return cache[path]

    return known


def _known(schema: Any, parts: list[str], resolve: Resolve) -> bool:
    node = flatten(schema, resolve)
    for part in parts:
        while isinstance(node, dict) and node.get("type") == "array":
            node = flatten(node.get("items"), resolve)
        if not isinstance(node, dict):
            return True
        properties = node.get("properties", {})
        if part not in properties:
            return not properties or node.get("additionalProperties", True) is not False
        node = flatten(properties[part], resolve)
    return True


def item_schema(operations: list[Any], resolve: Resolve) -> Any:
    """The schema of one item of a collection, read off its operations (get, list, create)."""
    by_kind = {op.kind: op.node for op in operations}
    if "get" in by_kind:
        found = _content_schema(by_kind["get"].get("responses", {}).get("200"), resolve)
        if found is not None:
            return found
    if "list" in by_kind:
        envelope = flatten(
            _content_schema(by_kind["list"].get("responses", {}).get("200"), resolve), resolve
        )
        data = envelope.get("properties", {}).get("data") if isinstance(envelope, dict) else None
        if isinstance(data, dict):
            return flatten(data, resolve).get("items")
    if "create" in by_kind:
        return _content_schema(by_kind["create"].get("requestBody"), resolve)
    return None


def _content_schema(holder: Any, resolve: Resolve) -> Any:
    """The schema of the first JSON content of a response or request body."""
    while isinstance(holder, dict) and "$ref" in holder:
        holder = resolve(holder["$ref"])
    content = holder.get("content", {}) if isinstance(holder, dict) else {}
    for media_type, entry in content.items():
        if "json" in media_type and isinstance(entry, dict):
            return entry.get("schema")
    return None
