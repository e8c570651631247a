"""Django's SQLite compilers, each reading encrypted columns a batch of rows at a time."""

from django.db.models.sql import compiler as django

from identity.backends.compiler import OpeningCompiler


class SQLCompiler(OpeningCompiler, django.SQLCompiler):
    pass


class SQLInsertCompiler(OpeningCompiler, django.SQLInsertCompiler):
    pass


class SQLDeleteCompiler(OpeningCompiler, django.SQLDeleteCompiler):
    pass


class SQLUpdateCompiler(OpeningCompiler, django.SQLUpdateCompiler):
    pass


class SQLAggregateCompiler(OpeningCompiler, django.SQLAggregateCompiler):
    pass
