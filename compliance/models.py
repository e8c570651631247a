"""Compliance records: the hash-chained audit event log."""

from __future__ import annotations

from django.db import models


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def for_subject_ref(self, subject_ref: str) -> AuditEventQuerySet:
        return self.filter(subject_ref=subject_ref)


class AuditEvent(models.Model):
    """One entry of the append-only, hash-chained event log (``compliance.audit.record``).

    Who acted (``actor_*``) is kept apart from whose data it is (``subject_ref``). Personal details
    are in ``payload``, AES-256-GCM ciphertext under the subject's data key (or the actor's when
    there is no subject), so erasing the subject redacts them without touching the chain.
    ``entry_hash`` is HMAC-SHA256 over the entry's stored bytes and ``prev_hash``.
    """

    class ActorType(models.TextChoices):
        USER = "user", "user"
        SYSTEM = "system", "system"
        ANONYMOUS = "anonymous", "anonymous"

    # Assigned by record() under the chain-head lock: consecutive, so a gap is visible too.
    id = models.BigIntegerField(primary_key=True)
    occurred_at = models.DateTimeField()
    action = models.CharField(max_length=100, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_ref = models.CharField(max_length=64, blank=True, db_index=True)
    subject_ref = models.CharField(max_length=64, blank=True, db_index=True)
    data_key_id = models.UUIDField(null=True, blank=True)
    payload = models.BinaryField(null=True)
    details = models.JSONField(default=dict, blank=True)
    ip_index = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["subject_ref", "occurred_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action}"


class AuditChainHead(models.Model):
    """The single row that serialises appends and remembers the last entry (so a deleted tail shows)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_event_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    length = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"audit chain head at #{self.last_event_id}"
