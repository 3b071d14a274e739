"""Audit records: what the server sets when one is created."""

from __future__ import annotations

import re
from typing import Any

from openapi_core.validation.schemas import oas30_read_schema_validators_factory
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

from mockserver import codec
from mockserver.auth import Identity
from mockserver.ids import IdFormat
from mockserver.layout import Item
from mockserver.resource import Behaviour, now
from mockserver.router import Router
from mockserver.spec import Spec
from mockserver.validation import Errors, violations

COLLECTION = "/public/v1/audit/records"


class RecordBehaviour(Behaviour):
    """`id`, `timestamp`, `actor`, `type` and `viewers` are the server's: a client's values are
    ignored. The actor is the caller; the record is `Public` and visible to the caller's account."""

    noun = "Audit record"
    server_fields = ("id", "timestamp", "actor", "type", "viewers")
    indexed = ("object.id", "event", "actor.id", "actor.account.id")
    default_ids = IdFormat("AUD", 4)

    def created(self, body: dict[str, Any], item_id: str, identity: Identity) -> Item:
        return {
            "id": item_id,
            "timestamp": now(),
            **body,
            "actor": identity.actor(),
            "type": "Public",
            "viewers": [
                {
                    "id": identity.account_id,
                    "name": identity.account_name,
                    "type": identity.account_type,
                }
            ],
        }

    def render(self, item: Item) -> Item:
        """`render()`: the `details` template filled from the record's `documents`."""
        details, documents = item.get("details"), item.get("documents")
        if not isinstance(details, str) or "{{" not in details or not isinstance(documents, dict):
            return item
        return {**item, "details": fill(details, documents)}


_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


def fill(template: str, documents: dict[str, Any]) -> str:
    """`{{order.status}}` is the `status` of the document `order`; a string as it is, any other
    value as JSON; a placeholder naming nothing stays as it is written."""

    def value(found: re.Match[str]) -> str:
        current: Any = documents
        for part in found.group(1).split("."):
            if not isinstance(current, dict) or part not in current:
                return found.group(0)
            current = current[part]
        return current if isinstance(current, str) else codec.dumps(current).decode()

    return _PLACEHOLDER.sub(value, template)


class Fixtures:
    """Checks records inserted verbatim (control API) against the spec's audit record schema."""

    def __init__(self, spec: Spec, router: Router) -> None:
        self._validator: Any = None
        for op in router.operations:
            if op.collection == COLLECTION and op.kind == "get":
                content = spec.openapi.spec / "paths" / op.template / "get" / "responses" / "200"
                schema = content / "content" / "application/json" / "schema"
                if "schema" in content / "content" / "application/json":
                    self._validator = oas30_read_schema_validators_factory.create(
                        spec.openapi.spec, schema
                    )

    def errors(self, fixtures: list[Any]) -> Errors:
        found: Errors = {}
        for index, fixture in enumerate(fixtures):
            if self._validator is None:
                continue
            try:
                self._validator.validate(fixture)
            except InvalidSchemaValue as exc:
                for error in exc.schema_errors:
                    for key, message in violations(error):
                        where = f"[{index}]" + (f".{key}" if key != "$" else "")
                        found.setdefault(where, []).append(message)
        return found
