"""django-auditlog for staff-facing models, with no plaintext personal data in any diff.

``track_changes(model)`` registers a model with auditlog, masking every encrypted field (the diff
shows that it changed, never its value) and leaving secrets (password hashes) out entirely.
"""

from __future__ import annotations

from auditlog.registry import auditlog
from django.db import models

from identity.crypto.fields import EncryptedField

MASKED = "[encrypted]"


def mask_value(value: str) -> str:
    """auditlog mask callable: the value never reaches the log."""
    return MASKED


def track_changes(model: type[models.Model], *, exclude: tuple[str, ...] = ()) -> None:
    encrypted = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedField)]
    auditlog.register(
        model,
        mask_fields=encrypted,
        mask_callable="compliance.modelchanges.mask_value",
        exclude_fields=list(exclude),
    )
