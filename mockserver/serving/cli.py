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
from mockserver.serving.uwsgi import StartupError, check_port, serve
from mockserver.sessions.state_file import StateFileError
from mockserver.settings import Settings, parser, settings_from, value_errors
from mockserver.state import State
from mockserver.storage import BackendError

STARTUP_ERRORS = (SpecError, TokensFileError, ScenarioError, StateFileError, StartupError)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
        for problem in value_errors(args):
            p.error(problem)
    except SystemExit as exc:
        return int(exc.code or 0)
    settings = settings_from(args)
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
