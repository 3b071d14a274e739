"""Every option of the server, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SPEC = PACKAGE_DIR / "openapi" / "audit.yaml"
CONTROL_SPEC = PACKAGE_DIR / "openapi" / "control.yaml"
DEFAULT_PORT = 8080
MIB = 1024 * 1024


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
    max_body_bytes: int = MIB
    threads: int = 64  # each open keep-alive connection holds one (uWSGI's HTTP/1.1 socket)
    log_format: str = "text"
    log_level: str = "info"
    check_responses: bool = False
    scenario: Path | None = None
    fault_seed: int | None = None
    journal_size: int = 10_000
    coverage_report: Path | None = None
    max_export: int = 100_000
    admin_token: str | None = None  # required on /_mock when set
    state_file: Path | None = None  # sessions saved at shutdown, loaded at start-up
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call (`*`: any)
