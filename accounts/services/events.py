"""Security events and alerts: recorded where they happen, listed to listeners and analysts."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import KnownDevice, SecurityAlert, SecurityEvent, User
from accounts.risk.engine import Assessment, Indexes
from accounts.services import statements


def record_event(
    kind: str,
    *,
    user: User | None,
    idx: Indexes | None = None,
    assessment: Assessment | None = None,
    device: KnownDevice | None = None,
    context: dict[str, Any] | None = None,
) -> SecurityEvent:
    """One security event. ``context`` (IP, place, user agent) is kept only for a known user,
    encrypted under their key; without a user only blind indexes are stored."""
    event = build_event(kind, user=user, idx=idx, assessment=assessment, device=device, context=context)
    # One fixed INSERT (accounts.services.statements): the row save() would write, less Python.
    statements.insert(event)
    return event


def build_event(
    kind: str,
    *,
    user: User | None,
    idx: Indexes | None = None,
    assessment: Assessment | None = None,
    device: KnownDevice | None = None,
    context: dict[str, Any] | None = None,
) -> SecurityEvent:
    """The event :func:`record_event` stores, not stored yet: for a caller that writes it together
    with other rows (``statements.insert_returning_part``)."""
    return SecurityEvent(
        user=user,
        data_key_id=user.data_key_id if user else None,
        kind=kind,
        decision=assessment.decision if assessment else "",
        level=assessment.level if assessment else "",
        score=assessment.score if assessment else 0,
        reasons=assessment.reasons if assessment else [],
        device=device,
        account_index=idx.account if idx else "",
        ip_index=idx.ip if idx else "",
        network_index=idx.network if idx else "",
        country_index=idx.country if idx else "",
        context=context if user else None,
    )


def raise_alert(
    kind: str,
    *,
    severity: str = SecurityAlert.Severity.WARNING,
    user: User | None = None,
    event: SecurityEvent | None = None,
    details: dict[str, Any] | None = None,
) -> SecurityAlert:
    """Record an alert for analysts and, after commit, send it to the webhook if one is set."""
    alert = SecurityAlert.objects.create(kind=kind, severity=severity, user=user, event=event, details=details or {})
    from accounts.tasks import deliver_alert

    transaction.on_commit(lambda: deliver_alert.delay(alert.pk))
    return alert
