"""Audit event types: the built-in catalogue, and the rule that a `key` is unique."""

from __future__ import annotations

from mockserver.catalogue import EVENT_TYPE_IDS, catalogue
from mockserver.resource import Behaviour
from mockserver.store import Store

COLLECTION = "/public/v1/audit/event-types"


class EventTypeBehaviour(Behaviour):
    """Only `id` is the server's; `key` must stay unique (409 otherwise)."""

    noun = "Audit event type"
    unique = ("key",)
    indexed = ("key",)
    default_ids = EVENT_TYPE_IDS


def load_catalogue(store: Store) -> None:
    """Put the built-in event types in the store (a fresh copy of each)."""
    for event_type in catalogue().event_types:
        store.insert(dict(event_type))
