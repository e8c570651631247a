"""Blind indexes: HMAC-SHA256 of a normalised value, for exact lookups on encrypted columns."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from functools import lru_cache

from django.conf import settings

from identity.crypto.kek import decode_key


@lru_cache(maxsize=4)
def _key(encoded: str) -> bytes:
    return decode_key(encoded, name="BLIND_INDEX_KEY")


def normalise_email(value: str) -> str:
    """NFKC, trimmed, case-folded: the mailbox as people type it, whatever its case."""
    return unicodedata.normalize("NFKC", value).strip().casefold()


def normalise_phone(value: str) -> str:
    """Digits only, with a leading + kept (E.164-like)."""
    text = unicodedata.normalize("NFKC", value).strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    return ("+" if text.startswith("+") else "") + digits


def blind_index(value: str, *, purpose: str) -> str:
    """Hex HMAC-SHA256 of ``purpose`` and the (already normalised) value.

    The purpose keeps indexes of different kinds apart: an e-mail index cannot be matched against a
    phone index, even for the same string.
    """
    message = purpose.encode("utf-8") + b"\x00" + value.encode("utf-8")
    return hmac.new(_key(settings.BLIND_INDEX_KEY), message, hashlib.sha256).hexdigest()


def email_index(value: str) -> str:
    return blind_index(normalise_email(value), purpose="email")


def phone_index(value: str) -> str:
    return blind_index(normalise_phone(value), purpose="phone")
