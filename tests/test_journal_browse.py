"""The control API as the dashboard uses it: the journal's filters, order, cursor and default
page; what an entry keeps of the answer; the sessions; a collection read with RQL; and the
door with the dashboard's cookie and CSRF token. In-process (Flask's test client), every
answer checked against the control spec."""

from __future__ import annotations

from typing import Any

import pytest
from support import AUTH, RECORDS, TOKEN, new_record

from mockserver.control import door
from mockserver.sessions.answer import KEPT
from mockserver.settings import OPTIONS

ADMIN = "adm-browse-0c41d7e2a9"


def page(api: Any, query: str = "") -> dict[str, Any]:
    answer = api.get(f"/_mock/requests{query}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body: dict[str, Any] = answer.json
    return body


def ids(api: Any, query: str) -> list[int]:
    return [entry["id"] for entry in page(api, query)["data"]]


@pytest.fixture
def traffic(api: Any) -> Any:
    """1 POST 201, 2 GET 200, 3 GET 404, 4 POST 400, 5 GET 503 (a rule), 6 GET 200 by id."""
    created = api.post(RECORDS, json=new_record()).json
    api.get(RECORDS)
    api.get(f"{RECORDS}/AUD-0000-0000-0000-0000")
    api.post(RECORDS, json={"event": 42})
    rule = {"method": "GET", "path": RECORDS, "status": 503, "times": 1}
    assert api.post("/_mock/faults", json=rule).status_code == 201
    api.get(RECORDS)
    api.get(f"{RECORDS}/{created['id']}")
    return api


def test_the_filters_each_narrow_the_journal(traffic: Any) -> None:
    assert ids(traffic, "") == [1, 2, 3, 4, 5, 6]
    assert ids(traffic, "?method=post") == [1, 4]
    assert ids(traffic, f"?path={RECORDS}/{{id}}") == [3, 6]
    assert ids(traffic, f"?path={RECORDS}") == [1, 2, 4, 5]
    assert ids(traffic, "?operation=createAuditRecord") == [1, 4]
    assert ids(traffic, "?status=404") == [3]
    assert ids(traffic, "?status=2xx") == [1, 2, 6]
    assert ids(traffic, "?status=5xx") == [5]
    assert ids(traffic, "?refused=true") == [3, 4]
    assert ids(traffic, "?faulted=true") == [5]
    assert ids(traffic, "?method=GET&status=2xx&faulted=false") == [2, 6]


def test_newest_first_with_a_cursor_and_paging(traffic: Any) -> None:
    assert ids(traffic, "?order=newest") == [6, 5, 4, 3, 2, 1]
    newest = page(traffic, "?order=newest&limit=2&offset=1")
    assert (newest["total"], newest["last"]) == (6, 6)
    assert [e["id"] for e in newest["data"]] == [5, 4]
    assert ids(traffic, "?after=4") == [5, 6]
    assert page(traffic, "?after=6&limit=0") == {"total": 0, "last": 6, "data": []}
    traffic.get(RECORDS)
    assert page(traffic, "?after=6&limit=0") == {"total": 1, "last": 7, "data": []}
    assert ids(traffic, "?order=newest&status=2xx&limit=2") == [7, 6]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?order=random", "order"),
        ("?status=6xx", "status"),
        ("?status=abc", "status"),
        ("?refused=maybe", "refused"),
        ("?after=-1", "after"),
        ("?path=records", "path"),
        ("?status=", "status"),
        ("?method=", "method"),
        ("?operation=", "operation"),
        ("?refused=", "refused"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(api: Any, query: str, field: str) -> None:
    answer = api.get(f"/_mock/requests{query}")
    assert answer.status_code == 400
    assert list(answer.json["errors"]) == [field]


def test_a_page_holds_100_entries_unless_limit_says_otherwise(make_app: Any) -> None:
    api = make_app().test_client()
    for _ in range(105):
        api.get(f"{RECORDS}/AUD-0000-0000-0000-0000")
    first = page(api)
    assert (first["total"], len(first["data"]), first["data"][0]["id"]) == (105, 100, 1)
    assert len(page(api, "?limit=105")["data"]) == 105
    assert [e["id"] for e in page(api, "?offset=100")["data"]] == [101, 102, 103, 104, 105]


def test_an_entry_keeps_the_answer_and_a_large_body_is_cut_with_its_size(make_app: Any) -> None:
    api = make_app(seed_records=40).test_client()
    listed = api.get(f"{RECORDS}?limit=40")
    [entry] = page(api)["data"]
    answer = entry["answer"]
    size = len(listed.get_data())
    assert size > KEPT
    assert (answer["bodySize"], answer["bodyTruncated"]) == (size, True)
    assert answer["body"] == listed.get_data()[:KEPT].decode("utf-8", "replace")
    assert answer["headers"]["Content-Length"] == str(size)


def test_an_entry_keeps_a_rules_own_answer_and_its_delay(api: Any) -> None:
    rules = [
        {"method": "POST", "status": 503, "headers": {"Retry-After": "1"}, "times": 1},
        {"method": "GET", "delay_ms": 5, "times": 1},
    ]
    assert api.post("/_mock/faults", json=rules).status_code == 201
    refused = api.post(RECORDS, json=new_record())
    api.get(RECORDS)
    first, second = page(api)["data"]
    assert first["answer"]["body"] == refused.json
    assert first["answer"]["headers"]["Retry-After"] == "1"
    assert first["delayMs"] is None
    assert (second["status"], second["delayMs"], second["fault"]) == (200, 5.0, "rule-2")
    assert second["answer"]["body"]["$meta"]["pagination"]["total"] == 0  # the POST failed


def test_the_sessions_are_listed_with_their_sizes(make_app: Any) -> None:
    api = make_app(seed_records=3).test_client()
    api.post(RECORDS, json=new_record(), headers={**AUTH, "X-Mock-Session": "s-1"})
    api.post("/_mock/faults?session=s-1", json={"status": 500})
    answer = api.get("/_mock/sessions")
    assert answer.status_code == 200
    listed = answer.json
    sizes = ("name", "records", "eventTypes", "faults", "journal")
    assert [{key: one[key] for key in sizes} for one in listed["data"]] == [
        {"name": "default", "records": 3, "eventTypes": 50, "faults": 0, "journal": 0},
        {"name": "s-1", "records": 4, "eventTypes": 50, "faults": 1, "journal": 1},
    ]
    assert [one["journalBytes"] > 0 for one in listed["data"]] == [False, True]
    assert listed["total"] == 2


def test_the_settings_are_shown_by_option_name_without_the_admin_token(make_app: Any) -> None:
    api = make_app(journal_size=77, admin_token=ADMIN, cors_origins=("*",)).test_client()
    answer = api.get("/_mock/settings", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200
    shown = answer.json["settings"]
    assert (shown["journal-size"], shown["max-body-bytes"], shown["check-responses"]) == (
        77,
        1048576,
        True,
    )
    assert (shown["admin-token"], shown["cors-origin"], shown["tokens"]) == (True, ["*"], None)
    assert set(shown) == {option.flag[2:] for option in OPTIONS} - {"version"}
    assert ADMIN not in answer.get_data(as_text=True)


def test_a_collection_is_read_with_rql_and_a_bad_filter_is_the_apis_400(make_app: Any) -> None:
    api = make_app(seed_records=10).test_client()
    everything = api.get("/_mock/collections/records?limit=100").json
    assert everything["total"] == 10
    wanted = everything["data"][4]
    one = api.get(f"/_mock/collections/records?rql=eq(id,{wanted['id']})").json
    assert one == {"total": 1, "data": [wanted]}
    ordered = api.get("/_mock/collections/records?rql=order=-timestamp&limit=3").json
    times = [item["timestamp"] for item in ordered["data"]]
    assert times == sorted(times, reverse=True)
    bad = api.get("/_mock/collections/records?rql=eq(colour,red)")
    assert bad.status_code == 400
    assert bad.json["errors"] == {"colour": ["Unknown expression group."]}
    assert api.get("/_mock/collections/eventTypes?limit=1").json["total"] == 50
    assert api.get("/_mock/collections/nothing").status_code == 404


# ---------------------------------------------------------------- the door


@pytest.fixture
def guarded(make_app: Any) -> Any:
    return make_app(admin_token=ADMIN).test_client()


def signed_in(client: Any) -> tuple[str, str]:
    """Sign in through the form; the cookie's value and the page's CSRF token."""
    answer = client.post("/_mock/ui/login", data={"token": ADMIN}, headers={})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/_mock/ui"
    cookie = client.get_cookie(door.COOKIE, path="/_mock")
    assert cookie is not None
    page = client.get("/_mock/ui", headers={}).get_data(as_text=True)
    csrf = door.csrf_token(ADMIN, cookie.value)
    assert csrf is not None
    assert f'<meta name="mock-csrf" content="{csrf}">' in page
    return cookie.value, csrf


def test_the_login_sets_a_signed_httponly_strict_cookie(guarded: Any) -> None:
    answer = guarded.post("/_mock/ui/login", data={"token": ADMIN}, headers={})
    set_cookie = answer.headers["Set-Cookie"]
    assert set_cookie.startswith(f"{door.COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/_mock"):
        assert attribute in set_cookie
    assert ADMIN not in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP here; over HTTPS it is set


def test_a_wrong_token_is_the_login_form_again_with_a_401(guarded: Any) -> None:
    answer = guarded.post("/_mock/ui/login", data={"token": "nope"}, headers={})
    assert answer.status_code == 401
    assert "That is not the server&#39;s admin token." in answer.get_data(as_text=True)
    assert "Set-Cookie" not in answer.headers
    login = guarded.get("/_mock/ui", headers={}).get_data(as_text=True)
    assert 'id="login-form"' in login
    assert "mock-csrf" not in login


def test_the_cookie_reads_and_changes_only_with_its_csrf_token(guarded: Any) -> None:
    _, csrf = signed_in(guarded)
    assert guarded.get("/_mock/faults", headers={}).status_code == 200
    refused = guarded.post("/_mock/faults", json={"status": 500}, headers={})
    assert refused.status_code == 403
    assert refused.json["detail"] == (
        "A change made with the dashboard's cookie needs its CSRF token (X-CSRF-Token)."
    )
    wrong = guarded.delete("/_mock/faults", headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    added = guarded.post("/_mock/faults", json={"status": 500}, headers={"X-CSRF-Token": csrf})
    assert added.status_code == 201
    assert guarded.delete("/_mock/faults", headers={"X-CSRF-Token": csrf}).status_code == 204


def test_a_forged_or_foreign_cookie_is_a_401_and_the_bearer_token_still_works(
    guarded: Any, make_app: Any
) -> None:
    guarded.set_cookie(door.COOKIE, "0" * 32 + "." + "0" * 64, path="/_mock")
    assert guarded.get("/_mock/faults", headers={}).status_code == 401
    other = make_app(admin_token="adm-another-server").test_client()
    other.post("/_mock/ui/login", data={"token": "adm-another-server"}, headers={})
    foreign = other.get_cookie(door.COOKIE, path="/_mock")
    guarded.set_cookie(door.COOKIE, foreign.value, path="/_mock")
    assert guarded.get("/_mock/faults", headers={}).status_code == 401
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    assert guarded.delete("/_mock/faults", headers=bearer).status_code == 204


def test_without_a_token_the_dashboard_is_open(api: Any) -> None:
    answer = api.get("/_mock/ui", headers={})
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert '<meta name="mock-csrf" content="">' in html
    assert 'id="panel-requests"' in html
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    login = api.post("/_mock/ui/login", data={"token": TOKEN}, headers={})
    assert (login.status_code, login.headers["Location"]) == (303, "/_mock/ui")
    assert "Set-Cookie" not in login.headers


def test_the_static_files_are_served_and_a_missing_one_is_a_404_problem(api: Any) -> None:
    script = api.get("/_mock/ui/static/dashboard.js", headers={})
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    style = api.get("/_mock/ui/static/dashboard.css", headers={})
    assert style.headers["Content-Type"].startswith("text/css")
    missing = api.get("/_mock/ui/static/nothing.js", headers={})
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")
