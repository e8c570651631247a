"""The request state machine (DESIGN.md, "Data-subject requests").

received -> verifying -> verified -> (awaiting_review) -> in_progress -> completed
any open state -> denied | cancelled | on_hold; on_hold -> the state it was in.
"""

from __future__ import annotations

from compliance.models import PrivacyRequest

S = PrivacyRequest.Status

TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.VERIFYING, S.VERIFIED, S.DENIED, S.CANCELLED, S.ON_HOLD}),
    S.VERIFYING: frozenset({S.VERIFIED, S.DENIED, S.CANCELLED, S.ON_HOLD}),
    S.VERIFIED: frozenset({S.AWAITING_REVIEW, S.IN_PROGRESS, S.DENIED, S.CANCELLED, S.ON_HOLD}),
    S.AWAITING_REVIEW: frozenset({S.IN_PROGRESS, S.DENIED, S.CANCELLED, S.ON_HOLD}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.DENIED, S.ON_HOLD}),
    S.ON_HOLD: frozenset({S.RECEIVED, S.VERIFYING, S.VERIFIED, S.AWAITING_REVIEW, S.IN_PROGRESS, S.DENIED}),
    S.COMPLETED: frozenset(),
    S.DENIED: frozenset(),
    S.CANCELLED: frozenset(),
}


class TransitionRefused(ValueError):
    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(f"a request that is {current} cannot become {wanted}")
        self.current = current
        self.wanted = wanted


def check(current: str, wanted: str) -> None:
    if wanted not in TRANSITIONS.get(current, frozenset()):
        raise TransitionRefused(current, wanted)
