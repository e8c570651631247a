"""Django's PostgreSQL compilers, each reading encrypted columns a batch of rows at a time, and an
insert compiler that sends a bulk INSERT's ciphertexts as binary arrays.

Django inserts many rows on PostgreSQL as ``SELECT * FROM UNNEST(%s::uuid[], %s::bytea[], ...)``,
one array per column, and its cursors bind parameters on the client: each array is written into the
statement's text, and psycopg escapes every element of a ``bytea`` array with a regular expression
in Python. For 500 users with seven encrypted columns that was most of the save (68 us a row, 10 us
in binary). So an INSERT of several rows with encrypted columns runs on a cursor that binds on the
server (``identity.db.binding_on_server``, never prepared), and its ``bytea`` and ``uuid`` arrays,
whose elements are of exactly the array's type, are sent in binary (``%b``); every other column as
Django sends it. A statement that Django writes as ``VALUES`` instead (an expression among the
values) runs as Django runs it, bound on the client: on the server it could not pass 65,535
parameters.
"""

from typing import Any

from django.db.backends.postgresql import compiler as django
from django.db.backends.postgresql.compiler import InsertUnnest

from identity.backends.compiler import opening_compilers
from identity.crypto.fields import EncryptedField
from identity.db import binding_on_server

SQLCompiler, _SQLInsertCompiler, SQLDeleteCompiler, SQLUpdateCompiler, SQLAggregateCompiler = opening_compilers(
    django, __name__
)

# Array types whose binary form psycopg writes with the very element type the cast names.
BINARY_ARRAYS = ("bytea", "uuid")


class SQLInsertCompiler(_SQLInsertCompiler):  # type: ignore[misc, valid-type]
    binary_arrays = False  # while executing: write bytea and uuid arrays as %b
    wrote_binary = False  # the statement built has %b placeholders
    _statements: Any = None  # as_sql()'s result, made before the cursor is chosen

    def execute_sql(self, returning_fields: Any = None) -> Any:
        query = self.query
        if query.raw or len(query.objs) < 2 or not any(isinstance(f, EncryptedField) for f in query.fields):
            return super().execute_sql(returning_fields)
        # The statement is built first, to know which cursor it needs: only Django's UNNEST form
        # has arrays to send in binary. When Django falls back to VALUES (an expression among the
        # values, a field with its own placeholder), the statement runs exactly as Django runs it,
        # bound on the client: bound on the server it would be limited to 65,535 parameters.
        self.returning_fields = returning_fields  # as Django's execute_sql sets it, for RETURNING
        self.binary_arrays, self.wrote_binary = True, False
        try:
            self._statements = self.as_sql()
            if not self.wrote_binary:
                return super().execute_sql(returning_fields)
            with binding_on_server(self.connection):
                return super().execute_sql(returning_fields)
        finally:
            self.binary_arrays = self.wrote_binary = False
            self._statements = None

    def as_sql(self) -> Any:
        return super().as_sql() if self._statements is None else self._statements

    def assemble_as_sql(self, fields: Any, value_rows: Any) -> Any:
        sql, params = super().assemble_as_sql(fields, value_rows)
        if self.binary_arrays and isinstance(sql, InsertUnnest):
            self.wrote_binary = True
            sql = InsertUnnest(
                [
                    placeholder.replace("(%s)", "(%b)", 1)
                    if field.db_type(self.connection).split("(")[0] in BINARY_ARRAYS
                    else placeholder
                    for placeholder, field in zip(sql, fields, strict=True)
                ]
            )
        return sql, params
