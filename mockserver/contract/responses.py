"""What an operation declares it answers: its statuses, their media types and examples."""

from __future__ import annotations

from typing import Any

from mockserver.contract.router import Operation
from mockserver.contract.schemas import Resolve

NO_BODY = (204, 205, 304)


def responses(operation: Operation, resolve: Resolve) -> dict[str, dict[str, Any]]:
    """The operation's responses by status (`200`, `2XX`, `default`), `$ref`s followed."""
    found: dict[str, dict[str, Any]] = {}
    for status, response in operation.node.get("responses", {}).items():
        hops = 0
        while isinstance(response, dict) and "$ref" in response and hops < 32:
            response = resolve(response["$ref"])
            hops += 1
        if isinstance(response, dict):
            found[str(status)] = response
    return found


def success(operation: Operation, resolve: Resolve, wanted: int) -> int:
    """The success status to answer with: `wanted` when the operation declares it (or its
    class, `2XX`), else the first 2xx it declares; `wanted` when it declares none."""
    declared = responses(operation, resolve)
    names = {k.upper() for k in declared}
    if str(wanted) in names or f"{str(wanted)[0]}XX" in names:
        return wanted
    codes = sorted(int(k) for k in declared if k.isdigit() and 200 <= int(k) < 300)
    if codes:
        return codes[0]
    redirects = sorted(int(k) for k in declared if k.isdigit() and 300 <= int(k) < 400)
    if redirects and "default" not in declared:
        return redirects[0]
    return wanted


def response(operation: Operation, resolve: Resolve, status: int) -> dict[str, Any] | None:
    """The response the operation declares for a status (exactly, else `2XX`, `default`)."""
    declared = {k.upper(): v for k, v in responses(operation, resolve).items()}
    return (
        declared.get(str(status)) or declared.get(f"{str(status)[0]}XX") or declared.get("DEFAULT")
    )


def media_type(declared: dict[str, Any] | None) -> str | None:
    """The media type an answer is sent as: a JSON one the response declares, else its first."""
    content = declared.get("content") if isinstance(declared, dict) else None
    if not isinstance(content, dict) or not content:
        return None
    return str(next((m for m in content if "json" in m), next(iter(content))))


def content(declared: dict[str, Any] | None, media: str | None) -> dict[str, Any]:
    """The response's entry for a media type (`schema`, `example`, `examples`)."""
    found = (declared or {}).get("content", {}).get(media) if media else None
    return found if isinstance(found, dict) else {}


def examples(entry: dict[str, Any], resolve: Resolve) -> dict[str, Any]:
    """A media type's named examples (`examples: {name: {value}}`), `$ref`s followed."""
    named = entry.get("examples")
    found: dict[str, Any] = {}
    if not isinstance(named, dict):
        return found
    for name, example in named.items():
        while isinstance(example, dict) and "$ref" in example:
            example = resolve(example["$ref"])
        if isinstance(example, dict) and "value" in example:
            found[str(name)] = example["value"]
    return found


def example(entry: dict[str, Any], resolve: Resolve) -> tuple[bool, Any]:
    """The media type's example: `example`, else its first named one; (False, None): none."""
    if "example" in entry:
        return True, entry["example"]
    named = examples(entry, resolve)
    if named:
        return True, next(iter(named.values()))
    return False, None
