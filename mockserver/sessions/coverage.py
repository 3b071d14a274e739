"""Coverage: for each operation of the spec and each status it declares, how often it was
answered, and which faults fired; as JSON, or as JUnit XML for CI (`--coverage-report FILE`).

A client's test suite run against the mock shows which error paths it exercised: a declared
status never answered is a path its tests never took.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import orjson

from mockserver.contract.router import Operation


class Coverage:
    def __init__(self, operations: list[Operation]) -> None:
        self.operations = operations
        self._answers: Counter[tuple[str | None, int]] = Counter()
        self._faults: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, operation: str | None, status: int, fault: str | None, times: int = 1) -> None:
        with self._lock:
            self._answers[(operation, status)] += times
            if fault:
                self._faults[fault] += times

    def report(self) -> dict[str, Any]:
        with self._lock:
            answers, faults = dict(self._answers), dict(self._faults)
        declared_pairs = set()
        operations = []
        for op in self.operations:
            statuses = {}
            for status in op.node.get("responses", {}):
                if str(status).isdigit():
                    statuses[str(status)] = answers.get((op.operation_id, int(status)), 0)
                    declared_pairs.add((op.operation_id, int(status)))
            operations.append(
                {
                    "operation": op.operation_id,
                    "method": op.method,
                    "path": op.template,
                    "statuses": statuses,
                }
            )
        undocumented = [
            {"operation": operation, "status": status, "count": count}
            for (operation, status), count in sorted(answers.items(), key=str)
            if (operation, status) not in declared_pairs
        ]
        fired = [{"id": rule, "fired": count} for rule, count in sorted(faults.items())]
        return {"operations": operations, "undocumented": undocumented, "faults": fired}

    def write(self, path: Path) -> None:
        """The report as JSON (`.json`) or JUnit XML (any other name), written atomically."""
        report = self.report()
        data = (
            orjson.dumps(report, option=orjson.OPT_INDENT_2)
            if path.suffix == ".json"
            else (junit(report))
        )
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(data)
        partial.replace(path)


def junit(report: dict[str, Any]) -> bytes:
    """One test suite per operation, one test case per declared status; a status never
    answered is a skipped test case (the client's tests never took that path)."""
    suites = ElementTree.Element("testsuites", name="audit-api mock coverage")
    for op in report["operations"]:
        statuses = op["statuses"]
        skipped = sum(1 for count in statuses.values() if not count)
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name=f"{op['method']} {op['path']}",
            tests=str(len(statuses)),
            skipped=str(skipped),
            failures="0",
            errors="0",
        )
        for status, count in statuses.items():
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=op["operation"],
                name=f"{status} answered {count} times",
            )
            if not count:
                ElementTree.SubElement(case, "skipped", message=f"status {status} never answered")
    return bytes(ElementTree.tostring(suites, encoding="utf-8", xml_declaration=True))
