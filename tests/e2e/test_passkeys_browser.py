"""Passkeys in a real browser: add one on the Security page, sign out, sign in with a challenge the
risk policy forces and confirm it with the passkey, then step up with it to remove it.

Requirement: issue #3 ("passkeys/WebAuthn on the portal"); README "Sign-in and the risk policy"
(passkeys) and "CSP" (no inline script: django-otp-webauthn's scripts are served from /static/ and
the browser reports no violation and no console error).

Chromium's virtual authenticator (DevTools Protocol ``WebAuthn.enable`` and
``WebAuthn.addVirtualAuthenticator``, through Playwright's CDP session) stands in for a platform
authenticator with user verification: the browser runs the real ceremonies against the live server.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from accounts.models import AuthSession, SecurityEvent
from tests.conftest import PASSWORD
from tests.e2e.browser import STRICT_POLICY, in_db, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/account/sign-in")
    page.get_by_label("E-mail address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_add_a_passkey_then_sign_in_and_step_up_with_it(  # type: ignore[no-untyped-def]
    alice,
    live_server,
    browser_page,
    settings,
    shots: Path,
) -> None:
    page, problems = browser_page
    started = time.monotonic()
    base = live_server.url  # http://localhost:<port>: a secure context, and a valid RP id
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [base]

    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]

    # Signed in without a second factor (she has none): add a passkey on the Security page.
    sign_in(page, base, "alice@example.test")
    page.wait_for_url(f"{base}/account")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Security").click()
    page.wait_for_url(f"{base}/account/security")
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_url(f"{base}/account/security/passkeys/*")
    assert "Your passkey is added." in page.inner_text("main")
    name = page.get_by_label("Name", exact=True)
    assert name.input_value() == "Passkey (Chrome on Linux)"
    name.fill("This laptop")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{base}/account/security")
    assert "This laptop" in page.inner_text("#passkeys")
    screenshot(page, shots, "security-passkey")
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(stored) == 1 and stored[0]["rpId"] == "localhost"
    made_at_count = stored[0]["signCount"]

    # Sign out; the policy now challenges every sign-in: the passkey confirms it.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/account/sign-in")
    settings.RISK_POLICY = STRICT_POLICY
    sign_in(page, base, "alice@example.test")
    page.wait_for_url(f"{base}/account/sign-in/verify")
    assert page.get_by_role("heading", level=1).inner_text() == "One more step"
    screenshot(page, shots, "mfa-passkey")
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{base}/account")
    assert page.get_by_role("heading", level=1).inner_text() == "Your account"
    assert in_db(lambda: SecurityEvent.objects.filter(user=alice, kind="mfa_succeeded").count()) == 1
    assert in_db(lambda: AuthSession.objects.get(user=alice, revoked_at__isnull=True).mfa_at) is not None

    # Later (the second factor is no longer fresh): removing the passkey asks for it once more.
    in_db(lambda: AuthSession.objects.filter(user=alice).update(mfa_at=None))
    page.goto(f"{base}/account/security")
    page.get_by_role("link", name="Remove This laptop").click()
    page.wait_for_url(f"{base}/account/verify?next=*")
    assert page.get_by_role("heading", level=1).inner_text() == "Confirm it is you"
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{base}/account/security/webauthn/*/remove")
    page.get_by_role("button", name="Remove").click()
    page.wait_for_url(f"{base}/account/security")
    assert "“This laptop” is removed." in page.inner_text("main")
    assert "A passkey confirms it is you" in page.inner_text("#passkeys")

    sign_counts = [
        c["signCount"] for c in cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    ]
    assert sign_counts == [made_at_count + 2]  # the sign-in and the step-up; it stays on the device
    assert problems == []
    assert time.monotonic() - started < 60
