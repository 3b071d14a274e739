"""Loading the OpenAPI document once, checking it, and repairing the generator's artefacts."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from openapi_core import Config, OpenAPI
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from mockserver.documents import syntax_error

Document = dict[str, Any]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


_YAML: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when PyYAML has it


class SpecError(Exception):
    """The spec file cannot be served; the message names the file and the problem."""


@dataclass(frozen=True)
class Spec:
    """One OpenAPI document as the server runs it."""

    path: Path
    document: Document
    sha256: str
    openapi: OpenAPI = field(repr=False)
    repairs: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return str(self.document["info"].get("title", ""))

    @property
    def version(self) -> str:
        return str(self.document["info"].get("version", ""))

    def schema(self, ref: str) -> Any:
        """The node a local `$ref` (`#/components/...`) points at."""
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node


def load_spec(path: Path) -> Spec:
    """Read, parse, repair and check a spec file; raise SpecError naming what is wrong."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc.strerror or exc}") from exc
    document = _parse(path, raw)
    repairs = repair(document)
    checked = _structurally_valid(document)
    if checked:
        _check_refs(path, document)
    try:
        api = OpenAPI.from_dict(document, config=_config(document, checked=checked))
    except OpenAPIValidationError as exc:
        where = " > ".join(str(p) for p in exc.absolute_path) or "(document root)"
        message = exc.message.split("\n", 1)[0]
        raise SpecError(f"{path}: not a valid OpenAPI document at {where}: {message}") from exc
    except Exception as exc:  # openapi-core raises several unrelated types for unusable specs
        raise SpecError(f"{path}: not a usable OpenAPI document: {exc}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    return Spec(path=path, document=document, sha256=digest, openapi=api, repairs=tuple(repairs))


def _parse(path: Path, raw: bytes) -> Document:
    try:
        text = raw.decode("utf-8-sig")
        document = json.loads(text) if path.suffix == ".json" else yaml.load(text, _YAML)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(syntax_error(path, raw, exc)) from exc
    if not isinstance(document, dict):
        raise SpecError(f"{path}: the spec is not a mapping of OpenAPI fields")
    if not str(document.get("openapi", "")).startswith("3."):
        raise SpecError(
            f"{path}: only OpenAPI 3.x documents are supported (no 'openapi: 3.x' field)"
        )
    if not isinstance(document.get("paths"), dict) or not isinstance(document.get("info"), dict):
        raise SpecError(f"{path}: the spec has no 'info' or no 'paths'")
    return document


def repair(document: Document) -> list[str]:
    """Rewrite the .NET generator's artefacts in place; return what was rewritten.

    * `JsonNode` (`options`/`parent`/`root`) stands for free-form JSON: it becomes `{}`.
    * `...JsonOptional` (`hasValue`/`value`) wraps an optional value that travels bare on the
      wire: it becomes the schema of `value`, nullable.
    """
    schemas = document.get("components", {}).get("schemas", {})
    oas30 = str(document.get("openapi", "")).startswith("3.0")
    repairs = []
    for name, schema in list(schemas.items()):
        props = schema.get("properties", {}) if isinstance(schema, dict) else {}
        if set(props) == {"options", "parent", "root"}:
            schemas[name] = {"description": f"Free-form JSON (was the generator's {name})."}
            repairs.append(f"{name}: free-form JSON")
        elif set(props) == {"hasValue", "value"}:
            value = copy.deepcopy(props["value"])
            schemas[name] = (
                {**value, "nullable": True} if oas30 else {"anyOf": [value, {"type": "null"}]}
            )
            repairs.append(f"{name}: bare optional value")
    return repairs


def _config(document: Document, *, checked: bool = False) -> Config:
    """openapi-core decodes only `application/json` as JSON; the spec's other JSON media types
    (`text/json`, `application/*+json`, `application/problem+json`) are JSON too. `checked`:
    the document passed the fast check, openapi-core need not check it again."""
    found: set[str] = set()
    _media_types(document, found)
    json_types: dict[str, Any] = {
        m: _json_loads for m in found if m != "application/json" and "json" in m
    }
    if checked:
        # None: no spec check (openapi-core skips it; its annotation leaves None out)
        return Config(extra_media_type_deserializers=json_types, spec_validator_cls=None)  # type: ignore[arg-type]
    return Config(extra_media_type_deserializers=json_types)


@functools.cache
def _meta_schema() -> Any:
    """The OpenAPI 3.0 schema (as openapi-spec-validator ships it), compiled by jsonschema-rs."""
    text = resources.files("openapi_spec_validator").joinpath("resources/schemas/v3.0/schema.json")
    return jsonschema_rs.validator_for(json.loads(text.read_text(encoding="utf-8")))


def _structurally_valid(document: Document) -> bool:
    """Whether a 3.0 document passes the OpenAPI schema, checked in compiled code (~15 ms for
    the platform's 280 paths, where openapi-spec-validator's walk takes seconds). A document
    that does not, or a 3.1 one, is checked by openapi-spec-validator, which words the error."""
    if not str(document.get("openapi", "")).startswith("3.0"):
        return False
    return bool(_meta_schema().is_valid(document))


def _check_refs(path: Path, document: Document) -> None:
    """Every local `$ref` points at a node of the document (the schema cannot say so)."""
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else ():
            key = part.replace("~1", "/").replace("~0", "~")
            node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                raise SpecError(f"{path}: not a valid OpenAPI document: unresolvable $ref {ref}")


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _json_loads(value: bytes | str, **_parameters: str) -> Any:
    return json.loads(value)


def _media_types(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        content = node.get("content")
        if isinstance(content, dict):
            found.update(k for k in content if isinstance(k, str))
        for value in node.values():
            _media_types(value, found)
    elif isinstance(node, list):
        for value in node:
            _media_types(value, found)


def as_json(spec: Spec) -> bytes:
    """The document in use, as served at `.../openapi.json`."""
    return json.dumps(spec.document, ensure_ascii=False).encode()
