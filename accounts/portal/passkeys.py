"""Passkeys in the portal: django-otp-webauthn's ceremonies, under the portal's rules.

The package's URL names (``otp_webauthn:*``, which its template tags and scripts use) are served by
the views here (``accounts.portal.webauthn_urls``); the package's own views are not mounted:

- Registration happens in a portal session only, and needs a second factor from the last
  STEP_UP_MAX_AGE_MINUTES when the listener already has one (the rule for authenticator apps and
  the API). The package's view asks only django-otp's "verified", which lasts the whole session,
  and neither records, audits nor notifies; ``factors.add_passkey`` does.
- Authentication serves the sign-in or step-up challenge this browser is completing. During a
  sign-in nobody is logged in yet (the challenge lives in the Django session), and the package's
  views know only ``request.user`` or passwordless login, which is off. The assertion is checked
  for the challenge's user only; success completes the challenge through
  ``signin.complete_mfa_with_device``, a failure counts against it like a wrong code.

The WebAuthn challenge is single use (the package pops it from the session before verifying) and
bound here to the MFA challenge it was begun for; the MFA challenge is single use under a row lock.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django_otp import login as otp_login
from django_otp_webauthn import exceptions
from django_otp_webauthn.helpers import WebAuthnHelper
from django_otp_webauthn.settings import app_settings
from django_otp_webauthn.utils import rewrite_exceptions
from django_otp_webauthn.views import (
    BeginCredentialAuthenticationView,
    BeginCredentialRegistrationView,
    CompleteCredentialAuthenticationView,
    CompleteCredentialRegistrationView,
)

from accounts.models import AuthSession, MfaChallenge, User
from accounts.portal.decorators import adding_factor_needs_step_up, rate_limited
from accounts.portal.views import SIGN_IN_STATE, STEP_UP_STATE, _safe_next, describe_browser
from accounts.services import factors
from accounts.services.secrets import token_digest
from accounts.services.signin import MfaError, complete_mfa_with_device, record_mfa_failure

# The session key django-otp-webauthn's views keep the ceremony's challenge under (views.py).
AUTHENTICATION_STATE = "otp_webauthn_authentication_state"
PASSKEY_FAILED = "That passkey did not work here. Try again, or confirm another way."


# -- configuration ------------------------------------------------------------------------------------


def relying_party_id(request: HttpRequest) -> str:
    """WEBAUTHN_RP_ID; unset, the host of SITE_URL, or with DEBUG the host the request came to
    (Django has checked it against ALLOWED_HOSTS)."""
    if settings.WEBAUTHN_RP_ID:
        return str(settings.WEBAUTHN_RP_ID)
    if settings.DEBUG:
        host, _port = split_domain_port(request.get_host())
        return host
    return urllib.parse.urlsplit(settings.SITE_URL).hostname or ""


class PortalWebAuthnHelper(WebAuthnHelper):
    """With DEBUG, the request's own origin is allowed too, to match the RP id taken from its host."""

    def get_allowed_origins(self) -> list[str]:
        origins = list(app_settings.OTP_WEBAUTHN_ALLOWED_ORIGINS)
        if settings.DEBUG:
            origins.append(f"{self.request.scheme}://{self.request.get_host()}")
        return origins


log = logging.getLogger(__name__)


class _Refusals:
    """Where ``rewrite_exceptions`` reports py_webauthn's reason for refusing a ceremony: at INFO,
    without a traceback. A refused passkey is the client's doing and is recorded as a security
    event; the package's default (an ERROR with a traceback) would page someone for every forgery."""

    def exception(self, exc: BaseException) -> None:
        log.info("passkey ceremony refused: %s", exc)


REFUSALS = _Refusals()


def default_passkey_name(request: HttpRequest) -> str:
    """ "Passkey (Firefox on Android)": the browser it was made in, until the listener renames it."""
    browser = describe_browser(request.headers.get("User-Agent", "")[:300])
    return "Passkey" if browser == "Web browser" else f"Passkey ({browser})"


# -- errors, in the package's JSON shape (its script shows "detail") ------------------------------------


class StepUpRequired(exceptions.OTPWebAuthnApiError):
    status_code = 403
    default_code = "step_up_required"
    default_detail = "Confirm it is you first: reload this page and follow its link."


class NothingToConfirm(exceptions.OTPWebAuthnApiError):
    status_code = 403
    default_code = "mfa_challenge_missing"
    default_detail = "There is nothing to confirm here, or it has expired. Reload the page and start again."


# -- registration ---------------------------------------------------------------------------------------


class _PortalRegistration:
    request: Any  # the package's views add ``data`` (the parsed JSON body)

    def get_user(self) -> User | None:
        """The listener of a portal session; a Django login without one (the admin's) does not count."""
        user = self.request.user
        if isinstance(user, User) and getattr(self.request, "auth_session", None) is not None:
            return user
        return None

    def _check_user_verified(self, user: User) -> None:
        """Replaces the package's check (django-otp's ``is_verified()``, true for the whole session)
        with the portal's: a second factor from the last STEP_UP_MAX_AGE_MINUTES when the account has one."""
        if adding_factor_needs_step_up(self.request, user):
            raise StepUpRequired()


