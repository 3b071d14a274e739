"""Python bytecodes one GET by id runs, per function, through the whole WSGI stack as the
server calls it (`Flask.__call__`, `serving.stop.InFlight`, the front, the lane), logging on as
the command sets it: this checkout against an earlier revision.

    .venv/bin/python bench/bytecodes.py [--baseline REV] [--calls N] [--top K]

Each tree runs in a fresh interpreter (`PYTHONHASHSEED=0`, the baseline checked out under
bench/.tools as `bench/gate.py` does): the app built with 1 000 seeded records, the environ
uWSGI builds for wrk's GET (`bench/get.lua`), 300 calls of warm-up, then N calls counted with
`sys.monitoring`. The log writer thread's wake-ups (they follow the wall time, not the
requests) are left out of the totals. Prints the totals and the functions that changed most.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
NOISE = ("threading.py:", "_BatchHandler._write_forever", "_BatchHandler.flush", "_Stderr.")
ENVIRON = {  # what uWSGI's HTTP/1.1 socket hands the app for wrk's GET (less wsgi.*)
    "HTTP_AUTHORIZATION": "Bearer idt:TKN-1234-5678:secret",
    "HTTP_HOST": "127.0.0.1:8080",
    "QUERY_STRING": "",
    "REMOTE_ADDR": "127.0.0.1",
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "SERVER_NAME": "vm",
    "SERVER_PORT": "8080",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.multiprocess": False,
    "wsgi.multithread": True,
    "wsgi.run_once": False,
    "wsgi.url_scheme": "http",
    "wsgi.version": (1, 0),
}


def _drive(tree: Path, calls: int) -> dict[str, float]:
    """In the measured interpreter: bytecodes per call, by `file:function`."""
    sys.path.insert(0, str(tree))
    import gc

    from mockserver import log
    from mockserver.app import create_app
    from mockserver.serving.stop import InFlight
    from mockserver.settings import Settings

    log.configure("text", "info")
    log._Stderr.stream = open(os.devnull, "w")  # type: ignore[assignment]  # noqa: SIM115
    app = create_app(Settings(seed_records=1000, faker_seed=1))
    app.wsgi_app = InFlight(app.wsgi_app)  # type: ignore[method-assign]
    gc.collect()
    gc.freeze()

    def call(path: str, query: str = "") -> bytes:
        environ: dict[str, Any] = {**ENVIRON, "PATH_INFO": path, "QUERY_STRING": query}
        environ["REQUEST_URI"] = path + (f"?{query}" if query else "")
        environ["wsgi.input"], environ["wsgi.errors"] = io.BytesIO(b""), sys.stderr
        answer = app(environ, lambda status, headers, *rest: None)
        body = b"".join(answer)
        answer.close()  # type: ignore[attr-defined]
        return body

    records = "/public/v1/audit/records"
    path = f"{records}/{json.loads(call(records, 'limit=1'))['data'][0]['id']}"
    for _ in range(300):
        call(path)
    counts: collections.Counter[Any] = collections.Counter()
    monitoring = sys.monitoring
    monitoring.use_tool_id(3, "bytecodes")
    monitoring.register_callback(
        3, monitoring.events.INSTRUCTION, lambda code, offset: counts.update((code,))
    )
    monitoring.set_events(3, monitoring.events.INSTRUCTION)
    for _ in range(calls):
        call(path)
    log.flush()
    monitoring.set_events(3, 0)
    found: collections.Counter[str] = collections.Counter()
    for code, count in counts.items():
        name = re.sub(r"^.*site-packages/", "", code.co_filename)
        name = re.sub(r"^.*?/mockserver/", "mockserver/", name)
        found[f"{name}:{code.co_qualname}"] += count / calls
    return dict(found)


def _count(tree: Path, calls: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--inner", str(tree), str(calls)]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree)}
    env.pop("MOCKSERVER_STORE", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree, check=True)
    found: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default="HEAD~1")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--inner", nargs=2, metavar=("TREE", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(_drive(Path(args.inner[0]), int(args.inner[1]))))
        return 0
    sys.path.insert(0, str(BENCH))
    import gate
    import targets

    before = _count(gate.worktree(args.baseline), args.calls)
    after = _count(targets.ROOT, args.calls)
    total = [
        sum(v for k, v in n.items() if not any(part in k for part in NOISE))
        for n in (before, after)
    ]
    changed = sorted(
        set(before) | set(after), key=lambda k: -abs(after.get(k, 0) - before.get(k, 0))
    )
    for key in changed[: args.top]:
        was, now = before.get(key, 0.0), after.get(key, 0.0)
        if abs(now - was) >= 1:
            print(f"{was:8.0f} {now:8.0f} {now - was:+8.0f}  {key}")
    print(
        f"bytecodes per GET by id (request thread): {args.baseline} {total[0]:,.0f}, "
        f"this checkout {total[1]:,.0f} ({total[1] / total[0]:.3f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
