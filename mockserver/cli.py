"""The `mockserver` command: flags, their `MOCKSERVER_*` variables, and start-up errors."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mockserver import __version__, log
from mockserver.app import create_app
from mockserver.auth import TokensFileError
from mockserver.scenario import ScenarioError
from mockserver.server import StartupError, check_port, serve
from mockserver.settings import DEFAULT_PORT, DEFAULT_SPEC, Settings
from mockserver.snapshot import StateFileError
from mockserver.spec import SpecError

_TRUE = {"1", "true", "yes", "on"}


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"MOCKSERVER_{name}", default)


def parser() -> argparse.ArgumentParser:
    """Every option; each default comes from its `MOCKSERVER_<NAME>` variable when set."""
    p = argparse.ArgumentParser(
        prog="mockserver",
        description="Mock and contract-testing server for the SoftwareOne Marketplace Audit API. "
        "Every option can also be set with the environment variable named after it "
        "(--seed-records: MOCKSERVER_SEED_RECORDS).",
    )
    p.add_argument("--version", action="version", version=f"mockserver {__version__}")
    p.add_argument(
        "--host",
        default=_env("HOST", "127.0.0.1"),
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=_env("PORT", str(DEFAULT_PORT)),
        help=f"TCP port (default {DEFAULT_PORT})",
    )
    p.add_argument(
        "--spec",
        type=Path,
        default=_env("SPEC", str(DEFAULT_SPEC)),
        help="OpenAPI file (YAML or JSON) to serve (default: the bundled audit.yaml)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        default=(_env("STRICT", "") or "").lower() in _TRUE,
        help="follow the spec's letter: reject unknown and read-only members "
        "instead of ignoring them as the real server does",
    )
    p.add_argument(
        "--auth",
        choices=["on", "off"],
        default=_env("AUTH", "on"),
        help="require 'Authorization: Bearer <token>' on API calls (default on)",
    )
    p.add_argument(
        "--tokens",
        type=Path,
        default=_env("TOKENS"),
        help="YAML file of accepted tokens, their identities and rights",
    )
    p.add_argument(
        "--seed-records",
        type=int,
        default=_env("SEED_RECORDS", "0"),
        metavar="N",
        help="fill the store with N realistic records at start-up (default 0)",
    )
    p.add_argument(
        "--faker-seed",
        type=int,
        default=_env("FAKER_SEED"),
        metavar="S",
        help="seed for the generated records: the same seed gives the same records",
    )
    p.add_argument(
        "--max-records",
        type=int,
        default=_env("MAX_RECORDS", "200000"),
        metavar="N",
        help="most items a collection keeps; the oldest are evicted (default 200000)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=_env("MAX_BODY_BYTES", str(1 << 20)),
        metavar="N",
        help="largest request body accepted, else 413 (default 1 MiB)",
    )
    p.add_argument(
        "--max-export",
        type=int,
        default=_env("MAX_EXPORT", "100000"),
        metavar="N",
        help="most items a streamed read (MPT-Streaming: true) may hold, else 413 (default 100000)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=_env("THREADS", str(Settings.threads)),
        help="connections served at once: a kept-alive connection holds a thread while it is "
        f"open, a delayed request too (default {Settings.threads})",
    )
    p.add_argument(
        "--admin-token",
        default=_env("ADMIN_TOKEN"),
        metavar="TOKEN",
        help="protect the control API (/_mock): it then needs 'Authorization: Bearer TOKEN' "
        "(prefer the MOCKSERVER_ADMIN_TOKEN variable: a command line is visible to all)",
    )
    p.add_argument(
        "--scenario",
        type=Path,
        default=_env("SCENARIO"),
        metavar="FILE",
        help="YAML or JSON file of fault rules loaded at start-up (and on every reset)",
    )
    p.add_argument(
        "--fault-seed",
        type=int,
        default=_env("FAULT_SEED"),
        metavar="S",
        help="seed for fault probabilities and random delays: the same seed, the same run",
    )
    p.add_argument(
        "--journal-size",
        type=int,
        default=_env("JOURNAL_SIZE", "10000"),
        metavar="N",
        help="requests the journal keeps per session, the oldest dropped (default 10000; 0: none)",
    )
    p.add_argument(
        "--coverage-report",
        type=Path,
        default=_env("COVERAGE_REPORT"),
        metavar="FILE",
        help="write the coverage at exit: JSON if FILE ends in .json, JUnit XML otherwise",
    )
    p.add_argument(
        "--state-file",
        type=Path,
        default=_env("STATE_FILE"),
        metavar="FILE",
        help="keep records, event types and fault rules across restarts: loaded at start-up "
        "when FILE exists, written (atomically) at shutdown",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[o.strip() for o in (_env("CORS_ORIGIN") or "").split(",") if o.strip()],
        metavar="ORIGIN",
        help="let browser pages from ORIGIN (e.g. http://localhost:3000, or *) call the mock "
        "(CORS); repeat for more. Default: none",
    )
    p.add_argument(
        "--check-responses",
        action="store_true",
        default=(_env("CHECK_RESPONSES", "") or "").lower() in _TRUE,
        help="validate every response against the spec and log what does not conform "
        "(a self-check for custom specs; the test suite runs with it)",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=_env("LOG_FORMAT", "text"),
        help="one line of text (default) or one JSON object per log entry",
    )
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=_env("LOG_LEVEL", "info"),
        help="least severe entry logged (default info)",
    )
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        spec=Path(args.spec),
        strict=args.strict,
        auth=args.auth == "on",
        tokens=Path(args.tokens) if args.tokens else None,
        seed_records=args.seed_records,
        faker_seed=args.faker_seed,
        max_records=args.max_records,
        max_body_bytes=args.max_body_bytes,
        threads=args.threads,
        check_responses=args.check_responses,
        scenario=Path(args.scenario) if args.scenario else None,
        fault_seed=args.fault_seed,
        journal_size=args.journal_size,
        coverage_report=Path(args.coverage_report) if args.coverage_report else None,
        max_export=args.max_export,
        admin_token=args.admin_token or None,
        state_file=Path(args.state_file) if args.state_file else None,
        cors_origins=tuple(args.cors_origin),
        log_format=args.log_format,
        log_level=args.log_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    for name in (
        "port",
        "seed_records",
        "max_records",
        "max_body_bytes",
        "threads",
        "journal_size",
        "max_export",
    ):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be a whole number >= 0")
    settings = settings_from(args)
    log.configure(settings.log_format, settings.log_level)
    try:
        check_port(settings.host, settings.port)
        app = create_app(settings)
        state = app.extensions["mockserver"]
        log.logger.info(
            "spec %s (%s %s, sha256 %s), %s mode, %d records",
            settings.spec,
            state.spec.title,
            state.spec.version,
            state.spec.sha256[:12],
            "strict" if settings.strict else "lenient",
            settings.seed_records,
        )
        serve(app, settings)
    except (SpecError, TokensFileError, ScenarioError, StateFileError, StartupError) as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
