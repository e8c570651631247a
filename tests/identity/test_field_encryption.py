"""Field encryption: AES-256-GCM per-subject keys and every documented failure outcome.

Requirement: DESIGN.md "Encryption at rest: AES-256"; issue #2 "Field encryption"; REGULATIONS.md
G-17 (erasure reaches every copy: crypto-shredding).
"""

from __future__ import annotations

import base64
import datetime
import os
import uuid

import pytest
from django.core.exceptions import FieldError
from django.db import connection, transaction

from identity.crypto import envelope, keystore
from identity.crypto.envelope import Erased
from identity.crypto.errors import (
    DecryptionError,
    KeyShreddedError,
    KeyUnwrapError,
    UnknownKeyError,
    UnsupportedFormatError,
)
from identity.models import SubjectKey
from tests.identity.vault_columns import raw, write_raw
from tests.testapp.models import Vault

pytestmark = pytest.mark.django_db


def make_vault() -> Vault:
    return Vault.objects.create(
        text="Ölçü 🎵 secret text",
        other_text="another value",
        email="listener@example.test",
        day=datetime.date(2012, 2, 29),
        doc={"genres": ["jazz", "metal"], "n": 3},
    )


def test_values_round_trip_and_are_ciphertext_in_the_column() -> None:
    vault = make_vault()
    loaded = Vault.objects.get(pk=vault.pk)
    assert loaded.text == "Ölçü 🎵 secret text"
    assert loaded.email == "listener@example.test"
    assert loaded.day == datetime.date(2012, 2, 29)
    assert loaded.doc == {"genres": ["jazz", "metal"], "n": 3}
    stored = raw(vault.pk, "text")
    assert stored[0] == envelope.VERSION
    assert envelope.key_id_of(stored) == vault.data_key_id
    assert b"secret" not in stored and "Ölçü".encode() not in stored


def test_same_value_encrypts_differently_each_time() -> None:
    a = Vault.objects.create(text="same")
    b = Vault.objects.create(text="same", data_key_id=a.data_key_id)
    assert raw(a.pk, "text") != raw(b.pk, "text")


def test_each_subject_has_its_own_data_key() -> None:
    a, b = make_vault(), make_vault()
    assert a.data_key_id != b.data_key_id
    assert SubjectKey.objects.filter(pk__in=[a.data_key_id, b.data_key_id]).count() == 2
    assert envelope.key_id_of(raw(a.pk, "email")) != envelope.key_id_of(raw(b.pk, "email"))


def test_tampered_ciphertext_raises() -> None:
    vault = make_vault()
    token = bytearray(raw(vault.pk, "text"))
    token[-1] ^= 0x01
    write_raw(vault.pk, "text", bytes(token))
    keystore.clear_cache()
    with pytest.raises(DecryptionError, match="testapp.vault.text"):
        Vault.objects.get(pk=vault.pk)


def test_value_moved_to_another_column_raises() -> None:
    vault = make_vault()
    write_raw(vault.pk, "other_text", raw(vault.pk, "text"))
    with pytest.raises(DecryptionError, match="moved"):
        Vault.objects.get(pk=vault.pk)


def test_value_moved_to_another_subjects_row_raises() -> None:
    a, b = make_vault(), make_vault()
    token = bytearray(raw(a.pk, "text"))
    token[1:17] = b.data_key_id.bytes  # relabel with the other subject's key id
    write_raw(b.pk, "text", bytes(token))
    with pytest.raises(DecryptionError):
        Vault.objects.get(pk=b.pk)


def test_unknown_data_key_raises() -> None:
    vault = make_vault()
    token = bytearray(raw(vault.pk, "text"))
    token[1:17] = uuid.uuid4().bytes
    write_raw(vault.pk, "text", bytes(token))
    with pytest.raises(UnknownKeyError, match="does not exist"):
        Vault.objects.get(pk=vault.pk)


