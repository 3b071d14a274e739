"""A schema violation as the platform words it: (JSON path, message) pairs for the `errors`
of a 400 problem, from either schema backend's errors."""

from __future__ import annotations

from typing import Any

from mockserver.contract.schema_backend import Violation
from mockserver.contract.schemas import join

Errors = dict[str, list[str]]


def violations(error: Exception) -> list[tuple[str, str]]:
    """(JSON path, readable message) for one schema error; several for unknown members."""
    found = error if isinstance(error, Violation) else Violation.from_jsonschema(error)
    path = _json_path(found.path)
    where = path or "$"  # a violation of the body itself
    if found.keyword == "required":
        name = str(found.expected)
        return [(join(path, name), f"The {name} field is required.")]
    if found.keyword == "additionalProperties":
        return [(join(path, k), f"'{k}' is not a member of this object.") for k in found.unexpected]
    if found.keyword == "readOnly":
        field = path.rsplit(".", 1)[-1]
        return [(where, f"The {field} field is read-only: the server sets it.")]
    explained = _alternatives(found, where)
    if explained is not None:
        return explained
    return [(where, _message(found))]


def _alternatives(found: Violation, where: str) -> list[tuple[str, str]] | None:
    """A value that fits none of the alternatives of a oneOf/anyOf: the fields one of which is
    required, or the violations of the alternative it was meant to be; None when neither can be
    told (or it is no oneOf/anyOf)."""
    alternatives = _required_alternatives(found)
    if alternatives:
        return [(where, f"One of the fields {', '.join(alternatives)} is required.")]
    branch = _closest_branch(found)
    if branch:
        return [pair for inner in branch for pair in violations(inner)]
    return None


def _json_path(parts: tuple[str | int, ...]) -> str:
    """`("viewers", 0, "id")` → `viewers[0].id`; "" for the body itself."""
    path = ""
    for part in parts:
        path = join(path, part)
    return path


def _required_alternatives(found: Violation) -> list[str]:
    """`anyOf: [required: [a]], [required: [b]]...` all missed: the names a, b..."""
    if len(found.branches) < 2 or not all(
        len(branch) == 1 and branch[0].keyword == "required" for branch in found.branches
    ):
        return []
    return [str(branch[0].expected) for branch in found.branches]


def _closest_branch(found: Violation) -> list[Violation] | None:
    """Of the alternatives a oneOf/anyOf value fails, the one it was meant to be: not one
    whose very type differs from the value's, and then the one it misses least."""
    meant = [
        branch
        for branch in found.branches
        if not any(v.keyword == "type" and v.path == found.path for v in branch)
    ]
    return min(meant, key=len) if meant else None


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def _message(violation: Violation) -> str:
    """The platform's words for a violation of one value (the schema's own message for a
    keyword it has none for)."""
    keyword, value, expected = violation.keyword, violation.instance, violation.expected
    if keyword == "type":
        return _type_message(value, expected)
    if keyword == "enum":
        return "The value must be one of: " + ", ".join(map(str, expected)) + "."
    template = _MESSAGES.get(keyword)
    if template is None:
        return str(violation.message)
    return template.format(value=value, expected=expected)


def _type_message(value: Any, expected: Any) -> str:
    if isinstance(expected, list):  # a nullable type: null is not what is missing
        expected = [e for e in expected if e != "null"] or expected
        expected = expected[0] if len(expected) == 1 else expected
    return f"The value must be {_article(expected)}, not {_JSON_TYPES.get(type(value), 'that')}."


_MESSAGES = {  # keyword: message, of the value found and the schema's `expected` value
    "pattern": "The value '{value}' does not match the pattern {expected}.",
    "format": "The value '{value}' is not a valid {expected}.",
    "minLength": "The value must be at least {expected} characters long.",
    "maxLength": "The value must be at most {expected} characters long.",
    "minimum": "The value must be {expected} or more.",
    "maximum": "The value must be {expected} or less.",
    "minItems": "The array must have at least {expected} items.",
    "maxItems": "The array must have at most {expected} items.",
}


def _article(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(_article(e) for e in expected)
    return {"object": "an object", "array": "an array", "integer": "an integer"}.get(
        str(expected), f"a {expected}"
    )
