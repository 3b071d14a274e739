"""Audit records: what the server sets when one is created."""

from __future__ import annotations

from typing import Any

from mockserver.auth import Identity
from mockserver.ids import IdFormat
from mockserver.layout import Item
from mockserver.resource import Behaviour, now

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
