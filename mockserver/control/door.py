"""The control API's door with `--admin-token`: the bearer token, or the dashboard's cookie.

The dashboard asks for the token once and keeps, in an HttpOnly, SameSite=Strict cookie, a
value signed with it (a random nonce and its HMAC): the token itself never sits in the
browser. A request that changes state and shows only the cookie must also carry the CSRF
token made from the same nonce (`X-CSRF-Token`), which only the dashboard's own page holds.
Nothing is stored on the server: a new admin token voids every cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "mockserver_admin"
CSRF_HEADER = "X-CSRF-Token"
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _sign(token: str, purpose: str, nonce: str) -> str:
    return hmac.new(token.encode(), f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()


def issue(token: str) -> str:
    """A new cookie value for someone who showed the admin token."""
    nonce = secrets.token_hex(16)
    return f"{nonce}.{_sign(token, 'cookie', nonce)}"


def _nonce(token: str, cookie: str) -> str | None:
    """The cookie's nonce when the admin token signed it."""
    nonce, _, signature = cookie.partition(".")
    if not nonce or not hmac.compare_digest(signature, _sign(token, "cookie", nonce)):
        return None
    return nonce


def csrf_token(token: str, cookie: str) -> str | None:
    """The CSRF token that goes with a valid cookie."""
    nonce = _nonce(token, cookie)
    return None if nonce is None else _sign(token, "csrf", nonce)


def bearer_ok(token: str, authorization: str) -> bool:
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def verdict(token: str, method: str, authorization: str, csrf: str, cookie: str | None) -> int:
    """200: let in; 401: no token, no valid cookie; 403: the cookie without its CSRF token."""
    if bearer_ok(token, authorization):
        return 200
    expected = csrf_token(token, cookie) if cookie else None
    if expected is None:
        return 401
    if method in SAFE or hmac.compare_digest(csrf, expected):
        return 200
    return 403
