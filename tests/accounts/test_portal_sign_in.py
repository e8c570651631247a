"""Sign-in through the portal: adaptive MFA, lockout, refusal, sign-out, idle timeout.

Requirement: issue #3 (sign-in with adaptive MFA, lockout with Retry-After, enumeration safety,
web sessions with idle and absolute timeouts); DESIGN.md requirement 3 (the reasons are recorded
and shown); CONTRACT.md Conventions (locked out: 429 with Retry-After); OWASP ASVS 5.0 V6 (no
account enumeration); NIST SP 800-63B-4 (OTP single use, throttling).
"""

from __future__ import annotations

import datetime
import re

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from accounts.models import AuthSession, MfaChallenge, SecurityEvent, TotpFactor, User
from accounts.services import factors
from accounts.services.web import DEVICE_COOKIE
from tests.accounts.test_portal_pages import HOME_IP, STRICT_POLICY, csrf_free, portal_sign_in, signed_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def enrol_totp(user: User) -> TotpFactor:
    factor = factors.start_totp(user=user, name="Phone")
    factor.confirmed = True
    factor.save(update_fields=["confirmed"])
    return factor


def totp_code(factor: TotpFactor) -> str:
    return f"{TotpFactor.objects.get(pk=factor.pk).totp().token():06d}"


# -- password step ------------------------------------------------------------------------------------


def test_sign_in_opens_a_web_session_and_goes_to_the_account(client, alice) -> None:  # type: ignore[no-untyped-def]
    response = portal_sign_in(client, "alice@example.test")
    assert response.status_code == 302 and response["Location"] == "/account"
    assert DEVICE_COOKIE in response.cookies  # the device signal for the next sign-in
    session = AuthSession.objects.get(user=alice)
    assert session.kind == "web" and session.revoked_at is None and session.mfa_at is None
    event = SecurityEvent.objects.get(user=alice, kind="signin")
    assert (event.decision, event.reasons) == ("allow", ["new_device"])
    assert client.get("/account").status_code == 200


