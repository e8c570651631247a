"""Sign-in with adaptive MFA: password, lockout, risk decision, second factor, session.

One flow for the mobile API and the portal. Every decision is recorded as a security event with
its signals; the answer never tells whether an e-mail address has an account.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.cache import cache
from django.db import router, transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp_webauthn.models import WebAuthnCredential

from accounts.lockout import ACCOUNT_ATTRIBUTE, client_ip_key, episodes_cache_key
from accounts.models import AuthSession, KnownDevice, MfaChallenge, SecurityAlert, SecurityEvent, User
from accounts.notifications import notify, send_code
from accounts.passwords import is_on_blocklist
from accounts.risk.engine import (
    PROBE_ATTRIBUTE,
    WINDOW,
    Assessment,
    FailureProbe,
    Indexes,
    SignInSummary,
    assess,
    build_attempt,
    indexes_for,
    locate,
    read_history,
    successes_of,
)
from accounts.services import statements
from accounts.services.events import build_event, raise_alert, record_event
from accounts.services.factors import Verification, methods_for, verify_factor
from accounts.services.secrets import code_digest, new_numeric_code, new_token, token_digest
from accounts.services.sessions import IssuedTokens, issue_tokens, start_api_session
from compliance import audit
from identity.crypto.blind import email_index

IP_BLOCK_SECONDS = 30 * 60
LOCKOUT_ALERT_THRESHOLD = 20


@dataclass(frozen=True)
class Client:
    """Where a sign-in comes from, as the view saw it."""

    ip: str | None
    user_agent: str = ""
    device_id: str = ""
    device_name: str = ""
    platform: str = KnownDevice.Platform.OTHER


@dataclass
class SignInResult:
    status: str  # tokens | session (web) | mfa_required | blocked | invalid | locked
    tokens: IssuedTokens | None = None
    session: AuthSession | None = None
    mfa_token: str = ""
    methods: list[str] = field(default_factory=list)
    assessment: Assessment | None = None
    retry_after: int = 0
    user: User | None = None

    def risk(self) -> dict[str, Any]:
        if self.assessment is None:
            return {"level": None, "reasons": []}
        return {"level": self.assessment.level, "reasons": self.assessment.reasons}


class MfaError(Exception):
    def __init__(self, code: str, message: str, *, retry_after: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


def _cooloff_seconds(request: HttpRequest) -> int:
    cool_off = get_cool_off(request)
    return int(cool_off.total_seconds()) if cool_off else 900


def _ip_block_key(idx: Indexes) -> str:
    return f"accounts:ipblock:{idx.ip}"


def _context(client: Client, place: Any, idx: Indexes) -> dict[str, Any]:
    return {
        "ip": client.ip,
        "user_agent": client.user_agent[:300],
        "device_name": client.device_name[:100],
        "platform": client.platform,
        "place": place.as_dict() if place else None,
        "idx": {"ip": idx.ip, "network": idx.network, "country": idx.country, "device": idx.device},
    }


def _indexes_from_context(context: dict[str, Any], account: str) -> Indexes:
    raw = context.get("idx") or {}
    return Indexes(
        account=account,
        ip=raw.get("ip", ""),
        network=raw.get("network", ""),
        country=raw.get("country", ""),
        device=raw.get("device", ""),
    )


def remember_device(
    user: User, idx: Indexes, client: Client, *, known_id: uuid.UUID | None = None
) -> KnownDevice | None:
    """The device of a successful sign-in, its ``last_seen_at`` now; made when it is new.

    ``known_id`` is the device's id when the risk engine just found it (one UPDATE, no SELECT)."""
    if not idx.device:
        return None
    now = timezone.now()
    if known_id is not None:
        device, seen = _seen_device(user, idx, known_id, now)
        if statements.run(seen, using=router.db_for_write(KnownDevice)):
            return device
    device, created = KnownDevice.objects.get_or_create(
        user=user,
        device_index=idx.device,
        defaults={"data_key_id": user.data_key_id, "name": client.device_name[:100], "platform": client.platform},
    )
    if not created:
        KnownDevice.objects.filter(pk=device.pk).update(last_seen_at=now)
    return device


def _seen_device(
    user: User, idx: Indexes, device_id: uuid.UUID, now: datetime.datetime
) -> tuple[KnownDevice, tuple[str, list[Any]]]:
    """The known device of this sign-in (only its id is needed: the foreign keys of the event and
    the session; the rest loads if read), and the UPDATE of its ``last_seen_at``, for
    ``statements.together``."""
    device = KnownDevice.from_db(
        router.db_for_write(KnownDevice),
        ["id", "user_id", "device_index", "last_seen_at"],
        [device_id, user.pk, idx.device, now],
    )
    return device, statements.update_part(
        KnownDevice, where={"id": device_id, "user": user.pk}, values={"last_seen_at": now}
    )


