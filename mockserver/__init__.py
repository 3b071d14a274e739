"""Mock and contract-testing server for the SoftwareOne Marketplace Audit API."""

from mockserver.app import create_app
from mockserver.auth import Identity, TokensFileError
from mockserver.client import Client, ControlError
from mockserver.embedded import MockServer
from mockserver.problems import Problem
from mockserver.settings import Settings
from mockserver.spec import Spec, SpecError, load_spec

__version__ = "0.1.0"
__all__ = [
    "Client",
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
