"""What the browser tests share besides fixtures (those are in ``conftest.py``): the browser, its
arguments, the viewports, and the screenshot helper."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from django.db import connection

if TYPE_CHECKING:  # conftest.py skips this directory when Playwright is missing
    from playwright.sync_api import Page

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# A risk policy that challenges every sign-in, so a test reaches the second factor on a known device.
STRICT_POLICY = {"decisions": {"low": "challenge", "medium": "challenge", "high": "deny"}}


def screenshot(page: Page, shots: Path, name: str) -> None:
    """A full-page screenshot at phone and desktop width; the page is left at phone width."""
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(shots / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(PHONE)


def in_db(query: Callable[[], T]) -> T:
    """Run ORM code in a thread of its own, and close that thread's connection.

    Playwright's sync API keeps an event loop in the test's thread, where Django refuses database
    calls; allowing them anyway (DJANGO_ALLOW_ASYNC_UNSAFE) gives that loop's context a connection of
    its own that nothing closes, and on PostgreSQL the test database then cannot be dropped."""

    def run() -> T:
        try:
            return query()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()
