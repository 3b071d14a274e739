"""Reading an API request's body once, at the front: the journal and fault rules see it, and
the app is handed it instead of reading it again."""

from __future__ import annotations

import io

from mockserver.problems import Problem, invalid
from mockserver.respond import Environ

SOCKET_TIMEOUT = 4  # seconds uWSGI waits for a client's next bytes (its --socket-timeout)


def read_body(environ: Environ, limit: int) -> bytes | None:
    """The request body; None when it was not read (none given, or over the limit: the app
    answers that). A Problem when it ends before its Content-Length or its chunks break."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return _chunked(environ, limit)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length == 0:
        return b""
    if not 0 < length <= limit:
        return None
    try:
        body: bytes = environ["wsgi.input"].read(length)
    except OSError:  # the client sent less and waited: uWSGI's read timed out
        body = b""
    if len(body) < length:
        raise invalid(
            {"Content-Length": [f"The body ended before its Content-Length ({length} bytes)."]}
        )
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _chunked(environ: Environ, limit: int) -> bytes | None:
    """A chunked body, read whole (up to the limit) under uWSGI and handed on with its length;
    other servers de-chunk `wsgi.input` themselves."""
    if "uwsgi.version" not in environ:
        return None
    import uwsgi

    parts, size = [], 0
    try:
        while part := uwsgi.chunked_read(SOCKET_TIMEOUT):
            size += len(part)
            if size > limit:
                raise Problem(413, f"The request body is larger than the limit of {limit} bytes.")
            parts.append(part)
    except OSError as exc:
        raise invalid({"Transfer-Encoding": [f"The chunked body is broken: {exc}."]}) from exc
    body = b"".join(parts)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    del environ["HTTP_TRANSFER_ENCODING"]
    return body
