"""HTTP/1.1 on the connections uWSGI accepts: its raw socket hands each connection to
`serve_connection` (`--raw-socket`, `--python-raw`), which reads the requests with llhttp
(httptools), gives each to the WSGI app in turn, and writes the answers.

uWSGI keeps what it does well (the listening socket, the worker processes and threads, the
signals and reloads); the HTTP parsing is ours, because uWSGI's HTTP socket cannot answer what
issue 13 asks: a request head past its 64 KiB buffer (a 128 KB URL) was a TCP reset, a chunk
extension a 400, pipelined requests after the first were dropped. Here:

- a request head is read up to HEAD_LIMIT bytes, and the app's own checks (`http.wire`:
  414 past 32 KiB of target, 431 past 100 fields or 32 KiB of them) answer those within it;
  past it, this module answers 414 or 431 itself and closes the connection;
- bodies are read whole before the app is called, de-chunked (extensions and trailers as
  HTTP/1.1 allows), up to the app's `--max-body-bytes`: past it the app answers 413 unread
  and the connection is closed;
- pipelined requests are answered in order; `Expect: 100-continue` gets its `100 Continue`;
- a request line in a version other than 1.0 and 1.1, or one llhttp cannot read, is
  answered (505, 400) and the connection closed.

The WSGI environ is the one uWSGI's HTTP socket made (PATH_INFO percent-decoded, REQUEST_URI
as sent, `uwsgi.version`), so the app and connection faults (`uwsgi.connection_fd()`) work
as before; the answer is written as the app framed it (`Content-Length`, or its own chunks),
the connection kept alive when HTTP/1.1 allows it.
"""

from __future__ import annotations

import io
import re
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools

from mockserver import codec, log, sockets
from mockserver.faults import connection
from mockserver.http import wire
from mockserver.problems import Problem, invalid, status_line, trace_id
from mockserver.respond import PROBLEM_JSON, Environ
from mockserver.serving import balance, loop
from mockserver.serving.balance import Place
from mockserver.serving.stop import RECEIVING

HEAD_LIMIT = 256 * 1024  # bytes of a request line and header fields read at most
IDLE_TIMEOUT = 4.0  # seconds a connection may stay silent (uWSGI's --socket-timeout)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_READ = 65536
_NO_BODY = (204, 304)

App = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


class _Refused(Exception):
    """A request this module answers itself (a Problem), then closes the connection."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


class _Stop(Exception):
    """Parsing stops here: the connection ends once the requests read are answered."""


class _Request:
    """What the parser gathered of one request."""

    __slots__ = ("body", "done", "head", "headers", "method", "over", "size", "url", "version")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0  # body bytes
        self.head = 0  # request line and header bytes
        self.method = ""
        self.version = ""
        self.done = False  # headers complete (later fields are trailers)
        self.over = False  # the body is past the limit: not kept, the app answers 413


class _Reader:
    """httptools' callbacks: complete requests in `ready`, in the order they came."""

    def __init__(self, body_limit: int) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)  # RFC 9112 2.2
        self.ready: deque[_Request] = deque()
        self.current: _Request | None = None
        self.body_limit = body_limit
        self.wants_continue = False  # a request waits for `100 Continue` before its body
        self.stopped = False  # a request past the body limit: nothing more is read
        self.head = b""  # the bytes of the request head being read (to word a refusal)

    def feed(self, data: bytes) -> None:
        """Parse what came; _Refused for what cannot be read as a request."""
        if self.current is None or not self.current.done:
            self.head = (self.head + data)[-(HEAD_LIMIT + _READ) :]
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                raise cause from None
            if isinstance(cause, _Stop):
                return
            raise
        except httptools.HttpParserUpgrade:
            raise _Refused(Problem(400, "This server does not switch protocols.")) from None
        except httptools.HttpParserError as exc:
            raise _Refused(self._unreadable(str(exc))) from None

    def _unreadable(self, reason: str) -> Problem:
        low = reason.lower()
        if "invalid http version" in low:
            return Problem(505, f"This server speaks {' and '.join(wire.VERSIONS)} only.")
        if "content-length overflow" in low:
            return Problem(
                413, f"The request body is larger than the limit of {self.body_limit} bytes."
            )
        if "content-length" in low:
            head = (
                self.head.rsplit(b"\r\n\r\n", 1)[-1]
                if self.head.count(b"\r\n\r\n") > 1
                else self.head
            )
            given = ", ".join(v.decode("latin-1").strip() for v in _LENGTHS.findall(head))
            return invalid({"Content-Length": [f"The value '{given}' is not a valid length."]})
        return Problem(400, f"The request cannot be read as HTTP/1.1: {reason.rstrip('.')}.")

    def on_message_begin(self) -> None:
        self.current = _Request()

    def on_url(self, url: bytes) -> None:
        request = self._request()
        request.url += url
        request.head += len(url)
        if request.head > HEAD_LIMIT:
            raise _Refused(Problem(414, f"The request target is longer than {HEAD_LIMIT} bytes."))

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._request()
        if request.done:  # a trailer field: read, not kept
            return
        request.headers.append((name, value))
        request.head += len(name) + len(value) + 4
        if request.head > HEAD_LIMIT:
            detail = f"The request's line and header fields are over {HEAD_LIMIT} bytes."
            raise _Refused(Problem(431, detail))

    def on_headers_complete(self) -> None:
        request = self._request()
        request.done, self.head = True, b""
        request.method = self.parser.get_method().decode("latin-1")
        request.version = self.parser.get_http_version()
        length = _length(request.headers)
        if length is not None and length > self.body_limit:
            self._stop(request)
        elif _expects_continue(request.headers) and (length or _chunked(request.headers)):
            self.wants_continue = True

    def on_body(self, body: bytes) -> None:
        request = self._request()
        if request.over:
            return
        request.size += len(body)
        if request.size > self.body_limit:
            request.body = []
            self._stop(request)
        request.body.append(body)

    def _stop(self, request: _Request) -> None:
        """A body past the limit: the request goes to the app unread (it answers 413) and
        nothing more is read on the connection."""
        request.over = self.stopped = True
        self.ready.append(request)
        self.current = None
        raise _Stop

    def on_message_complete(self) -> None:
        self.ready.append(self._request())
        self.current = None
        self.wants_continue = False

    def _request(self) -> _Request:
        if self.current is None:  # llhttp calls on_message_begin first
            self.current = _Request()
        return self.current


