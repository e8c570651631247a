"""Notices the law requires for a request (acknowledgement, extension, denial, completion), sent by
e-mail after commit and recorded in the audit log with the date they left."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from compliance import audit
from compliance.models import PrivacyRequest
from identity.crypto.envelope import Erased

NOTICES = {"acknowledgement", "extension", "denial", "completion", "restriction_lift"}


def send(request: PrivacyRequest, notice: str) -> None:
    if notice not in NOTICES:
        raise ValueError(f"unknown notice {notice!r}")
    request_id = request.pk
    transaction.on_commit(lambda: deliver(request_id, notice))


def deliver(request_id: Any, notice: str) -> None:
    request = PrivacyRequest.objects.select_related("subject").filter(pk=request_id).first()
    if request is None or request.subject is None:
        return
    address = request.subject.email
    if isinstance(address, Erased) or not address:
        return
    # An erasure's answer lists what was kept under a legal exception, minimised (G-17, C-17).
    kept = [item for run in request.runs.all() for item in run.kept] if request.kind == "erasure" else []
    context = {"request": request, "subject": request.subject, "site_url": settings.SITE_URL, "kept": kept}
    subject_line = render_to_string(f"compliance/email/{notice}_subject.txt", context).strip()
    body = render_to_string(f"compliance/email/{notice}.txt", context)
    send_mail(subject_line, body, settings.DEFAULT_FROM_EMAIL, [str(address)])
    with transaction.atomic():
        if notice == "acknowledgement":
            PrivacyRequest.objects.filter(pk=request.pk, acknowledged_at__isnull=True).update(acknowledged_at=_now())
        audit.record(
            "compliance.dsr.notice_sent",
            actor="system:notices",
            subject=request.subject,
            data={"request": str(request.pk), "notice": notice},
        )


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()
