"""Django's SQLite compilers, each reading encrypted columns a batch of rows at a time."""

from django.db.models.sql import compiler as django

from identity.backends.compiler import opening_compilers

SQLCompiler, SQLInsertCompiler, SQLDeleteCompiler, SQLUpdateCompiler, SQLAggregateCompiler = opening_compilers(
    django, __name__
)