class BeginPasskeyRegistrationView(_PortalRegistration, BeginCredentialRegistrationView):
    """The package's begin step (options with a fresh challenge, kept in the session) behind our check."""


class CompletePasskeyRegistrationView(_PortalRegistration, CompleteCredentialRegistrationView):
    def post(self, *args: Any, **kwargs: Any) -> HttpResponse:
        request = self.request
        user = self.get_user()
        assert user is not None  # initial() refused anyone else
        state = self.get_state()  # popped and saved first: a challenge is never used twice
        with rewrite_exceptions(logger=REFUSALS):
            credential = factors.add_passkey(
                user=user, helper=self.get_helper(), state=state, data=request.data, name=default_passkey_name(request)
            )
        # Making the passkey proves it, as confirming an authenticator app does: a fresh second factor.
        AuthSession.objects.filter(pk=request.auth_session.pk).update(mfa_at=timezone.now())
        if not request.user.is_verified():
            otp_login(request, credential)
        messages.success(request, "Your passkey is added. Give it a name you will recognise.")
        return JsonResponse({"id": credential.pk, "redirect_url": reverse("portal:passkey-name", args=[credential.pk])})


# -- authentication: the sign-in or step-up challenge of this browser -------------------------------------


@dataclass(frozen=True)
class Pending:
    key: str  # where the portal keeps the challenge's state in the session
    state: dict[str, Any]
    challenge: MfaChallenge

    @property
    def token(self) -> str:
        return str(self.state["token"])


def pending_challenge(request: HttpRequest) -> Pending | None:
    """A signed-in portal session can only be stepping up; anyone else can only be signing in.
    Only an open challenge that offers passkeys counts."""
    session = getattr(request, "auth_session", None)
    if request.user.is_authenticated and session is not None:
        key, state = STEP_UP_STATE, request.session.get(STEP_UP_STATE)
        if state and state.get("session") != str(session.pk):
            return None
    else:
        key, state = SIGN_IN_STATE, request.session.get(SIGN_IN_STATE)
    if not state or not state.get("token"):
        return None
    challenge = MfaChallenge.objects.select_related("user").filter(token_hash=token_digest(state["token"])).first()
    if (
        challenge is None
        or not challenge.is_open
        or challenge.attempts >= settings.MFA_CHALLENGE_MAX_ATTEMPTS
        or "webauthn" not in challenge.methods
        or not challenge.user.is_active
    ):
        return None
    return Pending(key=key, state=dict(state), challenge=challenge)


class _ChallengeCeremony:
    request: Any  # the package's views add ``data`` (the parsed JSON body)
    pending: Pending | None = None

    def initial(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        self.pending = pending_challenge(request)
        super().initial(request, *args, **kwargs)  # type: ignore[misc]  # the package view next in the MRO

    def get_user(self) -> User | None:
        return self.pending.challenge.user if self.pending else None

    def check_can_authenticate(self) -> None:
        if self.pending is None:  # never passwordless: there must be a challenge to complete
            raise NothingToConfirm()


@method_decorator(rate_limited("mfa", as_json=True), name="dispatch")  # type: ignore[arg-type]
class BeginPasskeyAuthenticationView(_ChallengeCeremony, BeginCredentialAuthenticationView):
    def post(self, *args: Any, **kwargs: Any) -> HttpResponse:
        assert self.pending is not None
        # Only this user's passkeys are allowed. No user verification is asked: the password is the
        # other factor, as with an authenticator app.
        data, state = self.get_helper().authenticate_begin(
            user=self.pending.challenge.user, require_user_verification=False
        )
        # The ceremony belongs to this challenge: its answer cannot complete a later one.
        state["mfa_token_hash"] = self.pending.challenge.token_hash
        self.request.session[AUTHENTICATION_STATE] = state
        return JsonResponse(data)


@method_decorator(rate_limited("mfa", as_json=True), name="dispatch")  # type: ignore[arg-type]
class CompletePasskeyAuthenticationView(_ChallengeCeremony, CompleteCredentialAuthenticationView):
    def post(self, *args: Any, **kwargs: Any) -> HttpResponse:
        pending = self.pending
        assert pending is not None
        state = self.get_state()  # popped and saved first: a replay finds no state
        if state.get("mfa_token_hash") != pending.challenge.token_hash:
            raise exceptions.InvalidState()
        try:
            with rewrite_exceptions(logger=REFUSALS):
                # Checks that the passkey is this user's, then challenge, origin, RP id, signature
                # and that the sign count went up; saves the new count.
                device = self.get_helper().authenticate_complete(
                    user=pending.challenge.user, state=state, data=self.request.data
                )
            self.check_device_usable(device)
        except exceptions.OTPWebAuthnApiError as exc:
            record_mfa_failure(mfa_token=pending.token)
            exc.detail = PASSKEY_FAILED
            raise
        try:
            complete_mfa_with_device(request=self.request, mfa_token=pending.token, device=device, channel="web")
        except MfaError as exc:
            raise NothingToConfirm() from exc
        self.request.session.pop(pending.key, None)
        return JsonResponse({"id": device.pk, "redirect_url": _safe_next(self.request, pending.state.get("next"))})
