"""Assess a sign-in: build the attempt, read the history, fire signals, apply the policy."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, Q

from accounts.models import KnownDevice, SecurityEvent, User
from accounts.risk.geo import Place, locate, network_of
from accounts.risk.policy import Policy, current_policy
from accounts.risk.signals import Attempt, History, Thresholds, fired
from accounts.risk.summary import HISTORY_DEPTH, SignInSummary
from identity.crypto.blind import blind_index
from identity.db import fixed_cursor

WINDOW = datetime.timedelta(minutes=15)


@dataclass(frozen=True)
class Assessment:
    score: int
    level: str
    decision: str
    reasons: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "level": self.level, "decision": self.decision, "reasons": self.reasons}


@dataclass(frozen=True)
class Indexes:
    """Blind indexes of an attempt's identifiers: what events store and compare."""

    account: str
    ip: str
    network: str
    country: str
    device: str


def thresholds() -> Thresholds:
    return Thresholds(
        max_travel_kmh=float(settings.RISK_MAX_TRAVEL_KMH),
        account_failures=int(settings.RISK_ACCOUNT_FAILURES),
        ip_failed_accounts=int(settings.RISK_IP_FAILED_ACCOUNTS),
        denylist=tuple(settings.RISK_IP_DENYLIST),
    )


def indexes_for(*, account_index: str, ip: str | None, place: Place | None, device_id: str) -> Indexes:
    return Indexes(
        account=account_index,
        ip=blind_index(ip, purpose="ip") if ip else "",
        network=blind_index(network_of(ip), purpose="network") if ip else "",
        country=blind_index(place.country, purpose="country") if place else "",
        device=blind_index(device_id, purpose="device") if device_id else "",
    )


def successful_sign_ins() -> Q:
    return Q(kind=SecurityEvent.Kind.SIGNIN, decision=SecurityEvent.Decision.ALLOW) | Q(
        kind=SecurityEvent.Kind.MFA_SUCCEEDED
    )


@dataclass(frozen=True)
class HistoryRead:
    history: History
    known_device_id: uuid.UUID | None  # this attempt's device, when the account knows it
    summary: SignInSummary | None  # the account's successful sign-ins (None: no account)


def read_history(*, user: User | None, idx: Indexes, at: datetime.datetime) -> HistoryRead:
    """What the engine knows before this attempt, in one statement for a user with a sign-in summary.

    The recent failures and the known device are read in one query. The successful sign-ins come
    from the user's ``signin_summary`` (kept by the sign-in services on every success); an account
    without one (made before the summary existed, or erased) is read from its security events, as
    the summary would hold them.
    """
    failures = read_failures_and_device(user=user, idx=idx, since=at - WINDOW)
    if user is None:
        history = History(account_failures=failures.account_failures, ip_failed_accounts=failures.ip_failed_accounts)
        return HistoryRead(history, None, None)
    summary = successes_of(user)
    history = summary.history(
        known_device=failures.device_id is not None,
        account_failures=failures.account_failures,
        ip_failed_accounts=failures.ip_failed_accounts,
    )
    return HistoryRead(history, failures.device_id, summary)


def load_history(*, user: User | None, idx: Indexes, at: datetime.datetime) -> History:
    return read_history(user=user, idx=idx, at=at).history


@dataclass(frozen=True)
class Failures:
    account_failures: int
    ip_failed_accounts: int
    device_id: uuid.UUID | None  # the account's KnownDevice with this attempt's device index


def failures_columns(connection: BaseDatabaseWrapper, user_id: str = "%s") -> str:
    """The three scalar subqueries of :func:`read_failures_and_device`, as columns of a SELECT.

    ``user_id`` is what the device's owner is compared with: a parameter, or a column of the
    statement they are part of (the sign-in's user lookup, ``accounts.services.sessions``)."""
    q = connection.ops.quote_name

    def column(model: type[Model], name: str) -> str:
        return q(str(model._meta.get_field(name).column))  # type: ignore[union-attr]

    table = q(SecurityEvent._meta.db_table)
    kind, occurred = column(SecurityEvent, "kind"), column(SecurityEvent, "occurred_at")
    account, ip = column(SecurityEvent, "account_index"), column(SecurityEvent, "ip_index")
    device, user, device_index = (column(KnownDevice, n) for n in ("id", "user", "device_index"))
    # The device found is locked against deletion until the sign-in commits (its session and event
    # refer to it). SQLite's writers are serialised already (transactions begin IMMEDIATE).
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    # Only quoted names from the models' metadata go into the text; every value is a parameter.
    return (
        f"(SELECT COUNT(*) FROM {table} WHERE {kind} = %s AND {account} = %s AND {occurred} >= %s), "  # noqa: S608
        f"(SELECT COUNT(DISTINCT {account}) FROM {table} WHERE {kind} = %s AND {ip} = %s AND {occurred} >= %s), "
        f"(SELECT {device} FROM {q(KnownDevice._meta.db_table)} WHERE {user} = {user_id} "
        f"AND {device_index} = %s{lock})"
    )


