"""`mockserver diff FILE.har`: a recording's requests replayed, in order, against a fresh mock
(in-process, with the server's own options), and every exchange whose answer differs
reported: as text for people, JSON or JUnit XML for CI. Exit 1 when one differs.

Exchanges the upstream never answered (status 0: it failed or timed out) are skipped. Each
replayed write starts in a millisecond of its own: records made by successive requests carry
distinct timestamps, in their order, however fast the replay runs (timestamps have millisecond
precision, and equal ones keep the insertion order, so `order=-timestamp` would otherwise
depend on the replay's speed).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import orjson
from flask import Flask

from mockserver import log
from mockserver.app import create_app
from mockserver.control.door import SAFE
from mockserver.proxy.compare import Answer, Difference, Ids, compare
from mockserver.proxy.har import HarError, load
from mockserver.settings import SettingsError, parser, settings_from

_NOT_SENT = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


@dataclasses.dataclass
class Exchange:
    number: int
    method: str
    target: str
    differences: list[Difference]

    def as_json(self) -> dict[str, Any]:
        return {
            "exchange": self.number,
            "method": self.method,
            "target": self.target,
            "differences": [d.as_json() for d in self.differences],
        }


@dataclasses.dataclass
class Outcome:
    exchanges: list[Exchange]
    skipped: int

    @property
    def differing(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.differences]

    def as_json(self) -> dict[str, Any]:
        return {
            "exchanges": len(self.exchanges),
            "differing": len(self.differing),
            "skipped": self.skipped,
            "differences": [e.as_json() for e in self.differing],
        }


def command(prog: str = "mockserver diff") -> argparse.ArgumentParser:
    """The server's options, and the diff's own."""
    p = parser()
    p.prog = prog
    p.description = (
        "Replay a HAR recording's requests, in order, against a fresh mock (the server's "
        "options apply) and report each exchange whose answer differs; exit 1 if one does."
    )
    p.add_argument("har", type=Path, metavar="FILE.har", help="the recording (--record)")
    p.add_argument("--format", choices=("text", "json", "junit"), default="text")
    p.add_argument("--output", type=Path, metavar="FILE", help="write the report to FILE")
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="FIELD",
        help="a member (name or dotted path, e.g. actor or $meta.pagination.total) or header "
        "not compared; repeat for more",
    )
    p.add_argument(
        "--token",
        help="the bearer token replayed requests carry (the recording's are masked)",
    )
    return p


def main(argv: Sequence[str]) -> int:
    p = command()
    try:
        args = p.parse_args(argv)
        given = settings_from(args)
    except SettingsError as exc:  # one line, naming the flag or variable
        print(f"mockserver diff: error: {exc} (see mockserver diff --help)", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    settings = dataclasses.replace(
        given, upstream=None, record=None, drift_report=None, state_file=None
    )
    log.configure(settings.log_format, "warning")
    try:
        entries = load(args.har)
        app = create_app(settings)
    except HarError as exc:
        print(f"mockserver diff: error: {exc}", file=sys.stderr)
        return 2
    ignored = frozenset(f.lower() if f.lower().startswith("mpt-") else f for f in args.ignore)
    outcome = replay(app, entries, ignored, args.token)
    report = _formatted(outcome, args.format)
    if args.output is not None:
        args.output.write_bytes(report)
    else:
        sys.stdout.write(report.decode())
    return 1 if outcome.differing else 0


def replay(
    app: Flask, entries: list[dict[str, Any]], ignored: frozenset[str], token: str | None
) -> Outcome:
    client = app.test_client()
    ids = Ids()
    exchanges, skipped = [], 0
    written = -1  # the millisecond the last write ended in
    for number, entry in enumerate(entries, 1):
        request, response = entry.get("request") or {}, entry.get("response") or {}
        if not response.get("status"):
            skipped += 1
            continue
        method = str(request.get("method", "GET"))
        url = urlsplit(ids.replace(str(request.get("url", "/"))))
        headers = _sent(request, token)
        body = ids.replace(str((request.get("postData") or {}).get("text") or ""))
        writes = method not in SAFE
        if writes:
            _after(written)
        got = client.open(
            url.path, method=method, query_string=url.query, headers=headers, data=body.encode()
        )
        if writes:
            written = _millisecond()
        mock = Answer(got.status_code, {k.lower(): v for k, v in got.headers}, got.get_data())
        found = compare(_recorded(response), mock, ids, ignored)
        target = url.path + (f"?{url.query}" if url.query else "")
        exchanges.append(Exchange(number, method, target, found))
    return Outcome(exchanges, skipped)


def _millisecond() -> int:
    return time.time_ns() // 1_000_000


def _after(millisecond: int) -> None:
    """Wait until the clock is past `millisecond`: at most a millisecond, and never more than
    a few should the clock be set back meanwhile."""
    give_up = time.monotonic() + 0.005
    while _millisecond() <= millisecond and time.monotonic() < give_up:
        time.sleep(0.0002)


def _sent(request: dict[str, Any], token: str | None) -> list[tuple[str, str]]:
    headers = []
    for header in request.get("headers") or []:
        name, value = str(header.get("name", "")), str(header.get("value", ""))
        if name.lower() in _NOT_SENT or name.startswith(":"):
            continue
        if name.lower() == "authorization" and token is not None:
            value = f"Bearer {token}"
        headers.append((name, value))
    return headers


def _recorded(response: dict[str, Any]) -> Answer:
    headers = {str(h.get("name", "")).lower(): str(h.get("value", "")) for h in response["headers"]}
    text = str((response.get("content") or {}).get("text") or "")
    return Answer(int(response["status"]), headers, text.encode())


def _formatted(outcome: Outcome, form: str) -> bytes:
    if form == "json":
        return orjson.dumps(outcome.as_json(), option=orjson.OPT_INDENT_2) + b"\n"
    if form == "junit":
        return junit(outcome)
    return text(outcome).encode()


def text(outcome: Outcome) -> str:
    differing = outcome.differing
    lines = [
        f"{len(differing)} of {len(outcome.exchanges)} exchanges differ"
        + (f" ({outcome.skipped} skipped: the upstream did not answer)" if outcome.skipped else "")
    ]
    for exchange in differing:
        lines.append(f"#{exchange.number} {exchange.method} {exchange.target}")
        lines.extend(f"  {difference}" for difference in exchange.differences)
    return "\n".join(lines) + "\n"


def junit(outcome: Outcome) -> bytes:
    """One test case per replayed exchange, failing when its answer differs."""
    suites = ElementTree.Element("testsuites", name="audit-api mock fidelity")
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name="mockserver diff",
        tests=str(len(outcome.exchanges) + outcome.skipped),
        failures=str(len(outcome.differing)),
        errors="0",
        skipped=str(outcome.skipped),
    )
    for exchange in outcome.exchanges:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname="exchange",
            name=f"#{exchange.number} {exchange.method} {exchange.target}",
        )
        if exchange.differences:
            shown = [str(d) for d in exchange.differences]
            failure = ElementTree.SubElement(case, "failure", message=shown[0])
            failure.text = "\n".join(shown)
    return bytes(ElementTree.tostring(suites, encoding="utf-8", xml_declaration=True))
