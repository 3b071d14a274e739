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
    path = ""
    for part in found.path:
        path = join(path, part)
    if found.keyword == "required":
        name = str(found.expected)
        return [(join(path, name), f"The {name} field is required.")]
    if found.keyword == "additionalProperties":
        return [(join(path, k), f"'{k}' is not a member of this object.") for k in found.unexpected]
    if found.keyword == "readOnly":
        field = path.rsplit(".", 1)[-1]
        return [(path or "$", f"The {field} field is read-only: the server sets it.")]
    alternatives = _required_alternatives(found)
    if alternatives:
        return [(path or "$", f"One of the fields {', '.join(alternatives)} is required.")]
    branch = _closest_branch(found)
    if branch:
        return [pair for inner in branch for pair in violations(inner)]
    return [(path or "$", _message(found))]


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
    keyword, value, expected = violation.keyword, violation.instance, violation.expected
    if keyword == "type":
        if isinstance(expected, list):  # a nullable type: null is not what is missing
            expected = [e for e in expected if e != "null"] or expected
            expected = expected[0] if len(expected) == 1 else expected
        return (
            f"The value must be {_article(expected)}, not {_JSON_TYPES.get(type(value), 'that')}."
        )
    if keyword == "enum":
        return "The value must be one of: " + ", ".join(map(str, expected)) + "."
    if keyword == "pattern":
        return f"The value '{value}' does not match the pattern {expected}."
    if keyword == "format":
        return f"The value '{value}' is not a valid {expected}."
    if keyword in _BOUNDS:
        return _BOUNDS[keyword].format(expected)
    return str(violation.message)


_BOUNDS = {
    "minLength": "The value must be at least {} characters long.",
    "maxLength": "The value must be at most {} characters long.",
    "minimum": "The value must be {} or more.",
    "maximum": "The value must be {} or less.",
    "minItems": "The array must have at least {} items.",
    "maxItems": "The array must have at most {} items.",
}


def _article(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(_article(e) for e in expected)
    return {"object": "an object", "array": "an array", "integer": "an integer"}.get(
        str(expected), f"a {expected}"
    )
