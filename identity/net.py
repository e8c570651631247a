"""The client's IP address, trusting exactly TRUSTED_PROXY_COUNT proxies in front of the app.

Each proxy appends the address it received the request from to ``X-Forwarded-For`` (nginx's
``$proxy_add_x_forwarded_for``). With N trusted proxies the client is therefore the N-th entry
from the right; anything to its left was written by the client and may be forged. With no
trusted proxy the header is ignored and REMOTE_ADDR is the client. We read it by hand because
django-ipware counts proxies differently (it expects each proxy to add itself), which with a
standard nginx set-up either finds no address or believes a forged one.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid(candidate: str) -> str | None:
    try:
        return str(ipaddress.ip_address(candidate.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    remote = _valid(request.META.get("REMOTE_ADDR", "") or "")
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < trusted:
        # Fewer hops than proxies: the request did not come through them all. Use the peer.
        return remote
    return _valid(hops[-trusted])
