"""Audit event types: the built-in catalogue (event types, and the platform objects they are
about, which seeded records use too), and the rule that a `key` is unique."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from mockserver.resources.behaviour import Behaviour
from mockserver.resources.ids import IdFormat
from mockserver.settings import PACKAGE_DIR, Settings
from mockserver.storage.backend import Collection

COLLECTION = "/public/v1/audit/event-types"
EVENT_TYPE_IDS = IdFormat("AET", 2)


@dataclass(frozen=True)
class ObjectKind:
    """A kind of platform object: its `objectType` and id format."""

    name: str
    type: str
    ids: IdFormat


@dataclass(frozen=True)
class Catalogue:
    objects: dict[str, ObjectKind]
    event_types: tuple[dict[str, str], ...]
    user_agents: tuple[str, ...]
    locales: tuple[str, ...]

    def kind_of(self, event: str) -> ObjectKind | None:
        """The object an event key is about: `platform.commerce.order.created` → Order."""
        parts = event.split(".")
        return self.objects.get(parts[2]) if len(parts) == 4 else None


_YAML: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def catalogue() -> Catalogue:
    text = (PACKAGE_DIR / "data" / "catalogue.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.load(text, _YAML)  # libyaml's loader: a tenth of the time
    objects = {
        name: ObjectKind(name, spec["type"], IdFormat(spec["prefix"], spec["groups"]))
        for name, spec in data["objects"].items()
    }
    event_types = tuple(
        {
            "id": EVENT_TYPE_IDS.stable(e["key"]),
            "key": e["key"],
            "name": e["name"],
            "description": e["description"],
        }
        for e in data["event_types"]
    )
    return Catalogue(objects, event_types, tuple(data["user_agents"]), tuple(data["locales"]))


class EventTypeBehaviour(Behaviour):
    """Only `id` is the server's; `key` must stay unique (409 otherwise). The collection
    starts with the catalogue's event types."""

    noun = "Audit event type"
    label = "eventTypes"
    unique = ("key",)
    indexed = ("key",)
    default_ids = EVENT_TYPE_IDS

    def seed(self, collection: Collection, settings: Settings) -> None:
        collection.insert_many(dict(kind) for kind in catalogue().event_types)  # fresh copies
