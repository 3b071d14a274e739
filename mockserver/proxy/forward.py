"""Forwarding an API request to the upstream (`--upstream URL`), after the mock's front
(session, journal, fault rules and `Prefer` have had their say).

The request is checked against the spec first: one that breaks it is answered as the mock
answers it (400, 404, 405...) without reaching the upstream, unless `--forward-invalid`
(then it is forwarded and flagged). The upstream's answer goes to the caller unchanged, status,
headers and body; it is checked against the spec on the way, and what breaks it is flagged in
the journal entry and the log line and counted in the drift report. A streamed answer
(`MPT-Streaming`) is passed on as it comes and checked item by item. An upstream that fails
is a 502 problem naming it, one that does not answer in time a 504.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request

from mockserver import log
from mockserver.contract.response_check import Finding, ResponseChecker
from mockserver.contract.router import Operation
from mockserver.faults import apply
from mockserver.http.answers import finish, problem_answer
from mockserver.http.state import RequestState, of
from mockserver.problems import Problem
from mockserver.proxy import drift as drift_report
from mockserver.proxy import har
from mockserver.proxy.drift import Drift
from mockserver.query.params import decode
from mockserver.resources.streaming import chunked
from mockserver.respond import Environ, StartResponse, respond_problem
from mockserver.settings import Settings
from mockserver.state import State

# hop-by-hop headers (RFC 9110 7.6.1), and what only the mock reads
_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
_NOT_FORWARDED = _HOP | {"host", "x-mock-session", "prefer", "proxy-authorization"}
_CHUNK = 64 * 1024
PROXY = "mockserver.proxy"  # the app's extension that holds the Proxy


class UpstreamError(Exception):
    """`--upstream` or `--upstream-ca` cannot be used; the message names the option."""


class Proxy:
    """The upstream, the connections to it, and what is kept of its answers."""

    def __init__(self, settings: Settings, checker: ResponseChecker) -> None:
        import urllib3  # loaded with --upstream only (a tenth of a second)

        assert settings.upstream is not None
        self.url = _base_url(settings.upstream)
        self.forward_invalid = settings.forward_invalid
        self.checker = checker
        self.timeout = urllib3.Timeout(
            connect=settings.upstream_timeout, read=settings.upstream_timeout
        )
        self.pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=max(settings.threads, 1),
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(_ca(settings.upstream_ca)) if settings.upstream_ca else None,
            retries=False,
        )
        self.drift = Drift(self.url, settings.drift_report)
        self.recorder = har.Recorder(settings.record) if settings.record else None

    def serve(
        self, holder: State, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        """An API request, answered by the upstream (or refused before it)."""
        req = Request(environ, populate_request=False)
        request = of(environ)
        try:
            operation = self._checked(holder, req, request)
        except Problem as problem:
            response = finish(holder, req, problem_answer(holder, req, problem))
            answered: Iterable[bytes] = response(environ, start_response)
            return answered
        return self._forward(environ, start_response, request, operation)

    def _checked(self, holder: State, req: Request, request: RequestState) -> Operation | None:
        """The request's operation, the request checked against the spec (a Problem when it
        breaks it, unless `--forward-invalid`: then flagged in the trail)."""
        try:
            match = holder.router.match(req.method, req.path)
            request.trail.operation = match.operation
            query = decode(req.environ.get("QUERY_STRING", "").encode("latin-1").decode())
            holder.validator.check(req, match, query.params, request.body)
        except Problem as problem:
            if not self.forward_invalid:
                raise
            request.trail.violations = problem.errors or {"$": [str(problem)]}
            request.trail.extras["forwardedInvalid"] = str(problem.errors or problem)
        return request.trail.operation

    def _forward(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestState,
        operation: Operation | None,
    ) -> Iterable[bytes]:
        import urllib3  # loaded with --upstream only (a tenth of a second)

        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        url = self.url + path + (f"?{query}" if query else "")
        sent = _request_headers(environ)
        body = request.body or b""
        started, clock = time.time(), time.perf_counter()
        try:
            answer = self.pool.urlopen(
                method,
                url,
                body=body or None,
                headers=dict(sent),
                preload_content=False,
                decode_content=False,
                redirect=False,
                timeout=self.timeout,
            )
        except urllib3.exceptions.HTTPError as error:
            return self._failed(environ, start_response, request, error, (started, sent))
        exchange = _Exchange(self, request, operation, method, path, query, sent, body, started)
        exchange.clock = clock  # the exchange's time includes the connection's
        return exchange.answer(answer, environ, start_response)

    def _failed(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestState,
        error: Exception,
        sent: tuple[float, list[tuple[str, str]]],
    ) -> list[bytes]:
        problem = failure(self.url, error)
        request.trail.status = problem.status
        request.trail.extras["error"] = problem.detail
        request.trail.extras["upstream"] = 0
        if self.recorder is not None:
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
            query = environ.get("QUERY_STRING", "")
            started, headers = sent
            request_part = har.request_part(
                method, self.url + path, query, headers, request.body or b""
            )
            millis = (time.time() - started) * 1000
            response_part = har.response_part(0, "", [], b"", problem.detail)
            self.recorder.add(har.entry(started, millis, request_part, response_part))
        return respond_problem(environ, start_response, problem)

    def write_drift_report(self) -> None:
        """At exit, served in-process: the report from this process's own observations."""
        path = self.drift.report_path
        if path is None or not drift_report.sidecar(path).exists():
            return
        self.drift.close()
        drift_report.write_report(self.drift.report(), path)
        drift_report.sidecar(path).unlink(missing_ok=True)
        log.logger.info("drift report written to %s", path)


