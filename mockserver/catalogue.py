"""The built-in catalogue: audit event types and the platform objects they are about."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from mockserver.ids import IdFormat
from mockserver.settings import PACKAGE_DIR

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


@cache
def catalogue() -> Catalogue:
    data: dict[str, Any] = yaml.safe_load((PACKAGE_DIR / "data" / "catalogue.yaml").read_text())
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
