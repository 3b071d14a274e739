"""The dashboard (/_mock/ui) in a real headless Chromium (Selenium 4, Debian's chromium and
chromedriver), against the `mockserver` console script. The official client makes the
requests; the page shows them, explains refusals at the field, adds fault rules, shows
coverage and records, and keeps the admin token's door.

One browser for the whole run of a worker; each test works in a session of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import screenshots
from browser import DESKTOP, PHONE, open_dashboard, start_browser, viewport
from mpt_api_client import MPTClient
from mpt_api_client.auth import BearerTokenAuthentication
from mpt_api_client.exceptions import MPTAPIError
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait
from support import CLOSE, ROOT, TOKEN, Server, new_record, nonconforming

ADMIN_TOKEN = "adm-dashboard-3f9c2b17e4d8"
LIVE_WAIT = 3.0  # the page polls every second: a new request shows well within this


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    driver = start_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server(["--seed-records", "12", "--faker-seed", "3"]).start()
    yield running
    assert running.stop() == 0
    assert not nonconforming(running), "\n".join(nonconforming(running))


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    viewport(browser, *DESKTOP)
    yield browser
    browser.delete_all_cookies()


@pytest.fixture
def session() -> str:
    return f"ui-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(server: Server, session: str) -> Iterator[MPTClient]:
    """The official client, in the test's session (named in its base URL)."""
    made = MPTClient.from_config(
        authentication=BearerTokenAuthentication(TOKEN),
        base_url=f"{server.url}/_session/{session}/public/v1",
    )
    yield made
    made.http_client.httpx_client.close()


