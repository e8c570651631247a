"""Opting out in a real browser: the "Do Not Sell or Share" link and form, and the GPC header.

Requirement: REGULATIONS.md C-19 ("An E2E test exercises both the link form and the GPC header"),
C-20 (the listener can confirm the opt-out was processed: "Opt-Out Request Honored"), C-21 (the
signal applies to the signed-in listener), G-06 (withdrawal in one step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.browser import PHONE, in_db

if TYPE_CHECKING:  # conftest.py skips these tests when Playwright is missing
    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "violet elephants juggle quietly"


@pytest.fixture(autouse=True)
def _no_connected_systems(settings) -> None:  # type: ignore[no-untyped-def]
    # Nothing downstream to wait for: the opt-out is honoured as soon as it is recorded.
    settings.CONNECTED_DATASETS = []
    settings.CONNECTED_SERVICES = []


def sign_up(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/account/sign-up")
    page.get_by_label("E-mail address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Date of birth").fill("1990-03-04")
    page.get_by_label("Country").fill("US")
    region = page.get_by_label("Region", exact=False)
    if region.count():
        region.first.fill("US-CA")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{base}/account/welcome")


def test_the_do_not_sell_link_and_form_opt_out_in_one_step_c19_c20(live_server, browser_page) -> None:  # type: ignore[no-untyped-def]
    from compliance.models import PrivacyRequest

    page, problems = browser_page
    base = live_server.url
    sign_up(page, base, "opal@example.test")
    page.get_by_role("link", name="Do Not Sell or Share My Personal Information").click()
    page.wait_for_url(f"{base}/privacy/choices/#sale")
    assert page.get_by_role("heading", name="Do Not Sell or Share My Personal Information").is_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Opt out of all selling and sharing").click()
    assert page.url.split("#")[0] == f"{base}/privacy/choices/"  # the browser keeps the fragment
    status = page.locator("#opt-out-status").inner_text()
    assert "Opt-Out Request Honored" in status, status
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    request = in_db(PrivacyRequest.objects.get)
    assert (request.kind, request.status, request.channel) == ("opt_out_sale_sharing", "completed", "portal")
    assert problems == []


def test_a_browser_sending_gpc_opts_the_listener_out_c21(live_server, chromium) -> None:  # type: ignore[no-untyped-def]
    from accounts.models import User
    from compliance import consents
    from compliance.models import PrivacyRequest

    context = chromium.new_context(viewport=PHONE, extra_http_headers={"Sec-GPC": "1"})
    page = context.new_page()
    page.set_default_timeout(10_000)
    base = live_server.url
    sign_up(page, base, "gale@example.test")
    page.goto(f"{base}/privacy/choices/")
    assert "Opt-Out Preference Signal Honored" in page.locator("#gpc-status").inner_text()
    assert "Opt-Out Request Honored" in page.locator("#opt-out-status").inner_text()
    user = in_db(User.objects.with_email("gale@example.test").get)
    assert in_db(lambda: consents.opted_out_of_sale_sharing(user))
    request = in_db(lambda: PrivacyRequest.objects.get(subject=user))
    assert (request.kind, request.verification_method) == ("opt_out_sale_sharing", "not_required")
    context.close()
