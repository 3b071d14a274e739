"""Security: CORS only for `--cors-origin`, secrets masked in the journal and the log, files
loaded safely (no YAML tags that build objects), nothing a request sends is ever evaluated."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from support import AUTH, MOCKSERVER, RECORDS, ROOT, Server, free_port, new_record

from mockserver.masking import mask, mask_query

ORIGIN = "http://localhost:3000"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}

# ---------------------------------------------------------------- CORS


def test_without_cors_origin_a_page_gets_no_permission(make_app):
    api = make_app().test_client()
    preflight = api.options(RECORDS, headers=PREFLIGHT)
    assert preflight.status_code == 405  # an OPTIONS like any other: the spec has none
    assert "Access-Control-Allow-Origin" not in preflight.headers
    answer = api.get(RECORDS, headers={**AUTH, "Origin": ORIGIN})
    assert answer.status_code == 200
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_an_allowed_origin_gets_its_preflight_and_can_read_answers(make_app):
    api = make_app(cors_origins=(ORIGIN,)).test_client()
    preflight = api.options(RECORDS, headers=PREFLIGHT)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert preflight.headers["Vary"] == "Origin"
    created = api.post(RECORDS, json=new_record(), headers={**AUTH, "Origin": ORIGIN})
    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Location" in created.headers["Access-Control-Expose-Headers"]
    assert "Content-Type" not in created.headers["Access-Control-Expose-Headers"]  # safelisted


def test_an_origin_not_allowed_gets_nothing(make_app):
    api = make_app(cors_origins=(ORIGIN,)).test_client()
    other = {**PREFLIGHT, "Origin": "http://evil.example"}
    assert "Access-Control-Allow-Origin" not in api.options(RECORDS, headers=other).headers
    answer = api.get(RECORDS, headers={**AUTH, "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_a_star_allows_any_origin_and_errors_and_faults_carry_it_too(make_app):
    api = make_app(cors_origins=("*",)).test_client()
    origin = {"Origin": "http://anywhere.example"}
    assert api.options(RECORDS, headers={**PREFLIGHT, **origin}).status_code == 204
    unauthorized = api.get(RECORDS, headers=origin)
    assert unauthorized.status_code == 401
    assert unauthorized.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    api.post("/_mock/faults", json={"status": 503, "headers": {"Retry-After": "2"}})
    faulted = api.get(RECORDS, headers={**AUTH, **origin})
    assert faulted.status_code == 503
    assert faulted.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    assert "Retry-After" in faulted.headers["Access-Control-Expose-Headers"]


def test_a_preflight_to_the_control_api_needs_no_admin_token(make_app):
    """Browsers send no credentials on a preflight; the request itself still needs them."""
    api = make_app(cors_origins=(ORIGIN,), admin_token="adm-0123456789").test_client()
    assert api.options("/_mock/faults", headers=PREFLIGHT).status_code == 204
    refused = api.post("/_mock/faults", json={"status": 500}, headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_preflights_are_not_journaled(make_app):
    api = make_app(cors_origins=(ORIGIN,)).test_client()
    api.options(RECORDS, headers=PREFLIGHT)
    assert api.get("/_mock/requests").get_json()["total"] == 0


def test_cors_origins_come_from_the_command_line_and_the_environment():
    from mockserver.settings import parser, settings_from

    args = parser().parse_args(["--cors-origin", ORIGIN, "--cors-origin", "http://b.example"])
    assert settings_from(args).cors_origins == (ORIGIN, "http://b.example")


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("query", "masked"),
    [
        ("limit=5", "limit=5"),
        ("access_token=abc&limit=5", "access_token=***&limit=5"),
        ("limit=5&api_key=0123456789abcdefXYZ", "limit=5&api_key=01234567***"),
        ("eq(details,'token=x')", "eq(details,'token=x')"),  # RQL, not a parameter
        ("PASSWORD=hunter2&token=", "PASSWORD=***&token=***"),
    ],
)
def test_secret_query_parameters_are_masked(query, masked):
    assert mask_query(query) == masked


def test_secret_headers_are_masked():
    assert mask("Authorization", "Bearer idt:TKN-1234-5678:secret") == "Bearer idt:TKN-***"
    assert mask("X-Api-Key", "short") == "***"
    assert mask("Accept", "application/json") == "application/json"


def test_the_journal_masks_secret_query_parameters(make_app):
    api = make_app().test_client()
    api.get(RECORDS + "?limit=1&access_token=0123456789abcdefSECRET")
    entry = api.get("/_mock/requests").get_json()["data"][0]
    assert entry["query"] == "limit=1&access_token=01234567***"
    assert entry["headers"]["Authorization"] == "Bearer idt:TKN-***"


def test_the_log_shows_no_token(start_server: Callable[..., Server]):
    admin = "adm-very-secret-token-4242"
    server = start_server(env={"MOCKSERVER_ADMIN_TOKEN": admin})
    secret = "0123456789abcdefSECRET"
    answer = requests.get(
        f"{server.url}{RECORDS}?limit=1&access_token={secret}", headers=AUTH, timeout=5
    )
    assert answer.status_code == 400  # `name=value` is RQL's eq(): no such field
    requests.get(f"{server.url}/_mock/health?token={admin}", timeout=5)
    requests.get(
        f"{server.url}/_mock/health", headers={"Authorization": f"Bearer {admin}"}, timeout=5
    )
    assert server.stop() == 0
    text = "\n".join(server.log)
    assert "access_token=01234567***" in text
    for leaked in (secret, admin, "TKN-1234-5678:secret"):
        assert leaked not in text


# ---------------------------------------------------------------- safe loading


EVIL_YAML = "!!python/object/apply:os.system ['touch {marker}']\n"


@pytest.mark.parametrize("option", ["--scenario", "--tokens", "--spec"])
def test_yaml_tags_that_build_objects_are_refused(tmp_path: Path, option: str):
    marker = tmp_path / "evaluated"
    evil = tmp_path / "evil.yaml"
    evil.write_text(EVIL_YAML.format(marker=marker))
    done = subprocess.run(
        [str(MOCKSERVER), "--port", str(free_port()), option, str(evil)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert str(evil) in done.stderr
    assert not marker.exists()


def test_the_package_never_evaluates_or_unpickles():
    """No eval/exec, no pickle/marshal, no unsafe YAML loader anywhere in the package."""
    forbidden = re.compile(
        r"\b(eval|exec)\(|\bpickle\b|\bmarshal\b|yaml\.(load|unsafe_load|full_load)\(|"
        r"Loader=yaml\.(Unsafe|Full)?Loader|shell=True"
    )
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted((ROOT / "mockserver").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert found == []
