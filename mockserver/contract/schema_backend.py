"""The spec's schemas compiled once with jsonschema-rs, as openapi-core's schema backend.

openapi-core validates with pure-Python jsonschema, building a fresh validator (and a deep copy
of its format checker) on every call: about a millisecond for a 1.3 KB record. openapi-core
takes a `schema_validators_factory`, so its own pipeline (media types, deserialising, casting,
parameters) can run on a faster backend. `CompiledFactory` (`contract.core_backend`, which
imports openapi-core: it is loaded on the first request that needs it, not at start-up) is
that backend: every schema is converted once to JSON Schema and compiled by jsonschema-rs; a
schema it cannot reproduce exactly keeps openapi-core's own (built once, then reused)
validator.

Semantics carried over from OpenAPI 3.0 (request side):
* `nullable: true` adds `null` to the type;
* a `readOnly` schema accepts nothing (openapi-core refuses to write read-only values);
* formats are checked with openapi-core's own format checker; formats it does not know pass.
A property test checks this backend against openapi-core's own on generated requests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jsonschema_rs

from mockserver.contract import library
from mockserver.contract.spec import Spec

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

_NUMERIC = {"minimum", "maximum"}  # the same in both, for numbers read from JSON (responses)


class Unsupported(Exception):
    """The schema uses something jsonschema-rs would not judge exactly as openapi-core does."""


class Violation(Exception):
    """One schema violation, from either backend, in the terms the problem builder uses:
    where (path), which keyword, the value found, what was expected; for `required` the
    missing member, for `additionalProperties` the unknown ones."""

    def __init__(
        self,
        message: str,
        path: tuple[str | int, ...],
        keyword: str,
        instance: Any,
        expected: Any,
        unexpected: list[str] | None = None,
        branches: list[list[Violation]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.keyword = keyword
        self.instance = instance
        self.expected = expected
        self.unexpected = unexpected or []
        self.branches = branches or []  # oneOf/anyOf: the violations of each alternative

    @classmethod
    def from_rust(cls, error: Any) -> Violation:
        kind = error.kind
        keyword = "readOnly" if kind.name == "falseSchema" else kind.name
        return cls(
            error.message,
            tuple(error.instance_path),
            keyword,
            error.instance,
            getattr(kind, "value", None),
            list(getattr(kind, "unexpected", None) or []),
            [[cls.from_rust(e) for e in branch] for branch in getattr(kind, "context", None) or []],
        )

    @classmethod
    def from_jsonschema(cls, error: Any) -> Violation:
        keyword, instance, expected = error.validator, error.instance, error.validator_value
        unexpected: list[str] = []
        if keyword == "required":
            expected = error.message.split("'")[1] if "'" in error.message else "?"
        elif keyword == "additionalProperties" and isinstance(instance, dict):
            known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            unexpected = [k for k in instance if k not in known]
        branches: dict[Any, list[Violation]] = {}
        for inner in error.context or ():
            branches.setdefault(inner.relative_schema_path[0], []).append(
                cls.from_jsonschema(inner)
            )
        path = tuple(error.absolute_path)
        return cls(
            error.message,
            path,
            str(keyword),
            instance,
            expected,
            unexpected,
            list(branches.values()),
        )


def compile_schema(
    spec: Spec, schema: Any, formats: dict[str, Callable[[str], bool]], response: bool = False
) -> Any:
    """A jsonschema-rs validator for an OpenAPI schema (with `$ref`s into the spec); None when it
    cannot be reproduced exactly. `response`: read, not written (`readOnly` values are fine)."""
    try:
        converter = _Converter(spec, response)
        root = converter.convert(schema)
        if isinstance(root, dict):
            root = {**root, "definitions": converter.definitions}
        needed = {name: formats.get(name, _anything) for name in converter.formats}
        return jsonschema_rs.Draft7Validator(root, formats=needed, validate_formats=True)
    except (Unsupported, ValueError, jsonschema_rs.ValidationError):
        return None


def _anything(value: str) -> bool:
    return True


Formats = dict[str, Callable[[str], bool]]


class LazyFormats(dict[str, Callable[[str], bool]]):
    """openapi-core's OpenAPI 3.0 format checks, by name, loaded on the first value checked
    (openapi-schema-validator, and jsonschema with it, cost a fifth of a second to import:
    a schema compiled at start-up, or one with no formats, does not need them). A format the
    checker does not know passes, as openapi-core lets it."""

    def get(self, name: str, default: Any = None) -> Callable[[str], bool]:
        return functools.partial(_conforms, name)


def _conforms(name: str, value: str) -> bool:
    checker = _format_checker()
    return name not in checker.checkers or bool(checker.conforms(value, format=name))


@functools.cache
def _format_checker() -> Any:
    library.load()
    from openapi_core.validation.schemas import oas30_read_schema_validators_factory

    return oas30_read_schema_validators_factory.format_checker


class _Converter:
    """OpenAPI 3.0 schema → JSON Schema (draft 7, for `false` schemas), component refs kept as
    `#/definitions/...`."""

    def __init__(self, spec: Spec, response: bool = False) -> None:
        self.spec = spec
        self.response = response
        self.definitions: dict[str, Any] = {}
        self.formats: set[str] = set()

    def convert(self, schema: Any) -> Any:
        """One schema (and the components it refers to) in JSON Schema; Unsupported otherwise."""
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            raise Unsupported("schema")
        if "$ref" in schema:
            return self._ref(schema["$ref"])
        if self.response and schema.get("writeOnly") is True:
            raise Unsupported("writeOnly in a response")
        if schema.get("readOnly") is True and not self.response:
            # openapi-core refuses to write a read-only value, and still checks what is inside
            inner = {k: v for k, v in schema.items() if k != "readOnly"}
            return {"allOf": [self.convert(inner), False]}
        return self._keywords(schema)

    def _keywords(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A schema's keywords converted (annotations left out), `nullable` folded into its
        `type`; Unsupported for a keyword not known to convert exactly."""
        copied = _COPIED | _NUMERIC if self.response else _COPIED
        unknown = set(schema) - copied - _ANNOTATIONS - {"nullable", "readOnly"}
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        out = {k: self._keyword(k, v, schema) for k, v in schema.items() if k in copied}
        if schema.get("nullable") is True:
            if "enum" in schema:
                raise Unsupported("nullable enum")
            if "type" in out:
                out["type"] = [out["type"], "null"]
        return out

    def _keyword(self, key: str, value: Any, schema: dict[str, Any]) -> Any:
        """One keyword: the subschemas it holds converted, or its value checked."""
        if key == "properties":
            return {name: self.convert(sub) for name, sub in value.items()}
        if key in ("additionalProperties", "items"):
            return value if isinstance(value, bool) else self.convert(value)
        if key in ("allOf", "anyOf", "oneOf"):
            return [self.convert(sub) for sub in value]
        return self._value(key, value, schema)

    def _value(self, key: str, value: Any, schema: dict[str, Any]) -> Any:
        """A keyword that holds no subschema, as it is, where jsonschema-rs judges it as
        openapi-core does (Unsupported otherwise); the formats used are noted."""
        judged_alike: tuple[str, ...] = ("string", "object", "array", "boolean")
        if self.response:  # read from JSON: 1.0 is what the server wrote, not a cast
            judged_alike += ("integer", "number")
        if key == "type" and value not in judged_alike:
            raise Unsupported(f"type {value}")
        if key == "required":
            properties = schema.get("properties", {})
            read_only = (_read_only(self.spec, properties.get(name)) for name in value)
            if not self.response and any(read_only):
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


def deref(spec: Spec, schema: Any) -> Any:
    """Follow `$ref`s to the schema itself."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema:
        schema = spec.schema(schema["$ref"])
        seen += 1
        if seen > 32:
            raise Unsupported("$ref loop")
    return schema


def _read_only(spec: Spec, schema: Any) -> bool:
    schema = deref(spec, schema)
    if not isinstance(schema, dict):
        return False
    return schema.get("readOnly") is True or any(
        _read_only(spec, part) for part in schema.get("allOf", [])
    )
