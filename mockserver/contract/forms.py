"""Form bodies: `multipart/form-data` and `application/x-www-form-urlencoded`, read into the
object the operation's schema describes, so they are checked and stored as a JSON body is.

Every part is text on the wire. A member the schema declares as an object (or describes by its
`properties` without a type), an array item that is one, a number, an integer, a boolean or
null is read as JSON (as clients and schemathesis send them: `{"name": "x"}`, `5`, `true`); a
string member, or one the schema says nothing of, stays text. A member sent more than once is
a list; so is any member declared as an array. An uploaded file (`format: binary`) is its
content as text (bytes that are not UTF-8 kept one character each), which is what a string
member can hold.
"""

from __future__ import annotations

import io
import json
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header

from mockserver.contract.schemas import Resolve, flatten
from mockserver.problems import invalid

FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
_AS_JSON = frozenset({"object", "array", "number", "integer", "boolean", "null"})


def is_form(media_type: str) -> bool:
    return media_type in FORM_TYPES


def decode_form(raw: bytes, content_type: str, schema: Any, resolve: Resolve) -> dict[str, Any]:
    """The form's parts as an object, each typed by the member's schema; 400 for a body that
    is not a form of the type it says."""
    mimetype, options = parse_options_header(content_type)
    if mimetype == "multipart/form-data" and not options.get("boundary"):
        raise invalid({"$": ["The multipart/form-data body has no boundary."]})
    parser = FormDataParser(silent=False, max_form_parts=10_000)
    try:
        _, form, files = parser.parse(io.BytesIO(raw), mimetype, len(raw), options)
    except (ValueError, HTTPException) as exc:  # a broken part, too many parts
        reason = getattr(exc, "description", None) or str(exc)
        raise invalid({"$": [f"The body is not valid {mimetype}: {reason}"]}) from exc
    members = _members(schema, resolve)
    values: dict[str, list[str]] = {}
    for name in form:
        values.setdefault(name, []).extend(form.getlist(name))
    for name in files:
        for upload in files.getlist(name):
            values.setdefault(name, []).append(_text(upload.read()))
    return {name: _member(texts, members.get(name), resolve) for name, texts in values.items()}


def _members(schema: Any, resolve: Resolve) -> dict[str, Any]:
    found = flatten(schema, resolve)
    properties = found.get("properties") if isinstance(found, dict) else None
    return properties if isinstance(properties, dict) else {}


def _member(texts: list[str], schema: Any, resolve: Resolve) -> Any:
    found = flatten(schema, resolve)
    kind = _type(found)
    if kind == "array":
        items = found.get("items") if isinstance(found, dict) else None
        return [_value(text, _type(flatten(items, resolve))) for text in texts]
    if len(texts) > 1:
        return [_value(text, kind) for text in texts]
    return _value(texts[0], kind)


def _type(schema: Any) -> str | None:
    """The schema's type (the first of an OpenAPI 3.1 list that is not null); a schema
    without one that declares members is read as JSON too (the platform's form parts are so:
    `attachment` holds `{"Name": ...}`), and then checked as the schema says."""
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and ("properties" in schema or "additionalProperties" in schema):
        return "object"
    return kind if isinstance(kind, str) else None


def _value(text: str, kind: str | None) -> Any:
    if kind not in _AS_JSON:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text  # not what the schema says: the check says why


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
