"""Background work of accounts: security e-mails and alert webhooks. Tasks take ids, never data."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.request

from celery import shared_task
from django.conf import settings

from accounts.models import SecurityAlert, User

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=5, default_retry_delay=30, acks_late=True)
def send_security_email(self, user_id: str, template: str, event_id: int | None = None) -> None:  # type: ignore[no-untyped-def]
    from accounts.notifications import render_and_send

    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return
    try:
        render_and_send(user, template, event_id=event_id)
    except OSError as exc:  # SMTP down: try again later
        raise self.retry(exc=exc) from exc


@shared_task(bind=True, max_retries=8, default_retry_delay=15, acks_late=True)
def deliver_alert(self, alert_id: int) -> None:  # type: ignore[no-untyped-def]
    url = settings.SECURITY_ALERT_WEBHOOK_URL
    alert = SecurityAlert.objects.filter(pk=alert_id).first()
    if not url or alert is None:
        return
    body = json.dumps(
        {
            "id": alert.pk,
            "kind": alert.kind,
            "severity": alert.severity,
            "raised_at": alert.raised_at.isoformat(),
            "user_id": str(alert.user_id) if alert.user_id else None,
            "details": alert.details,
        },
        sort_keys=True,
    ).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(settings.SECRET_KEY.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(  # noqa: S310 (operator-configured https URL)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Signature-Timestamp": timestamp,
            "X-Signature-SHA256": signature,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            response.read()
    except OSError as exc:
        logger.warning("alert webhook failed", extra={"alert_id": alert_id, "error": type(exc).__name__})
        raise self.retry(exc=exc) from exc
