"""The `mockserver` command: its options (`settings.OPTIONS`, each with its `MOCKSERVER_*`
variable), and start-up errors as one line naming the file or option at fault."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from mockserver import log
from mockserver.app import create_app
from mockserver.auth.tokens import TokensFileError
from mockserver.contract.spec import SpecError
from mockserver.faults.scenario import ScenarioError
from mockserver.proxy.forward import UpstreamError
from mockserver.proxy.har import HarError
from mockserver.serving import diff
from mockserver.serving.uwsgi import StartupError, check_port, serve
from mockserver.sessions.state_file import StateFileError
from mockserver.settings import Settings, SettingsError, parser, settings_from
from mockserver.state import State
from mockserver.storage import BackendError

STARTUP_ERRORS = (
    SpecError,
    TokensFileError,
    ScenarioError,
    StateFileError,
    StartupError,
    UpstreamError,
    HarError,
)


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    if given[:1] == ["diff"]:  # `mockserver diff FILE.har`: the fidelity diff
        return diff.main(given[1:])
    try:
        p = parser()
        p.epilog = "mockserver diff FILE.har [options]: replay a recording (--record) against a "
        p.epilog += "fresh mock and report where the answers differ (mockserver diff --help)."
        settings = settings_from(p.parse_args(given))
    except SettingsError as exc:  # one line, naming the flag or variable
        print(f"mockserver: error: {exc} (see mockserver --help)", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    log.configure(settings.log_format, settings.log_level)
    try:
        start(settings)
    except (*STARTUP_ERRORS, BackendError) as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        return 1
    return 0


def start(settings: Settings) -> None:
    """Build the app (a bad file stops here), then serve it until SIGTERM or SIGINT."""
    check_port(settings.host, settings.port)
    app = create_app(settings)
    state: State = app.extensions["mockserver"]
    log.logger.info(
        "spec %s (%s %s, sha256 %s), %s mode, %d records",
        settings.spec,
        state.spec.title,
        state.spec.version,
        state.spec.sha256[:12],
        "strict" if settings.strict else "lenient",
        settings.seed_records,
    )
    kinds = Counter(state.kinds.values())
    log.logger.info(
        "%d operations: %d CRUD, %d answered with the spec's example, %d generated",
        len(state.kinds),
        kinds["crud"],
        kinds["example"],
        kinds["generated"],
    )
    serve(app, settings)


if __name__ == "__main__":
    sys.exit(main())
