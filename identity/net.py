"""The client's IP address, honouring only the configured number of trusted proxies."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from ipware.ip import get_client_ip


def client_ip(request: HttpRequest) -> str | None:
    ip, _routable = get_client_ip(request, proxy_count=settings.TRUSTED_PROXY_COUNT or None)
    return ip
