"""Client devices and security events: what the risk engine learns from and what listeners see."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from identity.crypto.fields import EncryptedJSONField, EncryptedQuerySet, EncryptedTextField


class KnownDevice(models.Model):
    """A phone, tablet or browser a listener has signed in from (device id from the app, or the
    signed cookie on the web), stored as a blind index of that id."""

    class Platform(models.TextChoices):
        IOS = "ios", "iOS"
        ANDROID = "android", "Android"
        WEB = "web", "web browser"
        OTHER = "other", "other"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="known_devices")
    data_key_id = models.UUIDField()
    device_index = models.CharField(max_length=64)
    name = EncryptedTextField(max_length=100, blank=True)
    platform = models.CharField(max_length=10, choices=Platform.choices, default=Platform.OTHER)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "device_index"], name="knowndevice_unique_per_user")]

    def __str__(self) -> str:
        return f"device {self.pk}"


class SecurityEventQuerySet(EncryptedQuerySet):
    def for_user(self, user: object) -> SecurityEventQuerySet:
        return self.filter(user=user)

    def since(self, moment: object) -> SecurityEventQuerySet:
        return self.filter(occurred_at__gte=moment)

    def failed_sign_ins(self) -> SecurityEventQuerySet:
        return self.filter(kind=SecurityEvent.Kind.SIGNIN_FAILED)

    def successful_sign_ins(self) -> SecurityEventQuerySet:
        return self.filter(kind=SecurityEvent.Kind.SIGNIN, decision=SecurityEvent.Decision.ALLOW)


class SecurityEvent(models.Model):
    """A sign-in decision or another security-relevant event, with the risk signals behind it.

    ``reasons`` holds signal codes and weights only (no personal data). Where the event belongs to
    a user, the raw context (IP, place, user agent) is encrypted under their key; indexes (blind
    HMACs) let the risk engine count and compare without decrypting.
    """

    class Kind(models.TextChoices):
        SIGNIN = "signin", "sign-in decision"
        SIGNIN_FAILED = "signin_failed", "failed sign-in (wrong e-mail or password)"
        MFA_SUCCEEDED = "mfa_succeeded", "second factor verified"
        MFA_FAILED = "mfa_failed", "second factor rejected"
        LOCKED_OUT = "locked_out", "locked out"
        TOKEN_REUSED = "token_reused", "refresh token reused: session revoked"
        PASSWORD_CHANGED = "password_changed", "password changed"
        FACTOR_ADDED = "factor_added", "second factor added"
        FACTOR_REMOVED = "factor_removed", "second factor removed"
        BACKUP_CODES_REGENERATED = "backup_codes_regenerated", "backup codes regenerated"
        SESSION_REVOKED = "session_revoked", "session revoked"
        NOT_ME = "not_me", "listener reported a sign-in as not theirs"
        CREDENTIAL_STUFFING = "credential_stuffing", "credential stuffing from one network"

    class Decision(models.TextChoices):
        ALLOW = "allow", "allowed"
        CHALLENGE = "challenge", "second factor required"
        DENY = "deny", "refused"

    class Level(models.TextChoices):
        LOW = "low", "low"
        MEDIUM = "medium", "medium"
        HIGH = "high", "high"

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="security_events"
    )
    data_key_id = models.UUIDField(null=True, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True)
    level = models.CharField(max_length=10, choices=Level.choices, blank=True)
    score = models.PositiveSmallIntegerField(default=0)
    reasons = models.JSONField(default=list, blank=True)
    device = models.ForeignKey(KnownDevice, null=True, blank=True, on_delete=models.SET_NULL)
    account_index = models.CharField(max_length=64, blank=True)
    ip_index = models.CharField(max_length=64, blank=True)
    network_index = models.CharField(max_length=64, blank=True)
    country_index = models.CharField(max_length=64, blank=True)
    context = EncryptedJSONField(null=True, blank=True)

    objects = SecurityEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["account_index", "occurred_at"]),
            models.Index(fields=["ip_index", "occurred_at"]),
            models.Index(fields=["user", "kind", "occurred_at"]),
        ]

    def __str__(self) -> str:
        return f"security event {self.pk} ({self.kind})"


class SecurityAlert(models.Model):
    """Something a security analyst must look at: credential stuffing, token reuse, impossible
    travel, a burst of lockouts. Shown in the admin as it happens, and sent to a webhook if set."""

    class Kind(models.TextChoices):
        CREDENTIAL_STUFFING = "credential_stuffing", "credential stuffing"
        TOKEN_REUSE = "token_reuse", "refresh token reuse"
        IMPOSSIBLE_TRAVEL = "impossible_travel", "impossible travel"
        LOCKOUTS = "lockouts", "many lockouts"
        BLOCKED_SIGNIN = "blocked_signin", "high-risk sign-in refused"

    class Severity(models.TextChoices):
        WARNING = "warning", "warning"
        CRITICAL = "critical", "critical"

    id = models.BigAutoField(primary_key=True)
    raised_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="security_alerts"
    )
    event = models.ForeignKey(SecurityEvent, null=True, blank=True, on_delete=models.SET_NULL)
    details = models.JSONField(default=dict, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-raised_at"]

    def __str__(self) -> str:
        return f"alert {self.pk} ({self.kind})"
