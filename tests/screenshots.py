"""Screenshots of the dashboard's panels, as docs/dashboard.md and the README show them.

    .venv/bin/python tests/screenshots.py docs/ui

starts a server (the console script), makes some traffic with the official client (records,
a refused create, a 404, a rule the client retries through), and saves one PNG per panel at
1280x800 and the list of requests at 390 px wide. tests/test_dashboard.py runs it into a
temporary folder and checks the images.
"""

from __future__ import annotations

import contextlib
import struct
import sys
from pathlib import Path

import requests
from browser import DESKTOP, PHONE, open_dashboard, start_browser, viewport
from mpt_api_client import MPTClient
from mpt_api_client.auth import BearerTokenAuthentication
from mpt_api_client.exceptions import MPTAPIError
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from support import TOKEN, Server, new_record

SESSION = "demo"
SHOTS = {  # file: (panel, width x height)
    "requests.png": DESKTOP,
    "faults.png": DESKTOP,
    "coverage.png": DESKTOP,
    "records.png": DESKTOP,
    "health.png": DESKTOP,
    "requests-390.png": PHONE,
}


def traffic(url: str) -> int:
    """Requests of several kinds in the session; the id of the refused create's entry."""
    control = f"{url}/_mock/faults?session={SESSION}"
    client = MPTClient.from_config(
        authentication=BearerTokenAuthentication(TOKEN),
        base_url=f"{url}/_session/{SESSION}/public/v1",
    )
    try:
        created = [client.audit.records.create(new_record()) for _ in range(3)]
        client.audit.records.get(created[0].id)
        list(client.audit.records.order_by("-timestamp").iterate())
        rule = {"method": "POST", "path": "/public/v1/audit/records", "status": 503}
        rule |= {"headers": {"Retry-After": "0"}, "times": 2}
        requests.post(control, json=rule, timeout=5).raise_for_status()
        client.audit.records.create(new_record())  # 503, 503, then 201: the client retries
        with_delay = {"method": "GET", "path": "/public/v1/audit/event-types", "delay_ms": 150}
        requests.post(control, json=with_delay, timeout=5).raise_for_status()
        list(client.audit.event_types.iterate())
        for missing in ("AUD-0000-0000-0000-0000", "AUD-9999-9999-9999-9999"):
            with contextlib.suppress(MPTAPIError):
                client.audit.records.get(missing)
        with contextlib.suppress(MPTAPIError):
            client.audit.records.create({"event": 42, "object": {"id": 7, "objectType": "Order"}})
    finally:
        client.http_client.httpx_client.close()
    journal = requests.get(
        f"{url}/_mock/requests", params={"session": SESSION, "status": "400"}, timeout=5
    ).json()
    return int(journal["data"][0]["id"])


def settle(driver: WebDriver) -> None:
    """Wait until the page has drawn what it asked for."""
    WebDriverWait(driver, 5).until(
        lambda d: d.execute_script("return document.body.dataset.ready === 'true'")
    )
    driver.execute_script("return new Promise((done) => setTimeout(done, 400))")


def make(driver: WebDriver, url: str, folder: Path) -> list[Path]:
    """The screenshots of a server with traffic (see `traffic`), into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    refused = traffic(url)
    made = []

    def shoot(name: str, fragment: str | None) -> None:
        if fragment is not None:
            viewport(driver, *SHOTS[name])
            open_dashboard(driver, url, SESSION, fragment)
        settle(driver)
        path = folder / name
        driver.save_screenshot(str(path))
        made.append(path)

    shoot("requests.png", f"requests/{refused}")
    shoot("faults.png", "faults")
    shoot("coverage.png", "coverage")
    viewport(driver, *DESKTOP)
    open_dashboard(driver, url, SESSION, "records")
    rql = driver.find_element(By.ID, "rec-rql")
    rql.send_keys("eq(object.objectType,Order)&order=-timestamp", Keys.ENTER)
    settle(driver)
    driver.find_element(By.CSS_SELECTOR, "#records-table tbody a").click()
    shoot("records.png", None)
    shoot("health.png", "health")
    shoot("requests-390.png", "requests")
    return made


def png_size(path: Path) -> tuple[int, int]:
    """The width and height a PNG file declares (ValueError when it is no PNG)."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def main(folder: str) -> None:
    server = Server(["--seed-records", "40", "--faker-seed", "5"]).start()
    driver = start_browser()
    try:
        for path in make(driver, server.url, Path(folder)):
            print(path, *png_size(path))
    finally:
        driver.quit()
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/ui")
