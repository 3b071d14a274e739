"""Every option of the server: the `Settings` dataclass, and the one table (`OPTIONS`) that the
command line, its `MOCKSERVER_*` variables, `--help` and the README's options table come from.

The `mockserver` command and the WSGI entry point (`mockserver.serving.wsgi`) read the same
table: `Settings.from_env()` is what the command builds when it is given no flags.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SPEC = PACKAGE_DIR / "openapi" / "audit.yaml"
CONTROL_SPEC = PACKAGE_DIR / "openapi" / "control.yaml"
CONTROL_PREFIX = "/_mock"  # the control API's paths
SESSION_PREFIX = "/_session/"  # `/_session/NAME/public/v1/...`: a base URL that names a session
DEFAULT_PORT = 8080
MIB = 1024 * 1024
VERSION = "0.1.0"


@dataclass(frozen=True)
class Settings:
    """How one mock server behaves. The CLI fills it from flags and `MOCKSERVER_*` variables."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    spec: Path = DEFAULT_SPEC
    strict: bool = False
    auth: bool = True
    tokens: Path | None = None
    seed_records: int = 0
    faker_seed: int | None = None
    max_records: int = 200_000
    store: str = "memory"  # or redis://, rediss://, unix:// (storage.make_backend)
    store_prefix: str = "mockserver"  # the Redis keys' prefix: servers sharing it share data
    max_body_bytes: int = MIB
    max_export: int = 100_000
    admin_token: str | None = None  # required on /_mock when set
    threads: int = 64  # each open keep-alive connection holds one (uWSGI's HTTP/1.1 socket)
    scenario: Path | None = None
    fault_seed: int | None = None
    journal_size: int = 10_000
    coverage_report: Path | None = None
    state_file: Path | None = None  # sessions saved at shutdown, loaded at start-up
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call (`*`: any)
    check_responses: bool = False
    log_format: str = "text"
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the `MOCKSERVER_*` variables give (the command's, without flags);
        SettingsError naming the variable for a value that is not valid."""
        try:
            args = parser(environ, exits=False).parse_args([])
        except _Refused as exc:
            raise SettingsError(str(exc)) from None
        return settings_from(args)


class SettingsError(Exception):
    """An option or variable holds a value the server cannot use; the message names it."""


@dataclass(frozen=True)
class Option:
    """One setting as the command line and the environment give it."""

    flag: str
    help: str
    kind: Callable[[str], Any] = str
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    switch: bool = False  # a flag without a value; its variable is 1/true/yes/on
    repeated: bool = False  # given again for more; its variable is comma-separated
    shown_default: str | None = None  # what --help and the README say when it is not the value

    @property
    def dest(self) -> str:
        """Its name in the parsed command line."""
        return self.flag[2:].replace("-", "_")

    @property
    def field(self) -> str:
        """Its name in `Settings`."""
        return "cors_origins" if self.dest == "cors_origin" else self.dest

    @property
    def variable(self) -> str:
        return "MOCKSERVER_" + self.flag[2:].upper().replace("-", "_")

    @property
    def default(self) -> str:
        """The default as --help and the README's options table show it."""
        if self.shown_default is not None:
            return self.shown_default
        value = _flag_value(self)
        if isinstance(value, bool):
            return "on" if value else "off"
        return "none" if value in (None, ()) else str(value)


_DEFAULTS = {f.name: f.default for f in fields(Settings)}
_TRUE = {"1", "true", "yes", "on"}
WHOLE = (  # options that take a whole number >= 0
    "port",
    "seed_records",
    "max_records",
    "max_body_bytes",
    "threads",
    "journal_size",
    "max_export",
)

OPTIONS: tuple[Option, ...] = (
    Option("--host", "address to listen on (0.0.0.0: every interface)"),
    Option("--port", "TCP port", int),
    Option(
        "--spec",
        "OpenAPI 3.x file (YAML or JSON) to serve",
        Path,
        "PATH",
        shown_default="bundled audit.yaml",
    ),
    Option(
        "--strict",
        "follow the spec's letter: reject unknown and read-only members instead of ignoring "
        "them as the real server does",
        switch=True,
    ),
    Option(
        "--auth",
        "require 'Authorization: Bearer <token>' on API calls",
        choices=("on", "off"),
    ),
    Option("--tokens", "YAML file of accepted tokens, their identities and rights", Path, "FILE"),
    Option("--seed-records", "fill the store with N realistic records at start-up", int, "N"),
    Option(
        "--faker-seed",
        "seed for the generated records: the same seed gives the same records",
        int,
        "S",
        shown_default="random",
    ),
    Option(
        "--max-records",
        "most items a collection keeps; the oldest are evicted (logged)",
        int,
        "N",
    ),
    Option(
        "--store",
        "where items live: memory (in this process), or Redis at redis://[user:password@]"
        "host:port/db (rediss:// for TLS, unix:///path.sock): servers on one Redis and "
        "prefix share them",
        metavar="URL",
    ),
    Option(
        "--store-prefix",
        "prefix of the store's Redis keys: servers with the same one share their data",
        metavar="NAME",
    ),
    Option("--max-body-bytes", "largest request body accepted, else 413", int, "N"),
    Option(
        "--max-export",
        "most items a streamed read (MPT-Streaming: true) may hold, else 413",
        int,
        "N",
    ),
    Option(
        "--admin-token",
        "protect the control API (/_mock): it then needs 'Authorization: Bearer TOKEN' "
        "(prefer the variable: a command line is visible to every user of the machine)",
        metavar="TOKEN",
    ),
    Option(
        "--threads",
        "connections served at once: a kept-alive connection holds a thread while it is "
        "open, a delayed request too",
        int,
        "N",
    ),
    Option(
        "--scenario",
        "YAML or JSON file of fault rules loaded at start-up (and on every reset)",
        Path,
        "FILE",
    ),
    Option(
        "--fault-seed",
        "seed for fault probabilities and random delays: the same seed, the same run",
        int,
        "S",
        shown_default="random",
    ),
    Option(
        "--journal-size",
        "requests the journal keeps per session, the oldest dropped (0: none)",
        int,
        "N",
    ),
    Option(
        "--coverage-report",
        "write the coverage at exit: JSON if FILE ends in .json, JUnit XML otherwise",
        Path,
        "FILE",
    ),
    Option(
        "--state-file",
        "keep records, event types and fault rules across restarts: loaded at start-up when "
        "FILE exists, written (atomically) at shutdown",
        Path,
        "FILE",
    ),
    Option(
        "--cors-origin",
        "let browser pages from ORIGIN (e.g. http://localhost:3000, or *) call the mock "
        "(CORS); repeat for more",
        metavar="ORIGIN",
        repeated=True,
    ),
    Option(
        "--check-responses",
        "validate every response against the spec and log what does not conform",
        switch=True,
    ),
    Option(
        "--log-format",
        "one line of text, or one JSON object, per log entry",
        choices=("text", "json"),
    ),
    Option(
        "--log-level",
        "least severe entry logged",
        choices=("debug", "info", "warning", "error"),
    ),
)


class _Refused(Exception):
    """argparse's error, raised instead of exiting (for `Settings.from_env`)."""


class _Parser(argparse.ArgumentParser):
    exits = True

    def error(self, message: str) -> Any:
        if self.exits:
            super().error(message)
        raise _Refused(message)


def parser(
    environ: Mapping[str, str] | None = None, *, exits: bool = True
) -> argparse.ArgumentParser:
    """The command line: every option, its default from its `MOCKSERVER_*` variable when set
    (`environ`: the process's by default). A variable's value goes through the same checks as
    the flag's. A refusal exits as a command does; with `exits` false, it raises instead."""
    env = os.environ if environ is None else environ
    p = _Parser(
        prog="mockserver",
        description="Mock and contract-testing server for the SoftwareOne Marketplace Audit "
        "API. Every option can also be set with the environment variable named after it "
        "(shown in brackets); a flag wins over its variable.",
    )
    p.exits = exits
    p.add_argument("--version", action="version", version=f"mockserver {VERSION}")
    for option in OPTIONS:
        _add(p, option, env.get(option.variable))
    return p


def _add(p: argparse.ArgumentParser, option: Option, given: str | None) -> None:
    shown = f"{option.help} [{option.variable}; default: {option.default}]"
    if option.switch:
        default = (given or "").lower() in _TRUE if given is not None else _DEFAULTS[option.field]
        p.add_argument(option.flag, action="store_true", default=default, help=shown)
    elif option.repeated:
        found = [part.strip() for part in (given or "").split(",") if part.strip()]
        p.add_argument(
            option.flag, action="append", default=found, metavar=option.metavar, help=shown
        )
    else:
        default = given if given is not None else _flag_value(option)
        p.add_argument(
            option.flag,
            type=option.kind,
            default=default,
            choices=option.choices or None,
            metavar=option.metavar,
            help=shown,
        )


def _flag_value(option: Option) -> Any:
    """The default as the flag's text would give it (`--auth on`)."""
    value = _DEFAULTS[option.field]
    if option.field == "auth":
        return "on" if value else "off"
    return value


def value_errors(args: argparse.Namespace) -> list[str]:
    """What argparse leaves unchecked: a negative whole number, and a variable's value that is
    not one of its option's choices (argparse checks a flag's, not a default's)."""
    negative = [
        f"--{name.replace('_', '-')} must be a whole number >= 0"
        for name in WHOLE
        if getattr(args, name) < 0
    ]
    return negative + [
        f"{option.variable}: invalid choice: {getattr(args, option.dest)!r} "
        f"(choose from {', '.join(option.choices)})"
        for option in OPTIONS
        if option.choices and getattr(args, option.dest) not in option.choices
    ]


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from parsed options; SettingsError for a value argparse leaves unchecked."""
    problems = value_errors(args)
    if problems:
        raise SettingsError(problems[0])
    given = vars(args)
    values: dict[str, Any] = {option.field: given[option.dest] for option in OPTIONS}
    values["auth"] = given["auth"] == "on"
    values["cors_origins"] = tuple(given["cors_origin"])
    values["admin_token"] = given["admin_token"] or None
    return Settings(**values)
