"""The code stays clean: ruff (lint and format), mypy in strict mode, and no function of
radon's grade D or worse (cyclomatic complexity over 20)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import ROOT

BIN = Path(sys.executable).parent


def check(*command: str) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_lint():
    check(str(BIN / "ruff"), "check", ".")


def test_ruff_format():
    check(str(BIN / "ruff"), "format", "--check", ".")


def test_mypy_strict():
    check(str(BIN / "mypy"))


def test_no_function_is_graded_d_or_worse():
    done = subprocess.run(
        [str(BIN / "radon"), "cc", "--min", "D", "--show-complexity", "mockserver"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == ""
