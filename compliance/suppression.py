"""The suppression list: erased subjects' e-mail addresses as keyed hashes only (issue #4: "an HMAC
of the email goes to a suppression list so that a later import or sign-up with it is recognised").

An erasure adds the address (compliance.fulfilment). A later sign-up with it is recorded as a
return after erasure: a new account, never linked to the old one (whose key is destroyed anyway).
A list imported from elsewhere (a partner's, a marketing tool's) is filtered through
``manage.py filter_suppressed`` before use, so an erased listener is not brought back by an import
(CCPA §1798.105(c), CCR §7022(e); GDPR Art. 17, G-17). The hash uses its own purpose key, so it
cannot be joined with the accounts' e-mail index.
"""

from __future__ import annotations

from collections.abc import Iterable

from compliance.models import SuppressionEntry
from identity.crypto.blind import blind_index, normalise_email

PURPOSE = "suppression"
BATCH = 1_000


def digest(email: str) -> str:
    return blind_index(normalise_email(email), purpose=PURPOSE)


def add(email: str, *, reason: str = "erasure") -> None:
    SuppressionEntry.objects.get_or_create(email_hmac=digest(email), defaults={"reason": reason})


def is_suppressed(email: str) -> bool:
    return SuppressionEntry.objects.filter(email_hmac=digest(email)).exists()


def suppressed_among(emails: Iterable[str]) -> set[str]:
    """The addresses of ``emails`` on the list (one query per thousand)."""
    by_digest: dict[str, list[str]] = {}
    found: set[str] = set()
    for email in emails:
        by_digest.setdefault(digest(email), []).append(email)
        if len(by_digest) >= BATCH:
            found |= _lookup(by_digest)
            by_digest = {}
    if by_digest:
        found |= _lookup(by_digest)
    return found


def _lookup(by_digest: dict[str, list[str]]) -> set[str]:
    hits = SuppressionEntry.objects.filter(email_hmac__in=list(by_digest)).values_list("email_hmac", flat=True)
    return {email for h in hits for email in by_digest[h]}
