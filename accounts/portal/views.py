"""The listener portal: server-rendered pages over the same services as the mobile API.

Views translate the request into service calls and the outcome into a page; the rules (risk,
lockout, factors, sessions, password policy, recovery) live in ``accounts.services`` and
``accounts.passwords``. No personal data goes into a URL; the pending sign-in's ``mfa_token``
stays in the server-side session.
"""

from __future__ import annotations

import re
import urllib.parse
import uuid
from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp_webauthn.models import WebAuthnCredential

from accounts.models import AuthSession, BackupCode, BackupCodeFactor, MfaChallenge, SecurityEvent, TotpFactor, User
from accounts.notifications import not_me_token
from accounts.portal import forms
from accounts.portal.decorators import (
    adding_factor_needs_step_up,
    needs_step_up,
    portal_login_required,
    rate_limited,
    step_up_required,
)
from accounts.risk.signals import DESCRIPTIONS
from accounts.services import factors, recovery, sessions
from accounts.services.account import change_password, update_profile
from accounts.services.registration import register_listener, verify_email
from accounts.services.secrets import token_digest
from accounts.services.signin import Client, MfaError, complete_mfa, open_challenge, send_email_code, sign_in
from accounts.services.web import device_id_from, set_device_cookie
from identity.net import client_ip

SIGN_IN_STATE = "portal_signin_mfa"
STEP_UP_STATE = "portal_step_up"
RESET_TOKEN = "portal_password_reset_token"  # noqa: S105 (a session key's name)
RESET_URL_TOKEN = "set-password"  # noqa: S105 (the placeholder Django's reset view uses too)
GENERIC_SIGN_IN_ERROR = "The e-mail address or password is not right."
EXPIRED = "This sign-in has expired or had too many wrong codes. Please sign in again."
SIGNED_IN_KINDS = {SecurityEvent.Kind.SIGNIN, SecurityEvent.Kind.MFA_SUCCEEDED}


# -- helpers ----------------------------------------------------------------------------------------


def _user(request: HttpRequest) -> User:
    """The signed-in listener (behind ``portal_login_required``)."""
    assert isinstance(request.user, User)
    return request.user


def _auth_session(request: HttpRequest) -> AuthSession:
    """The portal session behind the login (set by accounts.middleware.WebSessionMiddleware)."""
    session = getattr(request, "auth_session", None)
    assert isinstance(session, AuthSession)
    return session


def _page(request: HttpRequest, template: str, context: dict[str, Any] | None = None, **kwargs: Any) -> HttpResponse:
    return render(request, f"accounts/portal/{template}", context or {}, **kwargs)


def _safe_next(request: HttpRequest, value: str | None, default: str = "portal:account") -> str:
    """Only a path on this site: never an open redirect (the value comes from the query string)."""
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return reverse(default)


