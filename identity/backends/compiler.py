"""Compilers that decrypt encrypted columns a batch of rows at a time, whatever the query.

Django converts every value of a row on its own (``SQLCompiler.apply_converters``), so each
encrypted value would look its key up, and a key not cached would cost a query per subject. Here
``get_converters`` takes the encrypted fields' own converter out and marks their columns, and
``apply_converters`` first opens those columns for ``fields.BATCH`` rows together
(``fields.open_columns``: the keys not cached in one query), then runs the other converters. This
covers every query the ORM compiles: a model's rows, a related object's columns brought by
``select_related``, ``values()``/``values_list()``, ``raw()`` and ``RETURNING``. Django offers no
hook between fetching rows and converting them, hence these subclasses of its compilers, named by
the backends of ``identity.backends``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.core.exceptions import FieldError

from identity.crypto.fields import BATCH, EncryptedField, open_columns, seal_columns


class _Opened(list):  # type: ignore[type-arg]
    """An encrypted column's converters without its field's own: the column is opened first."""

    def __init__(self, converters: list[Any], field: EncryptedField) -> None:
        super().__init__(converters)
        self.field = field


def _encrypted(expression: Any) -> EncryptedField | None:
    try:
        field = expression.output_field
    except (AttributeError, FieldError):  # an expression without a single output field: not ours
        return None
    return field if isinstance(field, EncryptedField) else None


class OpeningCompiler:
    """Mixed into each of Django's compilers (identity.backends.*.compiler)."""

    def get_converters(self, expressions: list[Any]) -> dict[int, tuple[list[Any], Any]]:
        converters: dict[int, tuple[list[Any], Any]] = super().get_converters(expressions)  # type: ignore[misc]
        for position, (functions, expression) in converters.items():
            field = _encrypted(expression)
            if field is not None:
                kept = [f for f in functions if getattr(f, "__self__", None) is not field]
                converters[position] = (_Opened(kept, field), expression)
        return converters

    def apply_converters(self, rows: Iterable[Any], converters: dict[int, tuple[list[Any], Any]]) -> Iterator[Any]:
        opened = {position: c[0].field for position, c in converters.items() if type(c[0]) is _Opened}
        if not opened:
            yield from super().apply_converters(rows, converters)  # type: ignore[misc]
            return
        rest = {position: c for position, c in converters.items() if c[0]}
        batch: list[list[Any]] = []
        for row in rows:
            batch.append(list(row))
            if len(batch) >= BATCH:
                yield from self._converted(batch, opened, rest)
                batch = []
        if batch:
            yield from self._converted(batch, opened, rest)

    def _converted(
        self, batch: list[list[Any]], opened: dict[int, EncryptedField], rest: dict[int, tuple[list[Any], Any]]
    ) -> Iterable[Any]:
        open_columns(batch, opened)
        if rest:
            connection = self.connection  # type: ignore[attr-defined]
            converters = list(rest.items())
            for row in batch:  # Django's apply_converters, on rows that are lists already
                for position, (functions, expression) in converters:
                    value = row[position]
                    for function in functions:
                        value = function(value, expression, connection)
                    row[position] = value
        return batch


class SealingInsertCompiler:
    """Mixed into Django's insert compiler: the encrypted columns of every row of the INSERT are
    encrypted together (``fields.seal_columns``: a subject's key looked up once per row, the nonces
    of the batch read at once) before Django builds the rows, which then take the ciphertexts as they
    are. Django asks each field's ``pre_save`` value by value; for a ``bulk_create`` of 500 users
    that was seven key lookups and seven reads of the random source per user.

    Only an INSERT with encrypted columns has its ``pre_save_val`` and ``prepare_value`` replaced,
    for that compiler alone, by closures over the sealed values: the INSERT of any other model runs
    Django's own methods, with no call added per value."""

    def as_sql(self) -> Any:
        query = self.query  # type: ignore[attr-defined]
        if query.fields and not query.raw:
            # A field class with its own pre_save or encrypt_for keeps them: value by value, as Django asks.
            encrypted = [
                f
                for f in query.fields
                if isinstance(f, EncryptedField)
                and type(f).pre_save is EncryptedField.pre_save
                and type(f).encrypt_for is EncryptedField.encrypt_for
            ]
            if encrypted:
                self._use_sealed(seal_columns(query.objs, encrypted))
        return super().as_sql()  # type: ignore[misc]

    def _use_sealed(self, sealed: dict[int, dict[int, bytes | None]]) -> None:
        django_pre_save_val = getattr(self, "pre_save_val")  # noqa: B009 - Django's, set on this instance below
        django_prepare_value = getattr(self, "prepare_value")  # noqa: B009

        def pre_save_val(field: Any, obj: Any) -> Any:
            column = sealed.get(id(field))
            return django_pre_save_val(field, obj) if column is None else column[id(obj)]

        def prepare_value(field: Any, value: Any) -> Any:
            if type(value) is bytes and id(field) in sealed:
                return value  # a ciphertext: both drivers take bytes for a binary column
            return django_prepare_value(field, value)

        setattr(self, "pre_save_val", pre_save_val)  # noqa: B010 - on this compiler alone
        setattr(self, "prepare_value", prepare_value)  # noqa: B010


COMPILERS = ("SQLCompiler", "SQLInsertCompiler", "SQLDeleteCompiler", "SQLUpdateCompiler", "SQLAggregateCompiler")


def opening_compilers(django_module: Any, module_name: str) -> tuple[Any, ...]:
    """Each of a backend's compilers (``COMPILERS``, in that order) with ``OpeningCompiler`` first,
    and the insert compiler with ``SealingInsertCompiler`` before it."""
    compilers = []
    for name in COMPILERS:
        bases: tuple[type, ...] = (OpeningCompiler, getattr(django_module, name))
        if name == "SQLInsertCompiler":
            bases = (SealingInsertCompiler, *bases)
        compilers.append(type(name, bases, {"__module__": module_name}))
    return tuple(compilers)
