"""The ciphertext format and the AES-256-GCM operations on it.

Format, version 1 (binary, stored as-is in a bytea/BLOB column)::

    0x01 | data key id (16 bytes, the subject's DEK uuid) | nonce (12 bytes) | ciphertext || tag (16 bytes)

Authenticated data: the version byte, the key id and a *context* naming where the value lives
(``app_label.model.field``). A value copied into another column, re-labelled with another key
id, or altered in any bit fails authentication (``DecryptionError``). Nonces are random; each DEK
encrypts one subject's values, far below the 2**32 messages per key that random 96-bit nonces allow.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from identity.crypto import keystore
from identity.crypto.errors import DecryptionError, UnsupportedFormatError

VERSION = 1
VERSION_BYTE = bytes([VERSION])
_HEADER = 1 + 16
NONCE = 12
_TAG = 16
MIN_LENGTH = _HEADER + NONCE + _TAG


@dataclass(frozen=True)
class Erased:
    """What a value under a destroyed (shredded) key reads as.

    It keeps the stored bytes so that saving the row again writes them back untouched.
    """

    raw: bytes

    def __str__(self) -> str:
        return "[erased]"

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Erased)

    def __hash__(self) -> int:
        return hash(Erased)


def key_id_of(token: bytes) -> uuid.UUID:
    """The data key id a ciphertext was made with (no decryption)."""
    check_header(token)
    return uuid.UUID(bytes=bytes(token[1:_HEADER]))


def check_header(token: bytes) -> None:
    if len(token) < MIN_LENGTH:
        raise UnsupportedFormatError("stored value is too short to be a ciphertext")
    if token[0] != VERSION:
        # A small number is a format this version does not know; anything else is no ciphertext at all,
        # and its first byte may be the first letter of a value someone wrote by hand: never shown.
        if token[0] < 16:
            raise UnsupportedFormatError(f"unknown ciphertext version {token[0]}")
        raise UnsupportedFormatError("stored value is not a ciphertext (no known version byte)")


def encrypt(plaintext: bytes, *, key_id: uuid.UUID, context: str | bytes) -> bytes:
    aad_suffix = context if isinstance(context, bytes) else context.encode()
    cipher = keystore.cipher_for_encrypt(key_id)
    header = VERSION_BYTE + key_id.bytes
    nonce = os.urandom(NONCE)
    return header + nonce + cipher.encrypt(nonce, plaintext, header + aad_suffix)


def open_with(cipher: AESGCM | None, token: bytes, aad_suffix: bytes) -> bytes | Erased:
    """Decrypt a checked token with a known cipher (None: the key was shredded)."""
    if cipher is None:
        return Erased(token)
    try:
        return cipher.decrypt(token[_HEADER : _HEADER + NONCE], token[_HEADER + NONCE :], token[:_HEADER] + aad_suffix)
    except InvalidTag:
        where = aad_suffix.decode(errors="replace")
        raise DecryptionError(
            f"value in {where} failed authentication (altered, or moved from another column or key)"
        ) from None


def decrypt(token: bytes | memoryview, *, context: str | bytes) -> bytes | Erased:
    """Plaintext, or ``Erased`` when the subject's key was destroyed. Errors are never swallowed."""
    token = bytes(token)
    aad_suffix = context if isinstance(context, bytes) else context.encode()
    check_header(token)
    cipher = keystore.peek(token[1:_HEADER])
    if cipher is False:
        cipher = keystore.cipher_for_decrypt(uuid.UUID(bytes=token[1:_HEADER]))
    return open_with(cipher, token, aad_suffix)  # type: ignore[arg-type]
