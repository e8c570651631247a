"""Route the key store to its own database when KEYSTORE_DATABASE_URL is set.

With the wrapped data keys outside the main database, a backup of the main database holds only
ciphertext: restoring it after an erasure cannot bring the erased subject's key back, because the
key lives (and was destroyed) in the key store. This is what lets erasure reach backups
(docs/architecture.md, "Crypto-shredding and backups").
"""

from __future__ import annotations

from typing import Any

from django.db import models

KEYSTORE_ALIAS = "keystore"
KEY_MODEL = ("identity", "subjectkey")


def _is_key_model(app_label: str, model_name: str | None) -> bool:
    return (app_label, (model_name or "").lower()) == KEY_MODEL


class KeystoreRouter:
    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return KEYSTORE_ALIAS if _is_key_model(model._meta.app_label, model._meta.model_name) else None

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return self.db_for_read(model, **hints)

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if db == KEYSTORE_ALIAS:
            return _is_key_model(app_label, model_name)
        if _is_key_model(app_label, model_name):
            return False
        return None
