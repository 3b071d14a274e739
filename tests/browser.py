"""A real headless Chromium for the dashboard's tests, screenshots and benchmark: Debian's
`chromium` driven by its `chromedriver` through Selenium 4. The driver's path is given, so
Selenium Manager never downloads a browser or a driver (tests/system-packages.sh installs
both on a fresh machine)."""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DESKTOP = (1280, 800)
PHONE = (390, 844)


def start_browser() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    viewport(driver, *DESKTOP)
    return driver


def viewport(driver: WebDriver, width: int, height: int) -> None:
    """The page's own size (the window's would include the browser's frame)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def open_dashboard(driver: WebDriver, base: str, session: str, panel: str = "requests") -> None:
    """The dashboard of one session, once its first data is shown."""
    driver.get(f"{base}/_mock/ui?session={session}#{panel}")
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.body.dataset.ready === 'true'")
    )
