"""A per-account summary of the last successful sign-ins, kept on the user row (encrypted).

The risk engine needs, of an account's last ``HISTORY_DEPTH`` successful sign-ins: how many there
were, the networks and countries they came from (blind indexes), their hours of day, and the time
and place of the newest. Reading up to 200 security events for that on every sign-in was the
largest cost of a sign-in (docs/benchmarks.md, "Sign-in"). The summary holds exactly those sign-ins,
oldest first, so the signals see the same history; it is updated in the statement that records the
sign-in time, and rebuilt from the events when it is missing (accounts made before it, erased ones).

Stored as ``User.signin_summary``, an encrypted JSON document under the user's key: the place is
location data, and erasure shreds it with the rest of the row.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from accounts.risk.geo import Place
from accounts.risk.signals import History

HISTORY_DEPTH = 200
VERSION = 2  # version 1 (entries as triples) is still read


@dataclass
class SignInSummary:
    # (whole seconds since the epoch, network index, country index), oldest first.
    entries: list[tuple[int, str, str]] = field(default_factory=list)
    last_at: datetime.datetime | None = None
    last_place: dict[str, Any] | None = None

    @classmethod
    def empty(cls) -> SignInSummary:
        return cls()

    @classmethod
    def from_rows(
        cls, rows: Sequence[tuple[datetime.datetime, str, str]], *, last_place: dict[str, Any] | None
    ) -> SignInSummary:
        """From (occurred_at, network index, country index) of events, oldest first."""
        summary = cls(entries=[(int(at.timestamp()), net or "", country or "") for at, net, country in rows])
        if rows:
            summary.last_at = rows[-1][0]
            summary.last_place = last_place
        return summary

    @classmethod
    def from_stored(cls, value: Any) -> SignInSummary | None:
        """The stored document, or None when there is none (or it cannot be read: then rebuild)."""
        if not isinstance(value, dict) or value.get("v") not in (1, VERSION):
            return None
        try:
            # Position -1 (no index) reads the "" appended last; any other negative one is refused.
            nets, countries = [*value["n"], ""], [*value["c"], ""]
            # Version 1: entries as [second, network position, country position]; version 2: three
            # parallel arrays, about half the encoding time.
            rows = value["e"] if value["v"] == 1 else zip(value["t"], value["ni"], value["ci"], strict=True)
            entries = [
                (int(t), nets[n if n >= -1 else len(nets)], countries[c if c >= -1 else len(countries)])
                for t, n, c in rows
            ]
            last_at = datetime.datetime.fromisoformat(value["at"]) if value.get("at") else None
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        place = value.get("place")
        return cls(entries=entries, last_at=last_at, last_place=place if isinstance(place, dict) else None)

    def to_stored(self) -> dict[str, Any]:
        """Compact: each distinct index once, entries refer to them by position (-1: none), as three
        parallel arrays (seconds, network positions, country positions)."""
        nets: dict[str, int] = {"": -1}
        countries: dict[str, int] = {"": -1}
        times, net_at, country_at = [], [], []
        for t, net, country in self.entries:
            times.append(t)
            n = nets.get(net)
            if n is None:
                n = nets[net] = len(nets) - 1
            net_at.append(n)
            c = countries.get(country)
            if c is None:
                c = countries[country] = len(countries) - 1
            country_at.append(c)
        return {
            "v": VERSION,
            "n": list(nets)[1:],
            "c": list(countries)[1:],
            "t": times,
            "ni": net_at,
            "ci": country_at,
            "at": self.last_at.isoformat() if self.last_at else None,
            "place": self.last_place,
        }

    def add(self, *, at: datetime.datetime, network: str, country: str, place: dict[str, Any] | None) -> None:
        """One more successful sign-in; the oldest drops out beyond HISTORY_DEPTH."""
        entry = (int(at.timestamp()), network or "", country or "")
        bisect.insort_right(self.entries, entry, key=lambda e: e[0])
        if len(self.entries) > HISTORY_DEPTH:
            del self.entries[: len(self.entries) - HISTORY_DEPTH]
        if self.last_at is None or at >= self.last_at:
            self.last_at, self.last_place = at, place

    def history(self, *, known_device: bool, account_failures: int, ip_failed_accounts: int) -> History:
        return History(
            known_device=known_device,
            prior_successes=len(self.entries),
            seen_networks=frozenset(net for _, net, _ in self.entries if net),
            seen_countries=frozenset(country for _, _, country in self.entries if country),
            usual_hours=frozenset((t // 3600) % 24 for t, _, _ in self.entries),
            last_success_at=self.last_at,
            last_success_place=Place.from_dict(self.last_place) if self.entries else None,
            account_failures=account_failures,
            ip_failed_accounts=ip_failed_accounts,
        )
