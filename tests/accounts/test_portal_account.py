"""The listener's own account in the portal: rectification, e-mail and password, sessions, activity.

Requirement: REGULATIONS.md G-16 / C-18 (rectification, recorded without the values); issue #3
"Sessions and tokens" (list and revoke; password change revokes every other session; one
listener never reaches another's sessions: 404) and "security events with their reasons";
CONTRACT.md Account (email change needs step-up).
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuthSession, SecurityEvent, User
from compliance import audit
from compliance.models import AuditEvent
from tests.accounts.api_helpers import login
from tests.accounts.test_portal_pages import portal_sign_in, signed_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "seven quiet rivers under the moon"


def test_rectification_saves_changed_fields_and_audits_their_names_only(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    form = {"display_name": "Alice L.", "phone": "", "country": "us", "region": "us-ny"}
    response = client.post("/account", form)
    assert response["Location"] == "/account"
    alice = User.objects.get(pk=alice.pk)
    assert (str(alice.display_name), str(alice.phone), str(alice.country), str(alice.region)) == (
        "Alice L.",
        "",
        "US",
        "US-NY",
    )
    event = AuditEvent.objects.filter(action="accounts.profile.rectified").get()
    assert audit.read_payload(event)["data"] == {"fields": ["country", "display_name", "phone", "region"]}
    assert "Your details are saved." in client.get("/account").content.decode()


def test_rectification_refuses_bad_values_field_by_field(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    response = client.post("/account", {"display_name": "A", "phone": "call me", "country": "FR", "region": "DE-BE"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Use digits, spaces, brackets and dashes, with an optional leading +." in html
    assert not AuditEvent.objects.filter(action="accounts.profile.rectified").exists()
    response = client.post("/account", {"display_name": "A", "phone": "", "country": "FR", "region": "DE-BE"})
    assert "The region must be in the country given." in response.content.decode()
    assert str(User.objects.get(pk=alice.pk).country) == "DE"


def test_saving_without_changes_writes_nothing(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    client.post(
        "/account", {"display_name": "Alice Listener", "phone": "+49 30 1234567", "country": "DE", "region": "DE-BE"}
    )
    assert not AuditEvent.objects.filter(action="accounts.profile.rectified").exists()


def test_changing_the_email_needs_step_up_and_unverifies_it(client, alice, charlie) -> None:  # type: ignore[no-untyped-def]
    session = signed_in(client, alice)
    assert client.post("/account/email", {"email": "new@example.test"})["Location"].startswith("/account/verify")
    assert User.objects.with_email("new@example.test").count() == 0

    AuthSession.objects.filter(pk=session.pk).update(mfa_at=timezone.now())
    taken = client.post("/account/email", {"email": "charlie@example.test"})
    assert taken.status_code == 200 and "This address cannot be used." in taken.content.decode()

    assert client.post("/account/email", {"email": "new@example.test"})["Location"] == "/account"
    alice = User.objects.get(pk=alice.pk)
    assert str(alice.email) == "new@example.test" and alice.email_verified_at is None


def test_password_change_shows_every_reason(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    response = client.post("/account/password", {"current_password": "nope", "new_password": "alice"})
    html = response.content.decode()
    assert "This is not your current password." in html
    assert "Use at least 15 characters (this one has 5)." in html
    assert "Do not build the password from your e-mail address or name." in html
    assert User.objects.get(pk=alice.pk).check_password(PASSWORD)


def test_password_change_keeps_this_session_and_ends_every_other(client, alice) -> None:  # type: ignore[no-untyped-def]
    assert login(APIClient(), "alice@example.test").status_code == 200
    current = signed_in(client, alice)
    response = client.post("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert response["Location"] == "/account"
    assert client.get("/account").status_code == 200  # still signed in here
    assert list(AuthSession.objects.filter(user=alice, revoked_at__isnull=True)) == [current]
    assert User.objects.get(pk=alice.pk).check_password(NEW_PASSWORD)


def test_sessions_list_marks_this_device_and_revokes_others(client, alice, charlie) -> None:  # type: ignore[no-untyped-def]
    assert login(APIClient(), "alice@example.test").status_code == 200
    current = signed_in(client, alice)
    other = AuthSession.objects.get(user=alice, kind="api")
    html = client.get("/account/sessions").content.decode()
    assert html.count("this device") == 1
    assert "Pixel" in html and "mobile app" in html

    theirs_response = login(APIClient(), "charlie@example.test")
    theirs = AuthSession.objects.get(pk=theirs_response.json()["session_id"])
    assert client.post(f"/account/sessions/{theirs.pk}/revoke").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert client.get(f"/account/sessions/{other.pk}/revoke").status_code == 405

    assert client.post(f"/account/sessions/{other.pk}/revoke")["Location"] == "/account/sessions"
    other.refresh_from_db()
    assert other.revoked_reason == "revoked_by_owner"
    current.refresh_from_db()
    assert current.revoked_at is None

    assert client.post(f"/account/sessions/{current.pk}/revoke")["Location"] == "/account/sign-in"
    assert client.get("/account")["Location"].startswith("/account/sign-in")


def test_activity_shows_decisions_and_reasons_to_their_owner_only(client, alice, charlie) -> None:  # type: ignore[no-untyped-def]
    portal_sign_in(client, "alice@example.test", "a wrong password for alice")
    signed_in(client, alice)
    SecurityEvent.objects.create(user=charlie, data_key_id=charlie.data_key_id, kind="signin", reasons=["new_country"])
    html = client.get("/account/activity").content.decode()
    assert "Sign-in decision" in html and "allowed" in html and "risk: low" in html
    assert "a device not seen before on this account" in html
    assert "Failed sign-in (wrong e-mail or password)" in html
    assert "a country not seen before" not in html  # charlie's event
    assert "This was not me" in html and "/account/not-me/" in html
