"""The sign-in's fixed statements store exactly what the ORM would.

Requirement: issue #3 performance targets (docs/benchmarks.md, "Sign-in"): the hot path writes
with SQL built once (accounts.services.statements); the rows must not differ from save()'s.
"""

from __future__ import annotations

import datetime

import pytest
from axes.models import AccessAttempt
from django.db import connection
from django.utils import timezone

from accounts.models import AuthSession, KnownDevice, SecurityEvent, User
from accounts.services import statements
from accounts.services.sessions import user_for_sign_in

pytestmark = pytest.mark.django_db


def test_an_insert_reads_back_the_auto_increment_id_and_encrypts(alice) -> None:  # type: ignore[no-untyped-def]
    event = SecurityEvent(
        user=alice, data_key_id=alice.data_key_id, kind=SecurityEvent.Kind.SIGNIN, context={"ip": "198.51.100.4"}
    )
    statements.insert(event)
    assert event.pk is not None and not event._state.adding
    stored = SecurityEvent.objects.get(pk=event.pk)
    assert stored.user_id == alice.pk
    assert stored.kind == SecurityEvent.Kind.SIGNIN
    assert stored.context == {"ip": "198.51.100.4"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT context FROM accounts_securityevent WHERE id = %s", [event.pk])
        (raw,) = cursor.fetchone()
    assert b"198.51.100.4" not in bytes(raw)  # ciphertext, as save() stores it


def test_an_insert_keeps_a_preset_primary_key_and_defaults(alice) -> None:  # type: ignore[no-untyped-def]
    session = AuthSession(
        user=alice,
        data_key_id=alice.data_key_id,
        kind=AuthSession.Kind.API,
        expires_at=timezone.now() + datetime.timedelta(days=1),
        context={"platform": "ios"},
    )
    statements.insert(session)
    stored = AuthSession.objects.get(pk=session.pk)
    assert stored.context == {"platform": "ios"}
    assert stored.created_at == session.created_at
    assert stored.revoked_at is None and stored.revoked_reason == ""


def test_an_update_touches_only_the_rows_matched(alice, charlie) -> None:  # type: ignore[no-untyped-def]
    device = KnownDevice.objects.create(user=alice, data_key_id=alice.data_key_id, device_index="d" * 64)
    moment = timezone.now() + datetime.timedelta(minutes=5)
    where = {"id": device.pk, "user": charlie.pk}
    assert statements.update(KnownDevice, where=where, values={"last_seen_at": moment}) == 0
    assert statements.update(KnownDevice, where={**where, "user": alice}, values={"last_seen_at": moment}) == 1
    device.refresh_from_db()
    assert device.last_seen_at == moment


def test_a_delete_removes_only_the_pair() -> None:
    for ip in ("fd00::1", "fd00::2"):
        AccessAttempt.objects.create(
            username="u" * 64, ip_address=ip, user_agent="", http_accept="", path_info="", failures_since_start=1
        )
    assert statements.delete(AccessAttempt, where={"username": "u" * 64, "ip_address": "fd00::1"}) == 1
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["fd00::2"]


def test_the_sign_in_lookup_reads_the_whole_user(alice) -> None:  # type: ignore[no-untyped-def]
    found = user_for_sign_in("  Alice@Example.test ")
    assert isinstance(found, User) and found.pk == alice.pk
    assert found.email == "alice@example.test"
    assert found.phone == "+49 30 1234567"
    assert found.password == User.objects.get(pk=alice.pk).password
    assert user_for_sign_in("nobody@example.test") is None


def test_together_writes_every_part_and_reads_back_the_events_id(alice) -> None:  # type: ignore[no-untyped-def]
    """One round trip on PostgreSQL (a data-modifying WITH), one after the other elsewhere: an UPDATE,
    an INSERT with a preset key, a DELETE, and last an INSERT whose auto-increment id comes back."""
    from django.test.utils import CaptureQueriesContext

    device = KnownDevice.objects.create(user=alice, data_key_id=alice.data_key_id, device_index="d" * 64)
    AccessAttempt.objects.create(
        username="u" * 64, ip_address="fd00::1", user_agent="", http_accept="", path_info="", failures_since_start=3
    )
    moment = timezone.now() + datetime.timedelta(minutes=5)
    session = AuthSession(
        user=alice,
        data_key_id=alice.data_key_id,
        kind=AuthSession.Kind.API,
        device=device,
        expires_at=moment + datetime.timedelta(days=1),
        context={"platform": "ios"},
    )
    event = SecurityEvent(user=alice, data_key_id=alice.data_key_id, kind=SecurityEvent.Kind.SIGNIN, device=device)
    with CaptureQueriesContext(connection) as queries:
        statements.together(
            statements.update_part(
                KnownDevice, where={"id": device.pk, "user": alice.pk}, values={"last_seen_at": moment}
            ),
            statements.insert_part(session),
            statements.delete_part(AccessAttempt, where={"username": "u" * 64, "ip_address": "fd00::1"}),
            statements.insert_returning_part(event),
            returning=event,
        )
    assert len(queries.captured_queries) == (1 if connection.vendor == "postgresql" else 4)
    assert event.pk is not None and SecurityEvent.objects.get(pk=event.pk).device_id == device.pk
    assert AuthSession.objects.get(pk=session.pk).context == {"platform": "ios"}
    device.refresh_from_db()
    assert device.last_seen_at == moment
    assert not AccessAttempt.objects.exists()
    with pytest.raises(ValueError, match="auto-increment"):
        statements.insert_returning_part(event)  # its key is set now
