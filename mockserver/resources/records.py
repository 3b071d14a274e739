"""Audit records: what the server sets when one is created."""

from __future__ import annotations

import re
import time
from typing import Any

from mockserver import codec, log
from mockserver.auth.identity import Identity
from mockserver.resources.behaviour import Behaviour, now
from mockserver.resources.ids import IdFormat
from mockserver.settings import Settings
from mockserver.storage.backend import Collection
from mockserver.storage.encoding import Item

COLLECTION = "/public/v1/audit/records"


class RecordBehaviour(Behaviour):
    """`id`, `timestamp`, `actor`, `type` and `viewers` are the server's: a client's values are
    ignored. The actor is the caller; the record is `Public` and visible to the caller's account."""

    noun = "Audit record"
    label = "records"
    server_fields = ("id", "timestamp", "actor", "type", "viewers")
    indexed = (
        "object.id",
        "event",
        "actor.id",
        "actor.account.id",
        "viewers.id",
        "viewers.name",
    )
    ordered = ("timestamp",)
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

    def seed(self, collection: Collection, settings: Settings) -> None:
        """`--seed-records` Faker records, showing progress."""
        count = settings.seed_records
        if count <= 0:
            return
        from mockserver.resources.seeding import Seeder  # Faker: loaded only to seed

        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            took = time.monotonic() - started
            log.logger.info("seeding records: %d/%d (%.1fs)", done, total, took)

        records = Seeder(settings.faker_seed).records(count, progress if count >= 10_000 else None)
        collection.insert_many(records)
        log.logger.info("seeded %d records in %.1fs", count, time.monotonic() - started)

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