def failures_params(connection: BaseDatabaseWrapper, idx: Indexes, since: datetime.datetime) -> list[Any]:
    """The parameters of :func:`failures_columns` with the owner given as a column (the device's
    index last)."""
    failed = SecurityEvent.Kind.SIGNIN_FAILED.value
    moment = connection.ops.adapt_datetimefield_value(since)
    return [failed, idx.account or NEVER, moment, failed, idx.ip or NEVER, moment, idx.device or NEVER]


def failures_from_row(account_failures: Any, ip_failed_accounts: Any, device: Any) -> Failures:
    device_id = None if device is None else device if isinstance(device, uuid.UUID) else uuid.UUID(str(device))
    return Failures(int(account_failures or 0), int(ip_failed_accounts or 0), device_id)


@dataclass(frozen=True)
class FailureProbe:
    """What the sign-in asks the user lookup to read with the user row (one statement, before the
    password check): the failures and the known device of this attempt, since ``since``.

    Set on the request as ``PROBE_ATTRIBUTE`` by the sign-in service; the result is kept on the user
    it was read with, and :func:`read_history` uses it when it asks for the same attempt and window."""

    idx: Indexes
    since: datetime.datetime


PROBE_ATTRIBUTE = "identity_failure_probe"
_PROBED = "_identity_probed_failures"


def keep_probed(user: User, probe: FailureProbe, failures: Failures) -> None:
    user.__dict__[_PROBED] = (probe, failures)


def read_failures_and_device(*, user: User | None, idx: Indexes, since: datetime.datetime) -> Failures:
    """Failed passwords on the account and distinct accounts failing from the IP since ``since``,
    and the known device's id: three scalar subqueries, one statement (ORM-free: no compile).
    Read with the user row already when the sign-in's lookup was asked to (``FailureProbe``)."""
    if user is not None:
        probed = user.__dict__.get(_PROBED)
        if probed is not None and probed[0] == FailureProbe(idx, since):
            return probed[1]  # type: ignore[no-any-return]
    if not (idx.account or idx.ip or (user is not None and idx.device)):
        return Failures(0, 0, None)
    connection = connections[router.db_for_read(SecurityEvent)]
    sql = _SQL.get(connection.vendor)
    if sql is None:
        sql = _SQL[connection.vendor] = "SELECT " + failures_columns(connection)
    params = failures_params(connection, idx, since)
    user_id = User._meta.pk.get_db_prep_value(user.pk, connection) if user is not None else None
    with fixed_cursor(connection.alias) as cursor:
        cursor.execute(sql, [*params[:6], user_id, params[6]])
        return failures_from_row(*cursor.fetchone())


_SQL: dict[str, str] = {}
NEVER = "-"  # blind indexes are hex: a missing one matches nothing, as the ORM's version skipped the query


def successes_of(user: User) -> SignInSummary:
    """The user's last HISTORY_DEPTH successful sign-ins: the stored summary, else from the events."""
    summary = SignInSummary.from_stored(user.signin_summary)
    return summary if summary is not None else summary_from_events(user)


def summary_from_events(user: User) -> SignInSummary:
    rows = list(
        SecurityEvent.objects.filter(successful_sign_ins(), user=user)
        .order_by("-occurred_at")
        .values_list("id", "network_index", "country_index", "occurred_at")[:HISTORY_DEPTH]
    )
    if not rows:
        return SignInSummary.empty()
    last = SecurityEvent.objects.only("context", "data_key_id").get(pk=rows[0][0])
    context = last.context if isinstance(last.context, dict) else None
    return SignInSummary.from_rows(
        [(r[3], r[1], r[2]) for r in reversed(rows)],
        last_place=context.get("place") if context else None,
    )


def assess(
    attempt: Attempt,
    history: History,
    *,
    is_staff: bool,
    policy: Policy | None = None,
    limits: Thresholds | None = None,
) -> Assessment:
    codes = fired(attempt, history, limits or thresholds())
    policy = policy or current_policy()
    score, level, decision = policy.decide(codes, is_staff=is_staff)
    reasons = list(codes)
    if is_staff and policy.decisions[level] == "allow" and decision == "challenge":
        reasons.append("staff_account")
    return Assessment(score=score, level=level, decision=decision, reasons=reasons)


def build_attempt(
    *, at: datetime.datetime, ip: str | None, idx: Indexes, place: Place | None, password_on_blocklist: bool
) -> Attempt:
    return Attempt(
        at=at,
        ip=ip,
        place=place,
        network_index=idx.network,
        country_index=idx.country,
        device_index=idx.device,
        password_on_blocklist=password_on_blocklist,
    )


__all__ = [
    "HISTORY_DEPTH",
    "Assessment",
    "HistoryRead",
    "Indexes",
    "SignInSummary",
    "assess",
    "build_attempt",
    "indexes_for",
    "load_history",
    "locate",
    "read_history",
    "thresholds",
]
