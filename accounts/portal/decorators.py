"""Access rules of the portal's views: signed in with a portal session, a fresh second factor for
sensitive changes, and per-address rate limits on the forms that can be abused."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache

from accounts.services import factors, sessions
from identity.crypto.blind import blind_index
from identity.net import client_ip

View = Callable[..., HttpResponse]

# The API's scopes (settings.REST_FRAMEWORK) where they exist, so both doors have the same limits.
PORTAL_RATES = {
    "sign_up": "register",
    "sign_in": "login",
    "mfa": "mfa",
    "mfa_email": "mfa_email",
}
DEFAULT_RATES = {
    "password_reset": "10/hour",
    "not_me": "10/hour",
}
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _redirect_with_next(name: str, next_url: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{reverse(name)}?{urlencode({'next': next_url})}")


def portal_login_required(view: View) -> View:
    """Signed in through the portal (a live AuthSession behind the Django session), else to the
    sign-in page. A Django login without an AuthSession (e.g. the admin's) does not count: such a
    session could not be listed, revoked or stepped up. Pages are never cached: they show
    personal data."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated or getattr(request, "auth_session", None) is None:
            return _redirect_with_next("portal:sign-in", request.get_full_path())
        return view(request, *args, **kwargs)

    return never_cache(wrapper)


def needs_step_up(request: HttpRequest) -> HttpResponse | None:
    """A redirect to the re-verification page unless a second factor was verified recently
    (STEP_UP_MAX_AGE_MINUTES). After it the listener comes back to the page (never to a POST)."""
    if sessions.has_fresh_second_factor(getattr(request, "auth_session", None)):
        return None
    back = request.get_full_path() if request.method == "GET" else request.path
    return _redirect_with_next("portal:step-up", back)


def adding_factor_needs_step_up(request: HttpRequest, user: Any) -> bool:
    """Adding a factor to an account that has one needs that one, recently (as the API does)."""
    return bool(factors.methods_for(user)) and not sessions.has_fresh_second_factor(
        getattr(request, "auth_session", None)
    )


def step_up_required(view: View) -> View:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return needs_step_up(request) or view(request, *args, **kwargs)

    return wrapper


def _rate(scope: str) -> tuple[int, int]:
    rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
    text = (rates.get(PORTAL_RATES.get(scope, "")) if isinstance(rates, dict) else None) or DEFAULT_RATES.get(
        scope, "30/minute"
    )
    count, _, period = str(text).partition("/")
    return int(count), PERIODS[period[:1]]


def too_many(request: HttpRequest, retry_after: int, *, status: int = 429) -> HttpResponse:
    response = render(request, "accounts/portal/rate_limited.html", {"retry_after": retry_after}, status=status)
    response["Retry-After"] = str(max(retry_after, 1))
    return response


def too_many_json(request: HttpRequest, retry_after: int) -> HttpResponse:
    """The 429 of the passkey endpoints, in the JSON shape django-otp-webauthn's script shows."""
    wait = max(retry_after, 1)
    response = JsonResponse(
        {"detail": f"Too many attempts. Wait {wait} seconds, then try again.", "code": "rate_limited"}, status=429
    )
    response["Retry-After"] = str(wait)
    return response


def rate_limited(scope: str, *, as_json: bool = False) -> Callable[[View], View]:
    """At most N POSTs a period from one address (fixed window in the cache, keyed by a blind
    index of the IP so that the cache holds no address); then 429 with Retry-After (an HTML page,
    or JSON for the endpoints that scripts call)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != "POST":
                return view(request, *args, **kwargs)
            limit, period = _rate(scope)
            now = int(time.time())
            window = now // period
            ip = client_ip(request) or "unknown"
            key = f"portal:rate:{scope}:{blind_index(ip, purpose='ip')}:{window}"
            cache.add(key, 0, period)
            try:
                count = cache.incr(key)
            except ValueError:
                cache.set(key, 1, period)
                count = 1
            if count > limit:
                wait = (window + 1) * period - now
                return too_many_json(request, wait) if as_json else too_many(request, wait)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