class _Exchange:
    """One forwarded request and its upstream answer, as it is passed on."""

    def __init__(
        self,
        proxy: Proxy,
        request: RequestState,
        operation: Operation | None,
        method: str,
        path: str,
        query: str,
        sent: list[tuple[str, str]],
        body: bytes,
        started: float,
    ) -> None:
        self.proxy, self.request, self.operation = proxy, request, operation
        self.method, self.path, self.query, self.sent, self.body = method, path, query, sent, body
        self.started, self.clock = started, time.perf_counter()
        self.status, self.reason, self.headers = 0, "", Headers()
        self.findings: list[Finding] = []

    def answer(
        self, answer: Any, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        import urllib3  # loaded with --upstream only (a tenth of a second)

        self.status, self.reason = int(answer.status), answer.reason or ""
        self.headers = Headers([(k, v) for k, v in answer.headers.items()])
        passed = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP]
        code = self._rule_status(passed)
        self.request.trail.status = code
        self.request.trail.extras["upstream"] = self.status
        if _streamed(self.headers):
            if "uwsgi.version" in environ and environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
                start_response(f"{code} {self.reason}", [*passed, ("Transfer-Encoding", "chunked")])
                return chunked(self._stream(answer))
            start_response(f"{code} {self.reason}", passed)
            return self._stream(answer)
        try:
            data = answer.read()
        except urllib3.exceptions.HTTPError as error:
            answer.release_conn()
            return self.proxy._failed(
                environ, start_response, self.request, error, (self.started, self.sent)
            )
        answer.release_conn()
        self.findings = self._check(self.headers, _decoded(self.headers, data))
        self._flag()
        self._done(data, None)
        bodiless = self.method == "HEAD" or code in (204, 304)
        length = [] if bodiless and not data else [("Content-Length", str(len(data)))]
        start_response(f"{code} {self.reason}", [*passed, *length])
        return [data]

    def _rule_status(self, passed: list[tuple[str, str]]) -> int:
        """A rule's status (and headers) on a normal answer, as on the mock's own."""
        if self.request.action is None:
            return self.status
        extra = Headers()
        code = apply.answered(self.request.action, self.status, extra)
        passed.extend(extra.items())
        return code

    def _stream(self, answer: Any) -> Iterator[bytes]:
        """The upstream's stream passed on as it comes, each JSON line checked as it ends."""
        import urllib3  # loaded with --upstream only (a tenth of a second)

        jsonl = "jsonl" in self.headers.get("Content-Type", "")
        keep = self.proxy.recorder is not None or not jsonl  # to record, or to check whole
        kept: list[bytes] = []
        size, pending, number, error = 0, b"", 0, None
        try:
            for chunk in answer.stream(_CHUNK, decode_content=False):
                yield chunk
                if keep and size < har.MAX_TEXT:
                    kept.append(chunk)
                size += len(chunk)
                if jsonl:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        number = self._item(line, number)
        except urllib3.exceptions.HTTPError as cut:
            error = f"the upstream cut the stream: {cut}"
            self.request.trail.extras["error"] = error
        finally:
            answer.release_conn()
            whole = b"".join(kept)
            if jsonl:
                self._item(pending, number)
            elif error is None:
                self.findings = self._check(self.headers, whole)
            self._flag()
            if self.findings:
                log.logger.warning(
                    "upstream stream does not conform to the spec: %s %s: %s",
                    self.method,
                    self.path,
                    self.request.trail.extras["drift"],
                )
            self._done(whole, error)

    def _item(self, line: bytes, number: int) -> int:
        if not line.strip():
            return number
        media = Headers({"Content-Type": self.headers.get("Content-Type", "")})
        for found in self._check(media, line):
            field = f"[{number}]" + ("" if found.field == "$" else f".{found.field}")
            self.findings.append(
                Finding(
                    found.kind,
                    found.method,
                    found.path,
                    found.status,
                    found.message,
                    field,
                    found.expected,
                    found.found,
                )
            )
        return number + 1

    def _check(self, headers: Headers, body: bytes) -> list[Finding]:
        return self.proxy.checker.check(
            self.method, self.path, self.status, headers, body, keep=False
        )

    def _flag(self) -> None:
        if self.findings:
            self.request.trail.extras["drift"] = [
                f"{f.field}: expected {f.expected}, found {f.found}" for f in self.findings
            ]

    def _done(self, body: bytes, error: str | None) -> None:
        """Counted for the drift report, and recorded."""
        proxy = self.proxy
        template = self.operation.template if self.operation else self.path
        name = self.operation.operation_id if self.operation else None
        proxy.drift.observe(
            drift_report.observation(name, self.method, template, self.status, self.findings, body)
        )
        if proxy.recorder is not None:
            millis = (time.perf_counter() - self.clock) * 1000
            request = har.request_part(
                self.method, proxy.url + self.path, self.query, self.sent, self.body
            )
            response = har.response_part(
                self.status, self.reason, list(self.headers.items()), body, error
            )
            proxy.recorder.add(har.entry(self.started, millis, request, response))


