"""Measure a risk-policy change before switching it on: replay recorded sign-ins against it."""

from __future__ import annotations

import json as jsonlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.risk.policy import DECISIONS, Policy, PolicyError, current_policy
from accounts.risk.simulation import days_ago, simulate


class Command(BaseCommand):
    help = (
        "Replay recorded sign-ins against the current policy or a proposed one (--policy FILE, JSON with "
        "weights, medium_at, high_at, decisions) and report how many would be allowed, challenged and refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--policy", help="JSON file with the proposed policy (default: the current one)")
        parser.add_argument("--days", type=int, default=90, help="replay sign-ins of the last N days (default 90)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, policy: str | None, days: int, json: bool, **options: Any) -> None:
        if days < 1:
            raise CommandError("--days must be at least 1")
        try:
            chosen = Policy.from_file(policy) if policy else current_policy()
        except PolicyError as exc:
            raise CommandError(str(exc)) from exc
        report = simulate(chosen, since=days_ago(days))
        if json:
            self.stdout.write(_json_dumps(report.as_dict()))
            return
        self.stdout.write(
            f"{report.sign_ins} sign-ins in the last {days} days, replayed against "
            f"{'the proposed policy ' + policy if policy else 'the current policy'}:"
        )
        self.stdout.write(f"  {'decision':<10} {'recorded':>10} {'simulated':>10}")
        for decision in DECISIONS:
            self.stdout.write(
                f"  {decision:<10} {report.recorded.get(decision, 0):>10} {report.simulated.get(decision, 0):>10}"
            )
        for (before, after), count in sorted(report.changes.items()):
            self.stdout.write(f"  {count} would change from {before} to {after}")


def _json_dumps(data: object) -> str:
    return jsonlib.dumps(data, indent=2, sort_keys=True)