def _record_failure(*, user: User | None, idx: Indexes, context: dict[str, Any]) -> None:
    record_event(SecurityEvent.Kind.SIGNIN_FAILED, user=user, idx=idx, context=context)
    if not idx.ip:
        return
    since = timezone.now() - datetime.timedelta(minutes=15)
    failed_accounts = (
        SecurityEvent.objects.failed_sign_ins()
        .filter(ip_index=idx.ip, occurred_at__gte=since)
        .values("account_index")
        .distinct()
        .count()
    )
    if failed_accounts >= settings.RISK_IP_FAILED_ACCOUNTS and cache.add(_ip_block_key(idx), 1, IP_BLOCK_SECONDS):
        event = record_event(SecurityEvent.Kind.CREDENTIAL_STUFFING, user=None, idx=idx)
        raise_alert(
            SecurityAlert.Kind.CREDENTIAL_STUFFING,
            severity=SecurityAlert.Severity.CRITICAL,
            event=event,
            details={
                "failed_accounts": failed_accounts,
                "window_minutes": 15,
                "blocked_minutes": IP_BLOCK_SECONDS // 60,
            },
        )


def _record_lockout(*, user: User | None, idx: Indexes, cooloff_seconds: int) -> None:
    """One event per lockout episode (not per refused attempt): the cool-off grows with episodes."""
    episode_start = timezone.now() - datetime.timedelta(seconds=cooloff_seconds)
    if SecurityEvent.objects.filter(
        kind=SecurityEvent.Kind.LOCKED_OUT, account_index=idx.account, ip_index=idx.ip, occurred_at__gte=episode_start
    ).exists():
        return
    event = record_event(SecurityEvent.Kind.LOCKED_OUT, user=user, idx=idx)
    cache.delete(episodes_cache_key(idx.account))  # the next cool-off counts this lockout
    if user is not None:
        notify(user, "locked_out", event=event)
    since = timezone.now() - datetime.timedelta(minutes=15)
    recent = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.LOCKED_OUT, occurred_at__gte=since).count()
    if recent == LOCKOUT_ALERT_THRESHOLD:
        raise_alert(SecurityAlert.Kind.LOCKOUTS, details={"lockouts": recent, "window_minutes": 15})


