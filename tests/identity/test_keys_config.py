"""FIELD_ENCRYPTION_KEYS and BLIND_INDEX_KEY parsing: clear errors that never echo key material.

Requirement: CONTRACT.md Environment (FIELD_ENCRYPTION_KEYS "id:base64(32 bytes)", first current);
DESIGN.md "Encryption at rest: AES-256" (256-bit keys only).
"""

from __future__ import annotations

import base64
import os
import re

import pytest

from identity.crypto.blind import blind_index, email_index, normalise_email, normalise_phone, phone_index
from identity.crypto.errors import ConfigurationError, UnknownKeyError
from identity.crypto.kek import parse_keyring

K1 = base64.b64encode(os.urandom(32)).decode()
K2 = base64.b64encode(os.urandom(32)).decode()


def test_first_key_is_current_and_all_are_kept() -> None:
    ring = parse_keyring(f"new:{K1}, old:{K2}")
    assert ring.current_id == "new"
    assert ring.current == base64.b64decode(K1)
    assert ring.get("old") == base64.b64decode(K2)
    with pytest.raises(UnknownKeyError, match="'gone'"):
        ring.get("gone")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "holds no key"),
        ("justakey", "not of the form"),
        (f"bad id!:{K1}", "key id must be"),
        ("k:" + base64.b64encode(os.urandom(16)).decode(), "32 bytes (AES-256), not 16"),
        ("k:not base64!!", "not valid base64"),
        (f"k:{K1},k:{K2}", "twice"),
    ],
    ids=["empty", "no-colon", "bad-id", "short-key", "not-base64", "twice"],  # not the random keys: xdist
)
def test_malformed_key_configuration_is_refused_without_echoing_keys(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as excinfo:
        parse_keyring(spec)
    secret_part = spec.split(":", 1)[-1]
    if len(secret_part) > 8:
        assert secret_part not in str(excinfo.value)


def test_blind_index_normalises_and_separates_purposes() -> None:
    assert normalise_email("  Ａlice@Example.TEST ") == "alice@example.test"
    assert email_index("ALICE@example.test") == email_index("alice@EXAMPLE.test")
    assert normalise_phone("+49 (30) 123-4567") == "+49301234567"
    assert phone_index("+49 30 1234567") == phone_index("+49-30-1234567")
    assert blind_index("same", purpose="email") != blind_index("same", purpose="phone")
    assert len(email_index("a@b.test")) == 64


def test_blind_index_depends_on_the_key(settings) -> None:  # type: ignore[no-untyped-def]
    before = email_index("alice@example.test")
    settings.BLIND_INDEX_KEY = base64.b64encode(os.urandom(32)).decode()
    assert email_index("alice@example.test") != before
