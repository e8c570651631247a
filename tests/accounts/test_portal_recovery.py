"""Account recovery: "this was not me" and password reset, through the portal and the services.

Requirement: issue #3 ("this was not me" from the security e-mails signs everything out and asks
for a new password; password reset without account enumeration); DESIGN.md requirement 5
(real-time response: the listener can end a takeover at once); OWASP ASVS 5.0 V6 (the reset
request answers the same whether or not the address has an account, in similar time); CONTRACT.md
("Password change ... revoke every session").
"""

from __future__ import annotations

import datetime
import re
from unittest import mock

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuthSession, SecurityEvent, User
from accounts.notifications import not_me_token
from accounts.services import recovery
from compliance import audit
from compliance.models import AuditEvent
from tests.accounts.api_helpers import login
from tests.accounts.test_portal_pages import csrf_free, portal_sign_in, signed_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "seven quiet rivers under the moon"


def reset_link(message: mail.EmailMessage) -> str:
    found = re.search(r"https?://[^/\s]+(/account/password-reset/[^\s]+)", message.body)
    assert found is not None, message.body
    return found.group(1)


# -- "this was not me" ----------------------------------------------------------------------------


def test_not_me_asks_before_doing_anything(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    event = SecurityEvent.objects.get(user=alice, kind="signin")
    page = client.get(f"/account/not-me/{not_me_token(alice, event.pk)}")
    assert page.status_code == 200
    assert "Yes, secure my account" in page.content.decode()
    assert AuthSession.objects.filter(user=alice, revoked_at__isnull=True).count() == 1
    assert User.objects.get(pk=alice.pk).has_usable_password()


def test_not_me_signs_everything_out_and_the_old_password_stops_working(  # type: ignore[no-untyped-def]
    client, alice, django_capture_on_commit_callbacks
) -> None:
    assert login(APIClient(), "alice@example.test").status_code == 200  # an app session too
    signed_in(client, alice)
    event = SecurityEvent.objects.filter(user=alice, kind="signin").first()
    assert event is not None
    stranger = client_class_for(client)

    with django_capture_on_commit_callbacks(execute=True):
        response = stranger.post(f"/account/not-me/{not_me_token(alice, event.pk)}")
    assert response.status_code == 200 and "Your account is secured" in response.content.decode()

    assert not AuthSession.objects.filter(user=alice, revoked_at__isnull=True).exists()
    assert set(AuthSession.objects.filter(user=alice).values_list("revoked_reason", flat=True)) == {"not_me"}
    assert client.get("/account")["Location"].startswith("/account/sign-in")  # the web session ended
    alice = User.objects.get(pk=alice.pk)
    assert not alice.has_usable_password() and alice.must_change_password
    assert portal_sign_in(client, "alice@example.test").status_code == 200  # the generic refusal
    assert login(APIClient(), "alice@example.test").status_code == 401

    not_me = SecurityEvent.objects.get(user=alice, kind="not_me")
    assert not_me.context == {"reported_event": event.pk}
    recorded = AuditEvent.objects.get(action="accounts.signin.reported_not_me")
    assert audit.read_payload(recorded)["data"] == {"event": event.pk, "sessions_revoked": 2}

    assert [m.subject for m in mail.outbox] == ["Your account is secured: choose a new password"]
    assert mail.outbox[0].to == ["alice@example.test"]
    link = reset_link(mail.outbox[0])
    assert stranger.get(link).status_code == 302
    done = stranger.post(
        "/account/password-reset/" + link.split("/")[3] + "/set-password", {"new_password": NEW_PASSWORD}
    )
    assert done["Location"] == "/account/sign-in"
    assert portal_sign_in(stranger, "alice@example.test", NEW_PASSWORD).status_code == 302
    assert not User.objects.get(pk=alice.pk).must_change_password


def client_class_for(client):  # type: ignore[no-untyped-def]
    """Another browser (the link is often opened from the mail app)."""
    return type(client)()


def test_bad_and_expired_not_me_links_change_nothing(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    assert client.post("/account/not-me/forged-token").status_code == 400
    token = not_me_token(alice, None)
    with time_machine.travel(timezone.now() + datetime.timedelta(days=8)):
        expired = client_class_for(client).post(f"/account/not-me/{token}")
    assert expired.status_code == 400 and "This link does not work" in expired.content.decode()
    assert User.objects.get(pk=alice.pk).has_usable_password()
    assert not SecurityEvent.objects.filter(kind="not_me").exists()
    assert not AuditEvent.objects.filter(action="accounts.signin.reported_not_me").exists()


def test_report_not_me_rejects_another_users_event(alice, charlie) -> None:  # type: ignore[no-untyped-def]
    theirs = SecurityEvent.objects.create(user=charlie, data_key_id=charlie.data_key_id, kind="signin")
    report = recovery.report_not_me(token=not_me_token(alice, theirs.pk))
    assert report.user == alice and report.event.context == {"reported_event": None}
    assert User.objects.get(pk=charlie.pk).has_usable_password()


# -- password reset -------------------------------------------------------------------------------


def test_reset_request_answers_the_same_for_unknown_addresses(
    client, alice, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    hashing = mock.patch("accounts.services.recovery.make_password", wraps=recovery.make_password)
    with hashing as hasher, django_capture_on_commit_callbacks(execute=True):
        known = client.post("/account/password-reset", {"email": "alice@example.test"})
        unknown = client.post("/account/password-reset", {"email": "nobody@example.test"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/account/password-reset/sent"
    assert hasher.call_count == 2  # the same work on both paths
    assert [m.to for m in mail.outbox] == [["alice@example.test"]]
    assert mail.outbox[0].subject == "Choose a new password"
    page = client.get("/account/password-reset/sent").content.decode()
    assert "If an account uses that address" in page


def test_reset_mails_are_limited_per_address(alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(recovery.RESET_MAILS_PER_HOUR + 2):
            recovery.request_password_reset(email="alice@example.test")
    assert len(mail.outbox) == recovery.RESET_MAILS_PER_HOUR


def test_the_reset_link_sets_a_new_password_once_and_signs_everything_out(  # type: ignore[no-untyped-def]
    client, alice, django_capture_on_commit_callbacks
) -> None:
    browser = client_class_for(client)
    session = signed_in(browser, alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/account/password-reset", {"email": "alice@example.test"})
    link = reset_link(mail.outbox[0])

    moved = client.get(link)
    uidb64 = link.split("/")[3]
    set_url = f"/account/password-reset/{uidb64}/set-password"
    assert moved.status_code == 302 and moved["Location"] == set_url  # no token left in the address

    weak = client.post(set_url, {"new_password": "alice123"})
    html = weak.content.decode()
    assert "Use at least 15 characters (this one has 8)." in html
    assert "Do not build the password from your e-mail address or name." in html

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(set_url, {"new_password": NEW_PASSWORD})
    assert done["Location"] == "/account/sign-in"
    session.refresh_from_db()
    assert session.revoked_reason == "password_changed"
    assert browser.get("/account")["Location"].startswith("/account/sign-in")
    assert User.objects.get(pk=alice.pk).check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="accounts.password.reset").count() == 1
    assert mail.outbox[-1].subject == "Your password was changed"

    # The link is spent: the password it was made for is gone.
    again = client_class_for(client).get(link)
    assert again.status_code == 400 and "This link does not work" in again.content.decode()
    assert portal_sign_in(client_class_for(client), "alice@example.test", PASSWORD).status_code == 200


def test_bad_reset_links_are_refused(client, alice) -> None:  # type: ignore[no-untyped-def]
    for path in (
        "/account/password-reset/bm9wZQ/abc-123",
        "/account/password-reset/%%%/abc-123",
        "/account/password-reset/bm9wZQ/set-password",
    ):
        response = client.get(path)
        assert response.status_code == 400, path
    with pytest.raises(recovery.RecoveryError):
        recovery.reset_password(uidb64="bm9wZQ", token="abc", new_password=NEW_PASSWORD)
    assert User.objects.get(pk=alice.pk).check_password(PASSWORD)


def test_the_reset_pages_look_the_same_whoever_asks(client, alice) -> None:  # type: ignore[no-untyped-def]
    first = client.get("/account/password-reset/sent").content.decode()
    client.post("/account/password-reset", {"email": "alice@example.test"})
    second = client.get("/account/password-reset/sent").content.decode()
    assert csrf_free(first) == csrf_free(second)
