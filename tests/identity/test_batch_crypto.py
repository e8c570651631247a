"""Encryption and decryption a batch of rows at a time: the same ciphertext format and the same
outcomes as value by value, whichever column a value sits in.

Requirement: issue #2 "Field encryption" (ciphertext with a version, the key id and authenticated
data binding it to model and field; tampering or moving a value raises; a wrong or missing key is
an error, never a pass-through; a page of users does not unwrap a key per field); REGULATIONS.md
G-17 (a shredded key leaves the subject's values unreadable, read as erased).

The INSERT path is ``identity.backends.compiler.SealingInsertCompiler`` with ``fields.seal_columns``;
the SELECT path ``OpeningCompiler`` with ``fields.open_columns``, which opens a row's values with the
key named by its first value and leaves every value that does not open so to the per-value path.
The cases below put the odd value in each column, the first and the later ones.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from identity.crypto import envelope, keystore
from identity.crypto.envelope import Erased
from identity.crypto.errors import DecryptionError, KeyShreddedError, UnknownKeyError, UnsupportedFormatError
from identity.models import SubjectKey
from tests.identity.vault_columns import TABLE, raw, write_raw
from tests.testapp.models import Vault

pytestmark = pytest.mark.django_db

COLUMNS = ("text", "other_text", "email", "day", "doc")
VALUES = {
    "text": "Ölçü 🎵 secret text",
    "other_text": "another value",
    "email": "listener@example.test",
    "day": datetime.date(2012, 2, 29),
    "doc": {"genres": ["jazz", "metal"], "n": 3},
}


def bulk(n: int) -> list[Vault]:
    rows = [Vault(**VALUES) for _ in range(n)]
    keystore.ensure_keys(row.data_key_id for row in rows)
    return Vault.objects.bulk_create(rows)


def test_bulk_create_seals_each_row_under_its_own_subjects_key(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    rows = bulk(30)
    tokens = {(row.pk, c): raw(row.pk, c) for row in rows for c in COLUMNS}
    for row in rows:
        for column in COLUMNS:
            token = tokens[row.pk, column]
            assert token[0] == envelope.VERSION
            assert envelope.key_id_of(token) == row.data_key_id  # the row's subject, not a batch key
            plaintext = envelope.decrypt(token, context=f"testapp.vault.{column}")
            assert plaintext == Vault._meta.get_field(column).encode_value(VALUES[column])  # type: ignore[attr-defined]
    nonces = [t[17:29] for t in tokens.values()]
    assert len(set(nonces)) == len(nonces)  # one random nonce per value, never shared in the batch
    keystore.clear_cache()
    with django_assert_num_queries(2):  # the rows, then their 30 keys in one query
        assert all({c: getattr(v, c) for c in COLUMNS} == VALUES for v in Vault.objects.all())


def test_create_save_and_bulk_create_all_read_back_their_values() -> None:
    one = Vault.objects.create(**VALUES)  # an INSERT of one row: the same compiler
    two = Vault(**VALUES)
    two.save()
    for row in (one, two, *bulk(2)):
        assert {c: getattr(Vault.objects.get(pk=row.pk), c) for c in COLUMNS} == VALUES


@pytest.mark.parametrize("column", COLUMNS)
def test_a_tampered_value_is_refused_in_any_column(column: str) -> None:
    vault = Vault.objects.create(**VALUES)
    token = bytearray(raw(vault.pk, column))
    token[-1] ^= 0x01
    write_raw(vault.pk, column, bytes(token))
    for cold in (False, True):
        if cold:
            keystore.clear_cache()
        with pytest.raises(DecryptionError, match=f"testapp.vault.{column}"):
            list(Vault.objects.filter(pk=vault.pk))


@pytest.mark.parametrize("column", COLUMNS)
def test_a_value_relabelled_with_the_rows_key_is_refused_in_any_column(column: str) -> None:
    donor, vault = Vault.objects.create(**VALUES), Vault.objects.create(**VALUES)
    token = bytearray(raw(donor.pk, column))
    token[1:17] = vault.data_key_id.bytes
    write_raw(vault.pk, column, bytes(token))
    with pytest.raises(DecryptionError):
        list(Vault.objects.filter(pk=vault.pk))


@pytest.mark.parametrize("column", COLUMNS)
def test_a_value_moved_to_another_column_is_refused_in_any_column(column: str) -> None:
    vault = Vault.objects.create(**VALUES)
    source = "other_text" if column == "text" else "text"
    write_raw(vault.pk, column, raw(vault.pk, source))
    with pytest.raises(DecryptionError, match=f"testapp.vault.{column}"):
        list(Vault.objects.filter(pk=vault.pk))


@pytest.mark.parametrize("column", COLUMNS)
@pytest.mark.parametrize("garbage", [b"\x01short", b"\x02" + bytes(60), b"plain text someone wrote in here, long"])
def test_a_value_that_is_no_ciphertext_is_refused_in_any_column(column: str, garbage: bytes) -> None:
    vault = Vault.objects.create(**VALUES)
    write_raw(vault.pk, column, garbage)
    keystore.clear_cache()
    with pytest.raises(UnsupportedFormatError):
        list(Vault.objects.filter(pk=vault.pk))


@pytest.mark.parametrize("column", COLUMNS)
def test_a_value_under_an_unknown_key_is_an_error_in_any_column(column: str) -> None:
    vault = Vault.objects.create(**VALUES)
    token = bytearray(raw(vault.pk, column))
    token[1:17] = uuid.uuid4().bytes
    write_raw(vault.pk, column, bytes(token))
    keystore.clear_cache()
    with pytest.raises(UnknownKeyError, match="does not exist"):
        list(Vault.objects.filter(pk=vault.pk))


@pytest.mark.parametrize("column", COLUMNS)
def test_a_value_under_another_key_than_its_rows_first_opens_under_its_own(column: str) -> None:
    """A row whose values are not all under one key (a value written under another subject's key,
    say while a subject's values are re-keyed): each opens under the key its header names."""
    donor = Vault.objects.create(**{**VALUES, "text": "the donor's text", "other_text": "the donor's other"})
    vault = Vault.objects.create(**VALUES)
    write_raw(vault.pk, column, raw(donor.pk, column))
    expected = {**VALUES, column: getattr(donor, column)}
    for cold in (False, True):
        if cold:
            keystore.clear_cache()
        loaded = Vault.objects.get(pk=vault.pk)
        assert {c: getattr(loaded, c) for c in COLUMNS} == expected


def test_a_row_under_a_shredded_key_reads_erased_and_its_neighbours_do_not() -> None:
    rows = bulk(3)
    keystore.shred(rows[1].data_key_id)
    for cold in (False, True):
        if cold:
            keystore.clear_cache()
        loaded = {v.pk: v for v in Vault.objects.all()}
        assert all(isinstance(getattr(loaded[rows[1].pk], c), Erased) for c in COLUMNS)
        for row in (rows[0], rows[2]):
            assert {c: getattr(loaded[row.pk], c) for c in COLUMNS} == VALUES


def test_bulk_create_refuses_new_values_for_an_erased_subject_and_writes_nothing() -> None:
    erased = Vault.objects.create(**VALUES)
    keystore.shred(erased.data_key_id)
    rows = [Vault(**VALUES), Vault(data_key_id=erased.data_key_id, **VALUES)]
    keystore.ensure_keys([rows[0].data_key_id])
    with pytest.raises(KeyShreddedError), transaction.atomic():
        Vault.objects.bulk_create(rows)
    assert Vault.objects.count() == 1


def test_an_erased_subjects_row_without_new_values_is_written_back_untouched() -> None:
    """Only a value to encrypt asks for the key: a copy of an erased row (its values Erased or
    empty) is written with the stored ciphertexts, as ``save()`` does."""
    original = Vault.objects.create(**VALUES)
    keystore.shred(original.data_key_id)
    loaded = Vault.objects.get(pk=original.pk)
    copy = Vault(data_key_id=loaded.data_key_id, **{c: getattr(loaded, c) for c in COLUMNS})
    copy.day = None
    Vault.objects.bulk_create([copy])
    assert raw(copy.pk, "email") == raw(original.pk, "email")
    assert Vault.objects.get(pk=copy.pk).day is None


def test_a_row_without_a_data_key_is_refused_before_anything_is_written() -> None:
    rows = [Vault(**VALUES), Vault(**VALUES)]
    rows[1].data_key_id = None  # type: ignore[assignment]
    with pytest.raises(ImproperlyConfigured, match="data_key_id is empty"), transaction.atomic():
        Vault.objects.bulk_create(rows)
    assert Vault.objects.count() == 0
    assert not SubjectKey.objects.filter(pk=rows[0].data_key_id).exists()


def test_a_field_class_with_its_own_pre_save_keeps_it_on_insert() -> None:
    """A subclass that does something in ``pre_save`` (here, trimming) is asked value by value, as
    Django does: the batch path only takes the fields whose saving it reproduces."""
    from identity.crypto.fields import EncryptedTextField

    field = Vault._meta.get_field("other_text")
    calls: list[str] = []

    class Trimming(EncryptedTextField):
        def pre_save(self, model_instance, add):  # type: ignore[no-untyped-def]
            calls.append(self.attname)
            setattr(model_instance, self.attname, getattr(model_instance, self.attname).strip())
            return super().pre_save(model_instance, add)

    original = field.__class__
    field.__class__ = Trimming
    try:
        rows = [*bulk(2), Vault.objects.create(**{**VALUES, "other_text": "  padded  "})]
    finally:
        field.__class__ = original
    assert calls == ["other_text"] * 3
    assert Vault.objects.get(pk=rows[2].pk).other_text == "padded"
    assert Vault.objects.get(pk=rows[0].pk).other_text == "another value"


TYPED = "plaintext-listener@example.test, typed into the column by someone at a console"


@pytest.mark.parametrize("column", COLUMNS)
def test_text_written_by_hand_into_a_column_is_no_ciphertext_and_no_letter_of_it_is_shown(column: str) -> None:
    """SQLite keeps a string written into a BLOB column as text; PostgreSQL's bytea takes its bytes.
    Either way the value is refused as no ciphertext, and the error shows nothing of it."""
    vault = Vault.objects.create(**VALUES)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET {connection.ops.quote_name(column)} = %s WHERE id = %s",
            [TYPED if connection.vendor == "sqlite" else TYPED.encode(), vault.pk],
        )
    for cold in (False, True):
        if cold:
            keystore.clear_cache()
        with pytest.raises(UnsupportedFormatError) as refused:
            list(Vault.objects.filter(pk=vault.pk))
        assert str(refused.value) == "stored value is not a ciphertext (no known version byte)"
