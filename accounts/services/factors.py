"""Second factors: enrol and confirm TOTP, backup codes, passkeys; remove a factor, verify a code.

Throttling is per factor (django-otp's ThrottlingMixin: an exponential delay after each failure)
with a hard stop after MFA_MAX_CONSECUTIVE_FAILURES; a success on one factor never counts as a
failure on another (PITFALLS.md, django-otp #110/#186).

Passkeys are django-otp-webauthn's ``WebAuthnCredential`` devices. Its helper (py_webauthn) checks
the ceremonies: challenge, origin, RP id, signature and sign count; here they become factors like the
others (recorded, audited, notified). They are offered on the web only: the API has no ceremony.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_otp_webauthn.models import WebAuthnCredential

from accounts.models import BackupCode, BackupCodeFactor, SecurityEvent, TotpFactor, User
from accounts.notifications import notify
from accounts.services.events import record_event
from accounts.services.secrets import code_digest, new_backup_code
from compliance import audit

BACKUP_CODE_COUNT = 10
ISSUER = "Identity"
PASSKEY_NAME_MAX = 64  # django-otp's Device.name


class FactorError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Verification:
    ok: bool
    throttled: bool = False
    retry_after: int = 0
    device: TotpFactor | BackupCodeFactor | WebAuthnCredential | None = None  # the factor that matched


def _allowed(device: TotpFactor | BackupCodeFactor) -> Verification | None:
    if device.throttling_failure_count >= settings.MFA_MAX_CONSECUTIVE_FAILURES:
        return Verification(ok=False, throttled=True, retry_after=3600)
    allowed, info = device.verify_is_allowed()
    if allowed:
        return None
    locked_until = (info or {}).get("locked_until")
    wait = int((locked_until - timezone.now()).total_seconds()) + 1 if locked_until else 1
    return Verification(ok=False, throttled=True, retry_after=max(wait, 1))


# -- TOTP ---------------------------------------------------------------------------------------


@transaction.atomic
def start_totp(*, user: User, name: str) -> TotpFactor:
    """An unconfirmed TOTP factor; it counts only after ``confirm_totp`` proves the app has it."""
    from accounts.models.factors import new_totp_secret

    return TotpFactor.objects.create(
        user=user,
        data_key_id=user.data_key_id,
        name=name[:64] or "Authenticator app",
        secret=new_totp_secret(),
        confirmed=False,
    )


def otpauth_uri(factor: TotpFactor) -> str:
    import base64
    import binascii

    secret = base64.b32encode(binascii.unhexlify(str(factor.secret).encode())).decode().rstrip("=")
    # The label names the service and the factor, not the listener's e-mail: the URI may be
    # shown, photographed or logged by the authenticator app.
    label = urllib.parse.quote(f"{ISSUER}:{factor.name}", safe=":")
    query = urllib.parse.urlencode(
        {"secret": secret, "issuer": ISSUER, "algorithm": "SHA1", "digits": factor.digits, "period": factor.step}
    )
    return f"otpauth://totp/{label}?{query}"


@transaction.atomic
def confirm_totp(*, user: User, factor_id: int, code: str) -> Verification:
    factor = TotpFactor.objects.select_for_update().filter(pk=factor_id, user=user).first()
    if factor is None:
        raise FactorError("not_found", "no such factor")
    if factor.confirmed:
        raise FactorError("already_confirmed", "this factor is already confirmed")
    result = _verify_totp(factor, code)
    if result.ok:
        factor.confirmed = True
        factor.save(update_fields=["confirmed"])
        _factors_changed(user)
        event = record_event(SecurityEvent.Kind.FACTOR_ADDED, user=user)
        audit.record("accounts.mfa.totp_added", actor=user, subject=user, data={"factor": factor.pk})
        notify(user, "factor_added", event=event)
    return result


def _verify_totp(factor: TotpFactor, code: str) -> Verification:
    blocked = _allowed(factor)
    if blocked:
        return blocked
    ok = factor.verify_token(code)
    return Verification(ok=ok, device=factor if ok else None)


# -- backup codes -------------------------------------------------------------------------------


@transaction.atomic
def regenerate_backup_codes(*, user: User) -> list[str]:
    """Ten new codes, shown once; every earlier code stops working. The listener is told."""
    had_codes = BackupCodeFactor.objects.filter(user=user).exists()
    BackupCodeFactor.objects.filter(user=user).delete()
    factor = BackupCodeFactor.objects.create(user=user, name="Backup codes", confirmed=True)
    codes = [new_backup_code() for _ in range(BACKUP_CODE_COUNT)]
    BackupCode.objects.bulk_create(
        [BackupCode(factor=factor, code_hash=code_digest(code, purpose="backup")) for code in codes]
    )
    _factors_changed(user)
    kind = SecurityEvent.Kind.BACKUP_CODES_REGENERATED if had_codes else SecurityEvent.Kind.FACTOR_ADDED
    event = record_event(kind, user=user)
    audit.record("accounts.mfa.backup_codes_generated", actor=user, subject=user, data={"replaced": had_codes})
    notify(user, "backup_codes_regenerated" if had_codes else "factor_added", event=event)
    return codes


def _verify_backup_code(user: User, code: str) -> Verification | None:
    factor = BackupCodeFactor.objects.select_for_update().filter(user=user, confirmed=True).first()
    if factor is None:
        return None
    blocked = _allowed(factor)
    if blocked:
        return blocked
    used = BackupCode.objects.filter(
        factor=factor, code_hash=code_digest(code, purpose="backup"), used_at__isnull=True
    ).update(used_at=timezone.now())
    if used:
        factor.throttle_reset(commit=True)
        _factors_changed(user)  # the last unused code may be gone
        return Verification(ok=True, device=factor)
    factor.throttle_increment(commit=True)
    return Verification(ok=False)


# -- passkeys (WebAuthn) -------------------------------------------------------------------------


@transaction.atomic
def add_passkey(
    *, user: User, helper: Any, state: dict[str, Any], data: dict[str, Any], name: str
) -> WebAuthnCredential:
    """Verify a registration ceremony and keep the passkey; recorded, audited and notified.

    ``helper`` is django-otp-webauthn's ``WebAuthnHelper`` for the request; ``state`` is what its
    ``register_begin`` returned (the challenge, single use) and ``data`` the browser's answer. py_webauthn
    raises on a wrong challenge, origin or RP id, or a malformed key; nothing is kept then. Attestation
    is "none": we need the key, not the make of the authenticator.
    """
    credential = helper.register_complete(user=user, state=state, data=data)
    credential.name = name.strip()[:PASSKEY_NAME_MAX] or "Passkey"
    credential.save(update_fields=["name"])
    _factors_changed(user)
    event = record_event(SecurityEvent.Kind.FACTOR_ADDED, user=user)
    audit.record("accounts.mfa.passkey_added", actor=user, subject=user, data={"factor": credential.pk})
    notify(user, "factor_added", event=event)
    return credential


# -- any factor ---------------------------------------------------------------------------------


def _factors_changed(user: User) -> None:
    """Bearer-token requests keep "has a second factor" with a cached token (accounts.services.sessions):
    drop those entries once this change is committed."""
    from accounts.services.sessions import forget_cached_tokens

    transaction.on_commit(lambda: forget_cached_tokens(user=user))


def methods_for(user: User, *, channel: str = "web") -> list[str]:
    """The second factors a user can complete now on ``channel``, strongest first.

    A passkey needs a WebAuthn ceremony, which only the portal has: "api" never offers one. "web"
    (the default) lists every factor, so it also answers "has this user a second factor?".
    """
    methods = []
    if channel == "web" and WebAuthnCredential.objects.filter(user=user, confirmed=True).exists():
        methods.append("webauthn")
    if TotpFactor.objects.filter(user=user, confirmed=True).exists():
        methods.append("totp")
    if BackupCode.objects.filter(factor__user=user, factor__confirmed=True, used_at__isnull=True).exists():
        methods.append("backup_code")
    return methods


@transaction.atomic
def verify_factor(*, user: User, method: str, code: str) -> Verification:
    """Check a TOTP or backup code against that factor only (a passkey has no code: see
    ``accounts.services.signin.complete_mfa_with_device``)."""
    if method == "totp":
        results = [
            _verify_totp(f, code) for f in TotpFactor.objects.select_for_update().filter(user=user, confirmed=True)
        ]
        matched = [r for r in results if r.ok]
        if matched:
            return matched[0]
        throttled = [r for r in results if r.throttled]
        if results and len(throttled) == len(results):
            return Verification(ok=False, throttled=True, retry_after=min(r.retry_after for r in throttled))
        return Verification(ok=False)
    if method == "backup_code":
        return _verify_backup_code(user, code) or Verification(ok=False)
    return Verification(ok=False)


@transaction.atomic
def remove_factor(*, user: User, kind: str, factor_id: int) -> bool:
    if kind == "totp":
        deleted, _ = TotpFactor.objects.filter(pk=factor_id, user=user).delete()
    elif kind == "backup_code":
        deleted, _ = BackupCodeFactor.objects.filter(pk=factor_id, user=user).delete()
    elif kind == "webauthn":
        # The passkey stays on the listener's authenticator but can no longer sign anything in.
        deleted, _ = WebAuthnCredential.objects.filter(pk=factor_id, user=user).delete()
    else:
        return False
    if deleted:
        _factors_changed(user)
        event = record_event(SecurityEvent.Kind.FACTOR_REMOVED, user=user)
        audit.record("accounts.mfa.factor_removed", actor=user, subject=user, data={"kind": kind, "factor": factor_id})
        notify(user, "factor_removed", event=event)
    return bool(deleted)
