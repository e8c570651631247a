"""The listener's own account: rectify the profile, change the password."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import AuthSession, ParentalConsentRequest, SecurityEvent, User
from accounts.notifications import notify
from accounts.services.events import record_event
from accounts.services.sessions import revoke_all_sessions
from compliance import audit

EDITABLE = ("display_name", "phone", "country", "region", "email")


@transaction.atomic
def update_profile(*, user: User, changes: dict[str, Any], actor: User) -> User:
    """Rectification (GDPR Art. 16, REGULATIONS.md G-16). A new e-mail must be free and is unverified."""
    fields = [name for name in EDITABLE if name in changes]
    if "email" in changes and User.objects.with_email(changes["email"]).exclude(pk=user.pk).exists():
        raise ValueError("This address cannot be used.")
    for name in fields:
        setattr(user, name, changes[name])
    if "email" in fields:
        user.email_verified_at = None
        fields.append("email_verified_at")
    if fields:
        user.save(update_fields=fields)
        # Field names only: the values are personal data and the log must not hold them.
        audit.record("accounts.profile.rectified", actor=actor, subject=user, data={"fields": sorted(fields)})
        # G-16: the correction reaches every system that keeps a copy (compliance.propagation).
        from compliance.propagation import profile_changed

        profile_changed(user, fields)
    return user


@transaction.atomic
def change_password(*, user: User, new_password: str, keep_session: AuthSession | None = None) -> None:
    """Set a new (already validated) password and end every other session."""
    user.set_password(new_password)
    user.password_changed_at = timezone.now()
    user.must_change_password = False
    user.save(update_fields=["password", "password_changed_at", "must_change_password"])
    revoked = revoke_all_sessions(user=user, actor=user, reason="password_changed", keep=keep_session)
    event = record_event(SecurityEvent.Kind.PASSWORD_CHANGED, user=user)
    audit.record("accounts.password.changed", actor=user, subject=user, data={"sessions_revoked": revoked})
    notify(user, "password_changed", event=event)


@transaction.atomic
def lock_account(*, user: User, actor: User | str) -> None:
    """An analyst locks an account: every session ends and sign-in is refused until unlocked."""
    User.objects.filter(pk=user.pk).update(is_active=False)
    revoked = revoke_all_sessions(user=user, actor=actor, reason="locked_by_staff")
    audit.record("accounts.user.locked", actor=actor, subject=user, data={"sessions_revoked": revoked})


@transaction.atomic
def unlock_account(*, user: User, actor: User | str) -> None:
    """Undo ``lock_account``. A child waiting for a parent's consent stays inactive (COPPA)."""
    if ParentalConsentRequest.objects.filter(child=user).exclude(status=ParentalConsentRequest.Status.GRANTED).exists():
        raise ValueError("this account waits for a parent's consent and cannot be unlocked by staff")
    User.objects.filter(pk=user.pk).update(is_active=True)
    audit.record("accounts.user.unlocked", actor=actor, subject=user)


@transaction.atomic
def end_erased_account(user: User) -> None:
    """What erasure does to an account (called by compliance through identity.hooks before the
    subject's key is destroyed): every session and token ends, sign-in is impossible, and the
    lookup indexes no longer lead to the row. The row stays, its values unreadable once the key goes."""
    import uuid as _uuid

    from django.contrib.auth.hashers import make_password

    revoke_all_sessions(user=user, actor="system:erasure", reason="erased")
    User.objects.filter(pk=user.pk).update(
        is_active=False,
        is_staff=False,
        is_superuser=False,
        password=make_password(None),  # an unusable hash: no password can ever match
        email_index=f"erased-{_uuid.uuid4().hex}",
        phone_index="",
        last_login=None,
    )
