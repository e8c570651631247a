"""The risk matrix: each signal alone, combined, and each policy decision.

Requirement: issue #3 "The risk engine" (DESIGN.md requirement 3: adaptive MFA with contextual
factors); NIST SP 800-63B-4 risk-based authentication; PITFALLS.md (risk overrides remembered devices).
"""

from __future__ import annotations

import datetime

import pytest

from accounts.risk import geo
from accounts.risk.geo import Place
from accounts.risk.policy import Policy, PolicyError
from accounts.risk.signals import Attempt, History, Thresholds, fired
from tests.accounts.geo import BERLIN, NEW_YORK, SYDNEY

NOON = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
BERLIN_PLACE = Place("DE", 52.52, 13.405)
NY_PLACE = Place("US", 40.7128, -74.006)

FAMILIAR = History(
    known_device=True,
    prior_successes=10,
    seen_networks=frozenset({"net-home"}),
    seen_countries=frozenset({"country-de"}),
    usual_hours=frozenset({11, 12, 13}),
    last_success_at=NOON - datetime.timedelta(days=1),
    last_success_place=BERLIN_PLACE,
)


def attempt(**overrides: object) -> Attempt:
    values: dict[str, object] = {
        "at": NOON,
        "ip": BERLIN,
        "place": BERLIN_PLACE,
        "network_index": "net-home",
        "country_index": "country-de",
        "device_index": "device-phone",
        "password_on_blocklist": False,
    }
    values.update(overrides)
    return Attempt(**values)  # type: ignore[arg-type]


def history(**overrides: object) -> History:
    return History(**{**FAMILIAR.__dict__, **overrides})  # type: ignore[arg-type]


LIMITS = Thresholds(denylist=("192.0.2.0/24", "2001:db8::/32"))


def test_a_familiar_sign_in_fires_nothing() -> None:
    assert fired(attempt(), FAMILIAR, LIMITS) == []


@pytest.mark.parametrize(
    ("code", "a", "h"),
    [
        ("new_device", {}, {"known_device": False}),
        ("new_network", {"network_index": "net-cafe"}, {}),
        ("new_country", {"country_index": "country-fr"}, {}),
        (
            "impossible_travel",
            {"place": NY_PLACE, "country_index": "country-de"},
            {"last_success_at": NOON - datetime.timedelta(hours=1)},
        ),
        ("account_failure_velocity", {}, {"account_failures": 5}),
        ("ip_failure_velocity", {}, {"ip_failed_accounts": 10}),
        ("ip_denylisted", {"ip": "192.0.2.77"}, {}),
        ("unusual_hour", {"at": NOON.replace(hour=3)}, {}),
        ("password_on_blocklist", {"password_on_blocklist": True}, {}),
    ],
)
def test_each_signal_fires_alone(code: str, a: dict[str, object], h: dict[str, object]) -> None:
    assert fired(attempt(**a), history(**h), LIMITS) == [code]


def test_signals_stay_quiet_just_below_their_thresholds() -> None:
    near = history(account_failures=4, ip_failed_accounts=9, last_success_at=NOON - datetime.timedelta(hours=8))
    # New York is about 6,400 km from Berlin: 8 hours is 800 km/h, slower than the 900 km/h limit.
    assert fired(attempt(place=NY_PLACE), near, LIMITS) == []
    assert fired(attempt(at=NOON.replace(hour=14)), FAMILIAR, LIMITS) == []  # within an hour of usual


def test_first_sign_in_of_a_new_account_only_flags_the_device() -> None:
    assert fired(attempt(), History(), LIMITS) == ["new_device"]


def test_ipv6_deny_list() -> None:
    assert fired(attempt(ip="2001:db8::1"), FAMILIAR, LIMITS) == ["ip_denylisted"]


def test_combined_signals_add_up() -> None:
    codes = fired(
        attempt(network_index="net-x", country_index="country-us", device_index="dev-new"),
        history(known_device=False),
        LIMITS,
    )
    assert codes == ["new_device", "new_network", "new_country"]
    assert Policy().decide(codes, is_staff=False) == (65, "medium", "challenge")


@pytest.mark.parametrize(
    ("codes", "staff", "expected"),
    [
        ([], False, (0, "low", "allow")),
        (["new_device"], False, (20, "low", "allow")),
        (["new_device", "new_network"], False, (35, "medium", "challenge")),
        (["impossible_travel", "new_country"], False, (90, "high", "deny")),
        (["ip_denylisted"], False, (100, "high", "deny")),
        ([], True, (0, "low", "challenge")),  # staff always need a second factor
        (["ip_denylisted"], True, (100, "high", "deny")),
    ],
)
def test_policy_decisions(codes: list[str], staff: bool, expected: tuple[int, str, str]) -> None:
    assert Policy().decide(codes, is_staff=staff) == expected


def test_a_policy_can_be_tuned_and_is_validated() -> None:
    strict = Policy.from_dict({"weights": {"new_device": 40}, "decisions": {"low": "allow", "medium": "deny"}})
    assert strict.decide(["new_device"], is_staff=False) == (40, "medium", "deny")
    with pytest.raises(PolicyError, match="unknown signals"):
        Policy.from_dict({"weights": {"moon_phase": 5}})
    with pytest.raises(PolicyError, match="thresholds"):
        Policy.from_dict({"medium_at": 80, "high_at": 70})
    with pytest.raises(PolicyError, match="decisions"):
        Policy.from_dict({"decisions": {"low": "maybe"}})


def test_geoip_places_addresses_and_measures_distance(geoip) -> None:  # type: ignore[no-untyped-def]
    berlin, new_york, sydney = geo.locate(BERLIN), geo.locate(NEW_YORK), geo.locate(SYDNEY)
    assert (berlin.country, new_york.country, sydney.country) == ("DE", "US", "AU")  # type: ignore[union-attr]
    assert geo.distance_km(berlin, new_york) == pytest.approx(6385, rel=0.01)  # type: ignore[arg-type]
    assert geo.locate("10.0.0.1") is None and geo.locate("8.8.8.8") is None and geo.locate("nonsense") is None


def test_without_a_geoip_database_there_is_no_place(settings) -> None:  # type: ignore[no-untyped-def]
    settings.GEOIP_PATH = ""
    assert geo.locate(BERLIN) is None


def test_networks_are_slash_24_and_slash_48() -> None:
    assert geo.network_of("81.2.69.10") == "81.2.69.0/24"
    assert geo.network_of("2001:db8:1:2::5") == "2001:db8:1::/48"
