"""Bearer tokens: who is calling and what they may do (401 and 403 as on the platform).

Without a tokens file any token is accepted and gets the default identity with every right.
A tokens file (YAML) names the accepted tokens, each with its identity and rights:

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
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mockserver.problems import Problem

_TOKEN_ID = re.compile(r"^idt:(TKN-\d{4}-\d{4}):")
_TOKENS_FILE_SCHEMA = {
    "type": "object",
    "required": ["tokens"],
    "additionalProperties": False,
    "properties": {
        "tokens": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["token"],
                "additionalProperties": False,
                "properties": {
                    "token": {"type": "string", "minLength": 1},
                    "actor": {"$ref": "#/$defs/party"},
                    "account": {"$ref": "#/$defs/party"},
                    "rights": {"type": "array", "items": {"type": "string", "minLength": 1}},
                },
            },
        }
    },
    "$defs": {
        "party": {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: {"type": "string"} for k in ("id", "name", "icon", "type")},
        }
    },
}


_KNOWN = 1024  # (Authorization header, right) pairs whose identity is remembered


class TokensFileError(Exception):
    """The tokens file cannot be used; the message names the file and the problem."""


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
            identity = _from_token(token, self.default)
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


def _from_token(token: str, default: Identity) -> Identity:
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


def load_tokens(path: Path) -> dict[str, Identity]:
    """Read a tokens file; TokensFileError names the file and what is wrong in it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TokensFileError(
            f"{path}: cannot read the tokens file: {exc.strerror or exc}"
        ) from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TokensFileError(f"{path}: cannot parse the tokens file: {exc}") from exc
    try:
        jsonschema.validate(data, _TOKENS_FILE_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = " > ".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise TokensFileError(f"{path}: invalid tokens file at {where}: {exc.message}") from exc
    default = Identity()
    identities = {}
    for entry in data["tokens"]:
        actor, account = entry.get("actor", {}), entry.get("account", {})
        base = _from_token(entry["token"], default)
        identities[entry["token"]] = Identity(
            actor_id=actor.get("id", base.actor_id),
            actor_name=actor.get("name", base.actor_name),
            account_id=account.get("id", default.account_id),
            account_name=account.get("name", default.account_name),
            account_type=account.get("type", default.account_type),
            rights=tuple(entry.get("rights", ["*"])),
        )
    return identities