@transaction.atomic
def sign_in(*, request: HttpRequest, email: str, password: str, client: Client, channel: str = "api") -> SignInResult:
    """Check the password (through django-axes), assess the risk, and allow, challenge or refuse.

    ``channel`` is "api" (tokens for the apps) or "web" (a Django login for the portal).
    """
    now = timezone.now()
    place = locate(client.ip)
    idx = indexes_for(account_index=email_index(email), ip=client.ip, place=place, device_id=client.device_id)
    context = _context(client, place, idx)

    if cache.get(_ip_block_key(idx)):
        return SignInResult("locked", retry_after=IP_BLOCK_SECONDS)

    setattr(request, ACCOUNT_ATTRIBUTE, idx.account)  # for the growing cool-off (accounts.lockout)
    # The backend reads the attempt's failures and known device with the user row (one statement).
    setattr(request, PROBE_ATTRIBUTE, FailureProbe(idx, now - WINDOW))
    user = authenticate(request=request, username=email, password=password)
    if getattr(request, "axes_locked_out", False):
        # We answer the lockout ourselves (problem+json, Retry-After); axes' middleware must not
        # replace that answer with its own page.
        request.axes_locked_out = False  # type: ignore[attr-defined]
        holder = User.objects.with_email(email).first()
        cooloff = _cooloff_seconds(request)
        _record_lockout(user=holder, idx=idx, cooloff_seconds=cooloff)
        return SignInResult("locked", retry_after=cooloff)
    if user is None:
        _record_failure(user=User.objects.with_email(email).first(), idx=idx, context=context)
        return SignInResult("invalid")
    assert isinstance(user, User)

    read = read_history(user=user, idx=idx, at=now)
    history = read.history
    attempt = build_attempt(at=now, ip=client.ip, idx=idx, place=place, password_on_blocklist=is_on_blocklist(password))
    assessment = assess(attempt, history, is_staff=user.is_staff)
    if "impossible_travel" in assessment.reasons:
        raise_alert(SecurityAlert.Kind.IMPOSSIBLE_TRAVEL, user=user, details={"decision": assessment.decision})

    if assessment.decision == "deny":
        event = record_event(SecurityEvent.Kind.SIGNIN, user=user, idx=idx, assessment=assessment, context=context)
        notify(user, "blocked_signin", event=event)
        raise_alert(SecurityAlert.Kind.BLOCKED_SIGNIN, user=user, event=event, details=assessment.as_dict())
        audit.record("accounts.signin.blocked", actor=user, subject=user, data=assessment.as_dict(), ip=client.ip)
        return SignInResult("blocked", assessment=assessment, user=user)

    if assessment.decision == "challenge":
        token, methods = open_challenge(
            user=user,
            purpose=MfaChallenge.Purpose.SIGNIN,
            assessment=assessment,
            context={**context, "device_id": client.device_id},
            channel=channel,
        )
        record_event(SecurityEvent.Kind.SIGNIN, user=user, idx=idx, assessment=assessment, context=context)
        return SignInResult("mfa_required", mfa_token=token, methods=methods, assessment=assessment, user=user)

    seen: tuple[str, list[Any]] | None = None
    device: KnownDevice | None
    if channel == "api" and idx.device and read.known_device_id is not None:
        # A device the account knows (read, and locked, with the user row): its last_seen_at is
        # written with the session below.
        device, seen = _seen_device(user, idx, read.known_device_id, now)
    else:
        device = remember_device(user, idx, client, known_id=read.known_device_id)
    event = build_event(
        SecurityEvent.Kind.SIGNIN, user=user, idx=idx, assessment=assessment, device=device, context=context
    )
    assert read.summary is not None
    summary = _with_success(read.summary, at=now, idx=idx, context=context)
    if channel == "web":
        from accounts.services.web import start_web_session

        statements.insert(event)
        session = start_web_session(request, user=user, device=device, context=context)  # signals user_logged_in
        save_signin_summary(user, summary)
        _after_success(user, history.prior_successes, assessment, event)
        return SignInResult("session", session=session, assessment=assessment, user=user)
    # One round trip on PostgreSQL for the rest: the session and its tokens, the user row (last_login
    # and the summary), the reset of axes' failures and the event (accounts.services.statements).
    reset = failures_reset_part(request, user)
    tokens = start_api_session(
        user=user,
        device=device,
        context=context,
        mfa=False,
        signin_summary=summary,
        event=event,
        also=[part for part in (seen, reset) if part is not None],
    )
    if reset is None:
        reset_failures(request, user)
    _after_success(user, history.prior_successes, assessment, event)
    return SignInResult("tokens", tokens=tokens, assessment=assessment, user=user)


def _with_success(
    summary: SignInSummary, *, at: datetime.datetime, idx: Indexes, context: dict[str, Any]
) -> SignInSummary:
    """The summary with this successful sign-in (a SIGNIN allowed, or an MFA_SUCCEEDED event) added."""
    summary.add(at=at, network=idx.network, country=idx.country, place=context.get("place"))
    return summary


def save_signin_summary(user: User, summary: SignInSummary) -> None:
    User.objects.filter(pk=user.pk).update(signin_summary=user.seal_signin_summary(summary.to_stored()))


def _after_success(user: User, prior_successes: int, assessment: Assessment, event: SecurityEvent) -> None:
    """A successful sign-in's notice: a new device or country, for an account that signed in before.
    (axes' failures are reset by then: with the session's statement for the API, by
    django.contrib.auth.login for the web.)"""
    if prior_successes and ({"new_device", "new_country"} & set(assessment.reasons)):
        notify(user, "new_signin", event=event)


def reset_failures(request: HttpRequest, user: User) -> None:
    """An API sign-in succeeded: clear django-axes' failures for this account-and-IP pair.

    What axes' ``user_logged_in`` receiver would do, without the rest of that signal (Django's
    ``update_last_login`` writes the row again, and auditlog then re-reads and decrypts it: about 2 ms
    per sign-in; ``start_api_session`` records the sign-in time already)."""
    reset = failures_reset_part(request, user)
    if reset is None:
        # With expiration rows hanging off each attempt, the ORM's delete (and its cascade).
        AccessAttempt.objects.filter(**_failures_pair(request, user)).delete()
        return
    statements.run(reset, using=router.db_for_write(AccessAttempt))


def failures_reset_part(request: HttpRequest, user: User) -> tuple[str, list[Any]] | None:
    """The DELETE of :func:`reset_failures` as one fixed statement, for ``statements.together``;
    None when axes keeps expiration rows (``AXES_USE_ATTEMPT_EXPIRATION``) that need the cascade.

    axes' post_delete receiver does nothing for its database handler, so no signal is missed."""
    if getattr(settings, "AXES_USE_ATTEMPT_EXPIRATION", False):
        return None
    return statements.delete_part(AccessAttempt, where=_failures_pair(request, user))


