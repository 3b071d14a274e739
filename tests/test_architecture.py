"""The package's architecture holds: no import cycle, each layer imports only the layers below
it, the public API is light, and the seams are real (fault kinds as the control spec lists
them, behaviours and the storage backend plugged into `create_app`)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from support import AUTH, EVENT_TYPES, RECORDS, ROOT, new_record

from mockserver import Behaviour, Settings, create_app
from mockserver.auth.identity import Identity
from mockserver.faults.kinds import CONNECTION_FAULTS, STREAM_FAULTS
from mockserver.storage import make_backend

PACKAGE = ROOT / "mockserver"

# From the ground up; a module may import its own layer and those below it.
LAYERS: list[tuple[str, ...]] = [
    ("codec", "documents", "log", "masking", "problems", "respond", "settings", "sockets"),
    ("query", "contract", "auth"),
    ("faults", "storage"),
    ("sessions", "resources"),
    ("state",),
    ("http", "proxy"),
    ("control",),
    ("app",),
    ("serving", "wsgi", "__main__"),
    ("testing",),
    ("__init__",),
]
HEAVY = ("flask", "werkzeug", "openapi_core", "jsonschema_rs", "faker", "pyuwsgi", "uwsgi")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(path: Path) -> Iterator[str]:
    """Every module of ours that `path` imports, anywhere in it (functions and
    `TYPE_CHECKING` blocks included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                if child in MODULES:
                    yield child
                elif node.module in MODULES:
                    yield node.module


GRAPH = {name: sorted(set(imported(path)) - {name}) for name, path in MODULES.items()}


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    for number, names in enumerate(LAYERS):
        if key in names:
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_the_walk_sees_the_imports() -> None:
    assert "mockserver.contract.router" in GRAPH["mockserver.http.lane"]
    assert "mockserver.app" in GRAPH["mockserver.wsgi"]  # inside a function
    assert "mockserver.testing.client" in GRAPH["mockserver"]  # under TYPE_CHECKING


def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_each_layer_imports_only_the_layers_below() -> None:
    upward = [
        f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if target != "mockserver" and layer(target) > layer(module)
    ]
    assert upward == []


def test_foundations_import_no_other_layer() -> None:
    assert all(
        layer(target) == 0 for module in GRAPH if layer(module) == 0 for target in GRAPH[module]
    )


def test_the_public_api_is_light() -> None:
    """`import mockserver`, the pytest plugin and `mockserver.Client` load no web framework,
    validator, Faker or uWSGI until a server is made."""
    code = (
        "import sys, mockserver, mockserver.testing.plugin; mockserver.Client; "
        "mockserver.ControlError; mockserver.Settings; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
    made = "import sys, mockserver; mockserver.create_app(); print('flask' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", made], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


def test_every_public_name_is_there() -> None:
    import mockserver

    for name in mockserver.__all__:
        assert getattr(mockserver, name) is not None


def test_the_fault_kinds_are_those_the_control_spec_lists() -> None:
    control = yaml.safe_load((ROOT / "openapi" / "control.yaml").read_text())
    schemas = control["components"]["schemas"]
    assert schemas["Rule"]["properties"]["fault"]["enum"] == list(CONNECTION_FAULTS)
    assert list(schemas["StreamFault"]["properties"]) == list(STREAM_FAULTS)


class Stamped(Behaviour):
    """A behaviour of a test's own: records get a `stamp` from the server."""

    label = "records"
    server_fields = ("id", "stamp")

    def created(self, body: dict[str, Any], item_id: str, identity: Identity) -> dict[str, Any]:
        return {"id": item_id, "stamp": "made by Stamped", **body}


def test_behaviours_plug_into_create_app() -> None:
    api = create_app(Settings(), behaviours={RECORDS: Stamped}).test_client()
    created = api.post(RECORDS, json=new_record(stamp="mine"), headers=AUTH)
    assert created.status_code == 201
    assert created.json["stamp"] == "made by Stamped"
    assert "actor" not in created.json  # RecordBehaviour is not in use
    health = api.get("/_mock/health").json
    assert health["records"] == 1
    assert "eventTypes" not in health  # no behaviour labels that collection
    assert api.get(EVENT_TYPES, headers=AUTH).json["data"] == []  # nothing seeded it


def test_the_start_up_storage_plugs_into_create_app() -> None:
    backend = make_backend("memory", 10)
    backend.open(RECORDS).insert({"id": "AUD-0000-0000-0000-0042", "event": "a.b.c.d"})
    api = create_app(Settings(), backend=backend).test_client()
    listed = api.get(RECORDS, headers=AUTH).json
    assert [record["id"] for record in listed["data"]] == ["AUD-0000-0000-0000-0042"]
    session = {**AUTH, "X-Mock-Session": "another"}
    assert api.get(RECORDS, headers=session).json["$meta"]["pagination"]["total"] == 1


def test_without_a_records_behaviour_the_control_api_says_so() -> None:
    app = create_app(Settings(check_responses=True), behaviours={})
    api = app.test_client()
    refused = api.get("/_mock/records")
    assert refused.status_code == 404
    assert refused.json["detail"] == "This server has no collection of records."
    health = api.get("/_mock/health").json
    assert "records" not in health
    assert "eventTypes" not in health
    assert app.extensions["mockserver"].checker.findings == []
