"""The pre-check: compiled JSON Schemas that decide quickly whether a request is valid.

openapi-core is the validator, but a call costs about a millisecond. The pre-check compiles the
same spec schemas once, with jsonschema-rs, and answers in microseconds. Only a request it
rejects goes through openapi-core, which explains what is wrong and keeps the last word (a
request openapi-core accepts is accepted). A schema the pre-check cannot reproduce exactly
(integers, `not`, `multipleOf`, ...) gets no pre-check: openapi-core checks those requests.
A property-based test proves that the two agree on generated requests.

Semantics carried over from OpenAPI 3.0 (request side):
* `nullable: true` adds `null` to the type;
* a `readOnly` schema accepts nothing (openapi-core refuses to write read-only values);
* formats are checked with openapi-core's own format checker; formats it does not know pass.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jsonschema_rs
from openapi_core.validation.schemas import oas30_write_schema_validators_factory

from mockserver.router import Operation
from mockserver.spec import Spec

Check = Callable[[Any], bool]
Params = Callable[[dict[str, str], dict[str, str]], bool]
_ANNOTATIONS = {
    "description",
    "title",
    "example",
    "examples",
    "default",
    "deprecated",
    "externalDocs",
    "xml",
    "writeOnly",
    "x-nullable",
}
_COPIED = {
    "properties",
    "additionalProperties",
    "items",
    "allOf",
    "anyOf",
    "oneOf",
    "required",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "format",
    "enum",
    "type",
}
_INT_FORMATS = {"int32": 2**31, "int64": 2**63}


class Unsupported(Exception):
    """The schema uses something the pre-check cannot reproduce exactly."""


class Precheck:
    """Compiled checks for one spec, built on first use for each operation."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        checker = oas30_write_schema_validators_factory.format_checker
        self._known_formats = set(checker.checkers)
        self._conforms = checker.conforms
        self._bodies: dict[tuple[str, str], Check | None] = {}
        self._params: dict[str, Params | None] = {}

    def body(self, operation: Operation, media_type: str) -> Check | None:
        """`is_valid` for the body of this media type; None when there is no pre-check."""
        key = (operation.operation_id, media_type)
        if key not in self._bodies:
            schema = operation.node["requestBody"]["content"][media_type].get("schema")
            self._bodies[key] = self._compile(schema)
        return self._bodies[key]

    def parameters(self, operation: Operation) -> Params | None:
        """A check of the query and path parameters; None when there is no pre-check."""
        if operation.operation_id not in self._params:
            try:
                self._params[operation.operation_id] = self._parameter_check(operation)
            except Unsupported:
                self._params[operation.operation_id] = None
        return self._params[operation.operation_id]

    # ------------------------------------------------------------ bodies

    def _compile(self, schema: Any) -> Check | None:
        if schema is None:
            return lambda value: True
        try:
            converter = _Converter(self.spec)
            root = converter.convert(schema)
        except Unsupported:
            return None
        root = {**root, "definitions": converter.definitions} if isinstance(root, dict) else root
        formats = {name: self._format(name) for name in converter.formats}
        try:
            validator = jsonschema_rs.Draft7Validator(root, formats=formats, validate_formats=True)
        except (ValueError, jsonschema_rs.ValidationError):  # refused: openapi-core will check
            return None
        check: Check = validator.is_valid
        return check

    def _format(self, name: str) -> Callable[[str], bool]:
        if name not in self._known_formats:
            return lambda value: True
        return partial(self._conforms, format=name)

    # ------------------------------------------------------------ parameters

    def _parameter_check(self, operation: Operation) -> Params:
        checks: list[tuple[str, str, bool, Callable[[str], bool]]] = []
        for param in _parameters(self.spec, operation):
            where = param.get("in")
            if where not in ("query", "path") or "content" in param:
                raise Unsupported(f"{where} parameter")
            if param.get("style", "form" if where == "query" else "simple") not in (
                "form",
                "simple",
            ):
                raise Unsupported("style")
            checks.append(
                (
                    str(param["name"]),
                    where,
                    bool(param.get("required")),
                    self._scalar(param.get("schema", {})),
                )
            )

        def check(query: dict[str, str], path: dict[str, str]) -> bool:
            for name, where, required, valid in checks:
                value = (query if where == "query" else path).get(name)
                if value is None:
                    if required:
                        return False
                elif not valid(value):
                    return False
            return True

        return check

    def _scalar(self, schema: Any) -> Callable[[str], bool]:
        """A check of one raw parameter value: cast as openapi-core casts it, then validate."""
        schema = _deref(self.spec, schema)
        kind = schema.get("type")
        if kind == "string":
            compiled = self._compile(schema)
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


def _deref(spec: Spec, schema: Any) -> Any:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema:
        schema = spec.schema(schema["$ref"])
        seen += 1
        if seen > 32:
            raise Unsupported("$ref loop")
    return schema


def _parameters(spec: Spec, operation: Operation) -> list[dict[str, Any]]:
    """The operation's parameters and its path's, resolved; the operation's win."""
    path_item = spec.document["paths"][operation.template]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for param in [*path_item.get("parameters", []), *operation.node.get("parameters", [])]:
        param = _deref(spec, param)
        found[(param["name"], param["in"])] = param
    return list(found.values())


class _Converter:
    """OpenAPI 3.0 schema → JSON Schema (draft 7, for `false` schemas), component refs kept as
    `#/definitions/...`."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.definitions: dict[str, Any] = {}
        self.formats: set[str] = set()

    def convert(self, schema: Any) -> Any:
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            raise Unsupported("schema")
        if "$ref" in schema:
            return self._ref(schema["$ref"])
        if schema.get("readOnly") is True:
            return False  # openapi-core refuses to write a read-only value
        unknown = set(schema) - _COPIED - _ANNOTATIONS - {"nullable", "readOnly"}
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _COPIED:
                out[key] = self._keyword(key, value, schema)
        if schema.get("nullable") is True:
            if "enum" in schema:
                raise Unsupported("nullable enum")
            if "type" in out:
                out["type"] = [out["type"], "null"]
        return out

    def _keyword(self, key: str, value: Any, schema: dict[str, Any]) -> Any:
        if key == "type":
            if value not in ("string", "object", "array", "boolean"):
                raise Unsupported(f"type {value}")
            return value
        if key == "properties":
            return {name: self.convert(sub) for name, sub in value.items()}
        if key in ("additionalProperties", "items"):
            return value if isinstance(value, bool) else self.convert(value)
        if key in ("allOf", "anyOf", "oneOf"):
            return [self.convert(sub) for sub in value]
        if key == "required":
            properties = schema.get("properties", {})
            if any(_read_only(self.spec, properties.get(name)) for name in value):
                raise Unsupported("required read-only property")
            return list(value)
        if key == "format":
            self.formats.add(str(value))
        if key == "enum" and not all(isinstance(v, str | bool) for v in value):
            raise Unsupported("enum")
        return value

    def _ref(self, ref: str) -> dict[str, Any]:
        prefix = "#/components/schemas/"
        if not ref.startswith(prefix):
            raise Unsupported(ref)
        name = ref[len(prefix) :]
        if name not in self.definitions:
            self.definitions[name] = True  # placeholder for recursive schemas
            self.definitions[name] = self.convert(self.spec.schema(ref))
        return {"$ref": f"#/definitions/{name}"}


def _read_only(spec: Spec, schema: Any) -> bool:
    schema = _deref(spec, schema)
    if not isinstance(schema, dict):
        return False
    return schema.get("readOnly") is True or any(
        _read_only(spec, part) for part in schema.get("allOf", [])
    )
