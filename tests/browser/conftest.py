"""Browser tests: Debian's chromium driven by Playwright (never Playwright's own browser
download), against a whole running system with the example storefront switched on.

Screenshots of the main pages go to ``test-output/screenshots/`` (or $TEST_OUTPUT_DIR) for
review; they are not compared with anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from harness.browser import CHROMIUM, CHROMIUM_ARGS
from harness.infra import amqp_uri_for
from harness.smtp import SmtpSink
from harness.system import REPO, System

OUTPUT = Path(os.environ.get("TEST_OUTPUT_DIR", REPO / "test-output")) / "screenshots"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, vhost: str, databases: dict[str, str],
           smtp: SmtpSink) -> Iterator[System]:
    """The system as `make run` has it: the example storefront on, email links pointing to it."""
    running = System(tmp_path_factory.mktemp("system"), amqp_uri_for(vhost), databases,
                     smtp.url, {"EXAMPLE_STOREFRONT": "1"})
    running.env["STOREFRONT_URL"] = f"{running.url}/example-store"
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is not installed at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser profile per test (nothing remembered), failing the test on any
    script error in the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US",
                                  accept_downloads=True)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))

    def console(message: ConsoleMessage) -> None:
        # 4xx answers the page shows in words are expected; script errors are not.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    tab.on("console", console)
    yield tab
    context.close()
    assert not errors, f"errors in the page: {errors}"


def screenshot(page: Page, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)