def failure(url: str, error: Exception) -> Problem:
    """The problem for an upstream that failed (502) or did not answer in time (504)."""
    import urllib3  # loaded with --upstream only (a tenth of a second)

    reason = getattr(error, "reason", None) or error
    refused = isinstance(reason, urllib3.exceptions.NewConnectionError)  # a ConnectTimeoutError
    if not refused and isinstance(reason, urllib3.exceptions.TimeoutError):
        return Problem(504, f"The upstream {url} did not answer in time.")
    return Problem(502, f"The upstream {url} failed: {type(reason).__name__}: {reason}.")


def _request_headers(environ: Environ) -> list[tuple[str, str]]:
    """The caller's headers as they came (Authorization too), less the hop-by-hop ones and
    what only the mock reads."""
    found = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").title()
        else:
            continue
        if name.lower() not in _NOT_FORWARDED and value != "":
            found.append((name, value))
    return found


def _streamed(headers: Headers) -> bool:
    return headers.get("MPT-Streaming", "").strip().lower() == "true" or (
        "Content-Length" not in headers and "chunked" in headers.get("Transfer-Encoding", "")
    )


def _decoded(headers: Headers, data: bytes) -> bytes:
    """The body as the spec describes it (a gzip or deflate encoding undone, for the check)."""
    if headers.get("Content-Encoding", "").lower() in ("gzip", "deflate") and data:
        try:
            return zlib.decompress(data, 47)
        except zlib.error:
            return data
    return data


def _base_url(given: str) -> str:
    parts = urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamError(f"--upstream {given}: not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise UpstreamError(f"--upstream {given}: a base URL takes no query or fragment")
    return given.rstrip("/")


def _ca(path: Path) -> Path:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UpstreamError(f"--upstream-ca {path}: cannot read it: {exc.strerror}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise UpstreamError(f"--upstream-ca {path}: no PEM certificate in it")
    return path