def test_unknown_kek_id_raises(settings) -> None:  # type: ignore[no-untyped-def]
    vault = make_vault()
    SubjectKey.objects.filter(pk=vault.data_key_id).update(kek_id="retired-kek")
    keystore.clear_cache()
    with pytest.raises(UnknownKeyError, match="retired-kek"):
        Vault.objects.get(pk=vault.pk)


def test_wrong_kek_material_raises(settings) -> None:  # type: ignore[no-untyped-def]
    vault = make_vault()
    kek_id = SubjectKey.objects.get(pk=vault.data_key_id).kek_id
    settings.FIELD_ENCRYPTION_KEYS = f"{kek_id}:" + base64.b64encode(os.urandom(32)).decode()
    keystore.clear_cache()
    with pytest.raises(KeyUnwrapError, match="could not be unwrapped"):
        Vault.objects.get(pk=vault.pk)


def test_garbage_in_the_column_is_an_error_not_a_pass_through() -> None:
    vault = make_vault()
    write_raw(vault.pk, "text", b"plain text someone wrote")
    with pytest.raises(UnsupportedFormatError):
        Vault.objects.get(pk=vault.pk)


def test_shredded_key_reads_as_erased_and_blocks_new_writes() -> None:
    vault = make_vault()
    assert keystore.shred(vault.data_key_id) is True
    assert keystore.shred(vault.data_key_id) is False  # idempotent
    loaded = Vault.objects.get(pk=vault.pk)
    for name in ("text", "email", "day", "doc"):
        value = getattr(loaded, name)
        assert isinstance(value, Erased), name
        assert str(value) == "[erased]"
    # Saving the row again keeps the ciphertext untouched rather than corrupting it.
    before = raw(vault.pk, "email")
    loaded.save()
    assert raw(vault.pk, "email") == before
    loaded.text = "new value for an erased subject"
    with pytest.raises(KeyShreddedError), transaction.atomic():
        loaded.save()
    row = SubjectKey.objects.get(pk=vault.data_key_id)
    assert row.wrapped_key is None and row.shredded_at is not None


def test_shredding_one_subject_leaves_others_readable() -> None:
    a, b = make_vault(), make_vault()
    keystore.shred(a.data_key_id)
    assert Vault.objects.get(pk=b.pk).text == "Ölçü 🎵 secret text"


def test_sql_lookups_on_encrypted_columns_are_refused() -> None:
    make_vault()
    with pytest.raises(FieldError, match="Unsupported lookup"):
        list(Vault.objects.filter(email="listener@example.test"))
    assert Vault.objects.filter(day__isnull=False).count() == 1


def test_queryset_update_with_plaintext_is_refused() -> None:
    vault = make_vault()
    with pytest.raises(FieldError, match="encrypted"), transaction.atomic():
        Vault.objects.filter(pk=vault.pk).update(text="plain")
    assert Vault.objects.get(pk=vault.pk).text == "Ölçü 🎵 secret text"


def test_null_stays_null_and_empty_string_is_encrypted() -> None:
    vault = Vault.objects.create(text="", day=None, doc=None)
    assert raw(vault.pk, "text")[0] == envelope.VERSION
    loaded = Vault.objects.get(pk=vault.pk)
    assert loaded.text == "" and loaded.day is None and loaded.doc is None


def test_key_created_in_a_rolled_back_transaction_is_never_reused() -> None:
    key_id = uuid.uuid4()
    with pytest.raises(RuntimeError), transaction.atomic():
        Vault.objects.create(text="doomed", data_key_id=key_id)
        raise RuntimeError("roll back")
    assert not SubjectKey.objects.filter(pk=key_id).exists()
    vault = Vault.objects.create(text="kept", data_key_id=key_id)
    keystore.clear_cache()
    assert Vault.objects.get(pk=vault.pk).text == "kept"


