"""A model with every encrypted field type, for the field tests (not a real app; no migrations)."""

import uuid

from django.db import models

from identity.crypto.fields import (
    EncryptedDateField,
    EncryptedEmailField,
    EncryptedJSONField,
    EncryptedManager,
    EncryptedTextField,
)


class Vault(models.Model):
    data_key_id = models.UUIDField(default=uuid.uuid4)
    text = EncryptedTextField(blank=True)
    other_text = EncryptedTextField(blank=True)
    email = EncryptedEmailField(blank=True)
    day = EncryptedDateField(null=True)
    doc = EncryptedJSONField(null=True)

    objects = EncryptedManager()

    class Meta:
        app_label = "testapp"
