"""Scheduled compliance work (celery beat): the daily deadline sweep."""

from __future__ import annotations

import datetime
import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from compliance import audit
from compliance.fulfilment import run_system  # noqa: F401  (workers find tasks in tasks.py modules)
from compliance.models import PrivacyRequest

logger = logging.getLogger(__name__)

DUE_SOON_DAYS = 5


@shared_task(acks_late=True)
def sweep_deadlines(today_iso: str | None = None) -> dict[str, int]:
    """Mark requests due soon and overdue (once a day each) and alert the privacy team.

    Idempotent: a request is flagged at most once per day, so a re-run (or two beat schedulers)
    sends nothing twice.
    """
    today = datetime.date.fromisoformat(today_iso) if today_iso else timezone.now().date()
    with transaction.atomic():
        overdue = list(
            PrivacyRequest.objects.overdue(today)
            .exclude(overdue_alerted_on=today)
            .select_for_update(skip_locked=True)
            .values_list("pk", "kind", "jurisdiction", "due_on")
        )
        due_soon = list(
            PrivacyRequest.objects.due_within(today, DUE_SOON_DAYS)
            .exclude(due_soon_alerted_on=today)
            .select_for_update(skip_locked=True)
            .values_list("pk", "kind", "jurisdiction", "due_on")
        )
        PrivacyRequest.objects.filter(pk__in=[r[0] for r in overdue]).update(overdue_alerted_on=today)
        PrivacyRequest.objects.filter(pk__in=[r[0] for r in due_soon]).update(due_soon_alerted_on=today)
        if overdue or due_soon:
            audit.record(
                "compliance.dsr.deadline_sweep",
                actor="system:sweep_deadlines",
                data={"overdue": len(overdue), "due_soon": len(due_soon), "day": today.isoformat()},
            )
    if (overdue or due_soon) and settings.PRIVACY_TEAM_EMAIL:
        lines = [f"OVERDUE  {pk}  {kind}  {j}  due {due}" for pk, kind, j, due in overdue]
        lines += [f"due soon {pk}  {kind}  {j}  due {due}" for pk, kind, j, due in due_soon]
        send_mail(
            f"Privacy requests: {len(overdue)} overdue, {len(due_soon)} due within {DUE_SOON_DAYS} days",
            "\n".join(lines) + f"\n\nWork them in the admin: {settings.SITE_URL}/admin/compliance/privacyrequest/\n",
            settings.DEFAULT_FROM_EMAIL,
            [settings.PRIVACY_TEAM_EMAIL],
        )
    logger.info("deadline sweep", extra={"overdue": len(overdue), "due_soon": len(due_soon)})
    return {"overdue": len(overdue), "due_soon": len(due_soon)}


@shared_task(acks_late=True)
def purge_expired_exports() -> int:
    """Delete export files whose download link has expired (issue #4: "deleted when the link expires")."""
    from compliance.exports import delete_export_files
    from compliance.models import ExportFile

    now = timezone.now()
    purged = 0
    for export in ExportFile.objects.filter(expires_at__lte=now, deleted_at__isnull=True).iterator():
        delete_export_files(export.request_id)
        ExportFile.objects.filter(pk=export.pk).update(deleted_at=now)
        purged += 1
    if purged:
        audit.record("compliance.dsr.exports_purged", actor="system:purge_expired_exports", data={"count": purged})
    return purged


@shared_task(acks_late=True)
def match_public_request(intake_id: str) -> str:
    """After a public intake's code was confirmed: match the account and file, or close (compliance.dsr.intake)."""
    from compliance.dsr.intake import match_public_request as match

    return match(intake_id)


@shared_task(acks_late=True)
def continue_agent_request(intake_id: str) -> str:
    """After an agent's address is confirmed: ask the consumer, or file, or drop (compliance.dsr.intake)."""
    from compliance.dsr.intake import continue_agent_request as carry_on

    return carry_on(intake_id)


@shared_task(acks_late=True)
def purge_expired_intakes() -> int:
    """Close requests-without-an-account and agent intakes past their time (C-25: verification data has a TTL)."""
    from compliance.dsr.intake import purge_expired_intakes as purge

    return purge()
