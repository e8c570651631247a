"""Cursors that bind their parameters on the PostgreSQL server: fixed SQL prepared once per
connection, and the ORM's INSERTs of encrypted rows, whose ciphertexts travel as binary arrays.

Django's psycopg backend binds parameters on the client and turns prepared statements off, so every
statement is parsed and planned by the server anew. For the few statements built once and run on
every sign-in and every bearer-token request (``accounts.services.statements``,
``accounts.services.sessions.Lookups``, the risk engine's history read) planning costs more than
running them: the token lookup joins six tables and plans in ~0.5 ms, then runs in ~0.1 ms.

``fixed_cursor`` gives those statements a server-binding cursor, wrapped by Django as usual (error
translation, ``CaptureQueriesContext``, execute wrappers), on a connection whose
``prepare_threshold`` lets psycopg prepare them (``identity.settings``: ``DATABASE_PREPARED_STATEMENTS``).
psycopg keeps the prepared statements per connection and re-prepares after a reconnect; the ORM's
own cursors stay client-binding and are never prepared. Behind a transaction-mode pooler that
cannot keep prepared statements (PgBouncer before 1.21), set ``DATABASE_PREPARED_STATEMENTS=false``:
the statements are then still bound on the server, never prepared.

Binding on the server is also what lets a parameter travel in binary (``%b``): an array of
``bytea`` bound on the client is written into the statement's text, every element escaped by a
regular expression in Python (``bulk_create`` of 500 encrypted users: 68 us a row, against 10 us
in binary). ``binding_on_server`` makes the ORM's own cursors bind on the server, unprepared, for
the statements run inside it (identity.backends.postgresql.compiler).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper


class _LoggedCursor(CursorDebugWrapper):
    """Logs the statement's text with its placeholders: psycopg keeps no composed text for a
    prepared statement (and the text alone carries no parameter, so no personal data)."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


def fixed_cursor(alias: str, *, binary_results: bool = False) -> CursorWrapper:
    """A cursor for a statement whose text never changes: bound on the server on PostgreSQL (so
    ``%b`` parameters are binary), and prepared where the settings allow it. ``binary_results``
    asks for the rows in binary (a ``bytea`` arrives as its bytes, not as hexadecimal text): only
    for a statement whose columns' binary form psycopg loads as Django expects (no time zones)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    from django.db.backends.postgresql.base import ServerBindingCursor  # type: ignore[attr-defined]

    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = ServerBindingCursor(connection.connection)  # type: ignore[call-arg]
    if binary_results:
        from psycopg import pq

        cursor.format = pq.Format.BINARY  # type: ignore[attr-defined]
    return _LoggedCursor(cursor, connection) if connection.queries_logged else CursorWrapper(cursor, connection)


@functools.cache
def _unprepared_binding_cursor() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class UnpreparedBindingCursor(ServerBindingCursor):  # type: ignore[misc, valid-type]
        """Binds on the server and never prepares: the ORM's statements vary too much to keep."""

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs["prepare"] = False
            return super().execute(query, params, **kwargs)  # type: ignore[misc]

    return UnpreparedBindingCursor


@contextmanager
def binding_on_server(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Inside, the cursors a PostgreSQL ``connection.cursor()`` makes bind their parameters on the
    server, unprepared (identity.backends.postgresql.compiler)."""
    connection.ensure_connection()
    raw = connection.connection
    before = raw.cursor_factory
    raw.cursor_factory = _unprepared_binding_cursor()
    try:
        yield
    finally:
        raw.cursor_factory = before