def wait(driver: WebDriver, found: Callable[[WebDriver], Any], seconds: float = LIVE_WAIT) -> Any:
    """What `found` gives once it is truthy; an element redrawn under it is looked for again."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, seconds, 0.1, ignored).until(found)


def rows(driver: WebDriver, table: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")


def row_texts(driver: WebDriver, table: str) -> list[str]:
    return [row.text for row in rows(driver, table)]


def control(server: Server, method: str, path: str, session: str, **kwargs: Any) -> Any:
    answer = requests.request(
        method,
        f"{server.url}/_mock{path}",
        params={"session": session},
        headers=CLOSE,
        timeout=5,
        **kwargs,
    )
    answer.raise_for_status()
    return answer.json() if answer.content else None


# ---------------------------------------------------------------- requests, live


def test_a_request_of_the_official_client_shows_up_live(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    open_dashboard(page, server.url, session)
    assert rows(page, "requests-table") == []
    record = client.audit.records.create(new_record())

    wait(page, lambda d: len(rows(d, "requests-table")) == 1)
    cells = rows(page, "requests-table")[0].find_elements(By.TAG_NAME, "td")
    assert [cell.text for cell in cells[2:5]] == ["POST", "/public/v1/audit/records", "201"]
    client.audit.records.get(record.id)  # newest first
    wait(page, lambda d: len(rows(d, "requests-table")) == 2)
    first = rows(page, "requests-table")[0].find_elements(By.TAG_NAME, "td")
    assert first[3].text == f"/public/v1/audit/records/{record.id}"


def test_one_request_shows_what_was_sent_and_answered_and_copies_as_curl(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    record = client.audit.records.create(new_record())
    open_dashboard(page, server.url, session)
    page.find_element(By.LINK_TEXT, "/public/v1/audit/records").click()
    detail = wait(page, lambda d: d.find_element(By.ID, "request-detail"))
    wait(page, lambda d: "Answer 201" in detail.text)
    headers = detail.find_element(By.CSS_SELECTOR, "table.headers").text
    assert "Bearer idt:TKN-***" in headers
    assert TOKEN not in detail.text
    answer = detail.find_element(By.ID, "answer-body").text
    assert f'"id": "{record.id}"' in answer
    body = detail.find_element(By.ID, "request-body")
    assert body.find_element(By.CSS_SELECTOR, '[data-path="event"]').text == (
        '"event": "platform.commerce.order.created",'
    )
    detail.find_element(By.ID, "copy-curl").click()
    curl = wait(page, lambda d: d.find_element(By.ID, "curl-text").text)
    assert curl.startswith(f"curl -X POST '{server.url}/public/v1/audit/records'")
    assert "-H 'Authorization: Bearer idt:TKN-***'" in curl
    assert TOKEN not in curl
    assert '"event":"platform.commerce.order.created"' in curl


def test_a_large_answer_is_shown_cut_with_its_size(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    listed = client.audit.records.fetch_page(limit=12)
    size = len(listed.meta.response.content)
    assert size > 4096
    open_dashboard(page, server.url, session)
    page.find_element(By.PARTIAL_LINK_TEXT, "/public/v1/audit/records?").click()
    detail = wait(page, lambda d: d.find_element(By.ID, "request-detail"))
    note = wait(page, lambda d: detail.find_element(By.CSS_SELECTOR, "h5 .truncated").text)
    assert note == f"(truncated: {size / 1024:.1f} KiB)"
    shown = detail.find_element(By.ID, "answer-body").text
    assert listed.meta.response.text.startswith(shown[:200])


def test_a_refused_create_shows_the_field_error_next_to_its_member(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    sent = {"event": 42, "object": {"id": 7, "objectType": "Order"}}
    with pytest.raises(MPTAPIError) as refused:
        client.audit.records.create(sent)
    assert refused.value.status_code == 400
    open_dashboard(page, server.url, session, "requests?refused=true")
    wait(page, lambda d: len(rows(d, "requests-table")) == 1)
    page.find_element(By.LINK_TEXT, "/public/v1/audit/records").click()
    body = wait(page, lambda d: d.find_element(By.ID, "request-body"))
    event = body.find_element(By.CSS_SELECTOR, '[data-path="event"]')
    assert "invalid" in (event.get_attribute("class") or "")
    assert event.find_element(By.CLASS_NAME, "violation").text == (
        "⚠ The value must be a string, not an integer."
    )
    object_id = body.find_element(By.CSS_SELECTOR, '[data-path="object.id"]')
    assert "The value must be a string, not an integer." in object_id.text
    valid = body.find_element(By.CSS_SELECTOR, '[data-path="object.objectType"]')
    assert valid.find_elements(By.CLASS_NAME, "violation") == []


def test_the_filters_narrow_the_list(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    record = client.audit.records.create(new_record())
    client.audit.records.get(record.id)
    with pytest.raises(MPTAPIError):
        client.audit.records.get("AUD-0000-0000-0000-0000")
    open_dashboard(page, server.url, session)
    wait(page, lambda d: len(rows(d, "requests-table")) == 3)
    page.find_element(By.ID, "f-status").send_keys("4xx")
    wait(page, lambda d: len(rows(d, "requests-table")) == 1)
    assert "404" in rows(page, "requests-table")[0].text
    page.find_element(By.ID, "f-clear").click()
    wait(page, lambda d: len(rows(d, "requests-table")) == 3)
    page.find_element(By.ID, "f-path").send_keys("/public/v1/audit/records/{id}")
    wait(page, lambda d: len(rows(d, "requests-table")) == 2)
    page.find_element(By.ID, "f-clear").click()
    Select(page.find_element(By.ID, "f-method")).select_by_visible_text("POST")
    wait(page, lambda d: len(rows(d, "requests-table")) == 1)


# ---------------------------------------------------------------- faults


def test_a_preset_makes_the_clients_next_call_fail_and_its_counter_move(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    record = client.audit.records.create(new_record())
    open_dashboard(page, server.url, session, "faults")
    page.find_element(By.CSS_SELECTOR, "[data-preset='notFound']").click()
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faults-table tr[data-id]")) == 1)
    assert "/public/v1/audit/records/{id}" in rule_cell(page, "path")
    assert (rule_cell(page, "matched"), rule_cell(page, "fired")) == ("0", "0")

    with pytest.raises(MPTAPIError) as failed:
        client.audit.records.get(record.id)
    assert failed.value.status_code == 404

    wait(page, lambda d: rule_cell(d, "fired") == "1")
    assert rule_cell(page, "matched") == "1"
    page.find_element(By.CSS_SELECTOR, "#faults-table button[aria-label^='Remove rule-']").click()
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#faults-table tr[data-id]") == [])
    assert raw_get(client, record.id) == 200


def rule_cell(driver: WebDriver, name: str) -> str:
    """A cell of the one rule's row, read in one step (the page redraws the table when the
    counters change)."""
    script = "return document.querySelector(arguments[0]).textContent"
    return str(driver.execute_script(script, f"#faults-table tr[data-id] .{name}"))


def raw_get(client: MPTClient, record_id: str) -> int:
    return int(client.audit.records.get(record_id).meta.response.status_code)


def test_the_503_preset_is_retried_by_the_client_and_used_up(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    open_dashboard(page, server.url, session, "faults")
    page.find_element(By.CSS_SELECTOR, "[data-preset='post503']").click()
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "#faults-table tr[data-id]"))
    assert rule_cell(page, "left") == "2"
    client.audit.records.create(new_record())  # the client retries a 503 by itself
    wait(page, lambda d: rule_cell(d, "fired") == "2")
    assert rule_cell(page, "left") == "0"
    statuses = [e["status"] for e in control(server, "GET", "/requests", session)["data"]]
    assert statuses == [503, 503, 201]


def test_a_rule_the_control_api_refuses_shows_its_error_at_the_field(
    page: WebDriver, server: Server, session: str
) -> None:
    open_dashboard(page, server.url, session, "faults")
    page.find_element(By.ID, "r-status").send_keys("99")
    page.find_element(By.ID, "r-times").send_keys("0")
    page.find_element(By.CSS_SELECTOR, "#fault-form button[type=submit]").click()
    status_error = wait(
        page, lambda d: d.find_element(By.CSS_SELECTOR, ".field-error[data-for='status']").text
    )
    assert "200" in status_error  # the minimum, as the control spec words it
    assert page.find_element(By.CSS_SELECTOR, ".field-error[data-for='times']").text
    assert page.find_element(By.ID, "r-status").get_attribute("aria-invalid") == "true"
    assert control(server, "GET", "/faults", session)["data"] == []
    page.find_element(By.ID, "r-status").clear()
    page.find_element(By.ID, "r-status").send_keys("500")
    page.find_element(By.ID, "r-times").clear()
    page.find_element(By.ID, "r-times").send_keys("1")
    page.find_element(By.CSS_SELECTOR, "#fault-form button[type=submit]").click()
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faults-table tr[data-id]")) == 1)
    [added] = control(server, "GET", "/faults", session)["data"]
    assert added["rule"] == {"status": 500, "times": 1}
    page.find_element(By.ID, "faults-clear").click()
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#faults-table tr[data-id]") == [])
    assert control(server, "GET", "/faults", session)["data"] == []


# ---------------------------------------------------------------- coverage and records


GET_404 = "#coverage-table tr[data-operation='getAuditRecord'] td[data-status='404']"


def test_a_coverage_cell_turns_from_unexercised_to_exercised(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    open_dashboard(page, server.url, session, "coverage")
    cell = page.find_element(By.CSS_SELECTOR, GET_404)
    assert cell.get_attribute("class") == "cell unexercised"
    assert cell.text == "0"
    with pytest.raises(MPTAPIError):
        client.audit.records.get("AUD-0000-0000-0000-0000")
    wait(
        page,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, GET_404).get_attribute("class") == "cell exercised"
        ),
    )
    page.find_element(By.CSS_SELECTOR, f"{GET_404} a").click()
    wait(page, lambda d: len(rows(d, "requests-table")) == 1)
    assert "AUD-0000-0000-0000-0000" in rows(page, "requests-table")[0].text
    assert page.find_element(By.ID, "f-status").get_attribute("value") == "404"


def test_an_rql_filter_narrows_the_records(page: WebDriver, server: Server, session: str) -> None:
    stored = control(server, "GET", "/records", session)["data"]
    assert len(stored) == 12
    open_dashboard(page, server.url, session, "records")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "#records-pager .count").text)
    assert page.find_element(By.CSS_SELECTOR, "#records-pager .count").text == "1\u201312 of 12"
    rql = page.find_element(By.ID, "rec-rql")
    rql.send_keys(f"eq(id,{stored[3]['id']})", Keys.ENTER)
    wait(page, lambda d: len(rows(d, "records-table")) == 1)
    assert page.find_element(By.CSS_SELECTOR, "#records-pager .count").text == "1\u20131 of 1"
    page.find_element(By.LINK_TEXT, stored[3]["id"]).click()
    shown = wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "#record-detail pre").text)
    assert f'"event": "{stored[3]["event"]}"' in shown
    rql.clear()
    rql.send_keys("eq(colour,red)", Keys.ENTER)
    error = wait(page, lambda d: d.find_element(By.ID, "records-error").text)
    assert "colour: Unknown expression group." in error


def test_health_and_the_session_picker(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    client.audit.records.create(new_record())
    open_dashboard(page, server.url, session, "health")
    facts = wait(page, lambda d: d.find_element(By.ID, "health-list").text)
    health = server.health()
    assert health["spec"]["sha256"] in facts
    assert health["spec"]["title"] in facts
    settings = page.find_element(By.ID, "settings-list").text
    assert "--seed-records\n12" in settings
    assert "--journal-size\n10000" in settings
    options = [o.text for o in page.find_elements(By.CSS_SELECTOR, "#session option")]
    assert {"default", session} <= set(options)
    sessions = row_texts(page, "sessions-table")
    assert f"{session} 13 1 0" in sessions  # 12 seeded records + 1, one request, no rule
    page.find_element(By.CSS_SELECTOR, "#session option[value='default']").click()
    wait(page, lambda d: "Session\ndefault" in d.find_element(By.ID, "health-list").text)


# ---------------------------------------------------------------- the door


@pytest.fixture(scope="module")
def guarded() -> Iterator[Server]:
    running = Server([], env={"MOCKSERVER_ADMIN_TOKEN": ADMIN_TOKEN}).start()
    yield running
    assert running.stop() == 0
    assert not nonconforming(running), "\n".join(nonconforming(running))


def fetch(driver: WebDriver, method: str, path: str, csrf: bool) -> Any:
    """A fetch by the page itself (its cookie sent), with or without the CSRF header."""
    return driver.execute_async_script(
        """
        const [method, path, csrf, done] = arguments;
        const headers = {};
        const token = document.querySelector('meta[name="mock-csrf"]').content;
        if (csrf) headers["X-CSRF-Token"] = token;
        fetch(path, {method, headers}).then(async (answer) =>
          done({status: answer.status, body: await answer.text()}));
        """,
        method,
        path,
        csrf,
    )


def test_the_token_login_its_cookie_and_a_csrf_refusal(page: WebDriver, guarded: Server) -> None:
    page.get(f"{guarded.url}/_mock/ui")
    token = page.find_element(By.ID, "token")
    assert page.find_element(By.CSS_SELECTOR, "label[for='token']").text == "Admin token"
    token.send_keys("not-the-token", Keys.ENTER)
    error = wait(page, lambda d: d.find_element(By.ID, "login-error").text)
    assert error == "That is not the server's admin token."
    assert page.get_cookies() == []

    page.find_element(By.ID, "token").send_keys(ADMIN_TOKEN, Keys.ENTER)
    wait(page, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    [cookie] = page.get_cookies()
    assert cookie["name"] == "mockserver_admin"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/_mock"
    assert ADMIN_TOKEN not in cookie["value"]
    assert page.execute_script("return document.cookie") == ""  # HttpOnly: not for scripts

    assert fetch(page, "GET", "/_mock/faults", csrf=False)["status"] == 200
    refused = fetch(page, "DELETE", "/_mock/faults", csrf=False)
    assert refused["status"] == 403
    assert "CSRF" in refused["body"]
    assert fetch(page, "DELETE", "/_mock/faults", csrf=True)["status"] == 204
    page.find_element(By.CSS_SELECTOR, "[href='#faults']").click()
    page.find_element(By.CSS_SELECTOR, "[data-preset='error500']").click()  # the page's own
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faults-table tr[data-id]")) == 1)

    # the cookie, not the token, outside the browser: reads pass, a change needs the CSRF token
    jar = {"mockserver_admin": cookie["value"]}
    faults = f"{guarded.url}/_mock/faults"
    assert requests.get(faults, cookies=jar, headers=CLOSE, timeout=5).status_code == 200
    assert requests.delete(faults, cookies=jar, headers=CLOSE, timeout=5).status_code == 403
    assert requests.get(faults, headers=CLOSE, timeout=5).status_code == 401
    forged = {"mockserver_admin": "0" * 32 + "." + "0" * 64}
    assert requests.get(faults, cookies=forged, headers=CLOSE, timeout=5).status_code == 401


# ---------------------------------------------------------------- reachable and labelled

LABELLED = """
const missing = [];
for (const control of document.querySelectorAll("input, select, textarea")) {
  const byFor = control.id && document.querySelector(`label[for="${control.id}"]`);
  if (!byFor && !control.closest("label") && !control.getAttribute("aria-label")) {
    missing.push(control.outerHTML.slice(0, 80));
  }
}
for (const button of document.querySelectorAll("button, a[href]")) {
  if (!(button.textContent.trim() || button.getAttribute("aria-label"))) {
    missing.push(button.outerHTML.slice(0, 80));
  }
}
return missing;
"""


def test_every_control_is_labelled_and_the_panels_are_reached_by_keyboard(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    client.audit.records.create(new_record())
    open_dashboard(page, server.url, session)
    assert page.execute_script(LABELLED) == []
    focused = []
    body = page.find_element(By.TAG_NAME, "body")
    body.click()
    for _ in range(30):
        page.switch_to.active_element.send_keys(Keys.TAB)
        focused.append(page.switch_to.active_element.get_attribute("id"))
    for wanted in ("session", "tab-requests", "tab-faults", "tab-coverage", "f-method", "f-path"):
        assert wanted in focused, focused
    page.find_element(By.ID, "tab-faults").send_keys(Keys.ENTER)
    wait(page, lambda d: d.find_element(By.ID, "panel-faults").is_displayed())
    assert page.find_element(By.ID, "tab-faults").get_attribute("aria-selected") == "true"
    assert page.execute_script(LABELLED) == []


def test_the_page_is_usable_at_390_pixels_wide(
    page: WebDriver, server: Server, session: str, client: MPTClient
) -> None:
    client.audit.records.create(new_record())
    viewport(page, *PHONE)
    open_dashboard(page, server.url, session)
    wait(page, lambda d: len(rows(d, "requests-table")) == 1)
    width = page.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0]  # nothing wider than the screen: no sideways scrolling
    page.find_element(By.LINK_TEXT, "/public/v1/audit/records").click()
    detail = wait(page, lambda d: d.find_element(By.ID, "request-detail"))
    assert detail.is_displayed()
    assert detail.rect["width"] <= PHONE[0]


# ---------------------------------------------------------------- the screenshots


def test_the_screenshot_script_makes_one_png_per_panel(browser: WebDriver, tmp_path: Path) -> None:
    server = Server(["--seed-records", "40", "--faker-seed", "5"]).start()
    try:
        made = screenshots.make(browser, server.url, tmp_path)
    finally:
        assert server.stop() == 0
    assert not nonconforming(server)
    assert sorted(path.name for path in made) == sorted(screenshots.SHOTS)
    for path in made:
        assert screenshots.png_size(path) == screenshots.SHOTS[path.name]
        assert path.stat().st_size > 10_000  # a drawn page, not a blank one
    committed = ROOT / "docs" / "ui"
    assert sorted(p.name for p in committed.glob("*.png")) == sorted(screenshots.SHOTS)
    for path in committed.glob("*.png"):
        assert screenshots.png_size(path) == screenshots.SHOTS[path.name]
