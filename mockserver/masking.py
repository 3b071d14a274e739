"""Masking secrets (bearer tokens, API keys, passwords) wherever a request is shown: the
journal and the log. Enough of a long secret is kept to tell two apart; a short one goes whole.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"}
_TOKEN = re.compile(r"^(\S+\s+)?(.*)$")
_SHOWN = 8  # characters of a secret kept, to tell tokens apart...
_SHOWN_FROM = 16  # ...when it is at least this long: a short one is masked whole


def mask(name: str, value: str) -> str:
    """`Bearer idt:TKN-1234-5678:secret` → `Bearer idt:TKN-***`: enough to tell tokens apart."""
    if name.lower() not in _SECRET_HEADERS:
        return value
    found = _TOKEN.match(value)
    scheme, secret = (found.group(1) or "", found.group(2)) if found else ("", "")
    return f"{scheme}{_masked(secret)}"


_SECRET_PARAMETER = re.compile(
    r"(?i)(^|&)((?:access_|id_|refresh_)?token|api[_-]?key|password|secret|sig(?:nature)?)=([^&]*)"
)


def mask_query(query: str) -> str:
    """`?access_token=abc&limit=5` → `?access_token=***&limit=5`."""
    if "=" not in query:
        return query
    return _SECRET_PARAMETER.sub(
        lambda found: f"{found.group(1)}{found.group(2)}={_masked(found.group(3))}", query
    )


def _masked(secret: str) -> str:
    return f"{secret[:_SHOWN] if len(secret) >= _SHOWN_FROM else ''}***"


def shown(path: str, query: str) -> str:
    """A request's target as a log line shows it: decoded, its secrets masked."""
    return f"{path}?{mask_query(unquote(query))}" if query else path


def mask_url(url: str) -> str:
    """`redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`: a URL's password
    never shown."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, mark, query = rest.partition("?")
    if mark:
        query = mask_query(query)
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        credentials, _, host = authority.rpartition("@")
        user, colon, _ = credentials.partition(":")
        shown = f"{user}:***" if colon else "***"  # `redis://secret@host`: a password alone
        authority = f"{shown}@{host}"
    return f"{scheme}://{authority}{slash}{tail}{mark}{query}"
