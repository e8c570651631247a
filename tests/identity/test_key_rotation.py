"""KEK rotation and re-encryption keep every value readable after the old KEK is removed.

Requirement: issue #2 "rotate_keys / reencrypt"; CONTRACT.md Operations (keys); DESIGN.md
"Management commands rotate the KEK (rewrap DEKs) and re-encrypt rows in batches".
"""

from __future__ import annotations

import base64
import os
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from compliance.models import AuditEvent
from identity.crypto import envelope, keystore
from identity.crypto.errors import UnknownKeyError
from identity.models import SubjectKey
from tests.testapp.models import Vault

pytestmark = pytest.mark.django_db


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_rotation_then_removing_the_old_kek_keeps_values_readable(settings, alice, make_user) -> None:  # type: ignore[no-untyped-def]
    vaults = [Vault.objects.create(text=f"value {i}", email=f"v{i}@example.test") for i in range(7)]
    old_id = SubjectKey.objects.values_list("kek_id", flat=True).first()
    newest = new_key()
    settings.FIELD_ENCRYPTION_KEYS = f"rotated-2:{newest},{settings.FIELD_ENCRYPTION_KEYS}"

    dry = StringIO()
    call_command("rotate_keys", "--dry-run", stdout=dry)
    total = SubjectKey.objects.count()
    assert f"{total} data keys would be rewrapped" in dry.getvalue()
    assert SubjectKey.objects.filter(kek_id=old_id).count() == total  # dry run changed nothing

    out = StringIO()
    call_command("rotate_keys", "--batch-size", "3", "--no-progress", stdout=out)
    assert f"rewrapped {total} data keys" in out.getvalue()
    assert set(SubjectKey.objects.values_list("kek_id", flat=True)) == {"rotated-2"}

    # The old KEK is withdrawn: only the new one remains.
    settings.FIELD_ENCRYPTION_KEYS = f"rotated-2:{newest}"
    keystore.clear_cache()
    for vault in vaults:
        assert Vault.objects.get(pk=vault.pk).text == vault.text
    from accounts.models import User

    assert User.objects.get(pk=alice.pk).display_name == "Alice Listener"
    assert AuditEvent.objects.filter(action="compliance.keys.rotated").count() == 1


def test_rotation_is_resumable_and_idempotent(settings) -> None:  # type: ignore[no-untyped-def]
    for i in range(4):
        Vault.objects.create(text=f"value {i}")
    settings.FIELD_ENCRYPTION_KEYS = f"rotated-2:{new_key()},{settings.FIELD_ENCRYPTION_KEYS}"
    # Simulate an interrupted run: one key was rewrapped before the process died.
    keystore.rewrap(SubjectKey.objects.order_by("pk").first())
    call_command("rotate_keys", "--no-progress", stdout=StringIO())
    out = StringIO()
    call_command("rotate_keys", "--no-progress", stdout=out)
    assert "rewrapped 0 data keys" in out.getvalue()
    assert set(SubjectKey.objects.values_list("kek_id", flat=True)) == {"rotated-2"}


def test_without_rotation_removing_the_old_kek_is_an_error(settings) -> None:  # type: ignore[no-untyped-def]
    vault = Vault.objects.create(text="value")
    settings.FIELD_ENCRYPTION_KEYS = f"rotated-2:{new_key()}"
    keystore.clear_cache()
    with pytest.raises(UnknownKeyError):
        Vault.objects.get(pk=vault.pk)


def test_shredded_keys_are_not_rewrapped(settings) -> None:  # type: ignore[no-untyped-def]
    gone = Vault.objects.create(text="erased")
    kept = Vault.objects.create(text="kept")
    keystore.shred(gone.data_key_id)
    settings.FIELD_ENCRYPTION_KEYS = f"rotated-2:{new_key()},{settings.FIELD_ENCRYPTION_KEYS}"
    call_command("rotate_keys", "--no-progress", stdout=StringIO())
    assert SubjectKey.objects.get(pk=kept.data_key_id).kek_id == "rotated-2"
    shredded = SubjectKey.objects.get(pk=gone.data_key_id)
    assert shredded.wrapped_key is None and shredded.kek_id == ""


def _raw_text(pk: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM testapp_vault WHERE id = %s", [pk])
        return bytes(cursor.fetchone()[0])


def test_reencrypt_rewrites_values_not_under_the_rows_key() -> None:
    vault = Vault.objects.create(text="moving subject")
    stale_key = vault.data_key_id
    # The row now belongs under a new subject key (e.g. a subject's key was replaced).
    new_id = uuid.uuid4()
    keystore.create_key(new_id)
    Vault.objects.filter(pk=vault.pk).update(data_key_id=new_id)

    dry = StringIO()
    call_command("reencrypt", "--dry-run", "--no-progress", stdout=dry)
    assert "would rewrite 1" in dry.getvalue()
    assert envelope.key_id_of(_raw_text(vault.pk)) == stale_key

    out = StringIO()
    call_command("reencrypt", "--batch-size", "1", "--no-progress", stdout=out)
    assert "rewrote 1" in out.getvalue()
    assert envelope.key_id_of(_raw_text(vault.pk)) == new_id
    assert Vault.objects.get(pk=vault.pk).text == "moving subject"

    again = StringIO()
    call_command("reencrypt", "--no-progress", stdout=again)
    assert "rewrote 0" in again.getvalue()


def test_reencrypt_all_gives_fresh_ciphertext_for_every_value(alice) -> None:  # type: ignore[no-untyped-def]
    vault = Vault.objects.create(text="same plaintext")
    before = _raw_text(vault.pk)
    call_command("reencrypt", "--all", "--no-progress", stdout=StringIO())
    after = _raw_text(vault.pk)
    assert before != after
    assert Vault.objects.get(pk=vault.pk).text == "same plaintext"
