"""The portal in a real browser: sign up, add an authenticator app, sign in again with MFA.

Requirement: issue #3 (listener portal with adaptive MFA, TOTP enrolment with a QR code); DESIGN.md
"Tests: Playwright with the system Chromium for pages"; README "CSP" (`default-src 'self'`, no
inline script or style: the browser reports no violation and no console error on any page).

Drives Debian's Chromium (/usr/bin/chromium) with Playwright's sync API against pytest-django's
live server (fixtures in ``conftest.py``). Screenshots go to ``tmp_path`` (or to E2E_SCREENSHOT_DIR when
set, to look at them).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import PHONE, STRICT_POLICY, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EMAIL = "nova@example.test"
PASSWORD = "violet elephants juggle quietly"


def totp(secret: str, *, at: float) -> str:
    from django_otp.oath import TOTP

    counter = TOTP(base64.b32decode(secret + "=" * (-len(secret) % 8)), step=30, t0=0, digits=6)
    counter.time = at
    return f"{counter.token():06d}"


def test_sign_up_add_totp_and_sign_in_with_mfa(live_server, browser_page, settings, shots: Path) -> None:  # type: ignore[no-untyped-def]
    page, problems = browser_page
    started = time.monotonic()
    base = live_server.url

    # Sign up through the form: signed in at once.
    response = page.goto(f"{base}/account/sign-up")
    assert response is not None and "default-src 'self'" in response.headers["content-security-policy"]
    page.get_by_label("E-mail address", exact=True).fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Display name (optional)").fill("Nova Listener")
    page.get_by_label("Date of birth").fill("1995-07-01")
    page.get_by_label("Country").fill("DE")
    screenshot(page, shots, "sign-up")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{base}/account/welcome")
    assert page.get_by_role("heading", level=1).inner_text() == "Welcome, Nova Listener!"

    # Security: add an authenticator app, read the key shown for manual entry, confirm a code.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Security").click()
    page.wait_for_url(f"{base}/account/security")
    page.get_by_label("Name", exact=True).fill("Phone")
    page.get_by_role("button", name="Add authenticator app").click()
    page.wait_for_url(f"{base}/account/security/totp/*/confirm")
    assert page.get_by_role("img", name="QR code to add this account to your authenticator app").is_visible()
    secret = page.locator("#totp-secret").get_attribute("data-secret")
    assert secret and page.locator("#totp-secret").inner_text().replace(" ", "") == secret
    screenshot(page, shots, "totp-setup")
    page.get_by_label("Code from the app").fill(totp(secret, at=time.time()))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{base}/account/security")
    assert "Your authenticator app is added." in page.inner_text("main")
    screenshot(page, shots, "security")
    page.get_by_role("link", name="Account", exact=True).click()
    page.wait_for_url(f"{base}/account")
    screenshot(page, shots, "account")

    # Sign out, then sign in with a policy that always asks for a second factor.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/account/sign-in")
    assert "You have signed out." in page.inner_text("main")
    settings.RISK_POLICY = STRICT_POLICY
    page.get_by_label("E-mail address", exact=True).fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/account/sign-in/verify")
    assert page.get_by_role("heading", level=1).inner_text() == "One more step"
    screenshot(page, shots, "mfa")
    # The code of the next 30-second step: accepted (one step of drift) and never the one used above.
    page.get_by_label("Code from your authenticator app").fill(totp(secret, at=time.time() + 30))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{base}/account")
    assert page.get_by_role("heading", level=1).inner_text() == "Your account"
    assert EMAIL in page.inner_text("main")
    page.screenshot(path=str(shots / "signed-in-after-mfa.png"), full_page=True)

    for name in ("Sessions", "Activity"):
        page.get_by_role("link", name=name, exact=True).click()
        page.wait_for_load_state()
        screenshot(page, shots, name.lower())
    assert "Second factor verified" in page.inner_text("main")

    assert problems == []
    assert (shots / "signed-in-after-mfa.png").stat().st_size > 0
    assert time.monotonic() - started < 60  # about 5 s here; a hang shows up as a failure, not a stuck CI


def test_pages_keep_their_layout_on_a_phone(live_server, browser_page) -> None:  # type: ignore[no-untyped-def]
    """Nothing is wider than a 390 px screen (no sideways scrolling)."""
    page, problems = browser_page
    for path in ("/account/sign-in", "/account/sign-up", "/account/password-reset"):
        page.goto(f"{live_server.url}{path}")
        width: Any = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], path
    assert problems == []


def test_the_console_listener_does_see_csp_violations(live_server, browser_page) -> None:  # type: ignore[no-untyped-def]
    """The check above is not vacuous: inline script added to a portal page is refused and reported."""
    page, problems = browser_page
    page.goto(f"{live_server.url}/account/sign-in")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.x = 1'; document.body.append(s); }"
    )
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.x === undefined")
    assert any("Content Security Policy" in problem for problem in problems), problems
