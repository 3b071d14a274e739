"""`Client`: the control API (`/_mock`) from Python, one method per endpoint, plus helpers that
read like the test's intent (`fail(503, times=2)`, `assert_called(path=..., times=3)`).

Every call works on the client's session (`X-Mock-Session`), so tests sharing one server never
see each other's records, rules or journal. A refusal raises `ControlError`, which carries the
server's problem details.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

import requests

from mockserver.faults.matching import path_pattern

Json = dict[str, Any]


class FaultState(TypedDict):
    """A fault rule as the server holds it."""

    id: str
    rule: Json
    matched: int
    fired: int
    documented: bool
    active: bool


class JournalEntry(TypedDict):
    """One API request in the journal, and what it got."""

    id: int
    time: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    operation: str | None
    valid: bool | None
    violations: dict[str, list[str]]
    warnings: list[str]
    fault: str | None
    status: int
    recordId: str | None
    durationMs: float
    delayMs: float | None
    session: str
    answer: dict[str, Any] | None  # headers, body (its start), bodySize, bodyTruncated


class Matcher(TypedDict, total=False):
    """Which journal entries: all the given conditions hold (`when` as in fault rules)."""

    method: str
    path: str
    operation: str
    status: int
    fault: str
    when: Json


class Health(TypedDict):
    status: str
    spec: Json
    mode: str
    auth: str
    session: str
    store: NotRequired[Json]  # kind (memory, redis), url (its password masked), reachable
    records: NotRequired[int]  # when a behaviour serves records (the built-in one does)
    eventTypes: NotRequired[int]
    faults: int
    journal: int
    uptimeSeconds: float
    operations: NotRequired[dict[str, int]]  # crud, example, generated: what the mock does
    responseFindings: NotRequired[int]
    responseFindingsByKind: NotRequired[dict[str, int]]  # the findings by kind of operation


class ControlError(Exception):
    """The control API refused a call; `problem` is its problem-details body."""

    def __init__(self, method: str, path: str, status: int, problem: Json) -> None:
        self.status = status
        self.problem = problem
        self.errors: dict[str, list[str]] = problem.get("errors") or {}
        detail = problem.get("detail") or problem.get("title") or "refused"
        found = "; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items())
        super().__init__(
            f"{method} {path} -> {status}: {detail}" + (f" ({found})" if found else "")
        )


class Client:
    """The control API of the server at `url` (its root: `http://127.0.0.1:8080`)."""

    def __init__(
        self,
        url: str,
        session: str | None = None,
        timeout: float = 10.0,
        http: requests.Session | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.session = session
        self.admin_token = admin_token
        self.timeout = timeout
        self._http = http or requests.Session()

    @property
    def api_url(self) -> str:
        """The API's base URL for this session (`.../public/v1`), e.g. for
        `MPTClient.from_config`: a client using it needs no `X-Mock-Session` header."""
        if self.session is None:
            return f"{self.url}/public/v1"
        return f"{self.url}/_session/{self.session}/public/v1"

    @property
    def headers(self) -> dict[str, str]:
        """The header that puts a request to the API in this session."""
        return {"X-Mock-Session": self.session} if self.session else {}

    # ------------------------------------------------------------------ endpoints

    def health(self) -> Health:
        result: Health = self._call("GET", "/health")
        return result

    def reset(self) -> Health:
        """Records, rules and journal of the session back to the start-up state."""
        result: Health = self._call("POST", "/reset")
        return result

    def records(self, limit: int | None = None, offset: int | None = None) -> list[Json]:
        params = {k: v for k, v in (("limit", limit), ("offset", offset)) if v is not None}
        data: list[Json] = self._call("GET", "/records", params=params)["data"]
        return data

    def add_records(self, *records: Json) -> list[Json]:
        """Insert records verbatim (any id, timestamp, actor); the stored records."""
        data: list[Json] = self._call("POST", "/records", json=list(records))["data"]
        return data

    def clear_records(self) -> None:
        self._call("DELETE", "/records")

    def faults(self) -> list[FaultState]:
        data: list[FaultState] = self._call("GET", "/faults")["data"]
        return data

    def add_fault(self, **rule: Any) -> FaultState:
        """One rule (the members of a rule as keywords: `status=503, times=2, path=...`)."""
        data: list[FaultState] = self._call("POST", "/faults", json=rule)["data"]
        return data[0]

    def add_faults(self, rules: list[Json]) -> list[FaultState]:
        """Several rules, all or none."""
        data: list[FaultState] = self._call("POST", "/faults", json=rules)["data"]
        return data

    def remove_fault(self, rule_id: str) -> None:
        self._call("DELETE", f"/faults/{rule_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def journal(self) -> list[JournalEntry]:
        """Every journaled request of the session, oldest first (read a page at a time)."""
        data: list[JournalEntry] = []
        while True:
            page = self._call("GET", "/requests", params={"offset": len(data), "limit": 1000})
            data += page["data"]
            if len(page["data"]) < 1000:
                return data

    def count(self, **matcher: Any) -> int:
        """How many journaled requests match (`method`, `path`, `operation`, `status`, `fault`,
        `when`), counted by the server."""
        count: int = self._call("POST", "/requests/count", json=matcher)["count"]
        return count

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def coverage(self) -> Json:
        result: Json = self._call("GET", "/coverage")
        return result

    # ------------------------------------------------------------------ intent

    def fail(self, status: int, **rule: Any) -> FaultState:
        """Answer `status` (with the spec's problem body unless `body=` is given)."""
        return self.add_fault(status=status, **rule)

    def delay(self, ms: float | Json, **rule: Any) -> FaultState:
        """Wait `ms` (or `{"uniform": [a, b]}`, `{"lognormal": {...}}`) before answering."""
        return self.add_fault(delay_ms=ms, **rule)

    def reset_connection(self, **rule: Any) -> FaultState:
        """Reset the connection (TCP RST) instead of answering."""
        return self.add_fault(fault="connection_reset", **rule)

    def close_connection(self, **rule: Any) -> FaultState:
        """Close the connection without a byte of answer."""
        return self.add_fault(fault="empty_response", **rule)

    def send_garbage(self, **rule: Any) -> FaultState:
        """Send bytes that are not HTTP, then close."""
        return self.add_fault(fault="malformed_response", **rule)

    def hang(self, **rule: Any) -> FaultState:
        """Say nothing until the client gives up (its timeout)."""
        return self.add_fault(fault="timeout", **rule)

    def requests(
        self,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        operation: str | None = None,
        fault: str | None = None,
    ) -> list[JournalEntry]:
        """The journaled requests that match all the given conditions (`path` may be a spec
        template such as `/public/v1/audit/records/{id}`)."""
        wanted = _Wanted(method, path, status, operation, fault)
        return [entry for entry in self.journal() if not wanted.misses(entry)]

    def assert_called(
        self,
        method: str | None = None,
        path: str | None = None,
        times: int | None = None,
        status: int | None = None,
        operation: str | None = None,
        fault: str | None = None,
    ) -> list[JournalEntry]:
        """The matching requests; an AssertionError listing the near misses when there are
        none, or not exactly `times`."""
        wanted = _Wanted(method, path, status, operation, fault)
        entries = self.journal()
        found = [entry for entry in entries if not wanted.misses(entry)]
        if (times is None and found) or len(found) == times:
            return found
        expected = "at least once" if times is None else f"{times} time(s)"
        lines = [f"expected {wanted} {expected}; it was called {len(found)} time(s)."]
        raise AssertionError("\n".join(lines + _near_misses(wanted, entries)))

    # ------------------------------------------------------------------ transport

    def _control_headers(self) -> dict[str, str]:
        if self.admin_token is None:
            return self.headers
        return {**self.headers, "Authorization": f"Bearer {self.admin_token}"}

    def _call(self, method: str, path: str, json: Any = None, params: Json | None = None) -> Any:
        answer = self._http.request(
            method,
            f"{self.url}/_mock{path}",
            json=json,
            params=params,
            headers=self._control_headers(),
            timeout=self.timeout,
        )
        if answer.status_code >= 400:
            try:
                problem = answer.json()
            except ValueError:
                problem = {"detail": answer.text[:500]}
            raise ControlError(method, f"/_mock{path}", answer.status_code, problem)
        return answer.json() if answer.content else None


class _Wanted:
    """The conditions of `requests()` and `assert_called()`."""

    def __init__(
        self,
        method: str | None,
        path: str | None,
        status: int | None,
        operation: str | None,
        fault: str | None,
    ) -> None:
        self.method = method.upper() if method else None
        self.path = path
        self._pattern = path_pattern(path) if path else None
        self.status, self.operation, self.fault = status, operation, fault

    def misses(self, entry: JournalEntry) -> list[str]:
        """What of the conditions the entry does not meet (empty: a match)."""
        missed = []
        if self.method and entry["method"] != self.method:
            missed.append(f"method is {entry['method']}, not {self.method}")
        if self._pattern is not None and not self._pattern.match(entry["path"]):
            missed.append(f"path is {entry['path']}, not {self.path}")
        if self.status is not None and entry["status"] != self.status:
            missed.append(f"status is {entry['status']}, not {self.status}")
        if self.operation and entry["operation"] != self.operation:
            missed.append(f"operation is {entry['operation']}, not {self.operation}")
        if self.fault and entry["fault"] != self.fault:
            missed.append(f"fault is {entry['fault']}, not {self.fault}")
        return missed

    def __str__(self) -> str:
        parts = [self.method or "any method", self.path or "any path"]
        if self.status is not None:
            parts.append(f"-> {self.status}")
        if self.operation:
            parts.append(f"({self.operation})")
        if self.fault:
            parts.append(f"[fault {self.fault}]")
        return " ".join(parts)


def _near_misses(wanted: _Wanted, entries: list[JournalEntry]) -> list[str]:
    """The lines naming the ten entries that miss the fewest conditions, and what they miss."""
    near = [(entry, wanted.misses(entry)) for entry in entries]
    near = [item for item in near if item[1]]
    near.sort(key=lambda item: len(item[1]))
    lines = ["near misses (closest first):"] if near else []
    for entry, missed in near[:10]:
        lines.append(f"  #{entry['id']} {_describe(entry)}: {'; '.join(missed)}")
    return lines


def _describe(entry: JournalEntry) -> str:
    query = f"?{entry['query']}" if entry["query"] else ""
    return f"{entry['method']} {entry['path']}{query} -> {entry['status'] or 'no answer'}"
