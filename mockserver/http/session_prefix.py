"""WSGI middleware: a base URL that names a session (`/_session/NAME/public/v1/...`) is the
request `/public/v1/...` in session NAME. The prefix becomes the script name, so the links
the server writes (`Location`) keep it; the control API takes it too."""

from __future__ import annotations

from collections.abc import Iterable

from mockserver.respond import Environ, StartResponse, WSGIApp
from mockserver.sessions.session import HEADER
from mockserver.settings import SESSION_PREFIX

_API = "/public/v1"
_API_TWICE = _API + _API + "/"


class SessionPrefix:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(SESSION_PREFIX):
            enter_session(environ, path)
        return self.app(environ, start_response)


def enter_session(environ: Environ, path: str) -> None:
    """`/_session/NAME/rest` is `/rest` in session NAME. The official client keeps such a
    base URL's path and adds its own `/public/v1`: `/_session/NAME/public/v1/public/v1/...`
    is read once."""
    name, _, rest = path[len(SESSION_PREFIX) :].partition("/")
    rest = "/" + rest
    if rest.startswith(_API_TWICE):
        rest = rest[len(_API) :]
    environ[HEADER] = name
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + SESSION_PREFIX + name
    environ["PATH_INFO"] = rest
