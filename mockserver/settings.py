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
UI_PREFIX = "/_mock/ui"  # the dashboard's pages: HTML, not in the control spec
SESSION_PREFIX = "/_session/"  # `/_session/NAME/public/v1/...`: a base URL that names a session
DEFAULT_PORT = 8080
MIB = 1024 * 1024
GIB = 1024 * MIB
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
    max_store_bytes: int = GIB  # every collection of every session of the embedded store
    store: str = "memory"  # or redis://, rediss://, unix:// (storage.make_backend)
    store_prefix: str = "mockserver"  # the Redis keys' prefix: servers sharing it share data
    max_body_bytes: int = MIB
    max_export: int = 100_000
    query_budget_ms: int = 1000  # a list's filter may take this long (0: no limit)
    admin_token: str | None = None  # required on /_mock when set
    threads: int = 512  # a worker's threads: one per open connection, or a loop's at most
    processes: int = 1  # uWSGI worker processes; more than one needs a shared store (Redis)
    pin_workers: bool = False  # each worker process kept on one CPU (`serving.affinity`)
    serving: str = "auto"  # loop, threads, or auto: loop on the memory store (`serving.loop`)
    scenario: Path | None = None
    fault_seed: int | None = None
    journal_size: int = 10_000
    journal_bytes: int = 64 * MIB  # every session's journal together
    journal_write_behind: bool = False  # Redis: a request does not wait for its journal entry
    read_cache_bytes: int = 0  # Redis: items read by id kept in each process (0: none)
    max_sessions: int = 1000
    session_ttl: int = 3600  # seconds an idle session lives (0: for ever)
    max_rules: int = 1000  # fault rules per session
    coverage_report: Path | None = None
    state_file: Path | None = None  # sessions saved at shutdown, loaded at start-up
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call (`*`: any)
    check_responses: bool = False
    upstream: str | None = None  # the real platform: API requests are forwarded to it
    upstream_timeout: float = 30.0
    upstream_ca: Path | None = None  # a private CA bundle for the upstream's TLS
    forward_invalid: bool = False  # forward requests that break the spec (flagged)
    drift_report: Path | None = None
    record: Path | None = None  # every proxied exchange, as HAR 1.2
    seed_from: Path | None = None  # a HAR recording's records and event types at start-up
    log_format: str = "text"
    log_level: str = "info"

    @property
    def loop(self) -> bool:
        """Whether each worker serves its connections with a loop (`serving.loop`)."""
        return self.serving == "loop" or (self.serving == "auto" and self.store == "memory")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the `MOCKSERVER_*` variables give (the command's, without flags);
        SettingsError naming the variable for a value that is not valid."""
        return settings_from(parser(environ).parse_args([]))


class SettingsError(Exception):
    """An option or variable holds a value the server cannot use; the message names it."""


SPELLINGS = {"on": True, "true": True, "1": True, "yes": True}
SPELLINGS |= {"off": False, "false": False, "0": False, "no": False}
YES_NO = "on/off, true/false, 1/0, yes/no (any case)"


def boolean(text: str) -> bool:
    """A yes/no value: on/off, true/false, 1/0, yes/no, in any case; ValueError otherwise."""
    try:
        return SPELLINGS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not one of {YES_NO}") from None


def whole(low: int = 0, high: int | None = None) -> Callable[[str], int]:
    """A whole number from `low` to `high`; ValueError otherwise."""

    def convert(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"from {low} to {high}"
            raise ValueError(f"{value} is not a whole number {span}")
        return value

    return convert


def number(text: str) -> int:
    """Any whole number (a seed); ValueError otherwise."""
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def one_of(*names: str) -> Callable[[str], str]:
    """One of `names`, in any case; ValueError otherwise."""

    def convert(text: str) -> str:
        value = text.strip().lower()
        if value not in names:
            raise ValueError(f"{text!r} is not one of {', '.join(names)} (any case)")
        return value

    return convert


def seconds(text: str) -> float:
    """A number of seconds > 0; ValueError otherwise."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{text!r} is not a number of seconds > 0")
    return value


def path(text: str) -> Path:
    if not text.strip():
        raise ValueError("a file name is needed")
    return Path(text)


@dataclass(frozen=True)
class Option:
    """One setting as the command line and the environment give it. `kind` turns its text
    (the flag's or the variable's) into its value, or raises ValueError saying why not."""

    flag: str
    help: str
    kind: Callable[[str], Any] = str
    metavar: str | None = None
    choices: tuple[str, ...] = ()  # what --help shows for an option of `one_of` or `boolean`
    switch: bool = False  # a flag without a value; its variable is a `boolean`
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
        value = _DEFAULTS[self.field]
        if isinstance(value, bool):
            return "on" if value else "off"
        return "none" if value in (None, ()) else str(value)


