"""The sign-in summary gives the risk engine the same history as the security events, for less.

Requirement: issue #3 performance targets (docs/benchmarks.md, "Sign-in"): the risk engine reads a
per-account summary kept on each success instead of up to 200 events; the signals must decide as
before.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import KnownDevice, User
from accounts.risk.engine import read_history, successes_of, summary_from_events
from accounts.risk.summary import HISTORY_DEPTH, SignInSummary
from accounts.services.signin import Client, complete_mfa, sign_in
from tests.accounts.api_helpers import HOME_IP, login
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


START = datetime.datetime(2026, 11, 2, 6, 0, tzinfo=datetime.UTC)
# Sign-ins at different hours, networks and places; the last one from abroad (a challenge).
ROUTE = [
    (datetime.timedelta(hours=0), HOME_IP, "phone-1"),
    (datetime.timedelta(hours=5), "81.2.69.11", "phone-1"),
    (datetime.timedelta(days=1, hours=2), "81.2.70.1", "phone-1"),
    (datetime.timedelta(days=2, hours=9), HOME_IP, "tablet-2"),
    (datetime.timedelta(days=3), "81.2.69.10", "phone-1"),
]


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


def _same_history(user: User) -> None:
    """The stored summary and the one rebuilt from the events describe the same sign-ins."""
    user = _fresh(user)
    stored = SignInSummary.from_stored(user.signin_summary)
    assert stored is not None
    rebuilt = summary_from_events(user)
    kwargs = {"known_device": True, "account_failures": 0, "ip_failed_accounts": 0}
    assert stored.history(**kwargs) == rebuilt.history(**kwargs)
    assert stored.entries == rebuilt.entries


def test_each_successful_sign_in_updates_the_summary_as_the_events_would(api, alice, geoip) -> None:  # type: ignore[no-untyped-def]
    for offset, ip, device in ROUTE:
        with time_machine.travel(START + offset, tick=False):
            assert login(api, "alice@example.test", ip=ip, device=device).status_code == 200
        _same_history(alice)
    history = successes_of(_fresh(alice)).history(known_device=True, account_failures=0, ip_failed_accounts=0)
    assert history.prior_successes == len(ROUTE)
    assert history.usual_hours == frozenset({6, 11, 8, 15})
    assert history.last_success_at == START + ROUTE[-1][0]
    assert history.last_success_place is not None and history.last_success_place.country == "DE"


def test_a_second_factor_success_counts_like_the_event_it_records(  # type: ignore[no-untyped-def]
    api, alice, geoip, django_capture_on_commit_callbacks
) -> None:
    with time_machine.travel(START, tick=False):
        assert login(api, "alice@example.test").status_code == 200
    with time_machine.travel(START + datetime.timedelta(hours=12), tick=False):
        body = login(api, "alice@example.test", ip="89.160.20.10").json()
        assert body["mfa_required"] is True
        _same_history(alice)  # a challenge is no success: nothing added
        with django_capture_on_commit_callbacks(execute=True):
            api.post("/api/v1/auth/mfa/email", {"mfa_token": body["mfa_token"]}, format="json")
        code = re.search(r"code is (\d{6})", mail.outbox[-1].body).group(1)  # type: ignore[union-attr]
        complete_mfa(request=None, mfa_token=body["mfa_token"], method="email", code=code)
    _same_history(alice)
    assert len(successes_of(_fresh(alice)).entries) == 2


def test_an_account_without_a_summary_is_read_from_its_events_and_then_gets_one(api, alice) -> None:  # type: ignore[no-untyped-def]
    for offset, ip, device in ROUTE[:3]:
        with time_machine.travel(START + offset, tick=False):
            assert login(api, "alice@example.test", ip=ip, device=device).status_code == 200
    User.objects.filter(pk=alice.pk).update(signin_summary=None)  # as made before the summary existed
    assert successes_of(_fresh(alice)).entries == summary_from_events(alice).entries
    with time_machine.travel(START + ROUTE[3][0], tick=False):
        assert login(api, "alice@example.test", ip=ROUTE[3][1], device=ROUTE[3][2]).status_code == 200
    _same_history(alice)
    assert len(successes_of(_fresh(alice)).entries) == 4


def test_only_the_last_history_depth_sign_ins_are_kept() -> None:
    summary = SignInSummary.empty()
    for day in range(HISTORY_DEPTH + 5):
        summary.add(at=START + datetime.timedelta(days=day), network=f"net-{day % 3}", country="c-de", place=None)
    assert len(summary.entries) == HISTORY_DEPTH
    assert summary.entries[0][0] == int((START + datetime.timedelta(days=5)).timestamp())
    restored = SignInSummary.from_stored(summary.to_stored())
    assert restored is not None and restored.entries == summary.entries
    assert len(summary.to_stored()["n"]) == 3  # each index stored once


def test_a_whole_row_save_keeps_a_summary_written_since_it_was_read(api, alice) -> None:  # type: ignore[no-untyped-def]
    stale = _fresh(alice)
    assert login(api, "alice@example.test").status_code == 200
    stale.display_name = "Alice L."
    stale.save()
    fresh = _fresh(alice)
    assert fresh.display_name == "Alice L."
    assert len(successes_of(fresh).entries) == 1


def test_the_history_of_a_familiar_sign_in_is_one_statement(alice) -> None:  # type: ignore[no-untyped-def]
    user = _fresh(alice)
    read_idx = _indexes("phone-1")
    KnownDevice.objects.create(user=user, data_key_id=user.data_key_id, device_index=read_idx.device)
    User.objects.filter(pk=user.pk).update(signin_summary=user.seal_signin_summary(SignInSummary().to_stored()))
    user = _fresh(user)
    with CaptureQueriesContext(connection) as queries:
        read = read_history(user=user, idx=read_idx, at=datetime.datetime.now(datetime.UTC))
    assert len(queries.captured_queries) == 1
    assert read.history.known_device and read.known_device_id is not None


def _indexes(device: str):  # type: ignore[no-untyped-def]
    from accounts.risk.engine import indexes_for
    from identity.crypto.blind import email_index

    return indexes_for(account_index=email_index("alice@example.test"), ip=HOME_IP, place=None, device_id=device)


def test_a_familiar_api_sign_in_runs_these_statements(alice, rf) -> None:  # type: ignore[no-untyped-def]
    client = Client(ip=HOME_IP, device_id="phone-1", device_name="Pixel", platform="android")

    def once() -> Counter[str]:
        request = rf.post("/api/v1/auth/login", REMOTE_ADDR=HOME_IP)
        with CaptureQueriesContext(connection) as queries:
            result = sign_in(request=request, email="alice@example.test", password=PASSWORD, client=client)
        assert result.status == "tokens"
        trips.append(len(queries.captured_queries))
        return Counter(kind for q in queries.captured_queries for kind in _kinds(q["sql"]))

    trips: list[int] = []

    once()  # the first: a new device, and the summary made from the (empty) events
    # The history (failures and the known device) is one SELECT; last_login and the summary one
    # UPDATE; no savepoint of start_api_session's own (the test's transaction makes sign_in's one).
    assert once() == Counter(
        {
            "SAVEPOINT": 1,
            "RELEASE": 1,
            # axes' lockout check, with the user row, the failures and the known device (FailureProbe)
            "SELECT axes_accessattempt, accounts_user": 1,
            "DELETE axes_accessattempt": 1,  # the reset of the pair's failures (no SELECT first)
            "UPDATE accounts_knowndevice": 1,
            "INSERT accounts_securityevent": 1,
            "INSERT accounts_authsession": 1,
            "UPDATE accounts_user": 1,
            "INSERT accounts_accesstoken": 1,
            "INSERT accounts_refreshtoken": 1,
        }
    )
    # On PostgreSQL the known device's last_seen_at, the session, the user row, both tokens, the
    # reset of axes' failures and the event go in one round trip (a data-modifying WITH:
    # accounts.services.statements.together); elsewhere a statement costs no round trip.
    assert trips[-1] == (4 if connection.vendor == "postgresql" else 10)


def _kinds(sql: str) -> list[str]:
    """The statements of one query: a data-modifying WITH holds several."""
    if not sql.startswith("WITH "):
        return [_kind(sql)]
    import re

    found = re.findall(r"(INSERT INTO|UPDATE|DELETE FROM) \"?(\w+)", sql)
    return [f"{verb.split()[0]} {table}" for verb, table in found]


def _kind(sql: str) -> str:
    words = sql.replace('"', "").split()
    verb = words[0].upper()
    if verb in ("SAVEPOINT", "RELEASE"):
        return verb
    upper = [w.upper() for w in words]
    after = {"SELECT": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE", "DELETE": "FROM"}[verb]
    if verb == "SELECT" and "JOIN" in upper:  # a scalar subquery's table, and the joined one
        return f"SELECT {words[upper.index('FROM') + 1]}, {words[upper.index('JOIN') + 1]}"
    if verb == "SELECT":  # the outermost FROM: the one after the last closing subquery
        return f"SELECT {words[len(upper) - 1 - upper[::-1].index('FROM') + 1]}"
    return f"{verb} {words[upper.index(after) + 1].strip('(')}"


def test_the_failures_read_with_the_user_row_equal_those_read_alone(alice, make_user, rf) -> None:  # type: ignore[no-untyped-def]
    """The sign-in's user lookup reads the attempt's failures and known device in its own statement
    (FailureProbe); the risk engine must see exactly what its separate read would give: failed
    passwords on the account, distinct accounts failing from the IP, the known device."""
    from django.utils import timezone

    from accounts.risk.engine import WINDOW, FailureProbe, indexes_for, read_failures_and_device
    from accounts.services.sessions import user_for_sign_in
    from identity.crypto.blind import email_index

    client = Client(ip=HOME_IP, device_id="phone-1", device_name="Pixel", platform="android")
    first = sign_in(request=rf.post("/"), email="alice@example.test", password=PASSWORD, client=client)
    assert first.status == "tokens"
    make_user("bob@example.test")
    for email in ("alice@example.test", "alice@example.test", "bob@example.test"):
        wrong = sign_in(request=rf.post("/"), email=email, password="not the password at all", client=client)
        assert wrong.status == "invalid"

    now = timezone.now()
    for device_id in ("phone-1", "a-new-phone", ""):
        idx = indexes_for(account_index=email_index("alice@example.test"), ip=HOME_IP, place=None, device_id=device_id)
        probe = FailureProbe(idx, now - WINDOW)
        probed = user_for_sign_in("alice@example.test", probe)
        assert probed is not None
        alone = read_failures_and_device(user=_fresh(alice), idx=idx, since=now - WINDOW)
        with CaptureQueriesContext(connection) as queries:
            assert read_failures_and_device(user=probed, idx=idx, since=now - WINDOW) == alone
        assert not queries.captured_queries  # read with the user row already
        assert alone.account_failures == 2 and alone.ip_failed_accounts == 2
        assert (alone.device_id is not None) == (device_id == "phone-1")


def test_a_version_1_summary_is_still_read_and_the_next_success_stores_version_2(alice, rf) -> None:  # type: ignore[no-untyped-def]
    """Summaries stored before the parallel-array format (version 2) give the same history."""
    client = Client(ip=HOME_IP, device_id="phone-1", device_name="Pixel", platform="android")
    assert (
        sign_in(request=rf.post("/"), email="alice@example.test", password=PASSWORD, client=client).status == "tokens"
    )
    stored = _fresh(alice).signin_summary
    assert stored["v"] == 2
    summary = SignInSummary.from_stored(stored)
    assert summary is not None and summary.entries
    old = {
        "v": 1,
        "n": stored["n"],
        "c": stored["c"],
        "e": [list(entry) for entry in zip(stored["t"], stored["ni"], stored["ci"], strict=True)],
        "at": stored["at"],
        "place": stored["place"],
    }
    assert SignInSummary.from_stored(old) == summary
    User.objects.filter(pk=alice.pk).update(signin_summary=alice.seal_signin_summary(old))
    assert (
        sign_in(request=rf.post("/"), email="alice@example.test", password=PASSWORD, client=client).status == "tokens"
    )
    again = SignInSummary.from_stored(_fresh(alice).signin_summary)
    assert _fresh(alice).signin_summary["v"] == 2 and again is not None
    assert again.entries[:-1] == summary.entries