def describe_browser(user_agent: str) -> str:
    """ "Firefox on Android": enough to recognise a session, no version numbers (less fingerprint)."""
    browsers = [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari")]
    systems = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    browser = next((name for marker, name in browsers if marker in user_agent), "Web browser")
    system = next((name for marker, name in systems if marker in user_agent), "")
    return f"{browser} on {system}" if system else browser


def _client(request: HttpRequest, device_id: str) -> Client:
    user_agent = request.headers.get("User-Agent", "")[:300]
    return Client(
        ip=client_ip(request),
        user_agent=user_agent,
        device_id=device_id,
        device_name=describe_browser(user_agent),
        platform="web",
    )


def _reasons(codes: list[str]) -> list[str]:
    return [DESCRIPTIONS.get(code, code.replace("_", " ")) for code in codes]


def _challenge_still_open(mfa_token: str) -> bool:
    challenge = MfaChallenge.objects.filter(token_hash=token_digest(mfa_token)).first()
    return challenge is not None and challenge.is_open and challenge.attempts < settings.MFA_CHALLENGE_MAX_ATTEMPTS


def _with_retry_after(response: HttpResponse, seconds: int) -> HttpResponse:
    response["Retry-After"] = str(max(seconds, 1))
    return response


# -- home, sign-up, e-mail verification -------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and getattr(request, "auth_session", None) is not None:
        return redirect("portal:account")
    return redirect("portal:sign-in")


@never_cache
@rate_limited("sign_up")
@require_http_methods(["GET", "POST"])
def sign_up(request: HttpRequest) -> HttpResponse:
    """Sign-up with the API's rules (CONTRACT.md /auth/register); a new listener is signed in at once."""
    if request.user.is_authenticated and getattr(request, "auth_session", None) is not None:
        return redirect("portal:account")
    form = forms.SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        result = register_listener(**data, ip=client_ip(request))
        if result.status == "parental_consent_required":
            return redirect("portal:parental-consent")
        if not User.objects.filter(pk=result.profile["id"]).exists():
            # The address already has an account: the service told its owner by e-mail, and
            # nobody is signed in. The page says only "check your e-mail".
            return _page(request, "sign_up_done.html")
        device_id = device_id_from(request)
        outcome = sign_in(
            request=request,
            email=data["email"],
            password=data["password"],
            client=_client(request, device_id),
            channel="web",
        )
        response: HttpResponse
        if outcome.status == "session":
            response = redirect("portal:welcome")
        elif outcome.status == "mfa_required":
            request.session[SIGN_IN_STATE] = {
                "token": outcome.mfa_token,
                "methods": outcome.methods,
                "reasons": outcome.risk()["reasons"],
                "next": reverse("portal:welcome"),
            }
            response = redirect("portal:sign-in-verify")
        else:
            response = _page(request, "sign_up_done.html")
        set_device_cookie(response, device_id)
        return response
    return _page(request, "sign_up.html", {"form": form})


@require_GET
def parental_consent(request: HttpRequest) -> HttpResponse:
    return _page(request, "parental_consent.html")


@portal_login_required
@require_GET
def welcome(request: HttpRequest) -> HttpResponse:
    return _page(request, "welcome.html", {"section": "account"})


@require_GET
def verify_email_link(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the welcome e-mail (accounts.notifications: /account/verify-email/<token>)."""
    user = verify_email(token=token)
    if user is None:
        return _page(request, "verify_email.html", {"ok": False}, status=400)
    return _page(request, "verify_email.html", {"ok": True})


# -- sign-in, second factor, sign-out ---------------------------------------------------------------


@never_cache
@rate_limited("sign_in")
@require_http_methods(["GET", "POST"])
def sign_in_view(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if request.user.is_authenticated and getattr(request, "auth_session", None) is not None:
        return HttpResponseRedirect(next_url)
    form = forms.SignInForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return _page(request, "sign_in.html", {"form": form, "next": next_url})

    device_id = device_id_from(request)
    result = sign_in(
        request=request,
        email=form.cleaned_data["email"],
        password=form.cleaned_data["password"],
        client=_client(request, device_id),
        channel="web",
    )
    response: HttpResponse
    if result.status == "session":
        request.session.pop(SIGN_IN_STATE, None)  # an earlier, abandoned challenge
        response = HttpResponseRedirect(next_url)
    elif result.status == "mfa_required":
        request.session.pop(STEP_UP_STATE, None)
        request.session[SIGN_IN_STATE] = {
            "token": result.mfa_token,
            "methods": result.methods,
            "reasons": result.risk()["reasons"],
            "next": next_url,
        }
        response = redirect("portal:sign-in-verify")
    elif result.status == "blocked":
        response = _page(request, "sign_in_blocked.html", status=403)
    elif result.status == "locked":
        response = _with_retry_after(
            _page(request, "locked_out.html", {"minutes": max(1, round(result.retry_after / 60))}, status=429),
            result.retry_after,
        )
    else:  # invalid: one message whatever the cause (unknown address, wrong password, inactive)
        form.add_error(None, GENERIC_SIGN_IN_ERROR)
        response = _page(request, "sign_in.html", {"form": form, "next": next_url})
    set_device_cookie(response, device_id)
    return response


def _second_factor_page(
    request: HttpRequest, *, state: dict[str, Any], form: forms.SecondFactorForm, step_up: bool, status: int = 200
) -> HttpResponse:
    # A passkey is used through its own ceremony (accounts.portal.passkeys), not the code form.
    offers_passkey = "webauthn" in state["methods"]
    return _page(
        request,
        "second_factor.html",
        {
            "form": form,
            "step_up": step_up,
            "reasons": _reasons(state.get("reasons", [])),
            "offers_email": "email" in state["methods"],
            "email_sent": state.get("email_sent", False),
            "only_email": state["methods"] == ["email"],
            "offers_passkey": offers_passkey,
            "offers_code": any(method != "webauthn" for method in state["methods"]),
            "send_code_url": reverse("portal:step-up-send-code" if step_up else "portal:sign-in-send-code"),
            "next": state.get("next", ""),
            "section": "security" if step_up else "",
        },
        status=status,
    )


def _verify_second_factor(request: HttpRequest, *, key: str, step_up: bool) -> HttpResponse:
    """The MFA page for a sign-in challenge or a step-up: the same form, the same service."""
    state = request.session[key]
    initial = {"method": "email"} if state.get("email_sent") else {}
    form = forms.SecondFactorForm(request.POST or None, methods=state["methods"], initial=initial)
    if request.method != "POST" or not form.is_valid():
        return _second_factor_page(request, state=state, form=form, step_up=step_up)
    try:
        complete_mfa(
            request=request,
            mfa_token=state["token"],
            method=form.cleaned_data["method"],
            code=form.cleaned_data["code"],
            channel="web",
        )
    except MfaError as exc:
        if exc.code == "rate_limited":
            form.add_error("code", f"Too many wrong codes. Wait {max(exc.retry_after, 1)} seconds, then try again.")
            page = _second_factor_page(request, state=state, form=form, step_up=step_up, status=429)
            return _with_retry_after(page, exc.retry_after)
        if not _challenge_still_open(state["token"]):
            request.session.pop(key, None)
            if step_up:
                messages.error(request, "That took too long or had too many wrong codes. Please start again.")
                return _redirect_to_step_up(state.get("next", ""))
            messages.error(request, EXPIRED)
            return redirect("portal:sign-in")
        form.add_error("code", "That code is not right. Check it and try again.")
        return _second_factor_page(request, state=state, form=form, step_up=step_up)
    request.session.pop(key, None)
    return HttpResponseRedirect(_safe_next(request, state.get("next")))


def _send_code(request: HttpRequest, *, key: str, page: str) -> HttpResponse:
    """E-mail a one-time code for the pending challenge, then back to its page (``page``, a URL)."""
    state = request.session[key]
    try:
        send_email_code(mfa_token=state["token"])
    except MfaError as exc:
        if exc.code == "rate_limited":
            messages.error(request, "We have sent as many codes as we can for this sign-in. Use the last one.")
        elif exc.code == "mfa_method_unavailable":
            messages.error(request, "An e-mailed code is not offered here. Use one of the other ways.")
        else:  # the challenge has ended: a sign-in starts again, a step-up page opens a new one
            request.session.pop(key, None)
            if key == SIGN_IN_STATE:
                messages.error(request, EXPIRED)
                return redirect("portal:sign-in")
            messages.error(request, "That took too long. Please start again.")
        return HttpResponseRedirect(page)
    state["email_sent"] = True
    request.session[key] = state
    messages.success(request, f"We have e-mailed you a code. It works once, for {settings.EMAIL_CODE_MINUTES} minutes.")
    return HttpResponseRedirect(page)


@never_cache
@rate_limited("mfa")
@require_http_methods(["GET", "POST"])
def sign_in_verify(request: HttpRequest) -> HttpResponse:
    """Second factor for a sign-in the risk engine challenged; the reasons are shown."""
    if SIGN_IN_STATE not in request.session:
        messages.info(request, "Please sign in first.")
        return redirect("portal:sign-in")
    return _verify_second_factor(request, key=SIGN_IN_STATE, step_up=False)


@rate_limited("mfa_email")
@require_POST
def sign_in_send_code(request: HttpRequest) -> HttpResponse:
    if SIGN_IN_STATE not in request.session:
        return redirect("portal:sign-in")
    return _send_code(request, key=SIGN_IN_STATE, page=reverse("portal:sign-in-verify"))


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    session = getattr(request, "auth_session", None)
    if session is not None and request.user.is_authenticated:
        sessions.revoke_session(session=session, actor=_user(request), reason="signed_out")
    logout(request)
    messages.info(request, "You have signed out.")
    return redirect("portal:sign-in")


# -- step-up ------------------------------------------------------------------------------------------


def _redirect_to_step_up(next_url: str) -> HttpResponse:
    query = urllib.parse.urlencode({"next": next_url}) if next_url else ""
    return HttpResponseRedirect(reverse("portal:step-up") + (f"?{query}" if query else ""))


def _step_up_state(request: HttpRequest, next_url: str) -> dict[str, Any]:
    """The open step-up challenge of this session, or a new one (a reload does not open another)."""
    session = _auth_session(request)
    state = request.session.get(STEP_UP_STATE)
    if state and state.get("session") == str(session.pk) and _challenge_still_open(state["token"]):
        state["next"] = next_url
        return dict(state)
    context = dict(session.context) if isinstance(session.context, dict) else {}
    token, methods = open_challenge(
        user=_user(request),
        purpose=MfaChallenge.Purpose.STEP_UP,
        assessment=None,
        context=context,
        session=session,
    )
    return {"token": token, "methods": methods, "session": str(session.pk), "next": next_url, "reasons": []}


@portal_login_required
@rate_limited("mfa")
@require_http_methods(["GET", "POST"])
def step_up(request: HttpRequest) -> HttpResponse:
    """Re-verification before a sensitive change (a second factor no older than
    STEP_UP_MAX_AGE_MINUTES); a listener without a factor gets a code by e-mail."""
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if request.method == "GET":
        if sessions.has_fresh_second_factor(_auth_session(request)):
            return HttpResponseRedirect(next_url)
        request.session[STEP_UP_STATE] = _step_up_state(request, next_url)
    elif request.session.get(STEP_UP_STATE, {}).get("session") != str(_auth_session(request).pk):
        request.session.pop(STEP_UP_STATE, None)
        return _redirect_to_step_up(next_url)
    return _verify_second_factor(request, key=STEP_UP_STATE, step_up=True)


@portal_login_required
@rate_limited("mfa_email")
@require_POST
def step_up_send_code(request: HttpRequest) -> HttpResponse:
    state = request.session.get(STEP_UP_STATE)
    if state is None:
        return redirect("portal:step-up")
    page = reverse("portal:step-up") + "?" + urllib.parse.urlencode({"next": state.get("next", "")})
    return _send_code(request, key=STEP_UP_STATE, page=page)


# -- account ------------------------------------------------------------------------------------------


def _fresh_user(request: HttpRequest) -> User:
    return User.objects.get(pk=_user(request).pk)


@portal_login_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    user = _fresh_user(request)
    initial = {name: str(getattr(user, name) or "") for name in ("display_name", "phone", "country", "region")}
    form = forms.ProfileForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = form.changes(user)
        if changes:
            update_profile(user=user, changes=changes, actor=user)
            messages.success(request, "Your details are saved.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("portal:account")
    return _page(request, "account.html", {"form": form, "profile": user, "section": "account"})


@portal_login_required
@step_up_required
@require_http_methods(["GET", "POST"])
def change_email(request: HttpRequest) -> HttpResponse:
    """A new e-mail address (rectification) needs a fresh second factor: it is how the account is
    recovered."""
    user = _fresh_user(request)
    form = forms.EmailChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        new = form.cleaned_data["email"]
        if new.casefold() == str(user.email).casefold():
            messages.info(request, "That is already your e-mail address.")
            return redirect("portal:account")
        try:
            update_profile(user=user, changes={"email": new}, actor=user)
        except ValueError as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, "Your e-mail address is changed. It shows as unconfirmed until you confirm it.")
            return redirect("portal:account")
    return _page(request, "change_email.html", {"form": form, "section": "account"})


@portal_login_required
@require_http_methods(["GET", "POST"])
def change_password_view(request: HttpRequest) -> HttpResponse:
    user = _fresh_user(request)
    form = forms.PasswordChangeForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        change_password(user=user, new_password=form.cleaned_data["new_password"], keep_session=_auth_session(request))
        update_session_auth_hash(request, user)  # this browser stays signed in; every other session ended
        messages.success(request, "Your password is changed. Every other device was signed out.")
        return redirect("portal:account")
    return _page(request, "change_password.html", {"form": form, "section": "account"})


# -- security: factors --------------------------------------------------------------------------------


@portal_login_required
@require_GET
def security(request: HttpRequest) -> HttpResponse:
    user = request.user
    totps = list(TotpFactor.objects.filter(user=user).order_by("pk"))
    backup = BackupCodeFactor.objects.filter(user=user, confirmed=True).first()
    remaining = BackupCode.objects.filter(factor=backup, used_at__isnull=True).count() if backup else 0
    back_here = reverse("portal:security") + "#passkeys"
    return _page(
        request,
        "security.html",
        {
            "passkeys": WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("pk"),
            # The ceremony starts in the browser, so the step-up comes first, through a link.
            "passkey_step_up_url": (
                reverse("portal:step-up") + "?" + urllib.parse.urlencode({"next": back_here})
                if adding_factor_needs_step_up(request, user)
                else ""
            ),
            "totps": [f for f in totps if f.confirmed],
            "pending": [f for f in totps if not f.confirmed],
            "backup": backup,
            "backup_remaining": remaining,
            "backup_total": factors.BACKUP_CODE_COUNT,
            "add_form": forms.AddTotpForm(),
            "section": "security",
        },
    )


@portal_login_required
@require_POST
def add_totp(request: HttpRequest) -> HttpResponse:
    # Adding a factor to an account that has one needs that one (as the API does).
    if factors.methods_for(_user(request)) and needs_step_up(request) is not None:
        return _redirect_to_step_up(reverse("portal:security"))
    form = forms.AddTotpForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the app a name of at most 64 characters.")
        return redirect("portal:security")
    factor = factors.start_totp(user=_user(request), name=form.cleaned_data["name"])
    return redirect("portal:totp-confirm", factor_id=factor.pk)


def _qr_data_uri(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#111"))


@portal_login_required
@require_http_methods(["GET", "POST"])
def confirm_totp(request: HttpRequest, factor_id: int) -> HttpResponse:
    factor = TotpFactor.objects.filter(pk=factor_id, user=request.user, confirmed=False).first()
    if factor is None:
        raise Http404("No such authenticator app waiting to be confirmed.")
    form = forms.CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        code = re.sub(r"\s", "", form.cleaned_data["code"])
        try:
            result = factors.confirm_totp(user=_user(request), factor_id=factor.pk, code=code)
        except factors.FactorError as exc:
            raise Http404("No such authenticator app waiting to be confirmed.") from exc
        if result.ok:
            # The listener has just proved the factor: that counts as a fresh second factor (as in the API).
            AuthSession.objects.filter(pk=_auth_session(request).pk).update(mfa_at=timezone.now())
            messages.success(
                request, "Your authenticator app is added. Now make backup codes in case you lose your phone."
            )
            return redirect("portal:security")
        if result.throttled:
            form.add_error("code", f"Too many wrong codes. Wait {result.retry_after} seconds, then try again.")
            status = 429
        else:
            form.add_error("code", "That code is not right. Check that the time on your phone is set automatically.")
    uri = factors.otpauth_uri(factor)
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]
    response = _page(
        request,
        "totp_confirm.html",
        {
            "form": form,
            "factor": factor,
            "qr": _qr_data_uri(uri),
            "secret": secret,
            "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
            "section": "security",
        },
        status=status,
    )
    if status == 429:
        _with_retry_after(response, 2)
    return response


@portal_login_required
@step_up_required
@require_http_methods(["GET", "POST"])
def backup_codes(request: HttpRequest) -> HttpResponse:
    """New backup codes replace the old ones; they are shown once, on the POST's answer."""
    has_codes = BackupCodeFactor.objects.filter(user=request.user).exists()
    if request.method == "POST":
        codes = factors.regenerate_backup_codes(user=_user(request))
        return _page(request, "backup_codes_new.html", {"codes": codes, "section": "security"})
    return _page(request, "backup_codes.html", {"has_codes": has_codes, "section": "security"})


@portal_login_required
@require_http_methods(["GET", "POST"])
def remove_factor(request: HttpRequest, kind: str, factor_id: int) -> HttpResponse:
    factor: TotpFactor | BackupCodeFactor | WebAuthnCredential | None
    if kind == "totp":
        factor = TotpFactor.objects.filter(pk=factor_id, user=request.user).first()
    elif kind == "backup_code":
        factor = BackupCodeFactor.objects.filter(pk=factor_id, user=request.user).first()
    elif kind == "webauthn":
        factor = WebAuthnCredential.objects.filter(pk=factor_id, user=request.user).first()
    else:
        factor = None
    if factor is None:
        raise Http404("No such factor.")
    if factor.confirmed:  # an abandoned set-up can go without a second factor; a working one cannot
        blocked = needs_step_up(request)
        if blocked is not None:
            return blocked
    if request.method == "POST":
        factors.remove_factor(user=_user(request), kind=kind, factor_id=factor.pk)
        messages.success(request, "Removed." if not factor.confirmed else f"“{factor.name}” is removed.")
        return redirect("portal:security")
    return _page(request, "remove_factor.html", {"factor": factor, "kind": kind, "section": "security"})


@portal_login_required
@require_http_methods(["GET", "POST"])
def passkey_name(request: HttpRequest, factor_id: int) -> HttpResponse:
    """Name a passkey (after adding it, or later): a label only, so no step-up."""
    passkey = WebAuthnCredential.objects.filter(pk=factor_id, user=request.user).first()
    if passkey is None:
        raise Http404("No such passkey.")
    form = forms.PasskeyNameForm(request.POST or None, initial={"name": passkey.name})
    if request.method == "POST" and form.is_valid():
        WebAuthnCredential.objects.filter(pk=passkey.pk).update(name=form.cleaned_data["name"])
        messages.success(request, f"Your passkey is now called “{form.cleaned_data['name']}”.")
        return redirect("portal:security")
    return _page(request, "passkey_name.html", {"form": form, "passkey": passkey, "section": "security"})


# -- sessions and activity ----------------------------------------------------------------------------


def _place(context: Any) -> dict[str, Any]:
    place = (context or {}).get("place") if isinstance(context, dict) else None
    return place if isinstance(place, dict) else {}


@portal_login_required
@require_GET
def sessions_view(request: HttpRequest) -> HttpResponse:
    current = _auth_session(request)
    rows = []
    for session in AuthSession.objects.active().for_user(request.user).select_related("device"):
        context = session.context if isinstance(session.context, dict) else {}
        device_name = str(session.device.name) if session.device and session.device.name else ""
        rows.append(
            {
                "id": session.pk,
                "kind": session.get_kind_display(),
                "device": device_name or describe_browser(str(context.get("user_agent", ""))),
                "last_used_at": session.last_used_at,
                "created_at": session.created_at,
                "country": _place(context).get("country"),
                "current": session.pk == current.pk,
            }
        )
    return _page(request, "sessions.html", {"rows": rows, "section": "sessions"})


@portal_login_required
@require_POST
def revoke_session(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = AuthSession.objects.for_user(request.user).filter(pk=session_id, revoked_at__isnull=True).first()
    if session is None:
        raise Http404("No such session.")
    sessions.revoke_session(session=session, actor=_user(request), reason="revoked_by_owner")
    if session.pk == _auth_session(request).pk:
        logout(request)
        messages.info(request, "This device is signed out.")
        return redirect("portal:sign-in")
    messages.success(request, "That session is signed out.")
    return redirect("portal:sessions")


@portal_login_required
@require_GET
def activity(request: HttpRequest) -> HttpResponse:
    rows = []
    for event in SecurityEvent.objects.for_user(request.user).select_related("device")[:100]:
        context = event.context if isinstance(event.context, dict) else {}
        rows.append(
            {
                "kind": event.get_kind_display(),
                "occurred_at": event.occurred_at,
                "decision": event.get_decision_display() if event.decision else "",
                "decision_code": event.decision,
                "level": event.level,
                "reasons": _reasons(list(event.reasons or [])),
                "country": _place(context).get("country"),
                "device": str(event.device.name) if event.device and event.device.name else "",
                "not_me": (
                    reverse("portal:not-me", args=[not_me_token(_user(request), event.pk)])
                    if event.kind in SIGNED_IN_KINDS and event.decision != SecurityEvent.Decision.DENY
                    else ""
                ),
            }
        )
    return _page(request, "activity.html", {"rows": rows, "section": "activity"})


# -- "this was not me" ----------------------------------------------------------------------------------


@never_cache
@rate_limited("not_me")
@require_http_methods(["GET", "POST"])
def not_me(request: HttpRequest, token: str) -> HttpResponse:
    """From the security e-mails: confirm, then sign everything out and switch the password off."""
    try:
        user, event_id = recovery.read_not_me_token(token)
    except recovery.RecoveryError:
        return _page(request, "not_me_invalid.html", status=400)
    if request.method == "POST":
        report = recovery.report_not_me(token=token, ip=client_ip(request))
        if request.user.is_authenticated and request.user.pk == report.user.pk:
            logout(request)  # its session is revoked anyway; end it in this browser now
        return _page(request, "not_me_done.html", {"sessions_revoked": report.sessions_revoked})
    event = SecurityEvent.objects.filter(pk=event_id, user=user).first() if event_id else None
    return _page(
        request,
        "not_me.html",
        {"event": event, "country": _place(event.context if event else None).get("country")},
    )


# -- password reset -------------------------------------------------------------------------------------


@never_cache
@rate_limited("password_reset")
@require_http_methods(["GET", "POST"])
def password_reset(request: HttpRequest) -> HttpResponse:
    form = forms.PasswordResetRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        recovery.request_password_reset(email=form.cleaned_data["email"], ip=client_ip(request))
        return redirect("portal:password-reset-sent")
    return _page(request, "password_reset.html", {"form": form})


@require_GET
def password_reset_sent(request: HttpRequest) -> HttpResponse:
    return _page(request, "password_reset_sent.html", {"hours": settings.PASSWORD_RESET_TIMEOUT // 3600})


@never_cache
@require_http_methods(["GET", "POST"])
def password_reset_confirm(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The e-mailed link. As Django's own view does, the token moves from the URL into the session
    at once, so the page that takes the new password has no secret in its address (or Referer)."""
    if token != RESET_URL_TOKEN:
        if recovery.user_for_reset_link(uidb64=uidb64, token=token) is None:
            return _page(request, "password_reset_invalid.html", status=400)
        request.session[RESET_TOKEN] = token
        return redirect("portal:password-reset-confirm", uidb64=uidb64, token=RESET_URL_TOKEN)
    session_token = str(request.session.get(RESET_TOKEN, ""))
    user = recovery.user_for_reset_link(uidb64=uidb64, token=session_token) if session_token else None
    if user is None:
        return _page(request, "password_reset_invalid.html", status=400)
    form = forms.SetPasswordForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        try:
            recovery.reset_password(
                uidb64=uidb64,
                token=session_token,
                new_password=form.cleaned_data["new_password"],
                ip=client_ip(request),
            )
        except recovery.RecoveryError:
            return _page(request, "password_reset_invalid.html", status=400)
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error("new_password", message)
        else:
            request.session.pop(RESET_TOKEN, None)
            if request.user.is_authenticated:
                logout(request)
            messages.success(request, "Your new password is set and every device was signed out. Sign in with it.")
            return redirect("portal:sign-in")
    return _page(request, "password_reset_confirm.html", {"form": form})
