"""Sessions and tokens: issue, rotate (with reuse detection, RFC 9700 §4.14), revoke.

Access tokens live ACCESS_TOKEN_MINUTES (at most 15). Refresh tokens rotate on every use; a used
refresh token presented again revokes its whole session and raises an alert. Sessions have an
absolute lifetime (SESSION_ABSOLUTE_DAYS). Only SHA-256 digests of tokens are stored.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import AccessToken, AuthSession, KnownDevice, RefreshToken, SecurityEvent, User
from accounts.services.events import raise_alert, record_event
from accounts.services.secrets import new_token, token_digest
from compliance import audit


class TokenError(Exception):
    code = "invalid_token"


class TokenReused(TokenError):
    code = "token_reused"


@dataclass(frozen=True)
class IssuedTokens:
    session: AuthSession
    access: str
    refresh: str
    expires_in: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "access": self.access,
            "refresh": self.refresh,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "session_id": str(self.session.pk),
        }


def _access_ttl() -> datetime.timedelta:
    return datetime.timedelta(minutes=min(settings.ACCESS_TOKEN_MINUTES, 15))


def issue_tokens(session: AuthSession, now: datetime.datetime) -> IssuedTokens:
    access, refresh = new_token("ima"), new_token("imr")
    ttl = _access_ttl()
    AccessToken.objects.create(token_hash=token_digest(access), session=session, expires_at=now + ttl)
    refresh_expiry = min(now + datetime.timedelta(days=settings.REFRESH_TOKEN_IDLE_DAYS), session.expires_at)
    RefreshToken.objects.create(token_hash=token_digest(refresh), session=session, expires_at=refresh_expiry)
    return IssuedTokens(session, access, refresh, int(ttl.total_seconds()))


@transaction.atomic
def start_api_session(*, user: User, device: KnownDevice | None, context: dict[str, Any], mfa: bool) -> IssuedTokens:
    now = timezone.now()
    session = AuthSession.objects.create(
        user=user,
        data_key_id=user.data_key_id,
        kind=AuthSession.Kind.API,
        device=device,
        expires_at=now + datetime.timedelta(days=settings.SESSION_ABSOLUTE_DAYS),
        mfa_at=now if mfa else None,
        context=context,
    )
    User.objects.filter(pk=user.pk).update(last_login=now)
    return issue_tokens(session, now)


def authenticate_access_token(token: str) -> tuple[User, AuthSession] | None:
    """The user and session behind a bearer token, or None when unknown, expired or revoked."""
    now = timezone.now()
    row = (
        AccessToken.objects.select_related("session", "session__user")
        .filter(token_hash=token_digest(token), expires_at__gt=now)
        .first()
    )
    if row is None:
        return None
    session = row.session
    if session.revoked_at is not None or session.expires_at <= now or not session.user.is_active:
        return None
    if (now - session.last_used_at).total_seconds() > 60:
        AuthSession.objects.filter(pk=session.pk).update(last_used_at=now)
    return session.user, session


def refresh_session(*, refresh: str) -> IssuedTokens:
    """Rotate: a new access and refresh token for the session, the old refresh token spent.

    Raises TokenReused after the session's revocation is committed: the error must not roll it back.
    """
    outcome = _rotate(refresh)
    if outcome is None:
        raise TokenReused("refresh token already used: the session is revoked")
    return outcome


@transaction.atomic
def _rotate(refresh: str) -> IssuedTokens | None:
    now = timezone.now()
    row = (
        RefreshToken.objects.select_for_update()
        .select_related("session", "session__user")
        .filter(token_hash=token_digest(refresh))
        .first()
    )
    if row is None:
        raise TokenError("unknown refresh token")
    session = AuthSession.objects.select_for_update().get(pk=row.session_id)
    if row.used_at is not None:
        if session.revoked_at is None:  # the first sign of a stolen token: end the family, alert
            _revoke(session, reason="token_reused", now=now)
            event = record_event(SecurityEvent.Kind.TOKEN_REUSED, user=session.user, device=session.device)
            raise_alert(
                "token_reuse",
                severity="critical",
                user=session.user,
                event=event,
                details={"session_id": str(session.pk)},
            )
            audit.record(
                "accounts.session.token_reused", actor=None, subject=session.user, data={"session": str(session.pk)}
            )
        return None
    if session.revoked_at is not None or session.expires_at <= now or row.expires_at <= now:
        raise TokenError("the session has ended")
    if not session.user.is_active:
        raise TokenError("the account is not active")
    row.used_at = now
    row.save(update_fields=["used_at"])
    session.last_used_at = now
    session.save(update_fields=["last_used_at"])
    return issue_tokens(session, now)


def _revoke(session: AuthSession, *, reason: str, now: datetime.datetime) -> bool:
    if session.revoked_at is not None:
        return False
    AuthSession.objects.filter(pk=session.pk).update(revoked_at=now, revoked_reason=reason)
    AccessToken.objects.filter(session=session).delete()
    RefreshToken.objects.filter(session=session, used_at__isnull=True).update(used_at=now)
    session.revoked_at, session.revoked_reason = now, reason
    # A web session ends at its next request: the portal's middleware finds its AuthSession revoked.
    return True


@transaction.atomic
def revoke_session(*, session: AuthSession, actor: User | str | None, reason: str) -> bool:
    """End one session and all its tokens. Idempotent."""
    revoked = _revoke(session, reason=reason, now=timezone.now())
    if revoked:
        record_event(SecurityEvent.Kind.SESSION_REVOKED, user=session.user, device=session.device)
        audit.record(
            "accounts.session.revoked",
            actor=actor,
            subject=session.user,
            data={"session": str(session.pk), "reason": reason},
        )
    return revoked


@transaction.atomic
def revoke_all_sessions(*, user: User, actor: User | str | None, reason: str, keep: AuthSession | None = None) -> int:
    """End every session of a user (password change, lockout by an analyst, erasure), except ``keep``."""
    now = timezone.now()
    count = 0
    for session in AuthSession.objects.select_for_update().filter(user=user, revoked_at__isnull=True):
        if keep is not None and session.pk == keep.pk:
            continue
        count += _revoke(session, reason=reason, now=now)
    if count:
        audit.record("accounts.session.all_revoked", actor=actor, subject=user, data={"count": count, "reason": reason})
    return count


@transaction.atomic
def logout(*, refresh: str) -> bool:
    row = RefreshToken.objects.select_related("session").filter(token_hash=token_digest(refresh)).first()
    if row is None:
        return False
    return revoke_session(session=row.session, actor=row.session.user, reason="logout")


def has_fresh_second_factor(session: AuthSession | None) -> bool:
    if session is None or session.mfa_at is None:
        return False
    return timezone.now() - session.mfa_at <= datetime.timedelta(minutes=settings.STEP_UP_MAX_AGE_MINUTES)
