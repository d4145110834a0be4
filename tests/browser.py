"""Headless Chromium for the web pages' tests (Debian's chromium and chromedriver, driven by Selenium) on a
closed network, and what those tests share; the fixtures are offered to every test by conftest.py.
Screenshots are kept as test artifacts (in $CARGOTRACE_TEST_ARTIFACTS when set, else in the test's
tmp_path)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from tracking_api.pages import LEAFLET

WAIT_S = 20
BLOCKED = ("window.blockedByPolicy = [];"
           "document.addEventListener('securitypolicyviolation', (e) => window.blockedByPolicy.push(e.blockedURI));")


@contextmanager
def chromium(languages: str = "en-US,en") -> Iterator[webdriver.Chrome]:
    """A browser whose user asks for `languages` (navigator.languages, Accept-Language)."""
    chromium_binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium_binary and driver, "Debian's chromium and chromium-driver are needed (make test installs them)"
    assert LEAFLET.is_dir(), "run `npm ci --prefix tracking_api/web` (make test does)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary
    # A closed network: every host but this one is unresolvable, as on a warehouse's own network
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": languages})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the browser sends
    with webdriver.Chrome(options=options, service=Service(driver)) as chrome:
        # requests the Content-Security-Policy stopped are never sent: the page records them itself
        chrome.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": BLOCKED})
        yield chrome


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as chrome:
        yield chrome


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    folder = Path(os.environ.get("CARGOTRACE_TEST_ARTIFACTS", tmp_path)) / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(browser: webdriver.Chrome, key: str) -> None:
    WebDriverWait(browser, WAIT_S).until(seen.visibility_of_element_located((By.ID, "key"))).send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()


def text_of(browser: webdriver.Chrome, element_id: str, expected: str) -> None:
    WebDriverWait(browser, WAIT_S).until(seen.text_to_be_present_in_element((By.ID, element_id), expected))
