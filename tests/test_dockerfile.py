"""The Dockerfile's commands are the ones tested: its CMD serves, its HEALTHCHECK checks.

No Docker engine runs here, so the image's own commands run on the host with the image's
environment (only the address is moved to a loopback port).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from support import ROOT, free_port

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    joined = DOCKERFILE.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def values(keyword: str) -> list[str]:
    return [rest for key, rest in instructions() if key == keyword]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in values("ENV"):
        for pair in shlex.split(rest):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def exec_form(text: str) -> list[str]:
    command = json.loads(text)
    assert isinstance(command, list), "use the exec form so signals reach the server"
    return [str(part) for part in command]


def test_base_image_user_and_port():
    assert values("FROM") == ["python:3.12-slim"]
    assert values("USER") == ["mock"]
    assert "useradd --system --uid 10001" in DOCKERFILE
    env = image_env()
    assert env["MOCKSERVER_HOST"] == "0.0.0.0"
    assert values("EXPOSE") == [env["MOCKSERVER_PORT"]]


def test_cmd_serves_and_healthcheck_passes():
    port = str(free_port())
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # the image's PATH
    env = {
        **os.environ,
        **image_env(),
        "MOCKSERVER_HOST": "127.0.0.1",
        "MOCKSERVER_PORT": port,
        "MOCKSERVER_SEED_RECORDS": "10",
        "PATH": path,
    }
    command = exec_form(values("CMD")[-1])
    healthcheck = values("HEALTHCHECK")[0]
    options, _, check = healthcheck.partition("CMD ")
    assert "--interval" in options
    probe = exec_form(check)
    assert subprocess.run(probe, env=env, capture_output=True, timeout=10).returncode != 0
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(probe, env=env, capture_output=True, timeout=10).returncode != 0:
            assert time.monotonic() < deadline, "the HEALTHCHECK never passed"
            assert server.poll() is None, "the CMD exited"
            time.sleep(0.2)
        health = requests.get(f"http://127.0.0.1:{port}/_mock/health", timeout=5).json()
        assert health["records"] == 10
    finally:
        server.terminate()
        assert server.wait(timeout=20) == 0


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "openapi", "mockserver"])
def test_the_image_gets_what_the_install_needs(path):
    copied = " ".join(values("COPY"))
    assert path in copied
    assert (ROOT / path).exists()
