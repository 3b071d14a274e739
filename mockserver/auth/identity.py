"""Bearer tokens: who is calling and what they may do (401 and 403 as on the platform).

Without a tokens file any token is accepted and gets the default identity with every right.
A tokens file (`auth.tokens`) names the accepted tokens, each with its identity and rights:

    tokens:
      - token: idt:TKN-1111-2222:secret
        actor: {id: USR-1111-2222, name: Jane Doe}
        account: {id: ACC-1111-2222, name: Acme, type: Vendor}
        rights: ["records:read", "event-types:*"]

A right is `<collection>:<read|write>` (`records`, `event-types`, ...); `*` matches anything.
GET and HEAD need `read`; every other method needs `write`.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from mockserver.problems import Problem

_TOKEN_ID = re.compile(r"^idt:(TKN-\d{4}-\d{4}):")
_KNOWN = 1024  # (Authorization header, right) pairs whose identity is remembered


@dataclass(frozen=True)
class Identity:
    """The caller as the platform knows it: an actor (user or API token) in an account."""

    actor_id: str = "USR-0000-0001"
    actor_name: str = "Mock User"
    account_id: str = "ACC-0000-0001"
    account_name: str = "Mock Account"
    account_type: str = "Vendor"
    rights: tuple[str, ...] = ("*",)

    def may(self, right: str) -> bool:
        return any(fnmatch.fnmatchcase(right, pattern) for pattern in self.rights)

    def actor(self) -> dict[str, Any]:
        """The `actor` member of an audit record this caller creates."""
        return {
            "id": self.actor_id,
            "name": self.actor_name,
            "account": {
                "id": self.account_id,
                "name": self.account_name,
                "accountType": self.account_type,
            },
        }


@dataclass
class Authenticator:
    """Turns an `Authorization` header into an Identity, or a 401/403 problem."""

    enabled: bool = True
    tokens: dict[str, Identity] | None = None
    default: Identity = field(default_factory=Identity)
    _known: dict[tuple[str | None, str], Identity] = field(default_factory=dict, repr=False)

    def identify(self, header: str | None, right: str) -> Identity:
        if not self.enabled:
            return self.default
        found = self._known.get((header, right))  # a client sends the same header every time
        if found is not None:
            return found
        identity = self._identity(header, right)
        if len(self._known) >= _KNOWN:
            self._known.clear()
        self._known[(header, right)] = identity
        return identity

    def _identity(self, header: str | None, right: str) -> Identity:
        token = _bearer(header)
        if self.tokens is None:
            identity = from_token(token, self.default)
        elif token in self.tokens:
            identity = self.tokens[token]
        else:
            raise _unauthorized("The access token is not valid.")
        if not identity.may(right):
            raise Problem(
                403, f"The token is not allowed to do this: the '{right}' right is missing."
            )
        return identity


def required_right(method: str, resource: str) -> str:
    access = "read" if method in ("GET", "HEAD") else "write"
    return f"{resource}:{access}"


def _bearer(header: str | None) -> str:
    if not header:
        raise _unauthorized("An 'Authorization: Bearer <token>' header is required.")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def from_token(token: str, default: Identity) -> Identity:
    """Any token is accepted; an API token (`idt:TKN-…:…`) becomes the actor, as on the platform."""
    found = _TOKEN_ID.match(token)
    if not found:
        return default
    token_id = found.group(1)
    return Identity(
        token_id,
        f"API Token {token_id}",
        default.account_id,
        default.account_name,
        default.account_type,
        default.rights,
    )
