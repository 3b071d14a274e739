"""Loading the OpenAPI document once, checking it, and repairing the generator's artefacts."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from openapi_core import Config, OpenAPI
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from mockserver.documents import syntax_error

Document = dict[str, Any]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


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
    try:
        api = OpenAPI.from_dict(document, config=_config(document))
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
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
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


def _config(document: Document) -> Config:
    """openapi-core decodes only `application/json` as JSON; the spec's other JSON media types
    (`text/json`, `application/*+json`, `application/problem+json`) are JSON too."""
    found: set[str] = set()
    _media_types(document, found)
    json_types: dict[str, Any] = {
        m: _json_loads for m in found if m != "application/json" and "json" in m
    }
    return Config(extra_media_type_deserializers=json_types)


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
