"""The client IP trusts exactly TRUSTED_PROXY_COUNT proxies; a forged X-Forwarded-For cannot choose it.

Requirement: PITFALLS.md (axes sees the proxy's address, #1099/#528: set the trusted proxy count);
issue #3 lockout "behind a proxy (trusted proxy count from settings)".
"""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from identity.net import client_ip


def request(remote: str, forwarded: str | None = None):  # type: ignore[no-untyped-def]
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "203.0.113.9", "198.51.100.1"),  # no proxy: the header is ignored
        (1, "10.0.0.2", "203.0.113.9", "203.0.113.9"),  # nginx appended the client
        (1, "10.0.0.2", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged entry to the left is ignored
        (2, "10.0.0.3", "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),  # balancer + nginx
        (1, "10.0.0.2", None, "10.0.0.2"),  # did not come through the proxy: the peer
        (1, "10.0.0.2", "not-an-ip", None),
        (1, "10.0.0.2", "2001:db8::7", "2001:db8::7"),
    ],
)
def test_client_ip(settings, proxies: int, remote: str, forwarded: str | None, expected: str | None) -> None:  # type: ignore[no-untyped-def]
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_ip(request(remote, forwarded)) == expected
