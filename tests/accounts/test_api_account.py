"""The account API: profile, rectification, password change, sessions, security events.

Requirement: issue #3 "Sessions and tokens" and "one listener never reaching another's sessions,
devices or events (404)"; CONTRACT.md Account; REGULATIONS.md G-16 (rectification).
"""

from __future__ import annotations

import pytest
from django.core import mail
from rest_framework.test import APIClient

from accounts.models import AuthSession, SecurityEvent, User
from compliance.models import AuditEvent
from tests.accounts.api_helpers import assert_problem, bearer, login
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def signed_in(email: str, device: str = "phone-1") -> tuple[APIClient, dict[str, str]]:
    client = APIClient()
    tokens = login(client, email, device=device).json()
    bearer(client, tokens["access"])
    return client, tokens


def test_profile_and_rectification(alice) -> None:  # type: ignore[no-untyped-def]
    api, _ = signed_in("alice@example.test")
    me = api.get("/api/v1/me").json()
    assert me == {
        "id": str(alice.pk),
        "email": "alice@example.test",
        "display_name": "Alice Listener",
        "date_of_birth": "1990-05-17",
        "country": "DE",
        "region": "DE-BE",
        "phone": "+49 30 1234567",
        "mfa_enrolled": False,
        "email_verified": False,
        "created_at": me["created_at"],
    }
    changed = api.patch("/api/v1/me", {"display_name": "Alice L.", "country": "at", "region": "AT-9"}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["display_name"], changed.json()["country"], changed.json()["region"]) == (
        "Alice L.",
        "AT",
        "AT-9",
    )
    event = AuditEvent.objects.get(action="accounts.profile.rectified")
    assert "Alice L." not in str(event.details) and event.payload is not None
    body = assert_problem(api.patch("/api/v1/me", {"region": "US-CA"}, format="json"), 400, "validation_error")
    assert body["errors"] == {"region": ["The region must be in the country given."]}


def test_changing_the_email_needs_a_fresh_second_factor(alice) -> None:  # type: ignore[no-untyped-def]
    api, _ = signed_in("alice@example.test")
    body = assert_problem(
        api.patch("/api/v1/me", {"email": "alice.new@example.test"}, format="json"), 403, "step_up_required"
    )
    assert body["methods"] == ["email"] and body["mfa_token"]
    assert User.objects.get(pk=alice.pk).email == "alice@example.test"


def test_password_change_revokes_every_other_session(alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    phone, _ = signed_in("alice@example.test", device="phone-1")
    laptop, laptop_tokens = signed_in("alice@example.test", device="laptop-1")
    wrong = phone.post("/api/v1/me/password", {"current_password": "nope", "new_password": "x"}, format="json")
    assert assert_problem(wrong, 400, "validation_error")["errors"] == {
        "current_password": ["This is not your current password."]
    }
    weak = phone.post("/api/v1/me/password", {"current_password": PASSWORD, "new_password": "short"}, format="json")
    assert "new_password" in assert_problem(weak, 400, "validation_error")["errors"]
    with django_capture_on_commit_callbacks(execute=True):
        ok = phone.post(
            "/api/v1/me/password",
            {"current_password": PASSWORD, "new_password": "an entirely new long passphrase"},
            format="json",
        )
    assert ok.status_code == 204
    assert phone.get("/api/v1/me").status_code == 200  # the session that changed it stays
    assert_problem(laptop.get("/api/v1/me"), 401, "invalid_token")
    assert AuthSession.objects.get(pk=laptop_tokens["session_id"]).revoked_reason == "password_changed"
    assert [m.subject for m in mail.outbox] == ["Your password was changed"]
    assert login(APIClient(), "alice@example.test", "an entirely new long passphrase").status_code == 200


def test_sessions_are_listed_and_revocable_by_their_owner_only(alice, charlie) -> None:  # type: ignore[no-untyped-def]
    phone, phone_tokens = signed_in("alice@example.test", device="phone-1")
    laptop, laptop_tokens = signed_in("alice@example.test", device="laptop-1")
    intruder, _ = signed_in("charlie@example.test")

    listed = phone.get("/api/v1/me/sessions").json()
    assert {s["id"] for s in listed} == {phone_tokens["session_id"], laptop_tokens["session_id"]}
    assert [s["current"] for s in listed if s["id"] == phone_tokens["session_id"]] == [True]
    assert {s["device"]["platform"] for s in listed} == {"android"}

    assert_problem(intruder.delete(f"/api/v1/me/sessions/{laptop_tokens['session_id']}"), 404, "not_found")
    assert laptop.get("/api/v1/me").status_code == 200
    assert {s["id"] for s in intruder.get("/api/v1/me/sessions").json()}.isdisjoint(
        {phone_tokens["session_id"], laptop_tokens["session_id"]}
    )

    assert phone.delete(f"/api/v1/me/sessions/{laptop_tokens['session_id']}").status_code == 204
    assert_problem(laptop.get("/api/v1/me"), 401, "invalid_token")
    assert_problem(phone.delete(f"/api/v1/me/sessions/{laptop_tokens['session_id']}"), 404, "not_found")


def test_security_events_show_reasons_to_their_owner_only(alice, charlie) -> None:  # type: ignore[no-untyped-def]
    login(APIClient(), "alice@example.test", "wrong password for the record")
    api, _ = signed_in("alice@example.test")
    events = api.get("/api/v1/me/security-events").json()
    kinds = [e["kind"] for e in events]
    assert kinds == ["signin", "signin_failed"]
    assert events[0]["reasons"] == [{"code": "new_device", "description": "a device not seen before on this account"}]
    assert events[0]["device"] == "Pixel"
    intruder, _ = signed_in("charlie@example.test")
    theirs = intruder.get("/api/v1/me/security-events").json()
    assert {e["id"] for e in theirs}.isdisjoint({e["id"] for e in events})
    assert SecurityEvent.objects.filter(user=alice).count() == 2
