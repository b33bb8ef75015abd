"""Headless Debian Chromium driven by Selenium, against a Dash app served on a free loopback port.

Nothing is downloaded and nothing phones home: the binary and the driver are Debian's, and the flags turn off
Chromium's background traffic.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def chromium(width: int = 1400, height: int = 1400) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class DashBrowser:
    """A Dash app in a background WSGI server plus a browser on it, with waits that fail with what they saw."""

    def __init__(self, width: int = 1400):
        self.driver = chromium(width)
        self._server = None
        self.url = ""

    def start_server(self, dash_app) -> None:
        self._server = make_server("127.0.0.1", 0, dash_app.server, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.driver.get(self.url)
        self.wait_for_element("#_dash-app-content, #react-entry-point", timeout=30)

    def open(self, url: str, headers: dict[str, str] | None = None) -> None:
        """Load a page served elsewhere (the compose stack), sending `headers` (a login) with every request."""
        if headers:
            self.driver.execute_cdp_cmd("Network.enable", {})
            self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
        self.url = url
        self.driver.get(url)
        self.wait_for_element("#_dash-app-content, #react-entry-point", timeout=60)

    def close(self) -> None:
        self.driver.quit()
        if self._server is not None:
            self._server.shutdown()

    def resize(self, width: int, height: int = 1400) -> None:
        self.driver.set_window_size(width, height)

    # --- finding and waiting -----------------------------------------------------------------------------------

    def find_element(self, selector: str):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def find_elements(self, selector: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def _wait(self, check, describe, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = check()
            except StaleElementReferenceException:
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s: {describe()}")
            time.sleep(0.1)

    def text(self, selector: str) -> str:
        elements = self.find_elements(selector)
        return elements[0].text if elements else ""

    def wait_for_element(self, selector: str, timeout: float = 10):
        return self._wait(
            lambda: (self.find_elements(selector) or [None])[0], lambda: f"no element {selector}", timeout
        )

    def wait_for_contains_text(self, selector: str, text: str, timeout: float = 10) -> None:
        self._wait(
            lambda: text in self.text(selector),
            lambda: f"{selector} shows {self.text(selector)!r}, not {text!r}",
            timeout,
        )

    def wait_for_text_to_equal(self, selector: str, text: str, timeout: float = 10) -> None:
        self._wait(
            lambda: self.text(selector) == text,
            lambda: f"{selector} shows {self.text(selector)!r}, not {text!r}",
            timeout,
        )

    def wait_until(self, condition, describe: str, timeout: float = 30) -> None:
        self._wait(condition, lambda: describe, timeout)

    def wait_for_callbacks(self, timeout: float = 30) -> None:
        """No callback in flight: Dash marks each component an answer is pending for with data-dash-is-loading.
        Acting before then races the answer, which may re-render (and reset) what was clicked."""
        self._wait(
            lambda: not self.find_elements("[data-dash-is-loading='true']"),
            lambda: f"callbacks still pending on {len(self.find_elements('[data-dash-is-loading=true]'))} elements",
            timeout,
        )

    # --- acting ----------------------------------------------------------------------------------------------

    def click(self, selector: str) -> None:
        """Scroll the element to the middle of the window (clear of the navbar), then click it as a person would."""
        deadline = time.monotonic() + 10
        while True:  # a spinner or a re-rendered panel above may still move it: wait for the page to settle
            element = self.wait_for_element(selector)
            # "instant": Bootstrap makes scrolling smooth, and a click during the animation lands elsewhere
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", element)
            try:
                return element.click()
            except (ElementClickInterceptedException, StaleElementReferenceException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def clear_input(self, element) -> None:
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)

    def select_dcc_dropdown(self, selector: str, value: str) -> None:
        """Open a dcc.Dropdown and click the option whose text is `value`."""
        self.wait_for_element(selector, timeout=30).click()  # React may not have rendered the layout yet
        options = self._wait(
            lambda: self.find_elements(".dash-dropdown-option"), lambda: "the dropdown did not open", 10
        )
        for option in options:
            if option.text == value:
                option.click()
                return
        raise AssertionError(f"no option {value!r} in {[o.text for o in options]}")

    def screenshot(self, path: Path) -> None:
        self.driver.save_screenshot(str(path))

    def get_logs(self) -> list[dict]:
        """SEVERE entries of the browser console."""
        return [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def horizontal_overflow(self) -> int:
        """How many pixels the page is wider than the window (0 = no horizontal scroll)."""
        return self.driver.execute_script(
            "return Math.max(0, document.documentElement.scrollWidth - window.innerWidth)"
        )