def _failures_pair(request: HttpRequest, user: User) -> dict[str, Any]:
    return {"username": user.email_index, "ip_address": client_ip_key(request)}


def open_challenge(
    *,
    user: User,
    purpose: str,
    assessment: Assessment | None,
    context: dict[str, Any],
    session: Any = None,
    channel: str | None = None,
) -> tuple[str, list[str]]:
    """A single-use ``mfa_token`` and the methods this user can complete, for a few minutes.

    The methods depend on the channel ("web" offers passkeys, "api" cannot): a sign-in names it, a
    step-up follows its session's kind.
    """
    if channel is None:
        channel = "web" if session is not None and session.kind == AuthSession.Kind.WEB else "api"
    token = new_token("imm")
    methods = methods_for(user, channel=channel) or ["email"]
    MfaChallenge.objects.create(
        token_hash=token_digest(token),
        user=user,
        data_key_id=user.data_key_id,
        purpose=purpose,
        session=session,
        methods=methods,
        risk=assessment.as_dict() if assessment else {},
        expires_at=timezone.now() + datetime.timedelta(minutes=settings.MFA_CHALLENGE_MINUTES),
        context=context,
    )
    return token, methods


def _open_challenge_for_update(mfa_token: str) -> MfaChallenge:
    challenge = (
        MfaChallenge.objects.select_for_update()
        .select_related("user")
        .filter(token_hash=token_digest(mfa_token))
        .first()
    )
    if challenge is None or not challenge.is_open:
        raise MfaError("mfa_invalid", "the mfa_token is unknown, used or expired; sign in again")
    return challenge


@transaction.atomic
def send_email_code(*, mfa_token: str) -> None:
    """E-mail a one-time code (10 minutes, single use) for a challenge that offers it; throttled."""
    challenge = _open_challenge_for_update(mfa_token)
    if "email" not in challenge.methods:
        raise MfaError("mfa_method_unavailable", "an e-mailed code is not offered for this sign-in")
    if challenge.email_codes_sent >= settings.EMAIL_CODES_PER_CHALLENGE:
        raise MfaError("rate_limited", "too many codes sent; sign in again later", retry_after=60)
    code = new_numeric_code(6)
    challenge.email_code_hash = code_digest(code, purpose="email")
    challenge.email_code_expires_at = timezone.now() + datetime.timedelta(minutes=settings.EMAIL_CODE_MINUTES)
    challenge.email_codes_sent += 1
    challenge.save(update_fields=["email_code_hash", "email_code_expires_at", "email_codes_sent"])
    send_code(challenge.user, code)


def _verify_email_code(challenge: MfaChallenge, code: str) -> Verification:
    if not challenge.email_code_hash or not challenge.email_code_expires_at:
        return Verification(ok=False)
    if challenge.email_code_expires_at <= timezone.now():
        return Verification(ok=False)
    import hmac

    if hmac.compare_digest(challenge.email_code_hash, code_digest(code, purpose="email")):
        challenge.email_code_hash = ""  # single use
        return Verification(ok=True)
    return Verification(ok=False)


def complete_mfa(
    *, request: HttpRequest | None, mfa_token: str, method: str, code: str, channel: str = "api"
) -> IssuedTokens | AuthSession:
    """Verify the second factor for a challenge; on success start (or refresh) the session.

    A wrong code is an MfaError raised after the attempt is committed: the attempt counter, the
    factor's throttle and the security event must survive the error.
    """
    outcome = _complete_mfa(request=request, mfa_token=mfa_token, method=method, code=code, channel=channel)
    if isinstance(outcome, MfaError):
        raise outcome
    return outcome


def complete_mfa_with_device(
    *, request: HttpRequest, mfa_token: str, device: WebAuthnCredential, channel: str = "web"
) -> IssuedTokens | AuthSession:
    """Complete a challenge with a passkey whose WebAuthn assertion was already verified.

    django-otp-webauthn checked the assertion against this challenge's user (challenge, origin, RP id,
    signature, sign count); the rest is ``complete_mfa``'s success path: the device remembered, the
    session started (or stepped up) with django-otp marking it verified, the event and the audit
    record. Only web challenges offer passkeys, so an "api" one refuses it. Raises MfaError.
    """
    if not isinstance(device, WebAuthnCredential):
        raise TypeError("only a passkey is verified before the challenge sees it")
    outcome = _complete_mfa(
        request=request, mfa_token=mfa_token, method="webauthn", code="", channel=channel, verified=device
    )
    if isinstance(outcome, MfaError):
        raise outcome
    return outcome


