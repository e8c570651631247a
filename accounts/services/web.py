"""The portal's side of sign-in: the device cookie and the web session behind a Django login."""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django_otp import login as otp_login

from accounts.middleware import AUTH_SESSION
from accounts.models import AuthSession, BackupCodeFactor, KnownDevice, TotpFactor, User
from accounts.services.secrets import token_digest

DEVICE_COOKIE = "idm_device"
DEVICE_COOKIE_SALT = "accounts.device-cookie"
DEVICE_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie


def device_id_from(request: HttpRequest) -> str:
    """The browser's device id from its signed cookie, or a new one (set it with ``remember_device``)."""
    value = request.get_signed_cookie(DEVICE_COOKIE, default="", salt=DEVICE_COOKIE_SALT)
    return value or f"web-{uuid.uuid4()}"


def set_device_cookie(response: HttpResponse, device_id: str) -> None:
    response.set_signed_cookie(
        DEVICE_COOKIE,
        device_id,
        salt=DEVICE_COOKIE_SALT,
        max_age=DEVICE_COOKIE_MAX_AGE,
        secure=not settings.DEBUG,
        httponly=True,
        samesite="Lax",
    )


def start_web_session(
    request: HttpRequest,
    *,
    user: User,
    device: KnownDevice | None,
    context: dict[str, object],
    factor: TotpFactor | BackupCodeFactor | None = None,
    mfa: bool = False,
) -> AuthSession:
    """Log the user in (Django session) and record the session so it can be listed and revoked."""
    login(request, user, backend="accounts.backends.EmailBackend")
    if factor is not None:
        otp_login(request, factor)  # verified for django-otp too: the admin accepts staff from here
    if request.session.session_key is None:
        request.session.save()
    now = timezone.now()
    session = AuthSession.objects.create(
        user=user,
        data_key_id=user.data_key_id,
        kind=AuthSession.Kind.WEB,
        device=device,
        expires_at=now + datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE),
        mfa_at=now if mfa else None,
        context=context,
        web_session_hash=token_digest(str(request.session.session_key)),
    )
    request.session[AUTH_SESSION] = str(session.pk)
    return session
