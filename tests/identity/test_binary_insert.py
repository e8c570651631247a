"""A bulk INSERT of encrypted rows sends its ciphertexts to PostgreSQL as binary arrays, bound on
the server, and changes nothing else.

Requirement: issue #2 "Performance" (saving and loading 10,000 users at least 3x faster than the
Fernet package: bound on the client, every element of a bytea array was escaped in Python) and
"Field encryption" (the stored values are the same ciphertexts, readable and bound to their column).
identity.backends.postgresql.compiler, identity.db.binding_on_server; docs/architecture.md
"Writing rows".
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext
from psycopg import pq

from accounts.models import SecurityEvent
from identity.backends.postgresql.compiler import SQLInsertCompiler
from identity.crypto import envelope, keystore
from identity.db import binding_on_server, fixed_cursor
from identity.models import SubjectKey
from tests.identity.vault_columns import raw
from tests.testapp.models import Vault

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="binding on the server: PostgreSQL only"),
]

VALUES = {
    "text": 'Ölçü 🎵 \\x00 a backslash and a quote " inside',
    "other_text": "",
    "email": "listener@example.test",
    "day": datetime.date(2012, 2, 29),
    "doc": {"genres": ["jazz", "metal"], "n": 3},
}


def _client_factory() -> type:
    connection.ensure_connection()
    return connection.connection.cursor_factory  # type: ignore[no-any-return]


def _new(n: int, **values: object) -> list[Vault]:
    rows = [Vault(**{**VALUES, **values}) for _ in range(n)]
    keystore.ensure_keys(row.data_key_id for row in rows)
    return rows


def test_the_bulk_insert_sends_bytea_and_uuid_arrays_in_binary_and_reads_back_the_same() -> None:
    before = _client_factory()
    rows = _new(40)
    rows[3].doc = None  # a NULL inside a binary array
    rows[5].text = ""
    with CaptureQueriesContext(connection) as queries:
        created = Vault.objects.bulk_create(rows)
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    # Bound on the server: the logged text holds placeholders, no value and no escaped ciphertext.
    assert "$1" in inserts[0] and "::bytea[]" in inserts[0]
    assert "\\x" not in inserts[0] and "'" not in inserts[0]
    assert all(row.pk is not None for row in created)  # RETURNING came back through the same cursor
    assert _client_factory() is before  # the ORM's next statement binds on the client again

    keystore.clear_cache()
    by_pk = {v.pk: v for v in Vault.objects.filter(pk__in=[r.pk for r in created])}
    for row in created:
        got = by_pk[row.pk]
        assert (got.text, got.other_text, got.email, got.day) == (
            row.text,
            row.other_text,
            VALUES["email"],
            VALUES["day"],
        )
        assert got.doc == (None if row is rows[3] else VALUES["doc"])
        token = raw(row.pk, "email")
        assert envelope.key_id_of(token) == row.data_key_id  # each row under its own subject's key
        assert envelope.decrypt(token, context="testapp.vault.email") == b"listener@example.test"


def test_the_placeholders_are_binary_only_for_bytea_and_uuid_columns_and_only_while_executing() -> None:
    rows = _new(3)
    compiler = SQLInsertCompiler.__new__(SQLInsertCompiler)
    compiler.connection = connection
    fields = [Vault._meta.get_field(name) for name in ("data_key_id", "text", "day")]
    value_rows = [[row.data_key_id, b"\x01", b"\x02"] for row in rows]
    compiler.binary_arrays = False
    sql, _ = compiler.assemble_as_sql(fields, value_rows)
    assert list(sql) == ["(%s)::uuid[]", "(%s)::bytea[]", "(%s)::bytea[]"]
    compiler.binary_arrays = True
    sql, _ = compiler.assemble_as_sql(fields, value_rows)
    assert list(sql) == ["(%b)::uuid[]", "(%b)::bytea[]", "(%b)::bytea[]"]
    # A column of another type keeps the client's text form (its elements' binary type may differ).
    sql, _ = compiler.assemble_as_sql([Vault._meta.get_field("data_key_id"), _text_field()], [[uuid.uuid4(), "x"]] * 2)
    assert list(sql) == ["(%b)::uuid[]", "(%s)::text[]"]


def _text_field():  # type: ignore[no-untyped-def]
    from django.db import models

    field = models.TextField()
    field.set_attributes_from_name("note")
    return field


def test_a_failed_bulk_insert_is_djangos_error_leaves_nothing_and_restores_the_cursor() -> None:
    before = _client_factory()
    rows = _new(5)
    Vault.objects.bulk_create(rows[:1])
    again = _new(4)
    again[2].pk = rows[0].pk  # a primary key that exists: the whole statement fails
    with pytest.raises(IntegrityError), transaction.atomic():
        Vault.objects.bulk_create(again)
    assert _client_factory() is before
    assert not Vault.objects.filter(pk__in=[r.pk for r in again if r is not again[2]]).exists()
    assert Vault.objects.count() == 1
    # Resumable: the same rows without the clash go in.
    del again[2]
    for row in again:
        row.pk = None
    assert len(Vault.objects.bulk_create(again)) == 3


def test_one_row_and_other_models_take_djangos_own_path() -> None:
    before = _client_factory()
    one = _new(1)
    keys = [SubjectKey(id=uuid.uuid4(), kek_id="k", wrapped_key=b"\x00" * 60) for _ in range(2)]
    with CaptureQueriesContext(connection) as queries:
        Vault.objects.bulk_create(one)  # one row: no arrays
        SubjectKey.objects.bulk_create(keys)  # rows of a model without encrypted fields
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 2
    assert not any("$1" in sql for sql in inserts)  # bound on the client, as Django does
    assert _client_factory() is before


def test_binding_on_server_nests_and_the_key_store_sends_its_arrays_in_binary() -> None:
    before = _client_factory()
    with binding_on_server(connection):
        inside = _client_factory()
        with binding_on_server(connection):
            assert _client_factory() is inside
        assert _client_factory() is inside
    assert inside is not before and _client_factory() is before
    ids = [uuid.uuid4() for _ in range(300)]
    assert keystore.ensure_keys(ids) == 300
    with fixed_cursor("default") as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {SubjectKey._meta.db_table} WHERE id = ANY(%b::uuid[])", [ids])
        assert cursor.fetchone()[0] == 300
    keystore.clear_cache()
    keystore.load_keys([i.bytes for i in ids])
    assert all(keystore.peek(i.bytes) for i in ids)


def test_conflicts_ignored_or_updated_in_binary_keep_the_values_readable() -> None:
    rows = _new(3)
    created = Vault.objects.bulk_create(rows)
    again = _new(3, text="written again")
    for old, new in zip(created, again, strict=True):
        new.pk = old.pk
        new.data_key_id = old.data_key_id  # the same subjects: their keys exist already
    Vault.objects.bulk_create(again, ignore_conflicts=True)
    keystore.clear_cache()
    assert {v.text for v in Vault.objects.all()} == {VALUES["text"]}  # nothing replaced
    Vault.objects.bulk_create(again, update_conflicts=True, unique_fields=["id"], update_fields=["text", "doc"])
    keystore.clear_cache()
    assert {v.text for v in Vault.objects.all()} == {"written again"}
    assert Vault.objects.count() == 3


def test_behind_a_pooler_without_prepared_statements_the_binary_statements_still_run() -> None:
    """DATABASE_PREPARED_STATEMENTS=false (PgBouncer before 1.21) leaves prepare_threshold unset:
    the key store's statements are still bound on the server, binary arrays and all, never prepared."""
    connection.close()  # a new session: nothing prepared in it yet
    connection.ensure_connection()
    raw_connection = connection.connection
    before = raw_connection.prepare_threshold
    raw_connection.prepare_threshold = None
    try:
        ids = [uuid.uuid4() for _ in range(50)]
        assert keystore.ensure_keys(ids) == 50
        keystore.clear_cache()
        keystore.load_keys([i.bytes for i in ids])
        assert all(keystore.peek(i.bytes) for i in ids)
        Vault.objects.bulk_create(_new(5))
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM pg_prepared_statements")
            assert cursor.fetchone()[0] == 0
    finally:
        raw_connection.prepare_threshold = before


