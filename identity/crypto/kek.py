"""Key-encryption keys (KEKs) from FIELD_ENCRYPTION_KEYS: ``id:base64(32 bytes)``, the first current."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from identity.crypto.errors import ConfigurationError, UnknownKeyError

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


@dataclass(frozen=True)
class KeyRing:
    current_id: str
    keys: dict[str, bytes]

    def get(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise UnknownKeyError(f"key-encryption key {key_id!r} is not configured in FIELD_ENCRYPTION_KEYS") from None

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]


def decode_key(text: str, *, name: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{name} is not valid base64") from None
    if len(raw) != 32:
        raise ConfigurationError(f"{name} must decode to 32 bytes (AES-256), not {len(raw)}")
    return raw


def parse_keyring(spec: str) -> KeyRing:
    """Parse ``id:base64,id:base64``; raise ConfigurationError naming what is wrong (never the key)."""
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for position, item in enumerate(part.strip() for part in spec.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        if not sep:
            raise ConfigurationError(f"FIELD_ENCRYPTION_KEYS entry {position + 1} is not of the form id:base64key")
        if not KEY_ID_PATTERN.match(key_id):
            raise ConfigurationError(
                f"FIELD_ENCRYPTION_KEYS entry {position + 1}: key id must be 1-32 of A-Z a-z 0-9 _ . -"
            )
        if key_id in keys:
            raise ConfigurationError(f"FIELD_ENCRYPTION_KEYS names key id {key_id!r} twice")
        keys[key_id] = decode_key(encoded, name=f"FIELD_ENCRYPTION_KEYS key {key_id!r}")
        order.append(key_id)
    if not order:
        raise ConfigurationError("FIELD_ENCRYPTION_KEYS holds no key")
    return KeyRing(current_id=order[0], keys=keys)


@lru_cache(maxsize=8)
def _keyring_for(spec: str) -> KeyRing:
    return parse_keyring(spec)


def kek_cipher(kek_id: str) -> AESGCM:
    """The AES-256-GCM cipher of a configured KEK, made once per key ring (a cold page unwraps 100
    data keys with it)."""
    return _kek_cipher(settings.FIELD_ENCRYPTION_KEYS, kek_id)


@lru_cache(maxsize=16)
def _kek_cipher(setting: str, kek_id: str) -> AESGCM:
    return AESGCM(_keyring_for(setting).get(kek_id))


def keyring() -> KeyRing:
    """The configured key ring (re-read when the setting changes, e.g. in tests)."""
    return _keyring_for(settings.FIELD_ENCRYPTION_KEYS)
