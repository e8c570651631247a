"""Sign-in sessions (API token families and web sessions), their tokens, and MFA challenges.

Tokens are random 256-bit strings handed to the client once; only their SHA-256 is stored.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models.security import KnownDevice
from identity.crypto.fields import EncryptedJSONField, EncryptedQuerySet


class AuthSessionQuerySet(EncryptedQuerySet):
    def active(self) -> AuthSessionQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())

    def for_user(self, user: object) -> AuthSessionQuerySet:
        return self.filter(user=user)


class AuthSession(models.Model):
    """One signed-in session: an API refresh-token family or a web session.

    Revoking it ends every token of the family at once (logout, refresh-token reuse, password
    change, analyst lockout, erasure). ``mfa_at`` is when a second factor was last verified in it,
    for step-up checks.
    """

    class Kind(models.TextChoices):
        API = "api", "mobile app"
        WEB = "web", "web portal"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_sessions")
    data_key_id = models.UUIDField()
    kind = models.CharField(max_length=5, choices=Kind.choices)
    device = models.ForeignKey(KnownDevice, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=40, blank=True)
    mfa_at = models.DateTimeField(null=True, blank=True)
    web_session_hash = models.CharField(max_length=64, blank=True, db_index=True)
    context = EncryptedJSONField(null=True, blank=True)

    objects = AuthSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-last_used_at"]

    def __str__(self) -> str:
        return f"session {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class AccessToken(models.Model):
    token_hash = models.CharField(max_length=64, primary_key=True)
    session = models.ForeignKey(AuthSession, on_delete=models.CASCADE, related_name="access_tokens")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"access token of {self.session_id}"


class RefreshToken(models.Model):
    token_hash = models.CharField(max_length=64, primary_key=True)
    session = models.ForeignKey(AuthSession, on_delete=models.CASCADE, related_name="refresh_tokens")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"refresh token of {self.session_id}"


class MfaChallenge(models.Model):
    """A pending second-factor check (the ``mfa_token`` of CONTRACT.md): single use, short-lived.

    ``purpose`` is sign-in (a session is created when it is met) or step-up (an existing session
    gets a fresh ``mfa_at``). Everything needed to finish the sign-in is kept here, encrypted.
    """

    class Purpose(models.TextChoices):
        SIGNIN = "signin", "sign-in"
        STEP_UP = "step_up", "step-up"

    token_hash = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mfa_challenges")
    data_key_id = models.UUIDField()
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    session = models.ForeignKey(AuthSession, null=True, blank=True, on_delete=models.CASCADE)
    device = models.ForeignKey(KnownDevice, null=True, blank=True, on_delete=models.SET_NULL)
    methods = models.JSONField(default=list)
    risk = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    email_code_hash = models.CharField(max_length=64, blank=True)
    email_code_expires_at = models.DateTimeField(null=True, blank=True)
    email_codes_sent = models.PositiveSmallIntegerField(default=0)
    context = EncryptedJSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"mfa challenge for {self.user_id}"

    @property
    def is_open(self) -> bool:
        return self.used_at is None and self.expires_at > timezone.now()
