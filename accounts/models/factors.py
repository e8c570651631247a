"""Second factors on django-otp's device framework, with their secrets encrypted or hashed.

django-otp's own TOTPDevice and StaticToken keep the TOTP key and the backup codes in clear
(PITFALLS.md); here the TOTP key is AES-256-GCM ciphertext under the listener's key and backup codes
are stored as HMAC-SHA256 digests, so a database dump lets nobody produce a valid code.
"""

from __future__ import annotations

import binascii
import time
from typing import Any

from django.db import models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP
from django_otp.util import random_hex

from identity.crypto.fields import EncryptedTextField


def new_totp_secret() -> str:
    return str(random_hex(20))  # 160 bits, as RFC 4226 recommends


class TotpFactor(TimestampMixin, ThrottlingMixin, Device):
    """RFC 6238 TOTP: 6 digits, 30-second steps, at most one step of drift either way, each code
    accepted once (``last_t``)."""

    data_key_id = models.UUIDField()
    secret = EncryptedTextField(max_length=80)
    digits = models.PositiveSmallIntegerField(default=6)
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    tolerance = models.PositiveSmallIntegerField(default=1)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "TOTP factor"

    @property
    def bin_key(self) -> bytes:
        return binascii.unhexlify(str(self.secret).encode())

    def totp(self, at: float | None = None) -> TOTP:
        totp = TOTP(self.bin_key, self.step, self.t0, self.digits)
        totp.time = at if at is not None else time.time()
        return totp

    def verify_token(self, token: Any) -> bool:
        """True at most once per time step. Saves the outcome (``last_t``, the throttle), as
        django-otp's devices do, so every caller (our services, django-otp's admin login) is safe
        from replay. Callers check ``verify_is_allowed()`` first."""
        try:
            code = int(str(token).strip())
        except (TypeError, ValueError):
            code = -1
        totp = self.totp()
        if code >= 0 and totp.verify(code, self.tolerance, self.last_t + 1):
            self.last_t = totp.t()
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save(
                update_fields=["last_t", "throttling_failure_count", "throttling_failure_timestamp", "last_used_at"]
            )
            return True
        self.throttle_increment(commit=True)
        return False

    def get_throttle_factor(self) -> int:
        return 1


class BackupCodeFactor(ThrottlingMixin, Device):
    """Ten single-use backup codes of 80 bits each, stored as keyed digests."""

    generated_at = models.DateTimeField(auto_now_add=True)

    class Meta(Device.Meta):
        verbose_name = "backup code set"

    def get_throttle_factor(self) -> int:
        return 1


class BackupCode(models.Model):
    factor = models.ForeignKey(BackupCodeFactor, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["factor", "code_hash"], name="backupcode_unique_in_set")]

    def __str__(self) -> str:
        return f"backup code {self.pk}"
