"""django-axes keeps no plaintext e-mail or IP; it still locks out per account and IP pair.

Requirement: issue #2 "none of them keeps a plaintext email, name or phone (e.g. axes keyed by a
blind index)"; PITFALLS.md (axes stores the username and IP in clear).
"""

from __future__ import annotations

import ipaddress

import pytest
from axes.models import AccessAttempt
from django.db import connection
from django.urls import reverse

from accounts.lockout import pseudonymous_ip
from identity.crypto.blind import email_index

pytestmark = pytest.mark.django_db


def failed_admin_login(client, email: str, ip: str):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("admin:login"),
        {"username": email, "password": "definitely the wrong password"},
        REMOTE_ADDR=ip,
    )


def test_failed_attempts_are_stored_under_pseudonyms(client, alice) -> None:  # type: ignore[no-untyped-def]
    failed_admin_login(client, "Alice@Example.test", "198.51.100.23")
    attempt = AccessAttempt.objects.get()
    assert attempt.username == email_index("alice@example.test")
    assert attempt.ip_address == pseudonymous_ip("198.51.100.23")
    assert ipaddress.ip_address(attempt.ip_address) in ipaddress.ip_network("fd00::/8")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM axes_accessattempt")
        stored = repr(cursor.fetchall()).lower()
    assert "alice" not in stored and "198.51.100.23" not in stored
    assert "definitely" not in stored  # the password is never kept


def test_lockout_after_the_failure_limit(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AXES_FAILURE_LIMIT = 3
    statuses = [failed_admin_login(client, "alice@example.test", "198.51.100.23").status_code for _ in range(4)]
    assert statuses[:2] == [200, 200]
    assert statuses[-1] == 429
    # Another IP for the same account is counted separately (account-and-IP pairs).
    assert failed_admin_login(client, "alice@example.test", "198.51.100.99").status_code == 200


def test_a_successful_sign_in_leaves_no_plaintext_in_axes(alice) -> None:  # type: ignore[no-untyped-def]
    """axes logs successful sign-ins with user.get_username() (the e-mail): that log is off."""
    from axes.models import AccessLog
    from rest_framework.test import APIClient

    from tests.accounts.api_helpers import login

    assert login(APIClient(), "alice@example.test").status_code == 200
    assert not AccessLog.objects.exists()
    with connection.cursor() as cursor:
        for table in ("axes_accesslog", "axes_accessattempt", "axes_accessfailurelog"):
            cursor.execute(f"SELECT * FROM {table}")
            assert "alice" not in repr(cursor.fetchall()).lower()


def test_the_fixed_lockout_check_counts_exactly_what_axes_counts(alice, settings) -> None:  # type: ignore[no-untyped-def]
    """Issue #3 "Lockout and abuse (django-axes)": the handler's one fixed statement
    (accounts.axes_handler) sums the same attempts as axes' own ORM query, per account-and-IP
    pair, since the cool-off threshold; older attempts and other pairs do not count."""
    import datetime

    from axes.handlers.database import AxesDatabaseHandler
    from django.test import RequestFactory
    from django.utils import timezone

    from accounts.axes_handler import DatabaseHandler

    assert settings.AXES_HANDLER == "accounts.axes_handler.DatabaseHandler"
    account, ip = email_index("alice@example.test"), pseudonymous_ip("198.51.100.23")
    now = timezone.now()

    def attempt(username: str, ip_address: str, failures: int, minutes_ago: int) -> None:
        # One row per (account, IP, user agent): the pair's rows differ in their agent.
        row = AccessAttempt.objects.create(
            username=username, ip_address=ip_address, user_agent=f"app/{minutes_ago}", failures_since_start=failures
        )
        AccessAttempt.objects.filter(pk=row.pk).update(attempt_time=now - datetime.timedelta(minutes=minutes_ago))

    attempt(account, ip, 3, minutes_ago=1)
    attempt(account, ip, 4, minutes_ago=5)
    attempt(account, ip, 50, minutes_ago=60 * 24 * 3)  # long before the cool-off threshold
    attempt(account, pseudonymous_ip("198.51.100.99"), 20, minutes_ago=1)  # another pair
    attempt(email_index("bob@example.test"), ip, 30, minutes_ago=1)  # another pair
    request = RequestFactory().post("/api/v1/auth/login", REMOTE_ADDR="198.51.100.23")
    request.axes_ip_address, request.axes_user_agent, request.axes_attempt_time = ip, "bench", now
    for credentials in ({"username": "alice@example.test"}, {"username": "nobody@example.test"}):
        ours = DatabaseHandler().get_failures(request, credentials)
        theirs = AxesDatabaseHandler().get_failures(request, credentials)
        assert ours == theirs
    assert DatabaseHandler().get_failures(request, {"username": "alice@example.test"}) == 7

    # In a sign-in the same count comes with the account's row (one statement), for the backend.
    from accounts.risk.engine import PROBE_ATTRIBUTE, WINDOW, FailureProbe, indexes_for
    from accounts.services.sessions import SIGNIN_USER_ATTRIBUTE

    for email, holder in (("alice@example.test", alice.pk), ("nobody@example.test", None)):
        idx = indexes_for(account_index=email_index(email), ip="198.51.100.23", place=None, device_id="")
        setattr(request, PROBE_ATTRIBUTE, FailureProbe(idx, now - WINDOW))
        counted = DatabaseHandler().get_failures(request, {"username": email})
        assert counted == AxesDatabaseHandler().get_failures(request, {"username": email})
        index, user = request.__dict__.pop(SIGNIN_USER_ATTRIBUTE)
        assert index == idx.account and (user.pk if user else None) == holder
