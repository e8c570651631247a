"""Accounts: users, their devices, sign-in sessions and tokens, second factors, security events."""

from accounts.models.factors import BackupCode, BackupCodeFactor, TotpFactor
from accounts.models.security import KnownDevice, SecurityAlert, SecurityEvent
from accounts.models.sessions import AccessToken, AuthSession, MfaChallenge, RefreshToken
from accounts.models.users import ParentalConsentRequest, User, UserManager, UserQuerySet

__all__ = [
    "AccessToken",
    "AuthSession",
    "BackupCode",
    "BackupCodeFactor",
    "KnownDevice",
    "MfaChallenge",
    "ParentalConsentRequest",
    "RefreshToken",
    "SecurityAlert",
    "SecurityEvent",
    "TotpFactor",
    "User",
    "UserManager",
    "UserQuerySet",
]
