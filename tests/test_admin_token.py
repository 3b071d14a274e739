"""The control API's door: `--admin-token` (or MOCKSERVER_ADMIN_TOKEN) protects `/_mock`;
a server open to the network without one says so loudly at start-up."""

from __future__ import annotations

import pytest
import requests
from support import AUTH, RECORDS, new_record

from mockserver import Client, ControlError, MockServer, Settings
from mockserver.serving.uwsgi import exposure_warning

TOKEN = "adm-7f3c9a1e5b"


def test_without_the_token_the_control_api_is_a_401(make_app):
    api = make_app(admin_token=TOKEN).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = api.get("/_mock/health", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="mockserver-control"'
        body = answer.get_json()
        assert (body["status"], body["title"]) == (401, "Unauthorized")
        assert "admin token" in body["detail"]
    assert api.post("/_mock/reset").status_code == 401
    assert api.delete("/_mock/records").status_code == 401


def test_with_the_token_it_answers(make_app):
    api = make_app(admin_token=TOKEN).test_client()
    answer = api.get("/_mock/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "ok"


def test_the_api_itself_is_not_behind_the_door(make_app):
    api = make_app(admin_token=TOKEN).test_client()
    assert api.post(RECORDS, json=new_record(), headers=AUTH).status_code == 201


def test_without_a_token_set_the_control_api_is_open(make_app):
    assert make_app().test_client().get("/_mock/health").status_code == 200


def test_the_python_client_sends_the_token() -> None:
    with MockServer(admin_token=TOKEN) as server:
        assert server.client().health()["status"] == "ok"  # the server's own token
        with pytest.raises(ControlError) as refused:
            Client(server.url).health()
        assert refused.value.status == 401
        assert Client(server.url, admin_token=TOKEN).health()["status"] == "ok"
        url = f"{server.url}/_session/door/_mock/health"
        assert requests.get(url, timeout=5).status_code == 401  # also through the prefix


def test_the_environment_variable_sets_it(start_server):
    server = start_server(env={"MOCKSERVER_ADMIN_TOKEN": TOKEN})
    assert requests.get(f"{server.url}/_mock/records", timeout=5).status_code == 401
    shown = requests.get(
        f"{server.url}/_mock/records", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert shown.status_code == 200
    assert server.stop() == 0
    assert not any(TOKEN in line for line in server.log)  # never logged


@pytest.mark.parametrize(
    ("host", "token", "warned"),
    [
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("192.168.1.20", None, True),
        ("0.0.0.0", TOKEN, False),
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
    ],
)
def test_an_open_control_api_is_warned_about(host, token, warned):
    lines = exposure_warning(Settings(host=host, port=8080, admin_token=token))
    assert bool(lines) is warned
    if warned:
        assert any("MOCKSERVER_ADMIN_TOKEN" in line for line in lines)
        assert any(f"{host}:8080" in line for line in lines)
        assert any("dashboard (/_mock/ui)" in line for line in lines)
