"""How export and erasure find a listener's rows in each model accounts declared (compliance registry)."""

from __future__ import annotations

from compliance.registry import registry

LOOKUPS = {
    "accounts.User": "pk",
    "accounts.KnownDevice": "user",
    "accounts.SecurityEvent": "user",
    "accounts.SecurityAlert": "user",
    "accounts.AuthSession": "user",
    "accounts.AccessToken": "session__user",
    "accounts.RefreshToken": "session__user",
    "accounts.MfaChallenge": "user",
    "accounts.TotpFactor": "user",
    "accounts.BackupCodeFactor": "user",
    "accounts.BackupCode": "factor__user",
    "accounts.ParentalConsentRequest": "child",
    "axes.AccessAttempt": "email_index:username",
    "axes.AccessLog": "email_index:username",
    "axes.AccessFailureLog": "email_index:username",
}


def declare_subject_lookups() -> None:
    for label, lookup in LOOKUPS.items():
        registry.set_subject_lookup(label, lookup)
