"""Fixtures of the browser tests: Debian's Chromium driven by Playwright's sync API against
pytest-django's live server (DESIGN.md "Tests: Playwright with the system Chromium for pages").

Every module here takes its browser from these fixtures; none imports another's. Without the
playwright package or /usr/bin/chromium every test here is skipped, with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import ARGS, CHROMIUM, PHONE

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    MISSING = "SKIPPED: the playwright package is not installed (pip install -e '.[dev]')"
else:
    MISSING = "" if Path(CHROMIUM).exists() else f"SKIPPED: {CHROMIUM} is missing (apt-get install chromium)"


@pytest.fixture(autouse=True)
def _needs_a_browser() -> None:
    # A skip from a fixture rather than at import: pytest cannot skip a conftest it loads first
    # (``pytest tests/e2e``), and the reason still shows in the summary.
    if MISSING:  # pragma: no cover - depends on the machine
        pytest.skip(MISSING)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``tmp_path``, or E2E_SCREENSHOT_DIR when set (to look at them)."""
    target = os.environ.get("E2E_SCREENSHOT_DIR")
    path = Path(target) if target else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed after the test; tests open their own contexts on it."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A phone-sized page, and every console error, page error and CSP violation it reports."""
    problems: list[str] = []
    context = chromium.new_context(viewport=PHONE, device_scale_factor=1, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10_000)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "response",
        lambda response: problems.append(f"HTTP {response.status}: {response.url}") if response.status >= 400 else None,
    )
    try:
        yield page, problems
    finally:
        context.close()
