"""The control API under `/_mock` (see `openapi/control.yaml`)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint

from mockserver.app import state
from mockserver.event_types import COLLECTION as EVENT_TYPES
from mockserver.records import COLLECTION as RECORDS

blueprint = Blueprint("control", __name__, url_prefix="/_mock")


@blueprint.get("/health")
def health() -> dict[str, Any]:
    """Ready: which spec, which mode, how many records."""
    holder = state()
    settings, spec = holder.settings, holder.spec
    auth = "off" if not settings.auth else ("tokens" if settings.tokens else "on")
    health: dict[str, Any] = {
        "status": "ok",
        "spec": {
            "title": spec.title,
            "version": spec.version,
            "sha256": spec.sha256,
            "path": str(spec.path),
            "repairs": list(spec.repairs),
        },
        "mode": "strict" if settings.strict else "lenient",
        "auth": auth,
        "records": len(holder.stores[RECORDS]),
        "eventTypes": len(holder.stores[EVENT_TYPES]),
        "uptimeSeconds": round(time.monotonic() - holder.started, 3),
    }
    if holder.checker is not None:
        health["responseFindings"] = len(holder.checker.findings)
    return health
