"""Fixed INSERT, UPDATE and DELETE statements for the sign-in's hot path, built once per database.

The ORM compiles every statement anew, about 0.2-0.4 ms of Python each, while a sign-in writes the
same few shapes every time (docs/benchmarks.md, "Sign-in"). Here the SQL text is built once from
the models' metadata, and every value still goes through its field (``pre_save`` for defaults and
encryption, ``get_db_prep_save`` for the database's types), so a row is stored exactly as ``save()``
or ``QuerySet.update()`` would store it. No model signals are sent: use these only for models that
have no receivers (auditlog tracks ``User`` changes, but not the columns written here).
"""

from __future__ import annotations

from typing import Any

from django.db import connections, router
from django.db.models import Field, Model
from django.db.models.fields import AutoFieldMixin

from identity.db import fixed_cursor

_SQL: dict[tuple[Any, ...], str] = {}


def _column(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.concrete
    return field


def insert(obj: Model) -> None:
    """INSERT one new row; an auto-increment primary key is read back, as ``save()`` does."""
    model = type(obj)
    alias = router.db_for_write(model)
    pk = model._meta.pk
    assert pk is not None
    auto = isinstance(pk, AutoFieldMixin) and obj.pk is None
    sql, values = insert_returning_part(obj) if auto else insert_part(obj)
    with fixed_cursor(alias) as cursor:
        cursor.execute(sql, values)
        if auto:
            _read_back_key(obj, cursor, connections[alias])
    obj._state.adding = False
    obj._state.db = alias


def update(model: type[Model], *, where: dict[str, Any], values: dict[str, Any]) -> int:
    """``model.objects.filter(**where).update(**values)`` for plain equality on concrete fields
    (values already in their stored form: an encrypted field takes sealed bytes); the row count."""
    return run(update_part(model, where=where, values=values), using=router.db_for_write(model))


def run(part: tuple[str, list[Any]], *, using: str) -> int:
    """One statement made by a ``*_part`` function, alone; the row count."""
    with fixed_cursor(using) as cursor:
        cursor.execute(*part)
        return int(cursor.rowcount)


def update_part(model: type[Model], *, where: dict[str, Any], values: dict[str, Any]) -> tuple[str, list[Any]]:
    """The statement and parameters of :func:`update`, for :func:`together`."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    set_names, where_names = tuple(values), tuple(where)
    key = ("update", alias, model, set_names, where_names)
    sql = _SQL.get(key)
    if sql is None:
        q = connection.ops.quote_name
        assignments = ", ".join(f"{q(str(_column(model, n).column))} = %s" for n in set_names)
        conditions = " AND ".join(f"{q(str(_column(model, n).column))} = %s" for n in where_names)
        sql = _SQL[key] = f"UPDATE {q(model._meta.db_table)} SET {assignments} WHERE {conditions}"  # noqa: S608
    return sql, _prepared(model, values, connection) + _prepared(model, where, connection)


def insert_part(obj: Model) -> tuple[str, list[Any]]:
    """The INSERT of a new row whose primary key is set already (a UUID, a token hash), for
    :func:`together`; the values go through the fields as in :func:`insert`."""
    model = type(obj)
    alias = router.db_for_write(model)
    connection = connections[alias]
    if obj.pk is None:
        raise ValueError(f"{model._meta.label}: together() needs rows whose primary key is already set")
    fields = list(model._meta.local_concrete_fields)
    sql = _insert_sql(model, fields, alias, returning=None)
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    obj._state.adding = False
    obj._state.db = alias
    return sql, values


def _insert_sql(model: type[Model], fields: list[Any], alias: str, *, returning: Field[Any, Any] | None) -> str:
    """The INSERT text of ``fields`` (built once per model and shape), with ``RETURNING`` of a column."""
    key = ("insert", alias, model, len(fields), returning is not None)  # with or without the key column
    sql = _SQL.get(key)
    if sql is None:
        q = connections[alias].ops.quote_name
        columns = ", ".join(q(str(f.column)) for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        # Only quoted names from the model's metadata go into the text; every value is a parameter.
        sql = f"INSERT INTO {q(model._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
        sql = _SQL[key] = f"{sql} RETURNING {q(str(returning.column))}" if returning is not None else sql
    return sql


def together(*parts: tuple[str, list[Any]], using: str = "default", returning: Model | None = None) -> None:
    """Run several INSERT/UPDATE/DELETE statements in one round trip on PostgreSQL (data-modifying
    ``WITH``: each runs exactly once, against the same snapshot, so they must not read each other's
    rows; foreign keys are checked at commit, as Django creates them deferred). On other databases,
    where a statement costs no round trip, one after the other.

    ``returning``: a new row with an auto-increment key whose INSERT (:func:`insert_returning_part`)
    is the last part; its key is read back and set, as ``save()`` does."""
    connection = connections[using]
    with fixed_cursor(using) as cursor:
        if connection.vendor != "postgresql" or len(parts) < 2:
            for sql, params in parts:
                cursor.execute(sql, params)
        else:
            *first, last = parts
            text = "WITH " + ", ".join(f"w{i} AS ({sql})" for i, (sql, _) in enumerate(first)) + " " + last[0]
            cursor.execute(text, [p for _, params in parts for p in params])
        if returning is not None:
            _read_back_key(returning, cursor, connection)


def insert_returning_part(obj: Model) -> tuple[str, list[Any]]:
    """The INSERT of a new row with an auto-increment key, for the last part of :func:`together`
    with ``returning=obj``; the values go through the fields as in :func:`insert`."""
    model = type(obj)
    alias = router.db_for_write(model)
    connection = connections[alias]
    pk = model._meta.pk
    assert pk is not None
    if not (isinstance(pk, AutoFieldMixin) and obj.pk is None):
        raise ValueError(f"{model._meta.label}: insert_returning_part() is for a new auto-increment row")
    fields = [f for f in model._meta.local_concrete_fields if f is not pk]
    # Without RETURNING (an older SQLite) the key is read with last_insert_id (_read_back_key).
    sql = _insert_sql(
        model, fields, alias, returning=pk if connection.features.can_return_columns_from_insert else None
    )
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def _read_back_key(obj: Model, cursor: Any, connection: Any) -> None:
    model = type(obj)
    pk = model._meta.pk
    assert pk is not None
    new_id = (
        cursor.fetchone()[0]
        if connection.features.can_return_columns_from_insert
        else connection.ops.last_insert_id(cursor, model._meta.db_table, str(pk.column))
    )
    setattr(obj, pk.attname, pk.to_python(new_id))
    obj._state.adding = False
    obj._state.db = connection.alias


def delete(model: type[Model], *, where: dict[str, Any]) -> int:
    """``model.objects.filter(**where)._raw_delete()`` for plain equality: no signals, no cascade."""
    return run(delete_part(model, where=where), using=router.db_for_write(model))


def delete_part(model: type[Model], *, where: dict[str, Any]) -> tuple[str, list[Any]]:
    """The statement and parameters of :func:`delete`, for :func:`together`."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    where_names = tuple(where)
    key = ("delete", alias, model, where_names)
    sql = _SQL.get(key)
    if sql is None:
        q = connection.ops.quote_name
        conditions = " AND ".join(f"{q(str(_column(model, n).column))} = %s" for n in where_names)
        sql = _SQL[key] = f"DELETE FROM {q(model._meta.db_table)} WHERE {conditions}"  # noqa: S608
    return sql, _prepared(model, where, connection)


def _prepared(model: type[Model], values: dict[str, Any], connection: Any) -> list[Any]:
    out: list[Any] = []
    for name, value in values.items():
        field = _column(model, name)
        if isinstance(value, Model):
            value = value.pk
        out.append(field.get_db_prep_save(value, connection))
    return out


__all__ = [
    "delete",
    "delete_part",
    "insert",
    "insert_part",
    "insert_returning_part",
    "run",
    "together",
    "update",
    "update_part",
]
