"""Cursors for the hot paths' fixed SQL: prepared once per connection on PostgreSQL.

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
then this is the ordinary cursor.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper


class _LoggedCursor(CursorDebugWrapper):
    """Logs the statement's text with its placeholders: psycopg keeps no composed text for a
    prepared statement (and the text alone carries no parameter, so no personal data)."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


def fixed_cursor(alias: str) -> CursorWrapper:
    """A cursor for a statement whose text never changes; prepared where the database allows it."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if getattr(raw, "prepare_threshold", None) is None:
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor  # type: ignore[attr-defined]

    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = ServerBindingCursor(raw)  # type: ignore[call-arg]
    return _LoggedCursor(cursor, connection) if connection.queries_logged else CursorWrapper(cursor, connection)
