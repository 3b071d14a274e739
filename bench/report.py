"""Turning the raw runs into tables: per round, medians over rounds, and the targets."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MOCK, PRISM, SILENT = "mock", "prism", "prism-silent"
TARGET_ORDER = (MOCK, PRISM, SILENT)


def table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 2) -> str:
    """A plain fixed-width table: the first `left` columns left-aligned, the others right."""
    lines = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.ljust(widths[i]) if i < left else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(lines[0]), rule, *(line(r) for r in lines[1:])])


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def ratios(runs: list[dict[str, Any]]) -> dict[tuple[int, str], dict[str, float]]:
    """Per (round, scenario): the mock's req/s over Prism's and over Prism silent's."""
    rps: dict[tuple[int, str, str], float] = {}
    for run in runs:
        if run.get("result"):
            rps[(run["round"], run["scenario"], run["target"])] = run["result"]["rps"]
    found: dict[tuple[int, str], dict[str, float]] = {}
    for (round_, scenario, target), value in rps.items():
        if target != MOCK:
            continue
        for other in (PRISM, SILENT):
            base = rps.get((round_, scenario, other))
            if base:
                found.setdefault((round_, scenario), {})[other] = value / base
    return found


def round_table(runs: list[dict[str, Any]], round_: int) -> str:
    ratio = ratios(runs)
    rows = []
    for run in runs:
        if run["round"] != round_:
            continue
        result = run.get("result")
        if not result:
            rows.append([run["scenario"], run["target"], "error", "", "", "", "", "", ""])
            continue
        r = ratio.get((round_, run["scenario"]), {}) if run["target"] == MOCK else {}
        rows.append(
            [
                run["scenario"],
                run["target"],
                _num(result["rps"]),
                _ms(result["p50_ms"]),
                _ms(result["p99_ms"]),
                f"{run['unexpected']}/{result['requests']}",
                str(sum(result["socket_errors"].values())),
                _ratio(r.get(PRISM)),
                _ratio(r.get(SILENT)),
            ]
        )
    return table(LOAD_COLUMNS, rows)


LOAD_COLUMNS = [
    "scenario",
    "target",
    "req/s",
    "p50 ms",
    "p99 ms",
    "bad/req",
    "sock err",
    "x prism",
    "x silent",
]


@dataclass
class Median:
    scenario: str
    target: str
    rounds: int
    rps: float
    p50_ms: float
    p99_ms: float
    unexpected: int
    requests: int
    socket_errors: dict[str, int]
    x_prism: float | None
    x_silent: float | None


def medians(runs: list[dict[str, Any]]) -> list[Median]:
    """Medians over rounds for each (scenario, target), in the order the runs were made."""
    ratio = ratios(runs)
    keys: list[tuple[str, str]] = []
    for run in runs:
        key = (run["scenario"], run["target"])
        if key not in keys:
            keys.append(key)
    found = []
    for scenario, target in keys:
        done = [
            r for r in runs if r["scenario"] == scenario and r["target"] == target and r["result"]
        ]
        if not done:
            continue
        results = [r["result"] for r in done]
        sockets: dict[str, int] = {}
        for result in results:
            for kind, count in result["socket_errors"].items():
                sockets[kind] = sockets.get(kind, 0) + count
        x: dict[str, float | None] = {PRISM: None, SILENT: None}
        if target == MOCK:
            for other in (PRISM, SILENT):
                values = [
                    ratio[(r["round"], scenario)][other]
                    for r in done
                    if other in ratio.get((r["round"], scenario), {})
                ]
                x[other] = statistics.median(values) if values else None
        found.append(
            Median(
                scenario,
                target,
                len(done),
                statistics.median(r["rps"] for r in results),
                statistics.median(r["p50_ms"] for r in results),
                statistics.median(r["p99_ms"] for r in results),
                sum(r["unexpected"] for r in done),
                sum(r["requests"] for r in results),
                sockets,
                x[PRISM],
                x[SILENT],
            )
        )
    return found


def median_table(found: list[Median]) -> str:
    rows = [
        [
            m.scenario,
            m.target,
            _num(m.rps),
            _ms(m.p50_ms),
            _ms(m.p99_ms),
            f"{m.unexpected}/{m.requests}",
            str(sum(m.socket_errors.values())),
            _ratio(m.x_prism),
            _ratio(m.x_silent),
        ]
        for m in found
    ]
    return table(LOAD_COLUMNS, rows)


