"""Risk policy: weights per signal, level thresholds, and the decision per level.

The default comes from settings (``RISK_POLICY``, a JSON file named by RISK_POLICY_FILE may
override it); ``simulate_risk_policy`` replays recorded sign-ins against a proposed one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from accounts.risk.signals import SIGNALS

LEVELS = ("low", "medium", "high")
DECISIONS = ("allow", "challenge", "deny")

DEFAULT_WEIGHTS: dict[str, int] = {
    "new_device": 20,
    "new_network": 15,
    "new_country": 30,
    "impossible_travel": 60,
    "account_failure_velocity": 30,
    "ip_failure_velocity": 40,
    "ip_denylisted": 100,
    "unusual_hour": 10,
    "password_on_blocklist": 40,
}


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Policy:
    weights: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    medium_at: int = 30
    high_at: int = 70
    decisions: dict[str, str] = field(default_factory=lambda: {"low": "allow", "medium": "challenge", "high": "deny"})
    staff_always_challenge: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(SIGNALS)
        if unknown:
            raise PolicyError(f"unknown signals in policy: {', '.join(sorted(unknown))}")
        if not 0 < self.medium_at < self.high_at:
            raise PolicyError("thresholds must satisfy 0 < medium_at < high_at")
        if set(self.decisions) != set(LEVELS) or not set(self.decisions.values()) <= set(DECISIONS):
            raise PolicyError(f"decisions must map each of {LEVELS} to one of {DECISIONS}")

    def score(self, codes: list[str]) -> int:
        return sum(self.weights.get(code, 0) for code in codes)

    def level(self, score: int) -> str:
        if score >= self.high_at:
            return "high"
        return "medium" if score >= self.medium_at else "low"

    def decide(self, codes: list[str], *, is_staff: bool) -> tuple[int, str, str]:
        score = self.score(codes)
        level = self.level(score)
        decision = self.decisions[level]
        if is_staff and self.staff_always_challenge and decision == "allow":
            decision = "challenge"
        return score, level, decision

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        try:
            return cls(
                weights={**DEFAULT_WEIGHTS, **{str(k): int(v) for k, v in data.get("weights", {}).items()}},
                medium_at=int(data.get("medium_at", 30)),
                high_at=int(data.get("high_at", 70)),
                decisions={**{"low": "allow", "medium": "challenge", "high": "deny"}, **data.get("decisions", {})},
                staff_always_challenge=bool(data.get("staff_always_challenge", True)),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise PolicyError(f"malformed policy: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise PolicyError("a policy file holds a JSON object")
        return cls.from_dict(data)


def current_policy() -> Policy:
    path = getattr(settings, "RISK_POLICY_FILE", "")
    return Policy.from_file(path) if path else Policy.from_dict(getattr(settings, "RISK_POLICY", {}))
