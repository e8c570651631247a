"""simulate_risk_policy: a policy change is measured on recorded sign-ins before it is switched on.

Requirement: issue #3 "A simulation command replays recorded sign-ins against the current or a
proposed policy and reports how many would have been allowed, challenged and refused".
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import SecurityEvent

pytestmark = pytest.mark.django_db


def record(user, decision: str, reasons: list[str]) -> None:  # type: ignore[no-untyped-def]
    SecurityEvent.objects.create(
        user=user, data_key_id=user.data_key_id, kind="signin", decision=decision, reasons=reasons
    )


@pytest.fixture
def history(alice, bob):  # type: ignore[no-untyped-def]
    record(alice, "allow", ["new_device"])
    record(alice, "allow", [])
    record(alice, "challenge", ["new_device", "new_network"])
    record(alice, "deny", ["impossible_travel", "new_country"])
    record(bob, "challenge", ["staff_account"])  # staff: always challenged


def test_the_current_policy_reproduces_the_recorded_decisions(history) -> None:  # type: ignore[no-untyped-def]
    out = StringIO()
    call_command("simulate_risk_policy", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["sign_ins"] == 5
    assert report["recorded"] == report["simulated"] == {"allow": 2, "challenge": 2, "deny": 1}
    assert report["changes"] == []


def test_a_stricter_proposal_is_measured(history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proposal = tmp_path / "strict.json"
    proposal.write_text(json.dumps({"weights": {"new_device": 30}}))
    out = StringIO()
    call_command("simulate_risk_policy", "--policy", str(proposal), stdout=out)
    text = out.getvalue()
    assert "5 sign-ins in the last 90 days" in text
    assert "  allow               2          1" in text
    assert "  challenge           2          3" in text
    assert "1 would change from allow to challenge" in text


def test_a_malformed_proposal_is_refused(history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proposal = tmp_path / "bad.json"
    proposal.write_text(json.dumps({"weights": {"horoscope": 10}}))
    with pytest.raises(CommandError, match="unknown signals in policy: horoscope"):
        call_command("simulate_risk_policy", "--policy", str(proposal), stdout=StringIO())
    with pytest.raises(CommandError, match="cannot read policy file"):
        call_command("simulate_risk_policy", "--policy", str(tmp_path / "missing.json"), stdout=StringIO())
