"""Three copies of the user model's personal fields, differing only in how they are stored.

- ``PlainUser``: plain Django fields, the baseline.
- ``FernetUser``: django-encrypted-model-fields 0.6.5 (Fernet: AES-128-CBC + HMAC-SHA256, one key).
- ``OursUser``: the project's AES-256-GCM fields under a per-subject data key (identity.crypto).

The six fields are those of ``accounts.User`` (email, display_name, date_of_birth, country, region,
phone) plus a JSON document, ``preferences``. Like ``accounts.User`` the primary key is a UUID.
No model points at the user model, so the personal-data registry check has nothing to say.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import models
from encrypted_model_fields import fields as fernet

from identity.crypto import fields as ours


class FernetJSONField(fernet.EncryptedTextField):
    """The package has no JSON field: its EncryptedTextField holding ``json.dumps`` of the value."""

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        if value is not None:
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return super().get_db_prep_save(value, connection)

    def from_db_value(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        text = super().from_db_value(value, *args, **kwargs)
        return None if text is None else json.loads(text)


class PlainUser(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField()
    display_name = models.CharField(max_length=150, blank=True)
    date_of_birth = models.DateField(null=True, blank=True)
    country = models.CharField(max_length=2, blank=True)
    region = models.CharField(max_length=6, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    preferences = models.JSONField(default=dict)


class FernetUser(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = fernet.EncryptedEmailField()
    display_name = fernet.EncryptedCharField(max_length=150, blank=True)
    date_of_birth = fernet.EncryptedDateField(null=True, blank=True)
    country = fernet.EncryptedCharField(max_length=2, blank=True)
    region = fernet.EncryptedCharField(max_length=6, blank=True)
    phone = fernet.EncryptedCharField(max_length=32, blank=True)
    preferences = FernetJSONField(default=dict)


class OursUser(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # As on accounts.User: the subject's data key, indexed.
    data_key_id = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)
    email = ours.EncryptedEmailField()
    display_name = ours.EncryptedTextField(max_length=150, blank=True)
    date_of_birth = ours.EncryptedDateField(null=True, blank=True)
    country = ours.EncryptedTextField(max_length=2, blank=True)
    region = ours.EncryptedTextField(max_length=6, blank=True)
    phone = ours.EncryptedTextField(max_length=32, blank=True)
    preferences = ours.EncryptedJSONField(default=dict)

    # As accounts.User's manager: each batch of rows has its keys unwrapped in one query.
    objects = ours.EncryptedManager()


PERSONAL_FIELDS = ("email", "display_name", "date_of_birth", "country", "region", "phone", "preferences")
