"""Global Privacy Control: ``Sec-GPC: 1`` from a signed-in listener is an opt-out of sale and
sharing (CONTRACT.md Conventions; REGULATIONS.md C-21).

The signal is read after the view ran, so it applies to portal sessions and to API bearer tokens
alike (DRF sets the authenticated user on the underlying request). Once honoured, a cache marker
keeps later requests free of any database work; the signal's absence never opts anyone back in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from identity.net import client_ip

logger = logging.getLogger(__name__)


class GlobalPrivacyControlMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.headers.get("Sec-GPC", "").strip() != "1":
            return response
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active:
            return response
        from compliance.consents import honour_gpc

        surface = "api" if request.path.startswith("/api/") else "portal"
        try:
            honour_gpc(user, surface=surface, ip=client_ip(request))
        except Exception:
            # The response stands; the next request with the signal tries again (no marker was set).
            logger.exception("the Global Privacy Control signal could not be recorded")
        return response
