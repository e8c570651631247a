"""Account recovery: "this was not me", and password reset by an e-mailed link.

Both are written once here and called by the portal (and, later, by the API). Neither tells an
outsider whether an e-mail address has an account: a reset request answers the same and costs
about the same time either way, and a bad or expired link is just "invalid".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts import passwords
from accounts.models import SecurityEvent, User
from accounts.notifications import NOT_ME_MAX_AGE, NOT_ME_SALT
from accounts.services.account import change_password
from accounts.services.events import record_event
from accounts.services.sessions import revoke_all_sessions
from compliance import audit
from identity.crypto.envelope import Erased

# A reset request e-mails the owner; this many per address an hour, then silence (the answer
# stays the same), so that the form cannot be used to flood someone's mailbox.
RESET_MAILS_PER_HOUR = 5


class RecoveryError(Exception):
    """A recovery link that is malformed, tampered with, expired or already spent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NotMeReport:
    user: User
    sessions_revoked: int
    event: SecurityEvent


# -- links ----------------------------------------------------------------------------------------


def password_reset_url(user: User) -> str:
    """The one link that lets its holder choose a new password (Django's token generator: it stops
    working once the password, or the last sign-in, changes, and after PASSWORD_RESET_TIMEOUT)."""
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return f"{settings.SITE_URL}/account/password-reset/{uidb64}/{token}"


def _send_reset_mail(user: User, template: str) -> None:
    """Render and send after commit, in this process: a working reset link never sits in a queue."""
    if isinstance(user.email, Erased) or not user.email:
        return
    address = str(user.email)
    context: dict[str, Any] = {
        "user": user,
        "reset_url": password_reset_url(user),
        "hours": settings.PASSWORD_RESET_TIMEOUT // 3600,
        "site_url": settings.SITE_URL,
    }
    subject = render_to_string(f"accounts/email/{template}_subject.txt", context).strip()
    body = render_to_string(f"accounts/email/{template}.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address]))


# -- "this was not me" ----------------------------------------------------------------------------


def read_not_me_token(token: str) -> tuple[User, int | None]:
    """The user and event a "this was not me" link names (accounts.notifications.not_me_token)."""
    try:
        data = signing.loads(token, salt=NOT_ME_SALT, max_age=NOT_ME_MAX_AGE)
    except signing.BadSignature as exc:  # includes SignatureExpired
        raise RecoveryError("invalid_link", "This link is invalid or has expired.") from exc
    user_id = data.get("u") if isinstance(data, dict) else None
    try:
        user = User.objects.filter(pk=user_id).first() if isinstance(user_id, str) else None
    except ValidationError:  # not a UUID
        user = None
    if user is None:
        raise RecoveryError("invalid_link", "This link is invalid or has expired.")
    event_id = data.get("e")
    return user, event_id if isinstance(event_id, int) else None


@transaction.atomic
def report_not_me(*, token: str, ip: str | None = None) -> NotMeReport:
    """The listener says a sign-in was not theirs: sign every device out (web and apps), make the
    password unusable so that whoever knows it cannot sign in again, record it for the listener
    and the analysts, and e-mail a link to choose a new password.

    Whoever holds the link (sent to the account's address) acts as the account holder. Using it
    again repeats the same steps, which only ever secures the account further.
    """
    user, event_id = read_not_me_token(token)
    user = User.objects.select_for_update().get(pk=user.pk)
    revoked = revoke_all_sessions(user=user, actor=user, reason="not_me")
    user.set_unusable_password()
    user.must_change_password = True
    user.save(update_fields=["password", "must_change_password"])
    reported = SecurityEvent.objects.filter(pk=event_id, user=user).first() if event_id else None
    event = record_event(
        SecurityEvent.Kind.NOT_ME,
        user=user,
        device=reported.device if reported else None,
        context={"reported_event": reported.pk if reported else None},
    )
    audit.record(
        "accounts.signin.reported_not_me",
        actor=user,
        subject=user,
        data={"event": reported.pk if reported else None, "sessions_revoked": revoked},
        ip=ip,
    )
    _send_reset_mail(user, "password_reset_not_me")
    return NotMeReport(user=user, sessions_revoked=revoked, event=event)


# -- password reset -------------------------------------------------------------------------------


def _reset_mail_allowed(user: User) -> bool:
    key = f"accounts:reset-mails:{user.email_index}"
    cache.add(key, 0, 3600)
    try:
        sent = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, 3600)
        sent = 1
    return sent <= RESET_MAILS_PER_HOUR


@transaction.atomic
def request_password_reset(*, email: str, ip: str | None = None) -> None:
    """E-mail a reset link if the address belongs to an active account; otherwise do nothing.

    The caller answers the same either way. Both paths run the password hasher once, so an
    unknown address takes about as long as a known one (the mail itself is sent after commit).
    """
    make_password(secrets.token_urlsafe(16))  # the same work on both paths
    user = User.objects.with_email(email).filter(is_active=True).first()
    if user is None:
        return
    if not _reset_mail_allowed(user):
        return
    audit.record("accounts.password.reset_requested", actor=None, subject=user, ip=ip)
    _send_reset_mail(user, "password_reset")


def user_for_reset_link(*, uidb64: str, token: str) -> User | None:
    """The user a reset link is for, if the link is still valid."""
    try:
        pk = urlsafe_base64_decode(uidb64).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    try:
        user = User.objects.filter(pk=pk, is_active=True).first()
    except ValidationError:  # not a UUID
        return None
    if user is None or not default_token_generator.check_token(user, token):
        return None
    return user


@transaction.atomic
def reset_password(*, uidb64: str, token: str, new_password: str, ip: str | None = None) -> User:
    """Set a new password from a valid link; every session of the account ends.

    Raises RecoveryError for a bad link (the link is spent once the password changes) and
    ValidationError, with every reason, for a password that breaks the rules.
    """
    user = user_for_reset_link(uidb64=uidb64, token=token)
    if user is None:
        raise RecoveryError("invalid_link", "This link is invalid or has expired.")
    passwords.validate(
        new_password,
        email=str(user.email),
        display_name=str(user.display_name),
        has_second_factor=user.has_second_factor,
    )
    change_password(user=user, new_password=new_password, keep_session=None)
    audit.record("accounts.password.reset", actor=user, subject=user, ip=ip)
    return user


__all__ = [
    "NotMeReport",
    "RecoveryError",
    "password_reset_url",
    "read_not_me_token",
    "report_not_me",
    "request_password_reset",
    "reset_password",
    "user_for_reset_link",
]
