"""Assess a sign-in: build the attempt, read the history, fire signals, apply the policy."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q

from accounts.models import KnownDevice, SecurityEvent, User
from accounts.risk.geo import Place, locate, network_of
from accounts.risk.policy import Policy, current_policy
from accounts.risk.signals import Attempt, History, Thresholds, fired
from identity.crypto.blind import blind_index

WINDOW = datetime.timedelta(minutes=15)
HISTORY_DEPTH = 200


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


def load_history(*, user: User | None, idx: Indexes, at: datetime.datetime) -> History:
    since = at - WINDOW
    account_failures = (
        SecurityEvent.objects.failed_sign_ins().filter(account_index=idx.account, occurred_at__gte=since).count()
        if idx.account
        else 0
    )
    ip_failed_accounts = (
        SecurityEvent.objects.failed_sign_ins()
        .filter(ip_index=idx.ip, occurred_at__gte=since)
        .values("account_index")
        .distinct()
        .count()
        if idx.ip
        else 0
    )
    if user is None:
        return History(account_failures=account_failures, ip_failed_accounts=ip_failed_accounts)
    rows = list(
        SecurityEvent.objects.filter(successful_sign_ins(), user=user)
        .order_by("-occurred_at")
        .values_list("id", "network_index", "country_index", "occurred_at")[:HISTORY_DEPTH]
    )
    last_place = None
    last_at = None
    if rows:
        last = SecurityEvent.objects.only("context", "data_key_id").get(pk=rows[0][0])
        last_at = rows[0][3]
        context = last.context if isinstance(last.context, dict) else None
        last_place = Place.from_dict(context.get("place") if context else None)
    known_device = bool(idx.device) and KnownDevice.objects.filter(user=user, device_index=idx.device).exists()
    return History(
        known_device=known_device,
        prior_successes=len(rows),
        seen_networks=frozenset(r[1] for r in rows if r[1]),
        seen_countries=frozenset(r[2] for r in rows if r[2]),
        usual_hours=frozenset(r[3].astimezone(datetime.UTC).hour for r in rows),
        last_success_at=last_at,
        last_success_place=last_place,
        account_failures=account_failures,
        ip_failed_accounts=ip_failed_accounts,
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


__all__ = ["Assessment", "Indexes", "assess", "build_attempt", "indexes_for", "load_history", "locate", "thresholds"]
