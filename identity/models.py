"""The key store: one wrapped data-encryption key (DEK) per data subject."""

from __future__ import annotations

import uuid

from django.db import models


class SubjectKeyQuerySet(models.QuerySet["SubjectKey"]):
    def live(self) -> SubjectKeyQuerySet:
        return self.filter(shredded_at__isnull=True)

    def needing_rewrap(self, current_kek_id: str) -> SubjectKeyQuerySet:
        return self.live().exclude(kek_id=current_kek_id)


class SubjectKey(models.Model):
    """A data subject's DEK, wrapped (AES-256-GCM) under a key-encryption key.

    Destroying ``wrapped_key`` (``identity.crypto.keystore.shred``) makes every value encrypted under
    this DEK unreadable wherever it is stored, backups included. The row itself stays, so that a
    value under a destroyed key reads as "erased" rather than as an unknown key.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kek_id = models.CharField(max_length=32, blank=True)
    wrapped_key = models.BinaryField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rewrapped_at = models.DateTimeField(null=True, blank=True)
    shredded_at = models.DateTimeField(null=True, blank=True)

    objects = SubjectKeyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="subjectkey_wrapped_xor_shredded",
                condition=(
                    models.Q(shredded_at__isnull=True, wrapped_key__isnull=False)
                    | models.Q(shredded_at__isnull=False, wrapped_key__isnull=True)
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"subject key {self.pk}"

    @property
    def is_shredded(self) -> bool:
        return self.shredded_at is not None
