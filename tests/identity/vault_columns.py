"""Reading and writing a test Vault row's columns as stored, past the fields: to look at a ciphertext,
or to put an altered one in its place."""

from __future__ import annotations

from django.db import connection

from tests.testapp.models import Vault

TABLE = Vault._meta.db_table


def raw(pk: int, column: str) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name(column)} FROM {TABLE} WHERE id = %s", [pk])
        return bytes(cursor.fetchone()[0])


def write_raw(pk: int, column: str, value: bytes) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET {connection.ops.quote_name(column)} = %s WHERE id = %s", [value, pk])
