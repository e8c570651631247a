"""May this listener's data be used for this purpose now? One answer for every processor.

A restriction of processing (GDPR Art. 18, REGULATIONS.md G-18) allows only storage and what a
legal hold needs; every other use stops while it is in force. Outside a restriction, a purpose
needs the listener's current choice to be "yes" (compliance.consents): consent-based purposes
default to "no" (G-03), purposes under legitimate interests to "yes" until the listener objects.
"""

from __future__ import annotations

from typing import Any

from compliance.models import ProcessingRestriction

# What a restriction still allows (Art. 18(2): storage; legal claims through a legal hold).
ALWAYS_ALLOWED = frozenset({"storage", "legal_hold"})


def restriction_in_force(user: Any) -> ProcessingRestriction | None:
    return ProcessingRestriction.objects.filter(subject=user, lifted_at__isnull=True).order_by("placed_at").first()


def is_restricted(user: Any) -> bool:
    return ProcessingRestriction.objects.filter(subject=user, lifted_at__isnull=True).exists()


def may_process(user: Any, purpose: str) -> bool:
    """True when ``purpose`` (a compliance.consents.PURPOSES name, or "storage"/"legal_hold") may use
    the listener's data now. Unknown purposes are refused: a processor must be declared first."""
    from compliance.consents import PURPOSES, current

    if purpose in ALWAYS_ALLOWED:
        return True
    if purpose not in PURPOSES or is_restricted(user):
        return False
    return current(user)[purpose].granted
