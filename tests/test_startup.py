"""Start-up loads only what serving needs: openapi-core (with openapi-spec-validator, pydantic
and jsonschema, about half of the import's CPU) is loaded by the first request that needs it,
not to start or to answer the health check. The figures are bench/spec_startup.py's."""

from __future__ import annotations

import json
import subprocess
import sys

from support import MARKETPLACE_SPEC, reference

HEAVY = ("openapi_core", "openapi_spec_validator", "pydantic", "jsonschema")

_SCRIPT = """
import json, sys
from pathlib import Path
from mockserver import Settings, create_app
heavy = %r
loaded = lambda: [m for m in heavy if m in sys.modules]
app = create_app(Settings(spec=Path(sys.argv[1]), check_responses=True))
api = app.test_client()
found = {"built": loaded(), "health": [api.get("/_mock/health").status_code, *loaded()]}
auth = {"Authorization": "Bearer idt:TKN-1234-5678:secret"}
bad = api.post(sys.argv[2], headers=auth, json={"name": 5})
found["refused"] = [bad.status_code, sorted(bad.get_json().get("errors", {})), *loaded()]
found["findings"] = len(app.extensions["mockserver"].checker.findings)
print(json.dumps(found))
"""


def _start(spec: str, path: str) -> dict[str, list[object]]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT % (HEAVY,), spec, path],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, list[object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_the_platform_document_starts_and_answers_health_without_openapi_core():
    found = _start(str(reference(MARKETPLACE_SPEC)), "/public/v1/accounts/sellers")
    assert found["built"] == []
    assert found["health"] == [200]  # the health check's own header is pre-checked
    status, errors, *loaded = found["refused"]
    assert status == 400
    assert "name" in errors  # openapi-core, loaded now, explains the refusal
    assert "openapi_core" in loaded
    assert found["findings"] == 0
