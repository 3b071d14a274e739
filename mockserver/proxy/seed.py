"""`--seed-from FILE.har`: the records and event types a recording's responses hold, loaded
into the start-up store, so a local mock starts with platform-shaped data."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from mockserver.contract.router import Router
from mockserver.problems import Problem
from mockserver.proxy import har
from mockserver.storage.backend import Backend


def seed(storage: Backend, router: Router, path: Path) -> int:
    """Every item of the recording's successful JSON answers stored (by its id, the last
    answer winning); how many items were stored. HarError for a file that is no recording."""
    stored: set[tuple[str, str]] = set()
    for entry in har.load(path):
        found = _items(router, entry)
        if found is None:
            continue
        collection, template, items = found
        target = storage.open(collection, template)
        for item in items:
            target.insert(item)
            stored.add((collection, item["id"]))
    return len(stored)


def _items(router: Router, entry: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]] | None:
    request, response = entry.get("request") or {}, entry.get("response") or {}
    status = response.get("status")
    if not isinstance(status, int) or not 200 <= status < 300:
        return None
    try:
        match = router.match(str(request.get("method", "GET")), urlsplit(request["url"]).path)
    except (Problem, KeyError, TypeError, ValueError):
        return None
    text = (response.get("content") or {}).get("text") or ""
    items = [item for item in _bodies(text) if isinstance(item.get("id"), str)]
    op = match.operation
    return op.collection_path(match.params), op.collection, items


def _bodies(text: str) -> list[dict[str, Any]]:
    """The items of a body: the body itself, its `data`, or each of its JSON lines."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        lines = []
        for line in text.splitlines():
            try:
                lines.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return [item for item in lines if isinstance(item, dict)]
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        return [item for item in body["data"] if isinstance(item, dict)]
    return [body] if isinstance(body, dict) else []
