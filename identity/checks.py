"""System checks: the encryption keys must parse before anything is served."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from identity.crypto.errors import ConfigurationError
from identity.crypto.kek import decode_key, parse_keyring


@checks.register(checks.Tags.security)
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    try:
        parse_keyring(settings.FIELD_ENCRYPTION_KEYS)
    except ConfigurationError as exc:
        errors.append(checks.Error(str(exc), id="identity.E010"))
    try:
        decode_key(settings.BLIND_INDEX_KEY, name="BLIND_INDEX_KEY")
    except ConfigurationError as exc:
        errors.append(checks.Error(str(exc), id="identity.E011"))
    return errors
