"""Risk signals: each a small function of the attempt and what is known about the account.

A signal returns its code when it fires, else None. Weights live in the policy, not here, so that a
proposed policy can re-weigh recorded sign-ins (``simulate_risk_policy``).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from accounts.risk.geo import Place, distance_km


@dataclass(frozen=True)
class Attempt:
    at: datetime.datetime
    ip: str | None
    place: Place | None
    network_index: str
    country_index: str
    device_index: str
    password_on_blocklist: bool


@dataclass(frozen=True)
class History:
    """What the engine knows before this attempt (successful sign-ins and recent failures)."""

    known_device: bool = False
    prior_successes: int = 0
    seen_networks: frozenset[str] = field(default_factory=frozenset)
    seen_countries: frozenset[str] = field(default_factory=frozenset)
    usual_hours: frozenset[int] = field(default_factory=frozenset)
    last_success_at: datetime.datetime | None = None
    last_success_place: Place | None = None
    account_failures: int = 0
    ip_failed_accounts: int = 0


@dataclass(frozen=True)
class Thresholds:
    max_travel_kmh: float = 900.0  # faster than an airliner
    min_travel_km: float = 500.0  # closer than this is GeoIP noise
    account_failures: int = 5  # failed passwords on the account in the window
    ip_failed_accounts: int = 10  # distinct accounts failing from one IP in the window
    usual_hour_min_history: int = 5
    usual_hour_slack: int = 1
    denylist: tuple[str, ...] = ()


Signal = Callable[[Attempt, History, Thresholds], bool]


def new_device(attempt: Attempt, history: History, t: Thresholds) -> bool:
    return not history.known_device


def new_network(attempt: Attempt, history: History, t: Thresholds) -> bool:
    return (
        history.prior_successes > 0
        and bool(attempt.network_index)
        and (attempt.network_index not in history.seen_networks)
    )


def new_country(attempt: Attempt, history: History, t: Thresholds) -> bool:
    return (
        history.prior_successes > 0
        and bool(attempt.country_index)
        and (attempt.country_index not in history.seen_countries)
    )


def impossible_travel(attempt: Attempt, history: History, t: Thresholds) -> bool:
    if attempt.place is None or history.last_success_place is None or history.last_success_at is None:
        return False
    km = distance_km(history.last_success_place, attempt.place)
    if km is None or km < t.min_travel_km:
        return False
    hours = max((attempt.at - history.last_success_at).total_seconds() / 3600, 1 / 60)
    return km / hours > t.max_travel_kmh


def account_failure_velocity(attempt: Attempt, history: History, t: Thresholds) -> bool:
    return history.account_failures >= t.account_failures


def ip_failure_velocity(attempt: Attempt, history: History, t: Thresholds) -> bool:
    return history.ip_failed_accounts >= t.ip_failed_accounts


def ip_denylisted(attempt: Attempt, history: History, t: Thresholds) -> bool:
    if not attempt.ip or not t.denylist:
        return False
    try:
        address = ipaddress.ip_address(attempt.ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in t.denylist)


def unusual_hour(attempt: Attempt, history: History, t: Thresholds) -> bool:
    if history.prior_successes < t.usual_hour_min_history or not history.usual_hours:
        return False
    hour = attempt.at.astimezone(datetime.UTC).hour
    return all(min((hour - h) % 24, (h - hour) % 24) > t.usual_hour_slack for h in history.usual_hours)


def password_on_blocklist(attempt: Attempt, history: History, t: Thresholds) -> bool:
    return attempt.password_on_blocklist


SIGNALS: dict[str, Signal] = {
    "new_device": new_device,
    "new_network": new_network,
    "new_country": new_country,
    "impossible_travel": impossible_travel,
    "account_failure_velocity": account_failure_velocity,
    "ip_failure_velocity": ip_failure_velocity,
    "ip_denylisted": ip_denylisted,
    "unusual_hour": unusual_hour,
    "password_on_blocklist": password_on_blocklist,
}

DESCRIPTIONS = {
    "new_device": "a device not seen before on this account",
    "new_network": "a network not seen before on this account",
    "new_country": "a country not seen before on this account",
    "impossible_travel": "too far from the last sign-in for the time between them",
    "account_failure_velocity": "many failed passwords on this account just before",
    "ip_failure_velocity": "many accounts failing from this address (credential stuffing)",
    "ip_denylisted": "an address on the deny list",
    "unusual_hour": "an hour this account does not usually sign in at",
    "password_on_blocklist": "a password on the list of common or breached passwords",
    "staff_account": "staff accounts always need a second factor",
}


def fired(attempt: Attempt, history: History, thresholds: Thresholds) -> list[str]:
    return [code for code, signal in SIGNALS.items() if signal(attempt, history, thresholds)]