def test_the_device_cookie_makes_the_browser_known_next_time(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    client.post("/account/sign-out")
    portal_sign_in(client, "alice@example.test")
    latest = SecurityEvent.objects.filter(user=alice, kind="signin").first()
    assert latest is not None and "new_device" not in latest.reasons


def test_next_is_followed_only_within_the_site(client, alice, make_user) -> None:  # type: ignore[no-untyped-def]
    assert portal_sign_in(client, "alice@example.test", next_url="/account/sessions")["Location"] == "/account/sessions"
    other = make_user("dora@example.test")
    for unsafe in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        client.cookies.clear()
        response = portal_sign_in(client, str(other.email), next_url=unsafe)
        assert response["Location"] == "/account", unsafe


def test_unknown_address_and_wrong_password_get_the_same_page(client, alice) -> None:  # type: ignore[no-untyped-def]
    wrong = portal_sign_in(client, "alice@example.test", "not the password at all")
    unknown = portal_sign_in(client, "nobody@example.test", "not the password at all")
    assert wrong.status_code == unknown.status_code == 200
    assert "The e-mail address or password is not right." in wrong.content.decode()
    assert csrf_free(wrong.content.decode()).replace("alice", "X") == csrf_free(unknown.content.decode()).replace(
        "nobody", "X"
    )
    assert not AuthSession.objects.exists()


def test_inactive_accounts_get_the_generic_answer(client, make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("gone@example.test", is_active=False)
    response = portal_sign_in(client, "gone@example.test")
    assert response.status_code == 200 and "The e-mail address or password is not right." in response.content.decode()


def test_repeated_failures_lock_out_with_429_and_retry_after(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        portal_sign_in(client, "alice@example.test", "wrong password, again and again")
    response = portal_sign_in(client, "alice@example.test")  # even the right password
    assert response.status_code == 429
    assert response["Retry-After"] == str(15 * 60)
    assert "Too many attempts" in response.content.decode() and "15 minutes" in response.content.decode()
    assert SecurityEvent.objects.filter(user=alice, kind="locked_out").exists()
    assert not AuthSession.objects.exists()


def test_a_refused_sign_in_explains_what_to_do(client, alice, settings, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    settings.RISK_POLICY = {"decisions": {"low": "deny", "medium": "deny", "high": "deny"}}
    with django_capture_on_commit_callbacks(execute=True):
        response = portal_sign_in(client, "alice@example.test")
    assert response.status_code == 403
    html = response.content.decode()
    assert "We refused this sign-in" in html and "reset your password" in html
    assert not AuthSession.objects.exists()
    assert [m.subject for m in mail.outbox] == ["We stopped a sign-in to your account"]


# -- second factor ------------------------------------------------------------------------------------


def test_mfa_with_totp_keeps_the_token_out_of_urls_and_shows_the_reasons(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RISK_POLICY = STRICT_POLICY
    factor = enrol_totp(alice)
    response = portal_sign_in(client, "alice@example.test", next_url="/account/activity")
    assert response.status_code == 302 and response["Location"] == "/account/sign-in/verify"
    assert not AuthSession.objects.exists()
    assert client.get("/account").status_code == 302  # not signed in yet

    page = client.get("/account/sign-in/verify")
    html = page.content.decode()
    assert page.status_code == 200
    assert "a device not seen before on this account" in html  # DESCRIPTIONS, not codes
    assert "Code from your authenticator app" in html and "Backup code" not in html
    assert "imm_" not in html  # the mfa_token never reaches the page or a URL

    wrong = client.post("/account/sign-in/verify", {"method": "totp", "code": "000000"})
    assert wrong.status_code == 200 and "That code is not right." in wrong.content.decode()

    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=5), tick=False):
        done = client.post("/account/sign-in/verify", {"method": "totp", "code": totp_code(factor)})
        assert done.status_code == 302 and done["Location"] == "/account/activity"
        session = AuthSession.objects.get(user=alice)
        assert session.mfa_at is not None and session.kind == "web"
        assert client.get("/account").status_code == 200
    assert MfaChallenge.objects.get(user=alice).used_at is not None


def test_mfa_with_a_code_sent_by_email(client, make_user, settings, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    settings.RISK_POLICY = STRICT_POLICY
    dora = make_user("dora@example.test")
    assert portal_sign_in(client, "dora@example.test")["Location"] == "/account/sign-in/verify"
    page = client.get("/account/sign-in/verify").content.decode()
    assert "Send me a code" in page and 'name="code"' not in page  # only e-mail, and none sent yet

    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post("/account/sign-in/send-code")
    assert sent["Location"] == "/account/sign-in/verify"
    assert [m.to for m in mail.outbox] == [["dora@example.test"]]
    code = re.search(r"\b(\d{6})\b", mail.outbox[0].body)
    assert code is not None
    page = client.get("/account/sign-in/verify").content.decode()
    assert "We have e-mailed you a code." in page and 'name="code"' in page

    done = client.post("/account/sign-in/verify", {"method": "email", "code": code.group(1)})
    assert done.status_code == 302 and done["Location"] == "/account"
    assert AuthSession.objects.get(user=dora).mfa_at is not None


def test_too_many_wrong_codes_end_the_challenge(client, make_user, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RISK_POLICY = STRICT_POLICY
    settings.MFA_CHALLENGE_MAX_ATTEMPTS = 2
    make_user("dora@example.test")
    portal_sign_in(client, "dora@example.test")
    for _ in range(2):
        client.post("/account/sign-in/verify", {"method": "email", "code": "123456"})
    response = client.post("/account/sign-in/verify", {"method": "email", "code": "123456"})
    assert response.status_code == 302 and response["Location"] == "/account/sign-in"
    assert "Please sign in again." in client.get("/account/sign-in").content.decode()
    assert client.get("/account/sign-in/verify")["Location"] == "/account/sign-in"
    assert not AuthSession.objects.exists()


def test_a_throttled_factor_answers_429_with_retry_after(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RISK_POLICY = STRICT_POLICY
    enrol_totp(alice)
    portal_sign_in(client, "alice@example.test")
    client.post("/account/sign-in/verify", {"method": "totp", "code": "000000"})
    response = client.post("/account/sign-in/verify", {"method": "totp", "code": "000001"})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert "Too many wrong codes." in response.content.decode()


def test_the_verify_page_needs_a_pending_sign_in(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/account/sign-in/verify")["Location"] == "/account/sign-in"
    assert client.post("/account/sign-in/send-code")["Location"] == "/account/sign-in"


# -- sign-out and timeouts ----------------------------------------------------------------------------


def test_sign_out_is_a_post_and_ends_the_session(client, alice) -> None:  # type: ignore[no-untyped-def]
    session = signed_in(client, alice)
    assert client.get("/account/sign-out").status_code == 405
    response = client.post("/account/sign-out")
    assert response["Location"] == "/account/sign-in"
    session.refresh_from_db()
    assert session.revoked_at is not None and session.revoked_reason == "signed_out"
    assert client.get("/account")["Location"].startswith("/account/sign-in")


def test_sixty_one_idle_minutes_sign_the_listener_out(client, alice) -> None:  # type: ignore[no-untyped-def]
    session = signed_in(client, alice)
    assert client.get("/account").status_code == 200
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=61)):
        response = client.get("/account")
    assert response.status_code == 302 and response["Location"].startswith("/account/sign-in")
    session.refresh_from_db()
    assert session.revoked_reason == "idle_timeout"


def test_fifty_nine_idle_minutes_do_not(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    assert client.get("/account").status_code == 200
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=59)):
        assert client.get("/account").status_code == 200


def test_a_session_revoked_elsewhere_ends_at_the_next_request(client, alice) -> None:  # type: ignore[no-untyped-def]
    session = signed_in(client, alice)
    AuthSession.objects.filter(pk=session.pk).update(revoked_at=timezone.now(), revoked_reason="analyst")
    assert client.get("/account")["Location"].startswith("/account/sign-in")


def test_sign_in_form_posts_are_rate_limited_per_address(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"login": "2/minute"}}
    for _ in range(2):
        portal_sign_in(client, "nobody@example.test", PASSWORD)
    response = portal_sign_in(client, "nobody@example.test", PASSWORD)
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    # Another address is not affected.
    assert portal_sign_in(client, "alice@example.test", ip="89.160.20.66").status_code == 302
    assert HOME_IP != "89.160.20.66"
