"""What django-axes stores, made pseudonymous.

axes keeps the username and IP of every failed attempt in clear. We hand it a blind index of the
e-mail instead of the e-mail, and instead of the IP an address in the IPv6 unique-local range
(fd00::/8) whose 120 bits are an HMAC of the real IP: stable, so counting per IP still works, and
valid for axes' inet column, but not the listener's address.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from identity.crypto.blind import email_index
from identity.crypto.kek import decode_key
from identity.net import client_ip

MAX_COOLOFF = datetime.timedelta(hours=24)
ACCOUNT_ATTRIBUTE = "identity_account_index"


def cooloff_time(request: HttpRequest | None = None) -> datetime.timedelta:
    """A cool-off that grows: AXES_COOLOFF_MINUTES for the first lockout of an account in a day,
    twice that for the second, and so on, never more than a day and never permanent (issue #3).

    The sign-in service marks the request with the account's blind index (``ACCOUNT_ATTRIBUTE``)
    before it calls ``authenticate``; without it (the admin login) the base cool-off applies.
    """
    from django.utils import timezone

    from accounts.models import SecurityEvent

    base = datetime.timedelta(minutes=settings.AXES_COOLOFF_MINUTES)
    account = getattr(request, ACCOUNT_ATTRIBUTE, "") if request is not None else ""
    if not account:
        return base
    # axes asks on every sign-in, twice: the count is cached, and refreshed when a lockout is recorded.
    key = episodes_cache_key(account)
    episodes = cache.get(key)
    if episodes is None:
        episodes = SecurityEvent.objects.filter(
            kind=SecurityEvent.Kind.LOCKED_OUT, account_index=account, occurred_at__gte=timezone.now() - MAX_COOLOFF
        ).count()
        cache.set(key, episodes, timeout=300)
    return min(base * 2 ** max(int(episodes) - 1, 0), MAX_COOLOFF)


def episodes_cache_key(account_index: str) -> str:
    return f"accounts:lockout-episodes:{account_index}"


def username_key(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    credentials = credentials or {}
    value = credentials.get("username") or credentials.get("email")
    if value is None and request is not None:
        value = request.POST.get("username") or request.POST.get("email")
    return email_index(str(value)) if value else None


def pseudonymous_ip(ip: str) -> str:
    key = decode_key(settings.BLIND_INDEX_KEY, name="BLIND_INDEX_KEY")
    digest = hmac.new(key, b"axes-ip\x00" + ip.encode(), hashlib.sha256).digest()
    return str(ipaddress.IPv6Address(b"\xfd" + digest[:15]))


def client_ip_key(request: HttpRequest) -> str:
    ip = client_ip(request)
    return pseudonymous_ip(ip) if ip else pseudonymous_ip("unknown")
