"""The dashboard at `/_mock/ui`: a page of this project's own HTML, CSS and JavaScript (no
build step, nothing third-party) that works through the control API from the browser, so the
control API stays the single door. The views here serve the page, its static files and the
login that turns the admin token into the door's cookie (`control.door`).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, render_template, request

from mockserver.control import door
from mockserver.settings import CONTROL_PREFIX, UI_PREFIX
from mockserver.state import State

PREFIX = UI_PREFIX

blueprint = Blueprint(
    "ui",
    __name__,
    url_prefix=PREFIX,
    static_folder="static",
    template_folder="templates",
)

# Only the page's own scripts and styles; no frame may hold it.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _state() -> State:
    found: State = current_app.extensions["mockserver"]
    return found


def _page(template: str, status: int = 200, **context: object) -> Response:
    html = render_template(template, prefix=PREFIX, control=CONTROL_PREFIX, **context)
    return Response(html, status, headers=_PAGE_HEADERS, content_type="text/html; charset=utf-8")


@blueprint.get("")
def index() -> Response:
    """The dashboard; with `--admin-token` and no valid cookie, the login form."""
    token = _state().settings.admin_token
    csrf = ""
    if token is not None:
        cookie = request.cookies.get(door.COOKIE)
        found = door.csrf_token(token, cookie) if cookie else None
        if found is None:
            return _page("login.html")
        csrf = found
    return _page("index.html", csrf=csrf, guarded=token is not None)


@blueprint.post("/login")
def login() -> Response:
    """The admin token, given once: the door's cookie (HttpOnly, SameSite=Strict) in return."""
    token = _state().settings.admin_token
    if token is None:
        return redirect(PREFIX, 303)  # type: ignore[return-value]
    given = request.form.get("token", "")
    if not door.bearer_ok(token, f"Bearer {given}"):
        return _page("login.html", 401, error="That is not the server's admin token.")
    answer = redirect(PREFIX, 303)
    answer.set_cookie(
        door.COOKIE,
        door.issue(token),
        path=CONTROL_PREFIX,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return answer  # type: ignore[return-value]
