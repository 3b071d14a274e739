"""The dashboard with a full journal: how long its first page takes to draw.

    .venv/bin/python bench/ui.py [--entries 10000] [--loads 5]

Starts `mockserver` on a free loopback port, fills the default session's journal with
`--entries` requests (a mix of creates, reads, 404s and refused creates), then measures:

* the control API's first page as the dashboard asks for it (`GET /_mock/requests?order=newest
  &limit=50`), and the same page with a filter few entries pass (every entry is looked at);
* in headless Chromium (Selenium, as the tests drive it), the time from navigation to the
  first page of requests drawn (`document.body.dataset.firstPageMs`, which the page sets).

Prints one JSON object on stdout; progress goes to stderr. A figure, not a pass/fail gate.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import start_browser  # noqa: E402  (the tests' own Chromium set-up)

MOCKSERVER = Path(sys.executable).with_name("mockserver")
RECORDS = "/public/v1/audit/records"
AUTH = {"Authorization": "Bearer idt:TKN-1234-5678:secret"}
CREATE = {
    "event": "platform.commerce.order.created",
    "object": {"id": "ORD-1", "objectType": "Order"},
}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(port: int, entries: int) -> subprocess.Popen[bytes]:
    command = [str(MOCKSERVER), "--port", str(port), "--journal-size", str(entries)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/_mock/health", timeout=1).ok:
                return server
        except requests.ConnectionError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("mockserver did not start")


def fill(url: str, entries: int) -> None:
    """`entries` requests on 8 connections, in four kinds."""

    def send(worker: int) -> None:
        with requests.Session() as http:
            for number in range(worker, entries, 8):
                kind = number % 4
                if kind == 0:
                    http.post(url + RECORDS, json=CREATE, headers=AUTH, timeout=10)
                elif kind == 1:
                    http.get(url + RECORDS, params={"limit": 5}, headers=AUTH, timeout=10)
                elif kind == 2:
                    http.get(
                        f"{url}{RECORDS}/AUD-0000-0000-0000-{number % 10000:04d}",
                        headers=AUTH,
                        timeout=10,
                    )
                else:
                    http.post(url + RECORDS, json={"event": number}, headers=AUTH, timeout=10)
                if number % 2000 < 8 and worker == 0:
                    log(f"  {number} requests sent")

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(8)))
    log(f"journal filled: {entries} requests in {time.monotonic() - started:.1f}s")


def api_times(url: str, query: str, rounds: int = 20) -> dict[str, float]:
    took = []
    with requests.Session() as http:
        for _ in range(rounds):
            begun = time.perf_counter()
            answer = http.get(f"{url}/_mock/requests?{query}", timeout=10)
            took.append((time.perf_counter() - begun) * 1000)
            answer.raise_for_status()
    return {"medianMs": round(statistics.median(took), 2), "maxMs": round(max(took), 2)}


def browser_times(url: str, loads: int) -> dict[str, Any]:
    driver = start_browser()
    try:
        drawn = []
        for _ in range(loads):
            driver.get("about:blank")  # each load a new document, not a same-page hash change
            driver.get(f"{url}/_mock/ui#requests")
            deadline = time.monotonic() + 10
            value = None
            while value is None and time.monotonic() < deadline:
                value = driver.execute_script("return document.body.dataset.firstPageMs || null")
                time.sleep(0.02)
            if value is None:
                raise SystemExit("the dashboard drew no page of requests")
            rows = driver.execute_script(
                "return document.querySelectorAll('#requests-table tbody tr').length"
            )
            drawn.append(float(value))
        return {
            "firstPageMedianMs": round(statistics.median(drawn), 1),
            "firstPageMaxMs": round(max(drawn), 1),
            "rowsDrawn": rows,
            "loads": loads,
        }
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(port, args.entries)
    try:
        fill(url, args.entries)
        journal = requests.get(f"{url}/_mock/health", timeout=5).json()["journal"]
        result = {
            "entries": journal,
            "cpus": os.cpu_count(),
            "apiFirstPage": api_times(url, "order=newest&limit=50"),
            "apiFilteredPage": api_times(url, "order=newest&limit=50&status=201&method=POST"),
            "browser": browser_times(url, args.loads),
        }
        print(json.dumps(result, indent=2))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
