"""Mock and contract-testing server for the SoftwareOne Marketplace Audit API.

The public names are imported on first use (PEP 562): `import mockserver` and
`mockserver.Client` load no Flask, openapi-core, Faker or uWSGI until a server is made.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mockserver.settings import VERSION

if TYPE_CHECKING:
    from mockserver.app import create_app
    from mockserver.auth.identity import Identity
    from mockserver.auth.tokens import TokensFileError
    from mockserver.contract.spec import Spec, SpecError, load_spec
    from mockserver.problems import Problem
    from mockserver.resources.behaviour import Behaviour
    from mockserver.settings import Settings
    from mockserver.storage.backend import Backend, Collection
    from mockserver.testing.client import Client, ControlError
    from mockserver.testing.embedded import MockServer

__version__ = VERSION
_WHERE = {
    "Backend": "mockserver.storage.backend",
    "Behaviour": "mockserver.resources.behaviour",
    "Client": "mockserver.testing.client",
    "Collection": "mockserver.storage.backend",
    "ControlError": "mockserver.testing.client",
    "Identity": "mockserver.auth.identity",
    "MockServer": "mockserver.testing.embedded",
    "Problem": "mockserver.problems",
    "Settings": "mockserver.settings",
    "Spec": "mockserver.contract.spec",
    "SpecError": "mockserver.contract.spec",
    "TokensFileError": "mockserver.auth.tokens",
    "create_app": "mockserver.app",
    "load_spec": "mockserver.contract.spec",
}
__all__ = [
    "Backend",
    "Behaviour",
    "Client",
    "Collection",
    "ControlError",
    "Identity",
    "MockServer",
    "Problem",
    "Settings",
    "Spec",
    "SpecError",
    "TokensFileError",
    "__version__",
    "create_app",
    "load_spec",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mockserver' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once found, an attribute like any other
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
