"""Replay recorded sign-ins against a policy: how many would be allowed, challenged, refused.

Each recorded sign-in keeps the signals that fired; a policy re-weighs them. What a policy change
cannot be replayed for (a new signal, a changed threshold inside a signal) needs new data.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field

from django.utils import timezone

from accounts.models import SecurityEvent
from accounts.risk.policy import DECISIONS, Policy
from accounts.risk.signals import SIGNALS


@dataclass
class SimulationReport:
    sign_ins: int = 0
    recorded: Counter[str] = field(default_factory=Counter)
    simulated: Counter[str] = field(default_factory=Counter)
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "sign_ins": self.sign_ins,
            "recorded": {d: self.recorded.get(d, 0) for d in DECISIONS},
            "simulated": {d: self.simulated.get(d, 0) for d in DECISIONS},
            "changes": [{"from": a, "to": b, "count": n} for (a, b), n in sorted(self.changes.items())],
        }


def simulate(policy: Policy, *, since: datetime.datetime | None = None, chunk_size: int = 2000) -> SimulationReport:
    report = SimulationReport()
    rows = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SIGNIN)
    if since is not None:
        rows = rows.filter(occurred_at__gte=since)
    for decision, reasons, is_staff in rows.values_list("decision", "reasons", "user__is_staff").iterator(
        chunk_size=chunk_size
    ):
        codes = [code for code in reasons if code in SIGNALS]
        _, _, simulated = policy.decide(codes, is_staff=bool(is_staff))
        report.sign_ins += 1
        report.recorded[decision] += 1
        report.simulated[simulated] += 1
        if simulated != decision:
            report.changes[(decision, simulated)] += 1
    return report


def days_ago(days: int) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days)
