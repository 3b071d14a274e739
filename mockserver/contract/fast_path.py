"""The pre-check: the compiled schemas decide quickly whether a request is valid.

openapi-core runs its whole pipeline for a request (finding the media type, deserialising,
casting, then the schema), about half a millisecond even on the compiled backend. The
pre-check asks the same compiled schemas directly and skips the pipeline for a valid request.
Only a request it rejects goes through openapi-core, which explains what is wrong and keeps
the last word (a request openapi-core accepts is accepted). Parameters are cast the way
openapi-core casts them; anything unusual (cookies, constrained headers, styles, arrays)
gets no pre-check; an optional header that may be any string needs none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import Headers

from mockserver.contract import library
from mockserver.contract.router import Operation
from mockserver.contract.schema_backend import LazyFormats, Unsupported, compile_schema, deref
from mockserver.contract.spec import Spec

if TYPE_CHECKING:
    from mockserver.contract.core_backend import CompiledFactory

Check = Callable[[Any], bool]
Params = Callable[[dict[str, str], dict[str, str], "Headers | Mapping[str, str]"], bool]
_INT_FORMATS = {"int32": 2**31, "int64": 2**63}
_NONE: Mapping[str, str] = {}
_FORMATS = LazyFormats()  # openapi-core's format checks (the request validator's own)


class Precheck:
    """Checks for one spec, built on first use for each operation."""

    def __init__(self, spec: Spec, factory: Callable[[], CompiledFactory]) -> None:
        """`factory`: the validator's compiled factory, made (openapi-core loaded) on the first
        check that needs it; a request without parameters or body needs none."""
        self.spec = spec
        self._factory = factory
        self._bodies: dict[tuple[str, str], Check | None] = {}
        self._params: dict[str, Params | None] = {}

    def body(self, operation: Operation, media_type: str) -> Check | None:
        """`is_valid` for the body of this media type; None when there is no pre-check."""
        key = (operation.operation_id, media_type)
        if key not in self._bodies:
            path = self.spec.openapi.spec / "paths" / operation.template / operation.method.lower()
            content = path / "requestBody" / "content" / media_type
            self._bodies[key] = self._check(content / "schema" if "schema" in content else None)
        return self._bodies[key]

    def parameters(self, operation: Operation) -> Params | None:
        """A check of the query and path parameters; None when there is no pre-check."""
        if operation.operation_id not in self._params:
            try:
                self._params[operation.operation_id] = self._parameter_check(operation)
            except Unsupported:
                self._params[operation.operation_id] = None
        return self._params[operation.operation_id]

    def _check(self, schema: Any) -> Check | None:
        if schema is None:
            return lambda value: True
        library.load()
        from mockserver.contract.core_backend import CompiledValidator

        made = self._factory().create(self.spec.openapi.spec, schema)
        if not isinstance(made, CompiledValidator):
            return None
        check: Check = made.compiled.is_valid
        return check

    def _parameter_check(self, operation: Operation) -> Params:
        checks: list[tuple[str, str, bool, Callable[[str], bool]]] = []
        headers: list[tuple[str, Callable[[str], bool]]] = []
        for param in _parameters(self.spec, operation):
            where = param.get("in")
            if where == "header" and _any_string(self.spec, param):
                continue  # an optional header any string may be: nothing to check
            if where == "header" and _optional_string(self.spec, param):
                headers.append((str(param["name"]), self._string_check(param)))
                continue
            if where not in ("query", "path") or "content" in param:
                raise Unsupported(f"{where} parameter")
            if param.get("style", "form" if where == "query" else "simple") not in (
                "form",
                "simple",
            ):
                raise Unsupported("style")
            checks.append(
                (str(param["name"]), where, bool(param.get("required")), self._scalar(param))
            )

        def check(
            query: dict[str, str], path: dict[str, str], sent: Headers | Mapping[str, str] = _NONE
        ) -> bool:
            for name, where, required, valid in checks:
                value = (query if where == "query" else path).get(name)
                if value is None:
                    if required:
                        return False
                elif not valid(value):
                    return False
            for name, valid in headers:
                value = sent.get(name)
                if value is not None and not valid(value):
                    return False
            return True

        return check

    def _scalar(self, param: dict[str, Any]) -> Callable[[str], bool]:
        """A check of one raw parameter value: cast as openapi-core casts it, then validate."""
        schema = deref(self.spec, param.get("schema", {}))
        kind = schema.get("type")
        if kind == "string":
            compiled = self._string(param)
            if compiled is None:
                raise Unsupported("string parameter")
            return compiled
        if kind != "integer" or set(schema) - {
            "type",
            "format",
            "minimum",
            "maximum",
            "description",
            "example",
            "default",
        }:
            raise Unsupported("parameter schema")
        bound = _INT_FORMATS.get(schema.get("format", ""))
        low, high = schema.get("minimum"), schema.get("maximum")

        def valid(raw: str) -> bool:
            try:
                number = int(raw)  # openapi-core's IntegerCaster
            except ValueError:
                return False
            if bound is not None and not -bound <= number < bound:
                return False
            return (low is None or number >= low) and (high is None or number <= high)

        return valid

    def _string_check(self, param: dict[str, Any]) -> Callable[[str], bool]:
        compiled = self._string(param)
        if compiled is None:
            raise Unsupported("string parameter")
        return compiled

    def _string(self, param: dict[str, Any]) -> Check | None:
        compiled = compile_schema(self.spec, param.get("schema", {}), _FORMATS)
        return None if compiled is None else compiled.is_valid


def _any_string(spec: Spec, param: dict[str, Any]) -> bool:
    schema = deref(spec, param.get("schema", {}))
    constraints = (
        set(schema) - {"type", "description", "example"} if isinstance(schema, dict) else {1}
    )
    return (
        not param.get("required")
        and "content" not in param
        and not constraints
        and (schema.get("type") == "string")
    )


def _optional_string(spec: Spec, param: dict[str, Any]) -> bool:
    """An optional header whose schema is a string (with constraints: the control API's
    `X-Mock-Session` has a pattern): checked as the raw value, as openapi-core reads it."""
    schema = deref(spec, param.get("schema", {}))
    return (
        not param.get("required")
        and "content" not in param
        and param.get("style", "simple") == "simple"
        and isinstance(schema, dict)
        and schema.get("type") == "string"
    )


def _parameters(spec: Spec, operation: Operation) -> list[dict[str, Any]]:
    """The operation's parameters and its path's, resolved; the operation's win."""
    path_item = spec.document["paths"][operation.template]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for param in [*path_item.get("parameters", []), *operation.node.get("parameters", [])]:
        param = deref(spec, param)
        found[(param["name"], param["in"])] = param
    return list(found.values())
