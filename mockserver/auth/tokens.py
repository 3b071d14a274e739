"""The tokens file (`--tokens`, YAML): the accepted tokens, each with its identity and rights
(see `auth.identity`). A file that does not fit stops start-up with one line naming the file,
the place and the problem."""

from __future__ import annotations

from pathlib import Path

import yaml

from mockserver.auth.identity import Identity, from_token
from mockserver.documents import syntax_error

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


class TokensFileError(Exception):
    """The tokens file cannot be used; the message names the file and the problem."""


def load_tokens(path: Path) -> dict[str, Identity]:
    """Read a tokens file; TokensFileError names the file and what is wrong in it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TokensFileError(
            f"{path}: cannot read the tokens file: {exc.strerror or exc}"
        ) from exc
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TokensFileError(syntax_error(path, raw, exc)) from exc
    import jsonschema  # loaded only for a tokens file (a tenth of a second)

    try:
        jsonschema.validate(data, _TOKENS_FILE_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = " > ".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise TokensFileError(f"{path}: invalid tokens file at {where}: {exc.message}") from exc
    default = Identity()
    identities = {}
    for entry in data["tokens"]:
        actor, account = entry.get("actor", {}), entry.get("account", {})
        base = from_token(entry["token"], default)
        identities[entry["token"]] = Identity(
            actor_id=actor.get("id", base.actor_id),
            actor_name=actor.get("name", base.actor_name),
            account_id=account.get("id", default.account_id),
            account_name=account.get("name", default.account_name),
            account_type=account.get("type", default.account_type),
            rights=tuple(entry.get("rights", ["*"])),
        )
    return identities
