"""Sign-up through the portal: the API's rules (RegisterInput), a signed-in listener at once, COPPA.

Requirement: issue #3 (sign-up; enumeration safety); CONTRACT.md POST /auth/register (same fields
and rules); REGULATIONS.md P-06 (under 13: nothing until a parent consents), G-08; NIST SP
800-63B-4 password rules with every reason shown.
"""

from __future__ import annotations

import datetime
import re

import pytest
from django.core import mail

from accounts.models import AuthSession, ParentalConsentRequest, User
from accounts.notifications import email_verification_token
from accounts.services.web import DEVICE_COOKIE

pytestmark = pytest.mark.django_db

FORM = {
    "email": "nova@example.test",
    "password": "violet elephants juggle quietly",
    "display_name": "Nova Listener",
    "date_of_birth": "1995-07-01",
    "country": "de",
    "region": "de-be",
    "parent_email": "",
}


def test_sign_up_creates_the_account_and_signs_the_listener_in(client, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/account/sign-up", FORM)
    assert response.status_code == 302 and response["Location"] == "/account/welcome"
    assert DEVICE_COOKIE in response.cookies
    user = User.objects.with_email("nova@example.test").get()
    assert (str(user.display_name), str(user.country), str(user.region)) == ("Nova Listener", "DE", "DE-BE")
    assert user.date_of_birth == datetime.date(1995, 7, 1) and user.email_verified_at is None
    assert AuthSession.objects.filter(user=user, kind="web", revoked_at__isnull=True).count() == 1
    assert [m.subject for m in mail.outbox] == ["Welcome: please confirm your e-mail address"]

    welcome = client.get("/account/welcome")
    assert welcome.status_code == 200 and "Welcome, Nova Listener!" in welcome.content.decode()


def test_the_welcome_link_confirms_the_address(client, alice) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/account/verify-email/{email_verification_token(alice)}")
    assert response.status_code == 200 and "Your e-mail address is confirmed" in response.content.decode()
    alice.refresh_from_db()
    assert alice.email_verified_at is not None

    bad = client.get("/account/verify-email/not-a-token")
    assert bad.status_code == 400 and "This link does not work" in bad.content.decode()


def test_every_password_problem_is_shown_at_once_and_nothing_is_created(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/account/sign-up", {**FORM, "password": "nova", "country": "D1"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Use at least 15 characters (this one has 4). A passphrase of a few words works well." in html
    assert "Do not build the password from your e-mail address or name." in html
    assert "Use an ISO 3166-1 alpha-2 code, such as DE or US." in html
    assert 'aria-invalid="true"' in html
    # What was typed comes back, except the password.
    assert 'value="nova@example.test"' in html and 'value="nova"' not in html
    assert not User.objects.exists()


def test_missing_and_malformed_fields_are_named(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/account/sign-up", {"email": "not-an-address", "region": "XX"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("This field is required.") == 3  # password, date of birth, country
    assert "Enter a valid email address." in html
    assert not User.objects.exists()


def test_a_child_under_13_needs_a_parent_and_waits_inactive(client) -> None:  # type: ignore[no-untyped-def]
    today = datetime.date.today()
    child = {**FORM, "email": "kid@example.test", "date_of_birth": today.replace(year=today.year - 10).isoformat()}
    refused = client.post("/account/sign-up", child)
    assert "A parent&#x27;s e-mail address is required under 13." in refused.content.decode()
    assert not User.objects.exists()

    response = client.post("/account/sign-up", {**child, "parent_email": "parent@example.test"})
    assert response.status_code == 302 and response["Location"] == "/account/sign-up/parent"
    kid = User.objects.with_email("kid@example.test").get()
    assert not kid.is_active
    assert ParentalConsentRequest.objects.get(child=kid).status == "pending"
    assert not AuthSession.objects.exists()
    page = client.get(response["Location"]).content.decode()
    assert "A parent needs to agree first" in page


def test_a_taken_address_creates_nothing_signs_nobody_in_and_tells_the_owner(  # type: ignore[no-untyped-def]
    client, alice, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/account/sign-up", {**FORM, "email": "ALICE@example.test"})
    assert response.status_code == 200
    assert "Check your e-mail" in response.content.decode()
    assert User.objects.count() == 1
    assert not AuthSession.objects.exists()
    assert [m.to for m in mail.outbox] == [["alice@example.test"]]
    assert mail.outbox[0].subject == "Someone tried to sign up with your address"
    # The page names no one and shows nothing of the account.
    assert not re.search(r"alice|Alice", response.content.decode())


def test_signed_in_listeners_are_sent_to_their_account(client, alice) -> None:  # type: ignore[no-untyped-def]
    from tests.accounts.test_portal_pages import signed_in

    signed_in(client, alice)
    assert client.get("/account/sign-up")["Location"] == "/account"


def test_a_challenged_sign_up_goes_through_the_second_factor_page(client, settings) -> None:  # type: ignore[no-untyped-def]
    """The new account's first sign-in is scored like any other (DESIGN.md requirement 3)."""
    from tests.accounts.test_portal_pages import STRICT_POLICY

    settings.RISK_POLICY = STRICT_POLICY
    response = client.post("/account/sign-up", FORM)
    assert response["Location"] == "/account/sign-in/verify"
    assert DEVICE_COOKIE in response.cookies
    assert not AuthSession.objects.exists()
    assert "Send me a code" in client.get("/account/sign-in/verify").content.decode()
