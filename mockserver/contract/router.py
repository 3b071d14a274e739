"""The operation table: every (method, path template) of the spec, and matching requests to it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from mockserver.contract.spec import HTTP_METHODS, Document
from mockserver.problems import Problem

Kind = Literal["list", "create", "get", "update", "delete", "action"]
_PARAM = re.compile(r"^\{([^{}]+)\}$")


@dataclass(frozen=True)
class Operation:
    """One operation of the spec and what the mock does for it."""

    method: str
    template: str
    operation_id: str
    kind: Kind
    collection: str
    node: dict[str, Any] = field(repr=False, compare=False)

    @property
    def resource(self) -> str:
        """The collection's name, e.g. `records` or `event-types` (used for rights)."""
        return self.collection.rstrip("/").rsplit("/", 1)[-1]

    def collection_path(self, params: dict[str, str]) -> str:
        """The concrete collection a request works on (parent ids filled in)."""
        return _fill(self.collection, params)


@dataclass(frozen=True)
class Match:
    operation: Operation
    params: dict[str, str]


@dataclass(frozen=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    operations: dict[str, Operation]


class Router:
    """Finds the operation of a request; 404 for an unknown path, 405 for a wrong method."""

    def __init__(self, document: Document) -> None:
        paths: dict[str, Any] = document.get("paths", {})
        collections = _collections(paths)
        routes = [_route(template, item, collections) for template, item in paths.items()]
        routes.sort(key=lambda r: _specificity(r.template))
        self._literal = {r.template.lower().rstrip("/"): r for r in routes if not r.names}
        self._templated = [r for r in routes if r.names]
        self.operations = [op for r in routes for op in r.operations.values()]

    def match(self, method: str, path: str) -> Match:
        route, params = self._find(path)
        operation = route.operations.get(method.upper())
        if operation is None and method.upper() == "HEAD":  # a GET without its body
            operation = route.operations.get("GET")
        if operation is None:
            allow = ", ".join(sorted(route.operations))
            raise Problem(
                405,
                f"The method {method} is not allowed on {path}; allowed: {allow}.",
                headers={"Allow": allow},
            )
        return Match(operation, params)

    def _find(self, path: str) -> tuple[_Route, dict[str, str]]:
        key = path.rstrip("/").lower() if path != "/" else "/"
        route = self._literal.get(key)
        if route is not None:
            return route, {}
        trimmed = path.rstrip("/") or "/"
        for route in self._templated:
            found = route.pattern.match(trimmed)
            if found:
                return route, {
                    n: unquote(v) for n, v in zip(route.names, found.groups(), strict=True)
                }
        raise Problem(404, f"No resource at {path}.")


def _route(template: str, item: dict[str, Any], collections: set[str]) -> _Route:
    segments = template.strip("/").split("/")
    names = tuple(m.group(1) for s in segments if (m := _PARAM.match(s)))
    regex = "".join("/([^/]+)" if _PARAM.match(s) else "/" + re.escape(s) for s in segments if s)
    pattern = re.compile(f"^{regex or '/'}$", re.IGNORECASE)
    operations = {
        method.upper(): _operation(method, template, node, collections)
        for method, node in item.items()
        if method in HTTP_METHODS and isinstance(node, dict)
    }
    return _Route(template, pattern, names, operations)


def _operation(
    method: str, template: str, node: dict[str, Any], collections: set[str]
) -> Operation:
    parent, _, last = template.rstrip("/").rpartition("/")
    is_item = bool(_PARAM.match(last)) and bool(parent)
    kinds: dict[str, Kind]
    if is_item:
        kinds = {"get": "get", "put": "update", "patch": "update", "delete": "delete"}
        collection = parent
    else:
        is_collection = template.rstrip("/") in collections
        kinds = {"get": "list", "post": "create"} if is_collection else {}
        collection = template
    kind = kinds.get(method, "action")
    operation_id = str(node.get("operationId") or f"{method} {template}")
    return Operation(method.upper(), template, operation_id, kind, collection, node)


def _collections(paths: dict[str, Any]) -> set[str]:
    """The templates that have an item path below them (`/orders` for `/orders/{id}`)."""
    found = set()
    for candidate in paths:
        parent, _, last = candidate.rstrip("/").rpartition("/")
        if _PARAM.match(last):
            found.add(parent)
    return found


def _specificity(template: str) -> tuple[int, ...]:
    """Literal segments sort before parameters at the same position, as OpenAPI requires."""
    return tuple(1 if _PARAM.match(s) else 0 for s in template.strip("/").split("/"))


_FIELD = re.compile(r"\{([^{}]+)\}")


def _fill(template: str, params: dict[str, str]) -> str:
    if "{" not in template:  # most collections have no parent
        return template
    return _FIELD.sub(lambda m: params.get(m.group(1), m.group(0)), template)
