"""Web sessions: idle timeout (WEB_SESSION_IDLE_SECONDS, default 1 hour), absolute lifetime
(SESSION_COOKIE_AGE, default 24 hours), and revocation from anywhere (another device, an analyst,
a password change, erasure) take effect at the next request."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.models import AuthSession

LAST_SEEN = "last_seen"
AUTH_SESSION = "auth_session_id"


class WebSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.auth_session = None  # type: ignore[attr-defined]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            self._check(request)
        return self.get_response(request)

    def _check(self, request: HttpRequest) -> None:
        now = time.time()
        last_seen = request.session.get(LAST_SEEN)
        if last_seen is not None and now - float(last_seen) > settings.WEB_SESSION_IDLE_SECONDS:
            self._end(request, reason="idle_timeout")
            return
        session_id = request.session.get(AUTH_SESSION)
        if session_id:
            session = AuthSession.objects.filter(pk=session_id).first()
            if session is None or not session.is_active:
                self._end(request, reason="")
                return
            request.auth_session = session  # type: ignore[attr-defined]
            if (timezone.now() - session.last_used_at).total_seconds() > 60:
                AuthSession.objects.filter(pk=session.pk).update(last_used_at=timezone.now())
        if last_seen is None or now - float(last_seen) > 30:
            request.session[LAST_SEEN] = now

    def _end(self, request: HttpRequest, *, reason: str) -> None:
        session_id = request.session.get(AUTH_SESSION)
        if reason and session_id:
            AuthSession.objects.filter(pk=session_id, revoked_at__isnull=True).update(
                revoked_at=timezone.now(), revoked_reason=reason
            )
        logout(request)
