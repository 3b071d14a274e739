"""openapi-core is imported on first use, from whichever thread needs it first (a request's, or
the one warming the validators). Its package imports its submodules in a cycle, so threads
importing parts of it at once deadlock and Python raises `_DeadlockError` in one of them
(found in CI: a worker's warming thread logged the traceback). `contract.library.load` imports
it whole under a lock; every lazy import of it calls `load` first."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator

from support import ROOT

# Several threads, each taking one of the server's first uses of openapi-core at once, in a
# process that has not imported it yet.
FIRST_USES = """
import threading
from pathlib import Path

from mockserver.contract import schema_backend, validation
from mockserver.contract.spec import load_spec
from mockserver.faults.checking import RuleBook

spec = load_spec(Path("openapi/audit.yaml"))
assert "openapi_core" not in __import__("sys").modules
uses = [
    validation.Validator(spec).warm,
    schema_backend._format_checker,
    validation._request_class,
    lambda: validation.Validator(spec).factory,
]
barrier = threading.Barrier(len(uses))
failed = []


def run(use):
    barrier.wait()
    try:
        use()
    except Exception as exc:
        failed.append(repr(exc))


threads = [threading.Thread(target=run, args=(use,)) for use in uses]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(failed)
"""


def test_threads_taking_openapi_core_at_once_do_not_deadlock() -> None:
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-c", FIRST_USES],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "[]\n", done.stdout


def _lazy_imports(tree: ast.AST) -> Iterator[tuple[ast.FunctionDef, ast.ImportFrom]]:
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    ("openapi_core", "mockserver.contract.core_backend")
                ):
                    yield function, node  # type: ignore[misc]


def _loads_before(function: ast.FunctionDef, line: int) -> bool:
    return any(
        isinstance(node, ast.Call)
        and ast.unparse(node.func) == "library.load"
        and node.lineno < line
        for node in ast.walk(function)
    )


def test_every_lazy_import_of_openapi_core_loads_it_whole_first() -> None:
    missing = []
    for path in sorted((ROOT / "mockserver").rglob("*.py")):
        if path.name == "library.py":
            continue
        for function, node in _lazy_imports(ast.parse(path.read_text())):
            if not _loads_before(function, node.lineno):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {function.name}")
    assert not missing, "lazy imports of openapi-core without library.load() first:\n" + "\n".join(
        missing
    )


def test_the_check_finds_an_import_without_load() -> None:
    tree = ast.parse("def f():\n    from openapi_core import OpenAPI\n")
    (function, node), *_ = list(_lazy_imports(tree))
    assert not _loads_before(function, node.lineno)
    tree = ast.parse("def f():\n    library.load()\n    from openapi_core import OpenAPI\n")
    (function, node), *_ = list(_lazy_imports(tree))
    assert _loads_before(function, node.lineno)