_LENGTHS = re.compile(rb"(?im)^content-length[ \t]*:(.*?)\r?$")


def _length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


def _chunked(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"transfer-encoding" and b"chunked" in value.lower()
        for name, value in headers
    )


def _expects_continue(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"expect" and value.strip().lower() == b"100-continue"
        for name, value in headers
    )


class Connection:
    """One client connection: its requests read, served and answered in order."""

    def __init__(
        self, sock: socket.socket, app: App, body_limit: int, place: Place | None = None
    ) -> None:
        self.sock = sock
        self.app = app
        self.place = place  # its place among the workers' connections (`serving.balance`)
        self.reader = _Reader(body_limit)
        self.peer = _peer(sock)
        self.local = _peer(sock, local=True)

    def run(self) -> None:
        """Served on this thread until it ends (`--serving threads`)."""
        try:
            while True:
                try:
                    data = self.sock.recv(_READ)
                except (TimeoutError, BlockingIOError):  # silent too long: as if it ended
                    data = b""
                except OSError:  # reset, or the connection taken by a fault
                    return
                if not self._received(data):
                    return
        finally:
            RECEIVING.discard(id(self))

    def fileno(self) -> int:
        return self.sock.fileno()

    def step(self) -> bool:
        """What came read and answered, without waiting for more (`serving.loop`); whether
        the connection goes on."""
        try:
            data = self.sock.recv(_READ, socket.MSG_DONTWAIT)
        except BlockingIOError:  # nothing yet after all
            return True
        except OSError:
            return False
        return self._received(data)

    def silent(self) -> None:
        """Silent too long (`serving.loop`): as when the client stops sending."""
        self._cut_short()

    def end(self) -> None:
        """Closed, and counted out (`serving.loop`)."""
        RECEIVING.discard(id(self))
        if self.place is not None:
            self.place.end()
        self.sock.close()

    def _received(self, data: bytes) -> bool:
        """`data` read, the requests it completes answered (none: the client stopped
        sending); whether the connection goes on."""
        if not data:
            self._cut_short()
            return False
        reader = self.reader
        try:
            reader.feed(data)
        except _Refused as refused:
            self._refuse(refused.problem)
            return False
        if reader.current is not None and reader.current.done:  # in flight for SIGTERM
            RECEIVING.add(id(self))
        else:
            RECEIVING.discard(id(self))
        if reader.wants_continue and not reader.ready:
            reader.wants_continue = False
            if not self._send(CONTINUE):
                return False
        while reader.ready:
            if not self._serve(reader.ready.popleft()):
                return False
        if reader.stopped:
            _linger(self.sock)
            return False
        return True

    def _cut_short(self) -> None:
        """The client stopped sending (silent, or its half closed) inside a request's body:
        one with a Content-Length goes to the app with what came (it answers 400, the body
        ended early); a chunked one is answered 400 here. Inside a head: closed unanswered."""
        request = self.reader.current
        if request is None or not request.done:
            return
        if _chunked(request.headers):
            broken = "The chunked body ended before its last chunk."
            self._refuse(invalid({"Transfer-Encoding": [broken]}))
            return
        request.over = False
        self._serve(request)

    def _serve(self, request: _Request) -> bool:
        """Answer one request; whether the connection goes on."""
        environ = self._environ(request)
        answer = _Answer(request, self.place)
        result = self.app(environ, answer.start)
        try:
            for part in result:
                if part and not self._send(answer.framed(part)):
                    return False
            if answer.status is None:  # no answer: a fault or a delay took the connection
                return False
            if not answer.sent and not self._send(answer.framed(b"")):
                return False
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return answer.keep_alive and not request.over

    def _environ(self, request: _Request) -> Environ:
        target = request.url.decode("latin-1")
        path, _, query = target.partition("?")
        environ: Environ = {
            "REQUEST_METHOD": request.method,
            "REQUEST_URI": target,
            "PATH_INFO": path_info(path),
            "QUERY_STRING": query,
            "SCRIPT_NAME": "",
            "SERVER_PROTOCOL": f"HTTP/{request.version}",
            "SERVER_NAME": self.local[0],
            "SERVER_PORT": self.local[1],
            "REMOTE_ADDR": self.peer[0],
            "REMOTE_PORT": self.peer[1],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b"".join(request.body)),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "uwsgi.version": _UWSGI_VERSION,
            connection.SOCKET: self.sock,
        }
        for name, value in request.headers:
            _put(environ, name, value)
        environ[wire.HEAD_SIZE] = (len(request.headers), request.head - len(request.url))
        chunked = environ.pop("HTTP_TRANSFER_ENCODING", None) is not None  # de-chunked here
        if request.over:  # the app answers 413 without reading
            environ["CONTENT_LENGTH"] = str(max(request.size, self.reader.body_limit + 1))
        elif chunked:  # the app gets a length
            environ["CONTENT_LENGTH"] = str(request.size)
        return environ

    def _refuse(self, problem: Problem) -> None:
        """A problem answered by this module, logged as the app logs a request; the
        connection is then closed once the client has had time to read it."""
        started = time.perf_counter()
        body = codec.dumps(problem.body(trace_id(None)))
        head = (
            f"HTTP/1.1 {status_line(problem.status)}\r\nContent-Type: {PROBLEM_JSON}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self._send(head.encode() + body)
        request = self.reader.current
        method = request.method if request and request.method else "-"
        target = request.url[:200].decode("latin-1") if request and request.url else "-"
        millis = (time.perf_counter() - started) * 1000
        log.request_line(method, target, problem.status, millis, {"refused": problem.detail})
        _linger(self.sock)

    def _send(self, data: bytes) -> bool:
        """`data` written, within twice IDLE_TIMEOUT in all (`sockets.timed_by_the_kernel`)."""
        sock = self.sock
        try:
            sent = sock.send(data)  # blocking: all of it, unless its time ran out part way
            if sent < len(data):  # the rest at most once more that time, then given up
                sock.settimeout(IDLE_TIMEOUT)
                sock.sendall(memoryview(data)[sent:])
                sock.settimeout(None)
        except OSError:  # the client left, or a fault took the connection
            return False
        return True


class _Answer:
    """The app's `start_response`, and the answer's head written with its first bytes."""

    __slots__ = ("head", "keep_alive", "place", "request", "sent", "status")

    def __init__(self, request: _Request, place: Place | None = None) -> None:
        self.request = request
        self.place = place
        self.status: int | None = None
        self.head = b""
        self.sent = False
        self.keep_alive = False

    def start(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = int(status[:3])
        place = self.place
        self.keep_alive = self._keeps(headers) and (place is None or not place.let_go())
        lines = [f"HTTP/{self.request.version} {status}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if not self.keep_alive and not any(n.lower() == "connection" for n, _ in headers):
            lines.append("Connection: close")
        self.head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return _no_write

    def framed(self, part: bytes) -> bytes:
        if self.sent:
            return part
        self.sent = True
        return self.head + part

    def _keeps(self, headers: list[tuple[str, str]]) -> bool:
        request = self.request
        if request.version != "1.1" or request.over:
            return False
        for name, value in request.headers:
            if name.lower() == b"connection" and b"close" in value.lower():
                return False
        framed = request.method == "HEAD" or self.status in _NO_BODY or (self.status or 0) < 200
        for field, text in headers:
            low = field.lower()
            if low == "connection" and "close" in text.lower():
                return False
            if low == "content-length" or (low == "transfer-encoding" and "chunked" in text):
                framed = True
        return framed


def path_info(path: str) -> str:
    """A target's path as uWSGI hands it on: cut at `#`, repeated slashes made one, the dot
    segments sent as such resolved (RFC 3986 5.2.4; `%2e%2e` stays a name), then decoded."""
    path = path.partition("#")[0]
    if not path.startswith("/"):  # `*`, or an absolute form (`http.wire` serves its path)
        return unquote_to_bytes(path).decode("latin-1")
    if "%" not in path and "//" not in path and "/." not in path:
        return path  # nearly always: nothing to do
    segments = path.split("/")[1:]
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    trailing = "/" if kept and segments[-1] in ("", ".", "..") else ""
    return unquote_to_bytes("/" + "/".join(kept) + trailing).decode("latin-1")


def _no_write(data: bytes) -> None:
    raise RuntimeError("write() is not supported: return the body from the app")


def _put(environ: Environ, name: bytes, value: bytes) -> None:
    """A header field in the environ as uWSGI puts it (CONTENT_TYPE, CONTENT_LENGTH, HTTP_*);
    a field sent twice is joined with a comma (RFC 9110 5.3)."""
    key = name.decode("latin-1").upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key
    text = value.decode("latin-1")
    environ[key] = f"{environ[key]},{text}" if key in environ else text


def _peer(sock: socket.socket, local: bool = False) -> tuple[str, str]:
    try:
        address = sock.getsockname() if local else sock.getpeername()
    except OSError:
        return ("", "")
    if isinstance(address, tuple):
        return (str(address[0]), str(address[1]))
    return (str(address), "")


def _linger(sock: socket.socket, seconds: float = 1.0) -> None:
    """Close gently: stop writing, read what the client still sends for a moment, so that its
    unread bytes do not turn the close into a reset that loses the answer."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(seconds)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and sock.recv(_READ):
            pass
    except OSError:
        pass


def _uwsgi_version() -> bytes:
    try:
        import uwsgi
    except ImportError:
        return b""
    return bytes(uwsgi.version)


_UWSGI_VERSION = _uwsgi_version()
LOOP: loop.Loop | None = None  # this worker's, with `--serving loop` (`start_loop`)


def serve_connection(fd: int) -> list[bytes]:
    """uWSGI's raw callable: serve the connection `fd` until it ends, and uWSGI closes it; or,
    when this process has a loop (`--serving loop`), hand it to the loop and return."""
    from mockserver import wsgi

    app = wsgi.application
    assert app is not None  # `serving.uwsgi.serve` set it before uWSGI started
    place = balance.TABLE.opened() if balance.TABLE is not None else None
    if LOOP is not None:
        limit = _body_limit(app)

        def make(own: socket.socket) -> Connection:
            sockets.timed_by_the_kernel(own, IDLE_TIMEOUT)  # a write waits at most that long
            return Connection(own, app, limit, place)

        if not LOOP.hand(fd, make) and place is not None:  # out of descriptors
            place.end()  # and uWSGI closes the connection
        return []
    sock = socket.socket(fileno=fd)
    try:
        sockets.timed_by_the_kernel(sock, IDLE_TIMEOUT)  # no poll before each read and write
        Connection(sock, app, _body_limit(app), place).run()
    finally:
        sock.detach()
        if place is not None:
            place.end()
    return []


def start_loop(threads: int) -> None:
    """In a worker (`serving.after_fork`): its connections served by a loop, said in one line."""
    global LOOP
    LOOP = loop.Loop(threads, threads, IDLE_TIMEOUT)
    log.logger.info(
        "serves its connections with a loop (--serving loop; up to %d threads when requests wait)",
        threads,
    )


def _body_limit(app: Any) -> int:
    holder = app.extensions["mockserver"]
    return int(holder.settings.max_body_bytes)