def test_page_of_rows_unwraps_each_key_once(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        make_vault()
    keystore.clear_cache()
    # One query for the rows and one for all their subjects' keys: none per row or per field.
    with django_assert_num_queries(2):
        rows = list(Vault.objects.all())
        assert all(row.email == "listener@example.test" for row in rows)
    # Keys stay unwrapped in the process: reading the page again needs the row query only.
    with django_assert_num_queries(1):
        assert len(list(Vault.objects.all())) == 5


def test_a_page_opens_every_row_whatever_its_key_state(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    """The batch path (identity.backends.compiler, fields.open_columns): on one page a subject whose
    key is cached, one whose key is not, and one whose key was destroyed; the keys not cached come in
    one query."""
    cached, uncached, erased = make_vault(), make_vault(), make_vault()
    keystore.shred(erased.data_key_id)
    keystore.clear_cache()
    keystore.load_keys([cached.data_key_id.bytes])
    with django_assert_num_queries(2):
        rows = {row.pk: row for row in Vault.objects.order_by("pk")}
    for row in (rows[cached.pk], rows[uncached.pk]):
        assert (row.text, row.email, row.day, row.doc) == (
            "Ölçü 🎵 secret text",
            "listener@example.test",
            datetime.date(2012, 2, 29),
            {"genres": ["jazz", "metal"], "n": 3},
        )
        assert row.__dict__["text"] == "Ölçü 🎵 secret text"  # opened before the row was handed out
    assert all(isinstance(getattr(rows[erased.pk], n), Erased) for n in ("text", "email", "day", "doc"))


def test_values_and_values_list_give_plaintext_too() -> None:
    """values()/values_list() rows are opened by the compilers like a model's, their keys in one
    query, whether or not the keys were cached."""
    vault = make_vault()
    keystore.clear_cache()
    assert list(Vault.objects.filter(pk=vault.pk).values_list("email", flat=True)) == ["listener@example.test"]
    keystore.clear_cache()
    row = Vault.objects.values_list("pk", "text", named=True).get(pk=vault.pk)
    assert (row.pk, row.text) == (vault.pk, "Ölçü 🎵 secret text")
    keystore.clear_cache()
    assert Vault.objects.values_list("text", "day").get(pk=vault.pk) == ("Ölçü 🎵 secret text", vault.day)
    keystore.clear_cache()
    assert Vault.objects.filter(pk=vault.pk).values("day", "doc")[0] == {
        "day": datetime.date(2012, 2, 29),
        "doc": {"genres": ["jazz", "metal"], "n": 3},
    }


@pytest.mark.parametrize("garbage", [b"", b"x", b"\x01short", b"plain text someone wrote"])
def test_a_page_with_a_value_that_is_no_ciphertext_is_refused(garbage: bytes) -> None:
    good, bad = make_vault(), make_vault()
    write_raw(bad.pk, "other_text", garbage)
    keystore.clear_cache()
    with pytest.raises(UnsupportedFormatError):
        list(Vault.objects.all())
    assert Vault.objects.get(pk=good.pk).other_text == "another value"


def test_related_objects_brought_by_select_related_are_opened_with_their_batch(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    """Another model's list that brings its subjects along (select_related): their values come opened,
    every subject's key in the same one query as the rows' own, whatever the number of rows."""
    from accounts.models import TotpFactor, User
    from accounts.services.factors import start_totp

    people = [User.objects.create_user(email=f"p{i}@example.test", password="x" * 20) for i in range(5)]
    for person in people:
        start_totp(user=person, name="Phone")
    keystore.clear_cache()
    with django_assert_num_queries(2):  # the rows, then every key they need
        factors = list(TotpFactor.objects.select_related("user").order_by("pk"))
    assert [f.user.__dict__["email"] for f in factors] == [str(p.email) for p in people]
    assert all(isinstance(f.__dict__["secret"], str) for f in factors)


def test_every_query_opens_its_rows_a_plain_managers_too(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    """identity.backends.compiler: whatever the manager or the model that asks, the row's values come
    opened, their key fetched once."""
    vault = make_vault()
    keystore.clear_cache()
    with django_assert_num_queries(2):  # the row, then its key
        loaded = Vault._base_manager.get(pk=vault.pk)
    assert loaded.__dict__["text"] == "Ölçü 🎵 secret text"


def test_a_value_converted_outside_the_orm_is_opened_at_once(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    """A fixed statement's rows converted with the fields' own converters (accounts.services.sessions):
    each value is decrypted as it is converted; a key not cached is fetched once for the row."""
    vault = make_vault()
    keystore.clear_cache()
    text, email = Vault._meta.get_field("text"), Vault._meta.get_field("email")
    tokens = raw(vault.pk, "text"), raw(vault.pk, "email")
    with django_assert_num_queries(1):  # the key, for both values
        assert text.from_db_value(tokens[0], None, connection) == "Ölçü 🎵 secret text"
        assert email.from_db_value(tokens[1], None, connection) == "listener@example.test"


def test_many_keys_created_in_one_transaction_are_not_looked_up_per_value(django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    # Per row: look the new key up, insert it, insert the row. Its three encrypted values reuse the
    # key made in this (still open) transaction instead of looking it up again each time.
    with django_assert_max_num_queries(3 * 20 + 2), transaction.atomic():
        for _ in range(20):
            Vault.objects.create(text="t", email="e@example.test", doc={"a": 1})


def test_key_made_in_a_rolled_back_savepoint_is_made_again() -> None:
    key_id = uuid.uuid4()
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            Vault.objects.create(text="doomed", data_key_id=key_id)
            raise RuntimeError("roll back the savepoint")
        assert not SubjectKey.objects.filter(pk=key_id).exists()
        vault = Vault.objects.create(text="kept", data_key_id=key_id)
    keystore.clear_cache()
    assert Vault.objects.get(pk=vault.pk).text == "kept"


def test_shred_in_time_destroys_only_when_asked_and_runs_the_same_statements() -> None:
    """``keystore.shred_in_time``: the intake of a request without an account destroys its own key
    and, for an account's key, runs the same statements without changing it (issue #4, no
    enumeration through timing)."""
    from django.test.utils import CaptureQueriesContext

    live, own = keystore.create_key(), keystore.create_key()
    keystore.shred(gone := keystore.create_key())
    counts = []
    for key_id, destroy in ((live, False), (gone, False), (own, True)):
        with CaptureQueriesContext(connection) as queries:
            keystore.shred_in_time(key_id, destroy=destroy)
        counts.append(len(queries.captured_queries))
    assert len(set(counts)) == 1
    rows = {row.pk: row for row in SubjectKey.objects.filter(pk__in=[live, own, gone])}
    assert rows[live].wrapped_key is not None and rows[live].shredded_at is None
    assert rows[own].wrapped_key is None and rows[own].shredded_at is not None
    assert rows[gone].kek_id == "" and rows[gone].shredded_at is not None


def test_ensure_keys_makes_only_the_missing_keys_and_keeps_the_existing_ones(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    """Bulk key creation (imports, the benchmarks): one statement per 1,000 keys; a key that exists is
    left exactly as it was and its cached cipher stays the one that opens its values."""
    vault = make_vault()
    before = SubjectKey.objects.get(pk=vault.data_key_id).wrapped_key
    new = [uuid.uuid4() for _ in range(1_200)]
    with django_assert_num_queries(2):
        assert keystore.ensure_keys([vault.data_key_id, *new, new[0]]) == 1_200
    assert SubjectKey.objects.get(pk=vault.data_key_id).wrapped_key == before
    assert SubjectKey.objects.filter(pk__in=new, shredded_at__isnull=True).count() == 1_200
    assert keystore.ensure_keys(new[:10]) == 0
    keystore.clear_cache()
    assert Vault.objects.get(pk=vault.pk).text == "Ölçü 🎵 secret text"
    token = envelope.encrypt(b"x", key_id=new[5], context="testapp.vault.text")
    keystore.clear_cache()
    assert envelope.decrypt(token, context="testapp.vault.text") == b"x"  # the stored key, unwrapped again
