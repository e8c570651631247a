"""Random tokens and codes, and how they are stored (digests only)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings

from identity.crypto.kek import decode_key

# Crockford-style alphabet without look-alikes (no 0/O, 1/I/L): easy to read from paper.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_token(prefix: str) -> str:
    """A bearer token: a readable prefix and 256 random bits."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    """SHA-256 of a high-entropy token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def code_digest(code: str, *, purpose: str) -> str:
    """Keyed digest for short codes (backup, e-mailed): a dump alone cannot brute-force them."""
    key = decode_key(settings.BLIND_INDEX_KEY, name="BLIND_INDEX_KEY")
    normalised = code.replace("-", "").replace(" ", "").upper()
    return hmac.new(key, f"{purpose}\x00{normalised}".encode(), hashlib.sha256).hexdigest()


def new_backup_code() -> str:
    """16 characters of a 31-letter alphabet: 79 bits (at least 64, issue #3), shown as XXXX-XXXX-XXXX-XXXX."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def new_numeric_code(digits: int = 6) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))
