"""The deadline sweep marks due-soon and overdue requests once a day and alerts the privacy team.

Requirement: issue #4 "A scheduled sweep (celery beat) marks due-soon and overdue requests and alerts
officers"; REGULATIONS.md G-12, C-07.
"""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings as django_settings
from django.core import mail

from compliance.dsr import services
from compliance.models import AuditEvent, PrivacyRequest
from compliance.tasks import sweep_deadlines

pytestmark = pytest.mark.django_db


def test_sweep_flags_once_a_day_and_mails_the_team(alice, charlie, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PRIVACY_TEAM_EMAIL = "privacy-team@example.test"
    received = datetime.datetime(2026, 1, 31, 10, 0, tzinfo=datetime.UTC)
    late = services.submit_request(
        subject=alice, kind="objection", channel="api", actor=alice, verification="session", received_at=received
    ).request  # due 28 Feb
    soon = services.submit_request(
        subject=charlie,
        kind="objection",
        channel="api",
        actor=charlie,
        verification="session",
        received_at=received + datetime.timedelta(days=20),
    ).request
    assert sweep_deadlines.delay("2026-03-02").get() == {"overdue": 1, "due_soon": 0}
    assert sweep_deadlines("2026-03-02") == {"overdue": 0, "due_soon": 0}  # nothing twice on the same day
    (digest,) = mail.outbox
    assert digest.to == ["privacy-team@example.test"]
    assert str(late.pk) in digest.body and str(soon.pk) not in digest.body
    assert "alice" not in digest.body.lower()  # ids, kinds and dates only
    assert soon.due_on == datetime.date(2026, 4, 5)  # CCPA: received 20 Feb + 44 days
    assert sweep_deadlines("2026-04-02") == {"overdue": 1, "due_soon": 1}  # a new day: reminded again
    assert PrivacyRequest.objects.get(pk=soon.pk).due_soon_alerted_on == datetime.date(2026, 4, 2)
    assert AuditEvent.objects.filter(action="compliance.dsr.deadline_sweep").count() == 2


def test_the_sweep_is_scheduled_with_celery_beat() -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["sweep-privacy-request-deadlines"]
    assert entry["task"] == "compliance.tasks.sweep_deadlines" and entry["schedule"] <= 3600
