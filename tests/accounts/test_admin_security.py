"""Security analysts in the admin: alerts as they happen, events with reasons, sessions, lockout.

Requirement: issue #3 "visible to security analysts in the admin in real time", "Sessions listed and
revocable ... by staff from the admin", "lockout by an analyst"; DESIGN.md requirement 5.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import AuthSession, SecurityAlert, SecurityEvent, User
from compliance.models import AuditEvent
from tests.accounts.api_helpers import assert_problem, bearer, login

pytestmark = pytest.mark.django_db


def test_alert_list_refreshes_itself_and_alerts_can_be_acknowledged(client, verified_admin) -> None:  # type: ignore[no-untyped-def]
    alert = SecurityAlert.objects.create(
        kind="credential_stuffing", severity="critical", details={"failed_accounts": 12}
    )
    page = client.get(reverse("admin:accounts_securityalert_changelist"))
    assert page.status_code == 200
    assert b'http-equiv="refresh" content="15"' in page.content and b"credential stuffing" in page.content
    client.post(
        reverse("admin:accounts_securityalert_changelist"),
        {"action": "acknowledge", "_selected_action": [alert.pk]},
    )
    alert.refresh_from_db()
    assert alert.acknowledged_by == verified_admin and alert.acknowledged_at is not None
    assert AuditEvent.objects.filter(action="accounts.alerts.acknowledged").exists()


def test_event_detail_shows_reasons_and_decrypted_context(client, verified_admin, alice) -> None:  # type: ignore[no-untyped-def]
    login(APIClient(), "alice@example.test")
    event = SecurityEvent.objects.get(user=alice, kind="signin")
    page = client.get(reverse("admin:accounts_securityevent_change", args=[event.pk]))
    assert page.status_code == 200
    assert b"new_device: a device not seen before on this account" in page.content
    assert b"81.2.69.10" in page.content  # the analyst sees the IP; the database holds ciphertext


def test_analyst_locks_an_account_everywhere_and_unlocks_it(client, verified_admin, alice) -> None:  # type: ignore[no-untyped-def]
    api = APIClient()
    bearer(api, login(api, "alice@example.test").json()["access"])
    client.post(reverse("admin:accounts_user_changelist"), {"action": "lock_accounts", "_selected_action": [alice.pk]})
    assert not User.objects.get(pk=alice.pk).is_active
    assert_problem(api.get("/api/v1/me"), 401, "invalid_token")
    assert AuthSession.objects.get(user=alice).revoked_reason == "locked_by_staff"
    assert_problem(login(APIClient(), "alice@example.test"), 401, "invalid_credentials")
    client.post(
        reverse("admin:accounts_user_changelist"), {"action": "unlock_accounts", "_selected_action": [alice.pk]}
    )
    assert login(APIClient(), "alice@example.test").status_code == 200
    assert list(
        AuditEvent.objects.filter(subject_ref=str(alice.pk), action__startswith="accounts.user.").values_list(
            "action", flat=True
        )
    ) == ["accounts.user.locked", "accounts.user.unlocked"]


def test_staff_revoke_a_session_from_the_admin(client, verified_admin, alice) -> None:  # type: ignore[no-untyped-def]
    api = APIClient()
    tokens = login(api, "alice@example.test").json()
    client.post(
        reverse("admin:accounts_authsession_changelist"),
        {"action": "revoke", "_selected_action": [tokens["session_id"]]},
    )
    assert_problem(bearer(api, tokens["access"]).get("/api/v1/me"), 401, "invalid_token")
