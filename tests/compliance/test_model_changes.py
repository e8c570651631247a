"""django-auditlog records staff changes without plaintext personal data, actor e-mail or IP.

Requirement: issue #2 "django-auditlog records model changes ... without ever storing plaintext
personal data in its diffs"; PITFALLS.md (auditlog stores diffs as text, copies actor e-mail).
"""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry
from django.db import connection
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_admin_change_is_logged_with_masked_values_and_actor_by_id(client, verified_admin, alice) -> None:  # type: ignore[no-untyped-def]
    admin_user = verified_admin
    url = reverse("admin:accounts_user_change", args=[alice.pk])
    response = client.post(
        url,
        {
            "email": "alice.renamed@example.test",
            "display_name": "Alice Renamed-Person",
            "date_of_birth": "1990-05-17",
            "country": "DE",
            "region": "DE-BE",
            "phone": "+49 30 7654321",
            "is_active": "on",
        },
        REMOTE_ADDR="203.0.113.77",
    )
    assert response.status_code == 302, response.content[:2000]
    alice.refresh_from_db()
    assert alice.display_name == "Alice Renamed-Person"

    entry = LogEntry.objects.get_for_object(alice).latest("timestamp")
    assert entry.actor_id == admin_user.pk
    assert entry.actor_email is None and entry.remote_addr is None
    assert entry.object_repr == f"user {alice.pk}"
    assert entry.changes["display_name"] == ["[encrypted]", "[encrypted]"]
    assert entry.changes["email"] == ["[encrypted]", "[encrypted]"]
    assert "password" not in entry.changes

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM auditlog_logentry")
        stored = json.dumps([list(map(str, row)) for row in cursor.fetchall()]).lower()
    for needle in ("alice", "renamed", "7654321", "1234567", "root@example", "203.0.113.77"):
        assert needle not in stored


def test_user_list_search_by_email_uses_the_blind_index(client, verified_admin, alice, charlie) -> None:  # type: ignore[no-untyped-def]
    response = client.get(reverse("admin:accounts_user_changelist"), {"q": "ALICE@example.test"})
    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == [User.objects.get(pk=alice.pk)]
