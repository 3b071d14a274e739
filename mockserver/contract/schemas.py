"""Walking the spec's schemas: what a body may hold, so unknown and read-only members can go.

The real server (ASP.NET Core, System.Text.Json) ignores JSON members it does not know and never
lets a client set server-owned fields. `Members` reproduces that from the spec alone: it is built
once per schema and then strips, in place, every member the schema does not declare (where it
says `additionalProperties: false`) and every `readOnly` one.
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
        if undeclared:  # most bodies have none: no call for them
            self._strip_undeclared(value, undeclared, path, removed)
        for key, nested in declared.items():
            if nested is not None and key in value:
                nested._strip(value[key], (*path, key), removed)

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


class _Builder:
    def __init__(self, resolve: Resolve) -> None:
        self.resolve = resolve
        self.done: dict[str, Members | None] = {}

    def build(self, schema: Any) -> Members | None:
        """The walker for a schema (each `$ref` built once); None when it strips nothing."""
        if not isinstance(schema, dict):
            return None
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._ref(ref)
        return self._node(self._merge(schema))

    def _ref(self, ref: str) -> Members | None:
        if ref not in self.done:
            self.done[ref] = Members()  # placeholder: recursive schemas end here
            self.done[ref] = self.build(self.resolve(ref))
        return self.done[ref]

    def _node(self, merged: dict[str, Any]) -> Members | None:
        """The walker for a schema with its `allOf` parts folded in."""
        node = Members(
            closed=merged.get("additionalProperties") is False,
            extra=self.build(merged.get("additionalProperties")),
            items=self.build(merged.get("items")),
        )
        read_only = []
        for key, sub in merged.get("properties", {}).items():
            if self._read_only(sub):
                read_only.append(key)
            else:
                node.declared[key] = self.build(sub)
        node.read_only = frozenset(read_only)
        useful = node.closed or read_only or node.extra or node.items
        return node if useful or any(node.declared.values()) else None

    def _merge(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Fold `allOf` parts into one schema (properties united, the last word on the rest)."""
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        properties = dict(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            part = self._deref(part)
            inner = self._merge(part)
            for name, sub in inner.get("properties", {}).items():
                properties[name] = {"allOf": [sub, properties[name]]} if name in properties else sub
            for key, value in inner.items():
                merged.setdefault(key, value)
        if properties:
            merged["properties"] = properties
        return merged

    def _deref(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 32:
            schema = self.resolve(schema["$ref"])
            seen += 1
        return schema

    def _read_only(self, schema: Any) -> bool:
        if not isinstance(schema, dict):
            return False
        if schema.get("readOnly") is True:
            return True
        return any(self._read_only(self._deref(p)) for p in schema.get("allOf", []))


def flatten(schema: Any, resolve: Resolve) -> Any:
    """Follow `$ref`s and fold `allOf` parts: the effective schema of a node."""
    return (
        _Builder(resolve)._merge(_Builder(resolve)._deref(schema))
        if isinstance(schema, dict)
        else schema
    )


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
