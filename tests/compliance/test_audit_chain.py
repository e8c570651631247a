"""The event log is tamper-evident: verify_audit_chain catches an altered, a deleted and an inserted entry.

Requirement: issue #2 "Audit"; DESIGN.md requirement 5 (audits); REGULATIONS.md G-04
(demonstrable records) and accountability (GDPR Art. 5(2)).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from compliance import audit
from compliance.models import AuditChainHead, AuditEvent
from identity.crypto import keystore
from identity.crypto.envelope import Erased

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def tampering() -> Iterator[None]:
    """Bypass the append-only trigger (PostgreSQL), as an attacker with superuser access could."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = DEFAULT")
    else:
        yield


def five_events(alice) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    return [
        audit.record(f"tests.event.{i}", actor=alice, subject=alice, data={"n": i}, ip="198.51.100.7") for i in range(5)
    ]


def verify() -> str:
    out = StringIO()
    call_command("verify_audit_chain", stdout=out)
    return out.getvalue()


def broken() -> str:
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit_chain", stdout=StringIO())
    assert excinfo.value.returncode == 1
    return str(excinfo.value)


def test_intact_chain_verifies(alice) -> None:  # type: ignore[no-untyped-def]
    events = five_events(alice)
    assert "audit chain intact: 5 entries" in verify()
    assert [e.prev_hash for e in events[1:]] == [e.entry_hash for e in events[:-1]]
    assert events[0].prev_hash == audit.GENESIS
    assert [e.id for e in events] == [1, 2, 3, 4, 5]


def test_altered_entry_is_named(alice) -> None:  # type: ignore[no-untyped-def]
    five_events(alice)
    with tampering():
        AuditEvent.objects.filter(pk=3).update(action="tests.event.harmless")
    assert "entry #3" in broken() and "altered" in broken()


def test_altered_details_of_a_keyless_event_are_detected() -> None:
    audit.record("tests.system.ran", actor="system:test", data={"count": 10})
    with tampering():
        AuditEvent.objects.filter(pk=1).update(details={"count": 11})
    assert "entry #1" in broken()


def test_deleted_entry_is_named(alice) -> None:  # type: ignore[no-untyped-def]
    five_events(alice)
    with tampering():
        AuditEvent.objects.filter(pk=2).delete()
    message = broken()
    assert "entry #3" in message and "deleted or inserted" in message


def test_deleted_newest_entry_shows_against_the_head(alice) -> None:  # type: ignore[no-untyped-def]
    five_events(alice)
    with tampering():
        AuditEvent.objects.filter(pk=5).delete()
    assert "chain head" in broken()


def test_inserted_entry_is_named(alice) -> None:  # type: ignore[no-untyped-def]
    events = five_events(alice)
    forged = AuditEvent(
        id=6,
        occurred_at=events[-1].occurred_at,
        action="tests.event.forged",
        actor_type="system",
        actor_ref="system:forger",
        prev_hash=events[-1].entry_hash,
        entry_hash="f" * 64,  # the forger does not hold the chain key
    )
    with tampering():
        forged.save(force_insert=True)
        AuditChainHead.objects.filter(pk=1).update(last_event_id=6, last_hash="f" * 64, length=6)
    message = broken()
    assert "entry #6" in message and "altered" in message


def test_personal_details_are_encrypted_and_secrets_masked(alice) -> None:  # type: ignore[no-untyped-def]
    event = audit.record(
        "accounts.password.changed",
        actor=alice,
        subject=alice,
        data={"password": "hunter2-but-longer", "nested": {"otp_code": "123456"}, "reason": "user request"},
        ip="198.51.100.7",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM compliance_auditevent WHERE id = %s", [event.pk])
        row = repr(cursor.fetchone())
    for needle in ("hunter2", "123456", "198.51.100.7", "user request", "alice"):
        assert needle not in row
    payload = audit.read_payload(AuditEvent.objects.get(pk=event.pk))
    assert payload == {
        "data": {"password": audit.MASK, "nested": {"otp_code": audit.MASK}, "reason": "user request"},
        "ip": "198.51.100.7",
    }


def test_event_without_subject_or_user_keeps_ip_only_as_blind_index() -> None:
    event = audit.record("accounts.signin.failed", actor=None, data={"reason": "unknown account"}, ip="192.0.2.44")
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.payload is None and stored.actor_type == "anonymous"
    assert "192.0.2.44" not in json.dumps(stored.details) and len(stored.ip_index) == 64


def test_erasing_the_subject_redacts_entries_and_keeps_the_chain(alice) -> None:  # type: ignore[no-untyped-def]
    five_events(alice)
    keystore.shred(alice.data_key_id)
    assert all(isinstance(audit.read_payload(e), Erased) for e in AuditEvent.objects.all())
    assert "audit chain intact: 5 entries" in verify()  # redaction, not deletion


@pytest.mark.postgres
def test_the_database_refuses_update_and_delete_of_entries(alice) -> None:  # type: ignore[no-untyped-def]
    five_events(alice)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=1).update(action="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=1).delete()
    assert AuditEvent.objects.get(pk=1).action == "tests.event.0"