@dataclass
class Verdict:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured

    def row(self) -> list[str]:
        state = "n/a" if self.met is None else "met" if self.met else "MISSED"
        return [self.name, self.goal, self.measured, state]


def _pick(found: list[Median], scenario: str, target: str = MOCK) -> Median | None:
    return next((m for m in found if m.scenario == scenario and m.target == target), None)


def _check(
    name: str, goal: str, value: float | None, limit: float, at_most: bool, shown: str
) -> Verdict:
    if value is None:
        return Verdict(name, goal, "not measured", None)
    return Verdict(name, goal, shown, value <= limit if at_most else value >= limit)


def verdicts(found: list[Median], once: dict[str, Any]) -> list[Verdict]:
    """Each target of the issue next to the measured median."""
    out: list[Verdict] = []
    micro = once.get("validation") or {}
    us = (micro.get("mock_check_valid") or {}).get("median_us")
    out.append(
        _check("validation step (1.3 KB record)", "<= 100 us", us, 100, True, f"{us or 0:.1f} us")
    )
    for scenario, label in (("post-valid", "validated POST"), ("post-invalid", "invalid POST")):
        m = _pick(found, scenario)
        out.append(
            _check(
                f"{label}: req/s vs Prism default",
                ">= 2.5x",
                m.x_prism if m else None,
                2.5,
                False,
                f"{_ratio(m.x_prism if m else None)} ({_num(m.rps if m else None)} req/s)",
            )
        )
        out.append(
            _check(
                f"{label}: req/s vs Prism -v silent",
                ">= 1.0x",
                m.x_silent if m else None,
                1.0,
                False,
                _ratio(m.x_silent if m else None),
            )
        )
        out.append(
            _check(
                f"{label}: p99 at 16 connections",
                "<= 15 ms",
                m.p99_ms if m else None,
                15,
                True,
                f"{_ms(m.p99_ms if m else None)} ms",
            )
        )
    valid, invalid = _pick(found, "post-valid"), _pick(found, "post-invalid")
    if valid and invalid:
        share = invalid.rps / valid.rps if valid.rps else None
        out.append(
            _check(
                "invalid POST req/s vs validated POST (mock)",
                ">= 1.0x",
                share,
                1.0,
                False,
                _ratio(share),
            )
        )
    for scenario, label, limit in (
        ("list-eq", "eq(object.id)+order+limit=100, 100k records: p50", 5.0),
        ("list-ilike", "ilike(details,'*x*')+limit=100, 100k records: p50", 150.0),
    ):
        single, loaded = _pick(found, f"{scenario}-1c"), _pick(found, scenario)
        shown = f"{_ms(single.p50_ms if single else None)} ms at 1 conn"
        if loaded:
            shown += f" ({_ms(loaded.p50_ms)} ms at 16)"
        out.append(
            _check(label, f"<= {limit:g} ms", single.p50_ms if single else None, limit, True, shown)
        )
    memory = once.get("memory") or {}
    per = memory.get("bytes_per_record")
    out.append(
        _check(
            "memory per stored 1.3 KB record",
            "<= 2048 B",
            per,
            2048,
            True,
            f"{_num(per, 0)} B (record JSON {memory.get('record_json_bytes', '-')} B)",
        )
    )
    seeding = once.get("seeding_seconds") or []
    seed = statistics.median(seeding) if seeding else None
    out.append(
        _check("--seed-records 100000 ready", "<= 10 s", seed, 10, True, f"{_num(seed, 2)} s")
    )
    startup = once.get("startup") or {}
    for key, label, limit in (
        ("audit", "start-up to first request (audit spec)", 1.5),
        ("marketplace", "start-up to first request (marketplace spec)", 5.0),
    ):
        times = (startup.get(key) or {}).get("seconds") or []
        value = statistics.median(times) if times else None
        out.append(_check(label, f"<= {limit:g} s", value, limit, True, f"{_num(value, 2)} s"))
    return out


def verdict_table(found: list[Verdict]) -> str:
    return table(
        ["target", "goal", "measured (median)", "status"], [v.row() for v in found], left=4
    )
