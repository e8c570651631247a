"""django-auditlog for staff-facing models, with no plaintext personal data in any entry.

``track_changes(model)`` registers a model with auditlog, masking every encrypted field (the diff
shows that it changed, never its value) and leaving secrets (password hashes) out entirely.

``ModelChangeMiddleware`` replaces auditlog's middleware: auditlog copies the actor's e-mail
(``actor_email``) and IP (``remote_addr``) into every entry in clear. We hand it the actor's id
only, so those columns stay empty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auditlog.middleware import AuditlogMiddleware
from auditlog.registry import auditlog
from django.db import models
from django.http import HttpRequest

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


class ModelChangeMiddleware(AuditlogMiddleware):
    """Sets the actor of model-change entries by id ("actor_id"), never through auditlog's "actor"."""

    def get_extra_data(self, request: HttpRequest) -> dict[str, Callable[[], Any]]:
        def actor_id() -> Any:
            user = getattr(request, "user", None)
            return user.pk if user is not None and user.is_authenticated else None

        # auditlog calls a callable value when an entry is saved: the user is resolved lazily.
        return {"actor_id": actor_id}