def test_a_column_empty_in_every_row_goes_in_as_nulls() -> None:
    rows = _new(4, day=None, doc=None)
    created = Vault.objects.bulk_create(rows)
    keystore.clear_cache()
    assert [(v.day, v.doc, v.email) for v in Vault.objects.filter(pk__in=[r.pk for r in created])] == [
        (None, None, VALUES["email"])
    ] * 4


def test_the_arrays_travel_in_binary_and_nothing_of_the_orm_is_prepared() -> None:
    formats: list[list[pq.Format]] = []

    def spy(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        result = execute(sql, params, many, context)
        if sql.startswith("INSERT") and "testapp_vault" in sql:
            formats.append(list(context["cursor"].cursor._query.formats or []))
        return result

    rows = _new(6)
    with connection.execute_wrapper(spy):
        Vault.objects.bulk_create(rows)
    # data_key_id and the five encrypted columns: six arrays, every one in binary.
    assert formats == [[pq.Format.BINARY] * 6]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        assert not [text for (text,) in cursor.fetchall() if "testapp_vault" in text]


def test_a_bulk_insert_django_writes_as_values_runs_as_django_runs_it(alice) -> None:  # type: ignore[no-untyped-def]
    """An expression among the values (here Now()) makes Django write VALUES, one parameter per
    value: bound on the client as Django binds it, never on the server, where 65,535 is the limit."""
    n = 4500  # 4,500 rows of 15 columns: 67,500 parameters
    events = [
        SecurityEvent(user=alice, data_key_id=alice.data_key_id, kind="signin", context={"n": i}, occurred_at=Now())
        for i in range(n)
    ]
    with CaptureQueriesContext(connection) as queries:
        SecurityEvent.objects.bulk_create(events)
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1 and "VALUES" in inserts[0] and "$1" not in inserts[0]
    keystore.clear_cache()
    assert SecurityEvent.objects.filter(user=alice).count() == n
    assert sorted(e.context["n"] for e in SecurityEvent.objects.filter(user=alice)) == list(range(n))
