"""Errors of field encryption. None of them carries plaintext, key material or ciphertext."""

from __future__ import annotations


class EncryptionError(Exception):
    """Base class: something about a protected value or its key is wrong."""


class ConfigurationError(EncryptionError):
    """FIELD_ENCRYPTION_KEYS or BLIND_INDEX_KEY is missing or malformed."""


class UnknownKeyError(EncryptionError):
    """The value names a data key, or a data key names a key-encryption key, that does not exist."""


class KeyUnwrapError(EncryptionError):
    """A data key could not be unwrapped: the configured key-encryption key is the wrong one."""


class DecryptionError(EncryptionError):
    """The ciphertext failed authentication: altered, truncated, or moved from another column."""


class UnsupportedFormatError(DecryptionError):
    """The stored value is not in a ciphertext format this version understands."""


class KeyShreddedError(EncryptionError):
    """Raised when encrypting for a subject whose data key was destroyed (erased subject)."""
