"""Loading the OpenAPI document once, checking it, and repairing the generator's artefacts."""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import orjson
import yaml

from mockserver.contract import library
from mockserver.documents import syntax_error

if TYPE_CHECKING:
    from openapi_core import Config, OpenAPI

Document = dict[str, Any]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


_YAML: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when PyYAML has it


class SpecError(Exception):
    """The spec file cannot be served; the message names the file and the problem."""


@dataclass(frozen=True)
class Spec:
    """One OpenAPI document as the server runs it. `openapi` (openapi-core's object) is made
    on first use: a document that passed the compiled check needs nothing of openapi-core to
    start (its import is a quarter of a second), the first request that needs it loads it."""

    path: Path
    document: Document
    sha256: str
    repairs: tuple[str, ...] = ()
    checked: bool = field(default=False, repr=False)  # passed the compiled check at load

    @functools.cached_property
    def openapi(self) -> OpenAPI:
        return _openapi(self.document, checked=self.checked)

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


def load_spec(path: Path, *, strict: bool = False) -> Spec:
    """Read, parse, repair and check a spec file; raise SpecError naming what is wrong.
    `strict`: the document is read by its letter where the real server is known to read it
    otherwise (see `repair`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc.strerror or exc}") from exc
    document = _parse(path, raw)
    repairs = repair(document, strict=strict)
    checked = _structurally_valid(document)
    digest = hashlib.sha256(raw).hexdigest()
    spec = Spec(path, document, digest, tuple(repairs), checked)
    if checked:
        _check_refs(path, document)
        return spec
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    try:  # openapi-spec-validator words what is wrong
        spec.__dict__["openapi"] = _openapi(document, checked=False)
    except OpenAPIValidationError as exc:
        where = " > ".join(str(p) for p in exc.absolute_path) or "(document root)"
        message = exc.message.split("\n", 1)[0]
        raise SpecError(f"{path}: not a valid OpenAPI document at {where}: {message}") from exc
    except Exception as exc:  # openapi-core raises several unrelated types for unusable specs
        raise SpecError(f"{path}: not a usable OpenAPI document: {exc}") from exc
    return spec


def _openapi(document: Document, *, checked: bool) -> OpenAPI:
    library.load()
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(document, config=_config(document, checked=checked))


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


def repair(document: Document, *, strict: bool = False) -> list[str]:
    """Rewrite the .NET generator's artefacts in place; return what was rewritten.

    * `JsonNode` (`options`/`parent`/`root`) stands for free-form JSON: it becomes `{}`.
    * `...JsonOptional` (`hasValue`/`value`) wraps an optional value that travels bare on the
      wire: it becomes the schema of `value`, nullable.
    * A form part described by its `properties` alone (no `type`) is an object: the server
      binds one from it (`contract.forms` reads it as JSON).
    * Not `strict`: a closed `allOf` part (`additionalProperties: false`) that requires
      members only the schema around it declares is read open, as the real server reads the
      body: the merged object (see `open_closed_parts`).
    """
    repairs = _generator_artefacts(document)
    repairs += _typed_form_parts(document)
    if not strict:
        repairs += open_closed_parts(document)
    return repairs


def _generator_artefacts(document: Document) -> list[str]:
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


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _typed_form_parts(document: Document) -> list[str]:
    """`type: object` for the form parts the schema describes by their `properties` alone
    (the platform's `attachment`, `document`, `media` parts): by the letter any JSON value
    (`true`, `[]`) would do, while the server binds an object from the part."""
    typed = 0
    for operation in _operations(document):
        body = operation.get("requestBody")
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, dict):
            continue
        for media_type in FORM_TYPES:
            media = content.get(media_type)
            schema = _local(document, media.get("schema") if isinstance(media, dict) else None)
            properties = schema.get("properties") if isinstance(schema, dict) else None
            for part in properties.values() if isinstance(properties, dict) else ():
                if isinstance(part, dict) and "properties" in part and not _typed(part):
                    part["type"] = "object"
                    typed += 1
    if not typed:
        return []
    return [f"form parts described by their members alone: {typed} typed as objects"]


def _typed(schema: dict[str, Any]) -> bool:
    return any(k in schema for k in ("type", "$ref", "allOf", "anyOf", "oneOf", "not"))


def _operations(document: Document) -> list[dict[str, Any]]:
    paths = document.get("paths")
    found = []
    for item in paths.values() if isinstance(paths, dict) else ():
        for method in HTTP_METHODS:
            operation = item.get(method) if isinstance(item, dict) else None
            if isinstance(operation, dict):
                found.append(operation)
    return found


def _local(document: Document, node: Any) -> Any:
    """A node with its local `$ref` followed (None when it does not resolve)."""
    for _ in range(32):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node
        ref: str = node["$ref"]
        node = document
        for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else ("",):
            key = part.replace("~1", "/").replace("~0", "~")
            node = node.get(key) if isinstance(node, dict) else None
    return None


def open_closed_parts(document: Document) -> list[str]:
    """Lenient reading of an `allOf` that no value can meet: a part that is closed
    (`additionalProperties: false`) yet requires members only the schema around it, or
    another part, declares is read open.

    By the letter the platform's `AccountCreate` (`allOf: [AccountCreateRef]`, the part closed
    to `type` and `status` and requiring `name`) requires `name` and forbids it: no body is
    valid. The real server takes the body the author meant, the merged object: every member
    any part declares. The part is replaced, where it is used as a part, by a copy without
    `additionalProperties` (used alone it stays closed); the outer schema's own
    `additionalProperties` still applies. A closed part that is only narrower than the
    schema around it (`Order` and `OrderRef`) can be met, and is read by the letter. `--strict`
    keeps the letter everywhere."""
    opened: list[str] = []
    schemas = document.get("components", {}).get("schemas", {})
    for name, schema in schemas.items() if isinstance(schemas, dict) else ():
        for node in _all_of_nodes(schema):
            if _open_parts(document, node):
                opened.append(name)
    if not opened:
        return []
    return [f"closed allOf parts that require members they forbid read open: {', '.join(opened)}"]


def _all_of_nodes(schema: Any) -> list[dict[str, Any]]:
    """The schemas within one component schema that have `allOf` parts (itself included)."""
    found = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("allOf"), list):
                found.append(node)
            stack.extend(v for k, v in node.items() if k not in ("example", "examples", "enum"))
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _open_parts(document: Document, node: dict[str, Any]) -> bool:
    """Open the closed parts of one `allOf` that require members declared elsewhere in it;
    whether any was."""
    parts = node["allOf"]
    resolved = [_local(document, part) for part in parts]
    declared = set(_names(node))
    for part in resolved:
        declared |= _names(part)
    changed = False
    for index, part in enumerate(resolved):
        if not (isinstance(part, dict) and part.get("additionalProperties") is False):
            continue
        required = part.get("required")
        forbidden = set(required if isinstance(required, list) else ()) - _names(part)
        if forbidden & declared:
            parts[index] = {k: v for k, v in part.items() if k != "additionalProperties"}
            changed = True
    return changed


def _names(schema: Any) -> set[str]:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return set(properties) if isinstance(properties, dict) else set()


def _config(document: Document, *, checked: bool = False) -> Config:
    """openapi-core decodes only `application/json` as JSON; the spec's other JSON media types
    (`text/json`, `application/*+json`, `application/problem+json`) are JSON too. `checked`:
    the document passed the fast check, openapi-core need not check it again."""
    library.load()
    from openapi_core import Config

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
    """The OpenAPI 3.0 schema (as openapi-spec-validator ships it), compiled by jsonschema-rs.
    The file is found without importing the package (its import is a fifth of a second)."""
    found = importlib.util.find_spec("openapi_spec_validator")
    if found is None or not found.submodule_search_locations:
        raise SpecError("openapi-spec-validator is not installed")
    package = Path(next(iter(found.submodule_search_locations)))
    text = (package / "resources" / "schemas" / "v3.0" / "schema.json").read_text(encoding="utf-8")
    return jsonschema_rs.validator_for(json.loads(text))


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


def _media_types(document: Document, found: set[str]) -> None:
    """The media types of every `content` map where OpenAPI puts one: request bodies,
    responses (and their headers), parameters, of the operations and of the components (a
    `$ref`'d one is found there). A walk of these alone: the whole document (2.6 MB for the
    platform's) took a tenth of a second."""
    for holder in _content_holders(document):
        if not isinstance(holder, dict):
            continue
        _add_content(holder, found)
        headers = holder.get("headers")  # a response's headers may have content too
        for header in headers.values() if isinstance(headers, dict) else ():
            _add_content(header, found)


def _add_content(holder: Any, found: set[str]) -> None:
    content = holder.get("content") if isinstance(holder, dict) else None
    if isinstance(content, dict):
        found.update(k for k in content if isinstance(k, str))


def _content_holders(document: Document) -> list[Any]:
    """The nodes that may hold a `content` map: the components' request bodies, responses,
    parameters and headers; each operation's request body, parameters and responses."""
    components = document.get("components")
    components = components if isinstance(components, dict) else {}
    holders: list[Any] = []
    for kind in ("requestBodies", "responses", "parameters", "headers"):
        group = components.get(kind)
        holders.extend(group.values() if isinstance(group, dict) else ())
    for item, operation in _path_operations(document):
        holders.extend(_listed(item.get("parameters")))
        holders.append(operation.get("requestBody"))
        holders.extend(_listed(operation.get("parameters")))
        responses = operation.get("responses")
        holders.extend(responses.values() if isinstance(responses, dict) else ())
    return holders


def _path_operations(document: Document) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(path item, operation) for every operation of the document."""
    paths = document.get("paths")
    found = []
    for item in paths.values() if isinstance(paths, dict) else ():
        for method in HTTP_METHODS if isinstance(item, dict) else ():
            operation = item.get(method)
            if isinstance(operation, dict):
                found.append((item, operation))
    return found


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_json(spec: Spec) -> bytes:
    """The document in use, as served at `.../openapi.json` (orjson: a tenth of the time)."""
    return orjson.dumps(spec.document, option=orjson.OPT_NON_STR_KEYS)