_DEFAULTS = {f.name: f.default for f in fields(Settings)}
ON_OFF = ("on", "off")
WHOLE = whole()
LEVELS = ("debug", "info", "warning", "error")
SERVING = ("auto", "loop", "threads")

OPTIONS: tuple[Option, ...] = (
    Option("--host", "address to listen on (0.0.0.0: every interface)"),
    Option("--port", "TCP port", whole(1, 65535)),
    Option(
        "--spec",
        "OpenAPI 3.x file (YAML or JSON) to serve",
        path,
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
        boolean,
        choices=ON_OFF,
    ),
    Option("--tokens", "YAML file of accepted tokens, their identities and rights", path, "FILE"),
    Option("--seed-records", "fill the store with N realistic records at start-up", WHOLE, "N"),
    Option(
        "--faker-seed",
        "seed for the generated records: the same seed gives the same records",
        number,
        "S",
        shown_default="random",
    ),
    Option(
        "--max-records",
        "most items a collection keeps; the oldest are evicted (logged)",
        WHOLE,
        "N",
    ),
    Option(
        "--max-store-bytes",
        "bytes the embedded store's items may hold together (every session); past it, the "
        "oldest items of the collection holding most are evicted (logged)",
        whole(MIB),
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
    Option("--max-body-bytes", "largest request body accepted, else 413", WHOLE, "N"),
    Option(
        "--max-export",
        "most items a streamed read (MPT-Streaming: true) may hold, else 413",
        WHOLE,
        "N",
    ),
    Option(
        "--query-budget-ms",
        "how long a list's filter may take, else 400 naming it (0: no limit): one costly "
        "query never holds the others up",
        WHOLE,
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
        "threads a worker process serves with: on --serving threads, connections served at "
        "once (a kept-alive connection holds one while it is open); on a loop, the connections "
        "held at once and the most threads that take over while requests wait (a delayed "
        "request holds none)",
        whole(1),
        "N",
    ),
    Option(
        "--processes",
        "worker processes serving requests, each with --threads threads; more than one "
        "needs a store they share (--store redis://...)",
        whole(1, 256),
        "N",
    ),
    Option(
        "--pin-workers",
        "keep each worker process on one CPU of those the server may use, in turn (its "
        "threads wake each other on one core: more requests a second, a shorter tail; a "
        "pinned worker cannot move off a core other work keeps busy)",
        switch=True,
    ),
    Option(
        "--serving",
        "how a worker process serves its connections: loop (one thread serves them all, "
        "another takes over while a request waits: fastest when requests seldom wait), "
        "threads (a thread for each open connection: requests waiting on Redis overlap); "
        "auto: loop on the memory store, threads on Redis",
        one_of(*SERVING),
        choices=SERVING,
    ),
    Option(
        "--scenario",
        "YAML or JSON file of fault rules loaded at start-up (and on every reset)",
        path,
        "FILE",
    ),
    Option(
        "--fault-seed",
        "seed for fault probabilities and random delays: the same seed, the same run",
        number,
        "S",
        shown_default="random",
    ),
    Option(
        "--journal-size",
        "requests the journal keeps per session, the oldest dropped (0: none)",
        WHOLE,
        "N",
    ),
    Option(
        "--journal-bytes",
        "bytes every session's journal may hold together, the oldest entries dropped; a body "
        "over 64 KiB is kept cut, with its size and SHA-256",
        WHOLE,
        "N",
    ),
    Option(
        "--journal-write-behind",
        "on a Redis store, answer without waiting for the journal entry to be written (more "
        "throughput; reads still hold every answer, but two answers of different processes "
        "within a millisecond may be listed either way)",
        switch=True,
    ),
    Option(
        "--read-cache-bytes",
        "on a Redis store, keep the items each process reads by id, and the fault rules' "
        "versions, up to N bytes a process (0: none); Redis tells every process when one "
        "changes, so a read stays exact without a round trip",
        WHOLE,
        "N",
    ),
    Option(
        "--max-sessions",
        "named sessions live at once (besides the default one); one more is refused with 429",
        whole(1),
        "N",
    ),
    Option(
        "--session-ttl",
        "seconds an idle session lives before it ends (0: until reset or deleted)",
        WHOLE,
        "S",
    ),
    Option(
        "--max-rules",
        "fault rules a session may hold; more are refused with 429",
        whole(1),
        "N",
    ),
    Option(
        "--coverage-report",
        "write the coverage at exit: JSON if FILE ends in .json, JUnit XML otherwise",
        path,
        "FILE",
    ),
    Option(
        "--state-file",
        "keep records, event types and fault rules across restarts: loaded at start-up when "
        "FILE exists, written (atomically) at shutdown",
        path,
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
        "--upstream",
        "forward API requests to this URL (the real platform) after the mock's front "
        "(sessions, journal, faults), checking both directions against the spec",
        metavar="URL",
    ),
    Option(
        "--upstream-timeout",
        "seconds to wait for the upstream (connect, and between bytes), else 504",
        seconds,
        "SECONDS",
    ),
    Option("--upstream-ca", "CA bundle (PEM) to verify the upstream's TLS with", path, "FILE"),
    Option(
        "--forward-invalid",
        "forward requests that break the spec too (flagged), instead of answering 400",
        switch=True,
    ),
    Option(
        "--drift-report",
        "write the upstream's drift from the spec at exit: JSON if FILE ends in .json, JUnit "
        "XML otherwise",
        path,
        "FILE",
    ),
    Option(
        "--record", "write every proxied exchange to FILE as HAR 1.2, secrets masked", path, "FILE"
    ),
    Option(
        "--seed-from",
        "load the records and event types of a HAR recording's responses at start-up",
        path,
        "FILE",
    ),
    Option(
        "--log-format",
        "one line of text, or one JSON object, per log entry",
        one_of("text", "json"),
        choices=("text", "json"),
    ),
    Option(
        "--log-level",
        "least severe entry logged",
        one_of(*LEVELS),
        choices=LEVELS,
    ),
)


class _Parser(argparse.ArgumentParser):
    """argparse, refusing with SettingsError (one line, naming the option) instead of
    printing its usage and exiting."""

    def error(self, message: str) -> Any:
        raise SettingsError(message.removeprefix("argument "))


def parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The command line: every option, its default from its `MOCKSERVER_*` variable when set
    (`environ`: the process's by default). A variable's value goes through the same checks as
    the flag's; a value that does not pass raises SettingsError naming the flag or variable."""
    env = os.environ if environ is None else environ
    p = _Parser(
        prog="mockserver",
        description="Mock and contract-testing server for the SoftwareOne Marketplace Audit "
        "API. Every option can also be set with the environment variable named after it "
        "(shown in brackets); a flag wins over its variable. Yes/no values are on/off, "
        "true/false, 1/0 or yes/no, in any case.",
    )
    p.add_argument("--version", action="version", version=f"mockserver {VERSION}")
    for option in OPTIONS:
        _add(p, option, env.get(option.variable))
    return p


def _from_variable(option: Option, given: str) -> Any:
    """The variable's value, checked as the flag's is."""
    convert = boolean if option.switch else option.kind
    try:
        return convert(given)
    except ValueError as exc:
        raise SettingsError(f"{option.variable}: {exc}") from None


def _checked(option: Option) -> Callable[[str], Any]:
    """The flag's converter, its ValueError shown by argparse as `--flag: why`."""

    def convert(text: str) -> Any:
        try:
            return option.kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _add(p: argparse.ArgumentParser, option: Option, given: str | None) -> None:
    shown = f"{option.help} [{option.variable}; default: {option.default}]"
    if option.repeated:
        found = [part.strip() for part in (given or "").split(",") if part.strip()]
        p.add_argument(
            option.flag, action="append", default=found, metavar=option.metavar, help=shown
        )
        return
    default = _DEFAULTS[option.field] if given is None else _from_variable(option, given)
    if option.switch:
        p.add_argument(option.flag, action="store_true", default=default, help=shown)
        return
    metavar = "{" + ",".join(option.choices) + "}" if option.choices else option.metavar
    p.add_argument(option.flag, type=_checked(option), default=default, metavar=metavar, help=shown)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from parsed options."""
    given = vars(args)
    values: dict[str, Any] = {option.field: given[option.dest] for option in OPTIONS}
    values["cors_origins"] = tuple(given["cors_origin"])
    values["admin_token"] = given["admin_token"] or None
    values["upstream"] = given["upstream"] or None
    if not values["upstream"]:
        for flag in ("--record", "--drift-report", "--upstream-ca", "--forward-invalid"):
            if given[flag[2:].replace("-", "_")]:
                raise SettingsError(f"{flag} needs --upstream")
    if values["journal_write_behind"] and values["store"] == "memory":
        raise SettingsError(
            "--journal-write-behind needs a shared store (--store redis://...): the memory "
            "store's journal is written in the process, before the answer"
        )
    if values["read_cache_bytes"] and values["store"] == "memory":
        raise SettingsError(
            "--read-cache-bytes needs a shared store (--store redis://...): the memory "
            "store's items are in the process already"
        )
    if values["pin_workers"] and not hasattr(os, "sched_setaffinity"):
        raise SettingsError("--pin-workers needs Linux (os.sched_setaffinity)")
    if values["processes"] > 1 and values["store"] == "memory":
        raise SettingsError(
            f"--processes {values['processes']} needs a store the processes share "
            "(--store redis://...): with --store memory each would hold records of its own"
        )
    return Settings(**values)
