"""Security e-mails to listeners: new sign-in, factor and password changes, lockout, codes.

Notifications go through a task with ids only (no personal data in the broker); one-time codes
are sent in-process after commit, so a code never sits in a queue.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from accounts.models import SecurityEvent, User
from identity.crypto.envelope import Erased

NOT_ME_SALT = "accounts.not-me"
NOT_ME_MAX_AGE = 7 * 24 * 3600

TEMPLATES = {
    "new_signin",
    "blocked_signin",
    "factor_added",
    "factor_removed",
    "backup_codes_regenerated",
    "password_changed",
    "locked_out",
    "signup_attempt",
    "welcome",
}


def notify(user: User, template: str, *, event: SecurityEvent | None = None) -> None:
    if template not in TEMPLATES:
        raise ValueError(f"unknown notification {template!r}")
    from accounts.tasks import send_security_email

    user_id, event_id = str(user.pk), event.pk if event else None
    transaction.on_commit(lambda: send_security_email.delay(user_id, template, event_id))


def not_me_token(user: User, event_id: int | None) -> str:
    return signing.dumps({"u": str(user.pk), "e": event_id}, salt=NOT_ME_SALT, compress=True)


def render_and_send(user: User, template: str, *, event_id: int | None = None) -> None:
    if isinstance(user.email, Erased) or not user.email:
        return
    event = SecurityEvent.objects.filter(pk=event_id, user=user).first() if event_id else None
    context: dict[str, Any] = {
        "user": user,
        "event": event,
        "place": (event.context or {}).get("place") if event and isinstance(event.context, dict) else None,
        "device_name": (event.context or {}).get("device_name") if event and isinstance(event.context, dict) else None,
        "site_url": settings.SITE_URL,
        "not_me_url": f"{settings.SITE_URL}/account/not-me/{not_me_token(user, event_id)}",
        "verify_url": f"{settings.SITE_URL}/account/verify-email/{email_verification_token(user)}",
    }
    _send(str(user.email), template, context)


def _send(address: str, template: str, context: dict[str, Any]) -> None:
    subject = render_to_string(f"accounts/email/{template}_subject.txt", context).strip()
    body = render_to_string(f"accounts/email/{template}.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address])


def send_code(user: User, code: str) -> None:
    """An e-mailed one-time code, sent after commit in this process (never through the broker)."""
    address = str(user.email)
    context = {"user": user, "code": code, "minutes": settings.EMAIL_CODE_MINUTES}
    transaction.on_commit(lambda: _send(address, "signin_code", context))


def email_verification_token(user: User) -> str:
    return signing.dumps({"u": str(user.pk), "e": user.email_index}, salt="accounts.verify-email", compress=True)
