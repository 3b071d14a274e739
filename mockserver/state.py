"""What one server holds, made by `create_app` and shared by every request: the spec and its
router and validator, the resources, the sessions, auth, the rule book and the control API's
own spec. Flask keeps it as `app.extensions["mockserver"]`; the front and the lane are handed
it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mockserver.auth.identity import Authenticator
from mockserver.contract.response_check import ResponseChecker
from mockserver.contract.router import Router
from mockserver.contract.spec import Spec
from mockserver.contract.validation import Validator
from mockserver.faults.checking import RuleBook
from mockserver.resources.behaviour import Behaviour
from mockserver.resources.generated import AnswerKind
from mockserver.resources.handlers import Resources
from mockserver.sessions.session import Sessions
from mockserver.sessions.tally import Tally
from mockserver.settings import Settings


@dataclass
class State:
    """Everything one server holds; `app.extensions["mockserver"]`."""

    settings: Settings
    spec: Spec
    router: Router
    validator: Validator
    resources: Resources
    behaviours: dict[str, type[Behaviour]]  # by the spec path of their collection
    sessions: Sessions
    auth: Authenticator
    control_spec: Spec
    rules: RuleBook
    control_router: Router
    control_validator: Validator
    checker: ResponseChecker | None = None
    started: float = field(default_factory=time.monotonic)
    spec_json: bytes = b""
    media_types: dict[tuple[str, int], str | None] = field(default_factory=dict)
    tally: Tally | None = None  # every answer, for the coverage report at exit
    kinds: dict[str, AnswerKind] = field(default_factory=dict)  # `METHOD template` -> kind
    forked: bool = False  # served by a forked worker (uWSGI), not by the process that made it
    unsaved: str = ""  # why the --state-file could not be written at stop ("" when it was)
    # the times uWSGI's master started a worker again (one ended unexpectedly: killed, or
    # crashed); None when no master serves (`serving.after_fork` sets it)
    restarts: Callable[[], int] | None = None

    def collection(self, label: str) -> str | None:
        """The spec path of the collection whose behaviour the control API calls `label`."""
        for template, behaviour in self.behaviours.items():
            if behaviour.label == label:
                return template
        return None

    def kind_of(self, method: str, template: str) -> AnswerKind | None:
        """What the mock does for an operation (CRUD, example, generated); None: no such one."""
        return self.kinds.get(f"{method.upper()} {template}")

    def counted(self) -> dict[str, str]:
        """The collections health counts: label → spec path."""
        return {b.label: t for t, b in self.behaviours.items() if b.label is not None}