@transaction.atomic
def record_mfa_failure(*, mfa_token: str) -> None:
    """A passkey ceremony that failed (a bad signature, a replayed or cloned sign count, someone
    else's passkey) counts against the challenge like a wrong code and is recorded as one."""
    try:
        challenge = _open_challenge_for_update(mfa_token)
    except MfaError:
        return
    context = challenge.context if isinstance(challenge.context, dict) else {}
    _count_failure(challenge, context, _indexes_from_context(context, challenge.user.email_index))


def _count_failure(challenge: MfaChallenge, context: dict[str, Any], idx: Indexes) -> None:
    challenge.attempts += 1
    challenge.save(update_fields=["attempts"])
    record_event(SecurityEvent.Kind.MFA_FAILED, user=challenge.user, idx=idx, context=context)


@transaction.atomic
def _complete_mfa(
    *,
    request: HttpRequest | None,
    mfa_token: str,
    method: str,
    code: str,
    channel: str,
    verified: WebAuthnCredential | None = None,
) -> IssuedTokens | AuthSession | MfaError:
    try:
        challenge = _open_challenge_for_update(mfa_token)
    except MfaError as exc:
        return exc
    user = challenge.user
    context = challenge.context if isinstance(challenge.context, dict) else {}
    idx = _indexes_from_context(context, user.email_index)
    if method not in challenge.methods:
        hint = " (passkeys work in the web portal only)" if method == "webauthn" else ""
        return MfaError("mfa_invalid", f"method {method!r} is not offered for this sign-in{hint}")
    if method == "webauthn" and verified is None:
        return MfaError("mfa_invalid", "a passkey is checked by its WebAuthn ceremony in the browser, not with a code")
    if challenge.attempts >= settings.MFA_CHALLENGE_MAX_ATTEMPTS:
        challenge.used_at = timezone.now()
        challenge.save(update_fields=["used_at"])
        return MfaError("mfa_invalid", "too many wrong codes; sign in again")

    if verified is not None:
        result = Verification(ok=verified.user_id == user.pk and bool(verified.confirmed), device=verified)
    elif method == "email":
        result = _verify_email_code(challenge, code)
    else:
        result = verify_factor(user=user, method=method, code=code)
    if result.throttled:
        return MfaError(
            "rate_limited", "too many wrong codes for this factor; wait and try again", retry_after=result.retry_after
        )
    if not result.ok:
        _count_failure(challenge, context, idx)
        return MfaError("mfa_invalid", "the code is not valid" if verified is None else "the passkey is not valid")

    now = timezone.now()
    challenge.used_at = now
    challenge.save(update_fields=["used_at", "email_code_hash"])
    client = Client(
        ip=context.get("ip"),
        user_agent=context.get("user_agent", ""),
        device_id=str(context.get("device_id", "")),
        device_name=context.get("device_name", ""),
        platform=context.get("platform", KnownDevice.Platform.OTHER),
    )
    device = remember_device(user, idx, client)
    assessment_data = challenge.risk or {}
    event = record_event(SecurityEvent.Kind.MFA_SUCCEEDED, user=user, idx=idx, device=device, context=context)
    summary = _with_success(successes_of(user), at=now, idx=idx, context=context)
    if challenge.purpose == MfaChallenge.Purpose.STEP_UP and challenge.session is not None:
        session = challenge.session
        session.mfa_at = now
        session.save(update_fields=["mfa_at"])
        save_signin_summary(user, summary)
        audit.record("accounts.mfa.step_up", actor=user, subject=user, data={"method": method})
        if session.kind == AuthSession.Kind.WEB:
            if request is not None and result.device is not None:
                from django_otp import login as otp_login

                otp_login(request, result.device)
            return session
        return issue_tokens(session, now)
    if channel == "web" and request is not None:
        from accounts.services.web import start_web_session

        web = start_web_session(request, user=user, device=device, context=context, factor=result.device, mfa=True)
        save_signin_summary(user, summary)
        audit.record("accounts.signin.mfa_completed", actor=user, subject=user, data={"method": method})
        return web
    tokens = start_api_session(user=user, device=device, context=context, mfa=True, signin_summary=summary)
    audit.record("accounts.signin.mfa_completed", actor=user, subject=user, data={"method": method})
    if request is not None:
        reset_failures(request, user)
    reasons = set(assessment_data.get("reasons", []))
    # Successful sign-ins including this one (the summary counts up to HISTORY_DEPTH: enough for "> 1").
    if {"new_device", "new_country"} & reasons and len(summary.entries) > 1:
        notify(user, "new_signin", event=event)
    return tokens
