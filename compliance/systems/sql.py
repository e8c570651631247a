"""External SQL databases as data systems, described declaratively by a dataset file (issue #4).

A connected database is not one of Django's ``DATABASES``: it belongs to another team or product
(here, the streaming service's listening history). What it holds about people, why, and what
erasure does there is written down in a dataset file; this module reads the file, refuses a file
that is wrong (naming the bad key), and runs export, erasure and read-back against the database
with the raw DB-API driver: psycopg 3 for ``postgresql://`` URLs, sqlite3 for ``sqlite://`` URLs.
A connection is opened per call and always closed.

Dataset file format (JSON, ``"format": 1``)::

    {
      "format": 1,
      "system": "streaming_history",                 # [A-Za-z_][A-Za-z0-9_]*; sources are "system.table"
      "description": {                               # GDPR Art. 15(1) information (REGULATIONS.md G-15)
        "summary": "what the system is",
        "purposes": [{"purpose": "play music ...", "lawful_basis": "contract"}],   # LawfulBasis values
        "recipients": ["ExampleCloud (hosting processor, EU)"],
        "retention": "listening events 24 months; ...",
        "sources": ["the listener's apps"]
      },
      "connection": {
        "url_env": "STREAMING_DATABASE_URL",          # names the setting / environment variable with the URL
        "default_url": "sqlite:///var/streaming.sqlite3"   # optional, for development
      },
      "tables": [
        {
          "name": "listening_events",                 # may be "schema.table" on PostgreSQL
          "identity": {"column": "user_id", "matches": "user_id", "category": "account"},
          "category": "usage",                        # the category of the table's records in an export
          "primary_key": "id",                        # default "id"; used to pseudonymise in batches
          "personal_fields": {                        # column -> category (Category values), or an object
            "artist": "usage",
            "device_name": {"category": "security", "erasure": "null"}   # per-field override
          },
          "other_fields": ["id", "track_id"],         # exported as context, not personal data
          "erasure": {"action": "delete_row"},
          "order_by": ["played_at", "-id"],           # "-" for descending; default: the primary key
          "notes": "free text for the reader"
        }
      ]
    }

``identity.matches`` says which part of the :class:`~compliance.systems.base.SubjectRef` the
identity column holds: ``user_id`` (the account id) or ``email_index`` (the blind index of the
e-mail, for systems keyed by e-mail).

``erasure.action`` (``compliance.registry.Erasure`` values; ``shred`` needs per-subject keys, which
an external database does not have, and is refused):

- ``delete_row``: the subject's rows are deleted.
- ``null``: the rows stay; the identity column and every personal field are set to NULL.
- ``pseudonymise``: the rows stay; the identity column and every personal field are replaced by a
  keyed pseudonym of their value (HMAC-SHA256 under ``BLIND_INDEX_KEY``, purpose ``"pseudonym"``,
  64 hex characters: the column must be text).
- ``keep``: the rows stay under a legal exception, minimised. Requires ``exception`` (the reason,
  told to the subject), ``gdpr_exception`` (one of ``17(3)(a)`` .. ``17(3)(e)``, G-17) and, optionally,
  ``ccpa_exception`` (1..8, Civ. Code §1798.105(d), C-17) and ``keep_fields`` (personal fields
  kept as they are). Every other personal field is set to NULL and the identity column is
  pseudonymised, so the kept rows are no longer linked to the account, yet can still be counted and
  shown to the subject (by the pseudonym of their id).

A personal field may override the table's action with ``"erasure": "null"`` or
``"erasure": "pseudonymise"`` (not in a ``delete_row`` table, where the whole row goes).

Identifiers are checked against ``[A-Za-z_][A-Za-z0-9_]*`` when the file is read and quoted in
SQL; every value (the subject's id, pseudonyms) is passed as a query parameter.

What the system does with it (:class:`SqlDataSystem`, the ``DataSystem`` protocol):

- ``export`` streams the subject's rows table by table from one read-only snapshot: a named
  (server-side) cursor on PostgreSQL, ``fetchmany`` on SQLite, ``FETCH_SIZE`` rows at a time; dates,
  numerics and uuids come out as JSON-ready strings (ISO 8601, UTC).
- ``erase`` applies each table's action in one transaction per table and is idempotent.
- ``read_back`` counts, per table, the rows still holding the subject's data beyond what is kept;
  every count is zero after ``erase``. ``kept`` (and ``erase``) list the rows kept under an exception.
- Settings: ``CONNECTED_DATASETS`` lists the dataset files (``load_systems``); each names its URL
  setting (e.g. ``STREAMING_DATABASE_URL``, dj-database-url style). A missing SQLite file is an
  error, never an empty database.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, Literal, NoReturn, cast

import dj_database_url
import psycopg
from django.conf import settings

from compliance.registry import Category, Erasure, LawfulBasis
from compliance.systems.base import Description, ErasureResult, Kept, Record, RecordBatch, SubjectRef, SubjectState
from identity.crypto.blind import blind_index

FORMAT_VERSION = 1
# Rows per round trip when streaming an export (server-side cursor on PostgreSQL) and per batch
# when pseudonymising.
FETCH_SIZE = 2_000
PSEUDONYM_PURPOSE = "pseudonym"
GDPR_EXCEPTIONS = ("17(3)(a)", "17(3)(b)", "17(3)(c)", "17(3)(d)", "17(3)(e)")
MATCHES = ("user_id", "email_index")
FIELD_OVERRIDES = (Erasure.NULL, Erasure.PSEUDONYMISE)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")


class DatasetError(ValueError):
    """A dataset file (or the connection it names) is wrong; the message names the file and key."""


# --- The dataset, as read from its file ---------------------------------------------------------


@dataclass(frozen=True)
class Purpose:
    purpose: str
    lawful_basis: LawfulBasis


@dataclass(frozen=True)
class PersonalField:
    name: str
    category: Category
    erasure: Erasure | None = None  # per-field override of the table's action (null or pseudonymise)


@dataclass(frozen=True)
class KeepException:
    reason: str
    gdpr: str
    ccpa: int | None = None

    def __str__(self) -> str:
        codes = f"GDPR Art. {self.gdpr}"
        if self.ccpa is not None:
            codes += f"; CCPA Civ. Code §1798.105(d)({self.ccpa})"
        return f"{codes}: {self.reason}"


@dataclass(frozen=True)
class Table:
    name: str
    identity_column: str
    matches: Literal["user_id", "email_index"]
    identity_category: Category
    category: Category
    primary_key: str
    personal_fields: tuple[PersonalField, ...]
    other_fields: tuple[str, ...]
    action: Erasure
    exception: KeepException | None = None
    keep_fields: tuple[str, ...] = ()
    order_by: tuple[str, ...] = ()  # "-column" for descending

    @property
    def export_columns(self) -> tuple[str, ...]:
        """What an export shows: context columns, then personal fields (never the identity column,
        which is only how the subject was found)."""
        personal = tuple(f.name for f in self.personal_fields)
        return tuple(c for c in self.other_fields if c not in personal) + personal

    def field_action(self, field: PersonalField) -> Erasure:
        """What erasure does to a personal field of a row that stays (null, pseudonymise or keep)."""
        if self.action == Erasure.KEEP:
            if field.name in self.keep_fields:
                return Erasure.KEEP
            return field.erasure or Erasure.NULL
        return field.erasure or self.action

    @property
    def identity_action(self) -> Erasure:
        """Rows that stay lose their link to the account: NULL, or a pseudonym (so that kept rows
        can still be counted and shown to the subject)."""
        return Erasure.NULL if self.action == Erasure.NULL else Erasure.PSEUDONYMISE

    @property
    def categories(self) -> set[Category]:
        return {self.identity_category, self.category} | {f.category for f in self.personal_fields}


@dataclass(frozen=True)
class Choices:
    """Where the system keeps the listener's privacy choices and copies of account values, so that
    rectification, restriction, objection and opt-outs reach it (compliance.propagation)."""

    table: Table
    purposes: tuple[tuple[str, str], ...]  # (purpose, boolean column)
    restricted: str | None
    profile: tuple[tuple[str, str], ...]  # (account field, column)
    updated_at: str | None


@dataclass(frozen=True)
class Dataset:
    system: str
    summary: str
    purposes: tuple[Purpose, ...]
    recipients: tuple[str, ...]
    retention: str
    sources: tuple[str, ...]
    url_env: str
    default_url: str
    tables: tuple[Table, ...]
    origin: str = "<dataset>"
    choices: Choices | None = None

    def source(self, table: Table) -> str:
        return f"{self.system}.{table.name}"


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read and validate a dataset file; :class:`DatasetError` names the file and the bad key."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{file}: cannot be read: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{file}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    return parse_dataset(data, origin=file.name)


def parse_dataset(data: object, *, origin: str = "<dataset>") -> Dataset:
    """Validate a dataset already read into Python objects (see the module docstring)."""
    try:
        return _dataset(data, origin)
    except DatasetError as exc:
        raise DatasetError(f"{origin}: {exc}") from None


def _dataset(data: object, origin: str) -> Dataset:
    top = _mapping(data, "")
    _keys(top, "", required=("format", "system", "description", "connection", "tables"), optional=("choices", "notes"))
    if top["format"] != FORMAT_VERSION:
        _fail("format", f"must be {FORMAT_VERSION}, not {top['format']!r}")
    system = _identifier(top["system"], "system")

    desc = _mapping(top["description"], "description")
    _keys(
        desc,
        "description",
        required=("summary", "purposes", "recipients", "retention", "sources"),
        optional=("notes",),
    )
    purposes = tuple(
        _purpose(item, f"description.purposes[{i}]")
        for i, item in enumerate(_list(desc["purposes"], "description.purposes"))
    )

    conn = _mapping(top["connection"], "connection")
    _keys(conn, "connection", required=("url_env",), optional=("default_url", "notes"))
    url_env = _text(conn["url_env"], "connection.url_env")
    if not _ENV_NAME.match(url_env):
        _fail(
            "connection.url_env", f"must be an environment variable name like STREAMING_DATABASE_URL, not {url_env!r}"
        )
    default_url = _text(conn["default_url"], "connection.default_url") if "default_url" in conn else ""

    tables: list[Table] = []
    for i, item in enumerate(_list(top["tables"], "tables")):
        table = _table(item, f"tables[{i}]")
        if any(t.name == table.name for t in tables):
            _fail(f"tables[{i}].name", f"table {table.name!r} is described twice")
        tables.append(table)

    choices = _choices(top["choices"], "choices", tables) if "choices" in top else None
    return Dataset(
        choices=choices,
        system=system,
        summary=_text(desc["summary"], "description.summary"),
        purposes=purposes,
        recipients=_texts(desc["recipients"], "description.recipients"),
        retention=_text(desc["retention"], "description.retention"),
        sources=_texts(desc["sources"], "description.sources"),
        url_env=url_env,
        default_url=default_url,
        tables=tuple(tables),
        origin=origin,
    )


def _choices(value: object, where: str, tables: list[Table]) -> Choices:
    from compliance.consents import PURPOSES
    from compliance.propagation import PROFILE_FIELDS

    spec = _mapping(value, where)
    _keys(spec, where, required=("table",), optional=("purposes", "restricted", "profile", "updated_at", "notes"))
    name = _identifier(spec["table"], f"{where}.table", dotted=True)
    table = next((t for t in tables if t.name == name), None)
    if table is None:
        _fail(f"{where}.table", f"{name!r} is not one of the tables described (its export and erasure must be too)")
    columns = {f.name for f in table.personal_fields}
    pairs: dict[str, list[tuple[str, str]]] = {"purposes": [], "profile": []}
    for key, allowed in (("purposes", tuple(PURPOSES)), ("profile", PROFILE_FIELDS)):
        for item, column in _mapping(spec.get(key, {}), f"{where}.{key}").items():
            _choice(item, allowed, f"{where}.{key}")
            if _identifier(column, f"{where}.{key}.{item}") not in columns:
                _fail(f"{where}.{key}.{item}", f"{column!r} is not a personal field of {name}")
            pairs[key].append((item, column))
    single: dict[str, str | None] = {}
    for key in ("restricted", "updated_at"):
        column = spec.get(key)
        if column is not None and _identifier(column, f"{where}.{key}") not in columns:
            _fail(f"{where}.{key}", f"{column!r} is not a personal field of {name}")
        single[key] = column
    if not (pairs["purposes"] or pairs["profile"] or single["restricted"]):
        _fail(where, "names no purpose, profile or restricted column: there would be nothing to keep in step")
    return Choices(
        table=table,
        purposes=tuple(pairs["purposes"]),
        restricted=single["restricted"],
        profile=tuple(pairs["profile"]),
        updated_at=single["updated_at"],
    )


def _purpose(item: object, where: str) -> Purpose:
    entry = _mapping(item, where)
    _keys(entry, where, required=("purpose", "lawful_basis"), optional=("notes",))
    return Purpose(
        purpose=_text(entry["purpose"], f"{where}.purpose"),
        lawful_basis=LawfulBasis(_choice(entry["lawful_basis"], LawfulBasis.values, f"{where}.lawful_basis")),
    )


def _table(item: object, where: str) -> Table:
    spec = _mapping(item, where)
    _keys(
        spec,
        where,
        required=("name", "identity", "personal_fields", "erasure"),
        optional=("category", "primary_key", "other_fields", "order_by", "notes"),
    )
    name = _identifier(spec["name"], f"{where}.name", dotted=True)
    where = f"{where} ({name})"

    ident = _mapping(spec["identity"], f"{where}.identity")
    _keys(ident, f"{where}.identity", required=("column", "matches"), optional=("category", "notes"))
    identity_column = _identifier(ident["column"], f"{where}.identity.column")
    matches = cast(Literal["user_id", "email_index"], _choice(ident["matches"], MATCHES, f"{where}.identity.matches"))
    identity_category = Category(
        _choice(ident.get("category", Category.ACCOUNT.value), Category.values, f"{where}.identity.category")
    )

    personal: list[PersonalField] = []
    for column, value in _mapping(spec["personal_fields"], f"{where}.personal_fields").items():
        at = f"{where}.personal_fields.{column}"
        _identifier(column, at)
        if column == identity_column:
            _fail(at, "is the identity column; give its category as identity.category")
        personal.append(_personal_field(column, value, at))
    names = {f.name for f in personal}

    other: list[str] = []
    for i, column in enumerate(_list(spec.get("other_fields", []), f"{where}.other_fields", allow_empty=True)):
        at = f"{where}.other_fields[{i}]"
        if _identifier(column, at) in names or column == identity_column:
            _fail(at, f"{column!r} is the identity column or a personal field already")
        other.append(column)
    primary_key = _identifier(spec.get("primary_key", "id"), f"{where}.primary_key")
    if primary_key == identity_column or primary_key in names:
        _fail(f"{where}.primary_key", "must not be the identity column or a personal field")

    order_by: list[str] = []
    for i, entry in enumerate(_list(spec.get("order_by", []), f"{where}.order_by", allow_empty=True)):
        text = _text(entry, f"{where}.order_by[{i}]")
        _identifier(text.removeprefix("-"), f"{where}.order_by[{i}]")
        order_by.append(text)

    action, exception, keep_fields = _erasure(spec["erasure"], f"{where}.erasure", personal)
    if action == Erasure.DELETE_ROW:
        for field in personal:
            if field.erasure is not None:
                _fail(
                    f"{where}.personal_fields.{field.name}.erasure",
                    "the table's action delete_row removes the whole row; a field override needs a row that stays",
                )

    if "category" in spec:
        category = Category(_choice(spec["category"], Category.values, f"{where}.category"))
    else:
        category = personal[0].category if personal else identity_category
    return Table(
        name=name,
        identity_column=identity_column,
        matches=matches,
        identity_category=identity_category,
        category=category,
        primary_key=primary_key,
        personal_fields=tuple(personal),
        other_fields=tuple(other),
        action=action,
        exception=exception,
        keep_fields=keep_fields,
        order_by=tuple(order_by),
    )


def _erasure(
    value: object, where: str, personal: list[PersonalField]
) -> tuple[Erasure, KeepException | None, tuple[str, ...]]:
    erasure = _mapping(value, where)
    _keys(
        erasure,
        where,
        required=("action",),
        optional=("exception", "gdpr_exception", "ccpa_exception", "keep_fields", "notes"),
    )
    if erasure["action"] == Erasure.SHRED.value:
        _fail(
            f"{where}.action",
            "shred needs per-subject keys, which an external database does not have; "
            "use delete_row, null, pseudonymise or keep",
        )
    actions = [e for e in Erasure.values if e != Erasure.SHRED.value]
    action = Erasure(_choice(erasure["action"], actions, f"{where}.action"))
    if action != Erasure.KEEP:
        for key in ("exception", "gdpr_exception", "ccpa_exception", "keep_fields"):
            if key in erasure:
                _fail(f"{where}.{key}", f"only with action keep (the action is {action.value})")
        return action, None, ()

    for key, what in (
        ("exception", "the legal exception the rows are kept under, as told to the subject"),
        ("gdpr_exception", f"one of {', '.join(GDPR_EXCEPTIONS)} (GDPR Art. 17(3))"),
    ):
        if key not in erasure:
            _fail(f"{where}.{key}", f"required with action keep: {what}")
    ccpa = erasure.get("ccpa_exception")
    if ccpa is not None and (not isinstance(ccpa, int) or isinstance(ccpa, bool) or not 1 <= ccpa <= 8):
        _fail(f"{where}.ccpa_exception", f"must be an exception number 1..8 of Civ. Code §1798.105(d), not {ccpa!r}")
    exception = KeepException(
        reason=_text(erasure["exception"], f"{where}.exception"),
        gdpr=_choice(erasure["gdpr_exception"], GDPR_EXCEPTIONS, f"{where}.gdpr_exception"),
        ccpa=ccpa,
    )
    by_name = {f.name: f for f in personal}
    keep_fields: list[str] = []
    for i, column in enumerate(_list(erasure.get("keep_fields", []), f"{where}.keep_fields", allow_empty=True)):
        at = f"{where}.keep_fields[{i}]"
        if not isinstance(column, str) or column not in by_name:
            _fail(at, f"{column!r} is not one of the table's personal fields")
        if by_name[column].erasure is not None:
            _fail(at, f"{column!r} also has an erasure override; keep it or override it, not both")
        keep_fields.append(column)
    return action, exception, tuple(keep_fields)


def _personal_field(column: str, value: object, where: str) -> PersonalField:
    if isinstance(value, str):
        return PersonalField(column, Category(_choice(value, Category.values, where)))
    spec = _mapping(value, where)
    _keys(spec, where, required=("category",), optional=("erasure", "notes"))
    override: Erasure | None = None
    if "erasure" in spec:
        override = Erasure(_choice(spec["erasure"], [e.value for e in FIELD_OVERRIDES], f"{where}.erasure"))
    return PersonalField(column, Category(_choice(spec["category"], Category.values, f"{where}.category")), override)


def _fail(where: str, message: str) -> NoReturn:
    raise DatasetError(f"{where}: {message}" if where else message)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(where, f"must be an object, not {type(value).__name__}")
    return value


def _keys(value: Mapping[str, Any], where: str, *, required: Sequence[str], optional: Sequence[str] = ()) -> None:
    for key in required:
        if key not in value:
            _fail(_at(where, key), "required")
    allowed = set(required) | set(optional)
    for key in value:
        if key not in allowed:
            _fail(_at(where, str(key)), f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _list(value: object, where: str, *, allow_empty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        _fail(where, f"must be a list, not {type(value).__name__}")
    if not value and not allow_empty:
        _fail(where, "must not be empty")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(where, f"must be a non-empty string, not {value!r}")
    return value.strip()


def _texts(value: object, where: str) -> tuple[str, ...]:
    return tuple(_text(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where)))


def _choice(value: object, choices: Sequence[str], where: str) -> str:
    if not isinstance(value, str) or value not in choices:
        _fail(where, f"must be one of {', '.join(choices)}, not {value!r}")
    return value


def _identifier(value: object, where: str, *, dotted: bool = False) -> str:
    parts = value.split(".") if isinstance(value, str) and dotted else [value]
    if len(parts) > 2 or not all(isinstance(p, str) and _IDENTIFIER.match(p) for p in parts):
        _fail(
            where,
            f"must be an SQL identifier ([A-Za-z_][A-Za-z0-9_]*{', optionally schema.name' if dotted else ''}), "
            f"not {value!r}",
        )
    return str(value)


def quote(identifier: str) -> str:
    """Quote a (checked) identifier for SQLite and PostgreSQL alike; ``schema.table`` part by part."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in identifier.split("."))


# --- Connections ---------------------------------------------------------------------------------

# PostgreSQL types whose Python values are not JSON-ready (date/time, numeric, uuid, bytea, interval).
_PG_CONVERTED_OIDS = frozenset({1082, 1083, 1114, 1184, 1266, 1700, 2950, 17, 1186})
# ... and how the server turns them into text itself, for the export's hot path: formatting there is
# cheaper than a Python datetime per value and keeps a million-row export near a COPY of it.
_PG_AS_TEXT = {
    1082: "to_json({}) #>> '{{}}'",  # date -> ISO 8601
    1083: "to_json({}) #>> '{{}}'",  # time
    1114: "to_json({}) #>> '{{}}'",  # timestamp
    1184: "to_json({}) #>> '{{}}'",  # timestamptz -> ISO 8601 in the session's time zone (UTC)
    1266: "to_json({}) #>> '{{}}'",  # timetz
    1700: "{}::text",  # numeric
    2950: "{}::text",  # uuid
    17: "encode({}, 'hex')",  # bytea
}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value


def _converted(row: tuple[Any, ...], indexes: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in indexes:
        if values[i] is not None:
            values[i] = _plain(values[i])
    return tuple(values)


# --- The export's PostgreSQL fast path: COPY ... TO STDOUT, turned into values a column at a time ----
#
# A named cursor makes a Python row (and, above, a formatted timestamp) per row; COPY sends text and
# the values are made here with string operations over a whole column of a batch, so that a million
# rows cost little more than PostgreSQL's own COPY of them. The values are exactly those of the named
# cursor (``Database.stream`` with ``select_list``): tests/compliance/test_sql_system.py compares them.
# A table with a column of any other type is exported through the named cursor.
EXPORT_BATCH = 10_000  # rows per batch of export_batches (and per line of an export part)
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_COPY_ESCAPE = re.compile(r"\\(.)")


def _copy_text(values: list[str]) -> list[Any]:
    """COPY's text format: ``\\N`` is NULL, and backslash, tab, newline and a few control characters
    are escaped; a column without a backslash needs nothing."""
    joined = "\x00".join(values)  # PostgreSQL text never holds NUL
    if "\\" not in joined:
        return values
    if joined.count("\\") == values.count("\\N"):  # NULLs, nothing escaped
        return [None if v == "\\N" else v for v in values]
    return [
        None if v == "\\N" else _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES.get(m[1], m[1]), v) if "\\" in v else v
        for v in values
    ]


def _copy_int(values: list[str]) -> list[Any]:
    if "\\N" not in values:
        return list(map(int, values))
    return [None if v == "\\N" else int(v) for v in values]


def _copy_float(values: list[str]) -> list[Any]:
    if "\\N" not in values:
        return list(map(float, values))
    return [None if v == "\\N" else float(v) for v in values]


def _copy_bool(values: list[str]) -> list[Any]:
    return [None if v == "\\N" else v == "t" for v in values]


def _xsd_timestamp(text: str, *, zone: bool) -> str:
    """One ISO-style timestamp as ``to_json`` writes it ("T" between date and time; a UTC offset as
    "+00:00"), for the values the column-wide replacement below does not cover (BC, infinity)."""
    date, space, rest = text.partition(" ")
    if not space:
        return text  # infinity, -infinity
    suffix = ""
    if rest.endswith(" BC"):
        rest, suffix = rest[:-3], " BC"
    if zone:
        cut = max(rest.rfind("+"), rest.rfind("-"))
        if cut > 0 and len(rest) - cut == 3:
            rest += ":00"
    return f"{date}T{rest}{suffix}"


def _copy_timestamp(values: list[str], *, zone: bool) -> list[Any]:
    """``timestamp``/``timestamptz`` as ``to_json(...) #>> '{}'`` gives them (the named cursor's
    select list): "2025-03-14 12:00:01.5+00" becomes "2025-03-14T12:00:01.5+00:00" (the session's
    time zone is UTC and its DateStyle ISO)."""
    values = _copy_text(values)
    present = [v for v in values if v is not None] if None in values else values
    joined = "\x00".join(present) + "\x00"
    if "B" in joined or "i" in joined or (zone and joined.count("+00\x00") != len(present)):
        done = iter([_xsd_timestamp(v, zone=zone) for v in present])
    else:
        joined = joined.replace(" ", "T")
        if zone:
            joined = joined.replace("+00\x00", "+00:00\x00")
        done = iter(joined[:-1].split("\x00"))
    return [None if v is None else next(done) for v in values] if None in values else list(done)


def _copy_timestamptz(values: list[str]) -> list[Any]:
    return _copy_timestamp(values, zone=True)


def _copy_timestamp_naive(values: list[str]) -> list[Any]:
    return _copy_timestamp(values, zone=False)


# How a column of COPY text becomes the exported values, by kind; the kind of each type oid. Types
# the select list already turns into text on the server (_PG_AS_TEXT) arrive as text.
COPY_KINDS: dict[str, Callable[[list[str]], list[Any]]] = {
    "text": _copy_text,
    "int": _copy_int,
    "float": _copy_float,
    "bool": _copy_bool,
    "timestamp": _copy_timestamp_naive,
    "timestamptz": _copy_timestamptz,
}
_COPY_LOADERS: dict[int, str] = {
    **{oid: "text" for oid in _PG_AS_TEXT},
    16: "bool",
    20: "int",
    21: "int",
    23: "int",
    26: "int",
    700: "float",
    701: "float",
    25: "text",
    1042: "text",
    1043: "text",
    19: "text",
    1082: "text",  # date: DateStyle ISO writes what to_json writes
    1114: "timestamp",
    1184: "timestamptz",
}
_COPY_PLAIN = frozenset({1082, 1114, 1184})  # selected as they are, converted above


@dataclass(frozen=True)
class CopyBatch:
    """Up to ``EXPORT_BATCH`` rows of one table in COPY's text format, as the server sent them: what
    the export writes into its parts without parsing a value (``compliance.exports``), so that the
    read-only snapshot on the connected database is held for little more than the COPY itself.

    ``text`` is UTF-8, every value followed by a tab (COPY's row ends made tabs too; tabs and
    newlines inside values are escaped by COPY, ``\\N`` is NULL). ``kinds`` says per column how its
    text becomes the value the named cursor gives (a key of ``COPY_KINDS``); :meth:`values` does it.
    """

    category: str
    source: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    text: bytes
    count: int

    def split(self) -> list[str]:
        """Every value's COPY text, row after row."""
        values = self.text.decode("utf-8").split("\t")
        if len(values) != self.count * len(self.columns) + 1 or values.pop():
            raise DatasetError("COPY returned rows of an unexpected shape")
        return values

    def values(self) -> list[Any]:
        """The values row after row (``RecordBatch.values``), exactly those of ``SqlDataSystem.export``."""
        values = self.split()
        plain = b"\\" not in self.text  # no NULL and nothing escaped in the whole batch
        width = len(self.columns)
        for i, kind in enumerate(self.kinds):
            if plain and kind == "text":
                continue
            column = values[i::width]
            loaded = COPY_KINDS[kind](column)
            if loaded is not column:
                values[i::width] = loaded
        return values

    def record_batch(self) -> RecordBatch:
        return RecordBatch(self.category, self.source, self.columns, self.values())


def _copy_batches(
    db: Database,
    table: str,
    columns: Sequence[str],
    where: str,
    order: str,
    params: Sequence[Any],
    *,
    size: int,
    category: str,
    source: str,
) -> Iterator[CopyBatch] | None:
    """The rows of ``SELECT columns FROM table WHERE ... ORDER BY ...`` through COPY, ``size`` at a
    time, as COPY's text; None on SQLite, or when a column's type has no loader."""
    if db.engine != "postgresql":
        return None
    probe = f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)} WHERE 1 = 0"  # noqa: S608
    with db.pg.cursor() as cur:
        cur.execute(probe)
        types = [d.type_code for d in cur.description or ()]
    if not columns or any(oid not in _COPY_LOADERS for oid in types):
        return None
    expressions = [
        quote(c) if oid in _COPY_PLAIN or oid not in _PG_AS_TEXT else _PG_AS_TEXT[oid].format(quote(c))
        for c, oid in zip(columns, types, strict=True)
    ]
    kinds = tuple(_COPY_LOADERS[oid] for oid in types)
    statement = f"COPY (SELECT {', '.join(expressions)} FROM {quote(table)} WHERE {where} ORDER BY {order}) TO STDOUT"  # noqa: S608
    batch = partial(CopyBatch, category, source, tuple(columns), kinds)
    return (batch(text, rows) for text, rows in _copy_rows(db, db.sql(statement), params, size=size))


def _copy_rows(db: Database, statement: str, params: Sequence[Any], *, size: int) -> Iterator[tuple[bytes, int]]:
    """COPY's text, ``size`` rows at a time (UTF-8, row ends made tabs), and the number of rows."""
    encoding = db.pg.info.encoding
    pgconn = db.pg.pgconn
    db.pg.execute("SET LOCAL DateStyle TO ISO")

    def batch(data: bytearray, rows: int) -> tuple[bytes, int]:
        # Tabs and newlines inside values are escaped: the raw ones are the separators.
        text = bytes(data.replace(b"\n", b"\t"))
        return (text if encoding == "utf-8" else text.decode(encoding).encode("utf-8")), rows

    with db.pg.cursor() as cur, cur.copy(statement, params) as copy:
        # libpq hands over one row per call. The rows already received are taken straight from it
        # (psycopg's read() costs about a microsecond more per row in its wait machinery); psycopg
        # waits when none is there. One growing buffer, not an object per row: no garbage collection.
        read = pgconn.get_copy_data
        pending, rows = bytearray(), 0
        while True:
            nbytes, data = read(1)
            if nbytes > 0:
                pending += data
            elif nbytes == 0:  # nothing received yet: psycopg waits (b"" once the COPY has ended)
                if not (waited := copy.read()):
                    break
                pending += waited
            else:  # the end of the data, already received: collect the statement's result
                _end_copy(pgconn)
                break
            rows += 1
            if rows >= size:
                yield batch(pending, rows)
                pending, rows = bytearray(), 0
        if rows:
            yield batch(pending, rows)


def _end_copy(pgconn: psycopg.pq.abc.PGconn) -> None:
    """After libpq reported the end of COPY's data: its result (what psycopg's read() does then)."""
    while (result := pgconn.get_result()) is not None:
        if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
            state = result.error_field(psycopg.pq.DiagnosticField.SQLSTATE) or b"?"
            raise psycopg.DatabaseError(f"COPY failed (SQLSTATE {state.decode()})")


class Database:
    """One connection to an external database (open it with :func:`open_database`, which closes it).

    Statements are written with ``?`` placeholders and rewritten to ``%s`` for psycopg; identifiers
    come only from a validated dataset, so no other ``?`` or ``%`` can appear in a statement, and
    every value travels as a parameter.
    """

    engine: Literal["sqlite", "postgresql"]

    def __init__(self, url: str, *, create: bool = False) -> None:
        self.url = url
        scheme = url.split(":", 1)[0].lower()
        self._pg: psycopg.Connection[Any] | None = None
        self._lite: sqlite3.Connection | None = None
        if scheme in {"postgres", "postgresql"}:
            self.engine = "postgresql"
            self._pg = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="identity-compliance")
        elif scheme == "sqlite":
            self.engine = "sqlite"
            self._lite = _connect_sqlite(sqlite_path(url), create=create)
        else:
            raise DatasetError(f"database URL scheme {scheme!r} is not supported (postgresql:// or sqlite:///)")
        try:
            if self._pg is not None:
                self._pg.execute("SET TIME ZONE 'UTC'")  # timestamps exported as ISO 8601 in UTC
            else:
                # Deleted and overwritten values are zeroed in the file, not left in its free pages.
                self.lite.execute("PRAGMA secure_delete = ON")
        except BaseException:
            self.close()
            raise

    @property
    def pg(self) -> psycopg.Connection[Any]:
        """The psycopg connection (PostgreSQL only), e.g. for COPY."""
        if self._pg is None:
            raise TypeError("not a PostgreSQL database")
        return self._pg

    @property
    def lite(self) -> sqlite3.Connection:
        """The sqlite3 connection (SQLite only)."""
        if self._lite is None:
            raise TypeError("not a SQLite database")
        return self._lite

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        if self._lite is not None:
            self._lite.close()

    def sql(self, statement: str) -> Any:
        """The statement in the driver's placeholder style."""
        return statement.replace("?", "%s") if self.engine == "postgresql" else statement

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[None]:
        """One transaction: a consistent snapshot for reads, all or nothing for writes."""
        if self._pg is not None:
            if read_only:
                self._pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                self._pg.read_only = True
            try:
                with self._pg.transaction():
                    yield
            finally:
                if read_only:
                    self._pg.isolation_level = None
                    self._pg.read_only = None
            return
        self.lite.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.lite.execute("ROLLBACK")
            raise
        self.lite.execute("COMMIT")

    def _lite_cursor(self, statement: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        cursor = self.lite.cursor()
        cursor.execute(statement, params)
        return cursor

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        if self._pg is not None:
            with self._pg.cursor() as cur:
                cur.execute(self.sql(statement), params)
                return cur.rowcount
        cursor = self._lite_cursor(statement, params)
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self._pg is not None:
            with self._pg.cursor() as cur:
                cur.executemany(self.sql(statement), rows)
        else:
            self.lite.executemany(statement, rows).close()

    def fetch(self, statement: str, params: Sequence[Any] = (), *, limit: int) -> list[tuple[Any, ...]]:
        """At most ``limit`` rows of a statement that is itself bounded (e.g. by LIMIT or COUNT)."""
        if self._pg is not None:
            with self._pg.cursor() as cur:
                cur.execute(self.sql(statement), params)
                return cur.fetchmany(limit)
        cursor = self._lite_cursor(statement, params)
        try:
            return cursor.fetchmany(limit)
        finally:
            cursor.close()

    def scalar(self, statement: str, params: Sequence[Any] = ()) -> Any:
        rows = self.fetch(statement, params, limit=1)
        return rows[0][0] if rows else None

    def columns(self, table: str) -> list[str]:
        """The column names of a table."""
        statement = f"SELECT * FROM {quote(table)} WHERE 1 = 0"  # noqa: S608 (a checked identifier)
        if self._pg is not None:
            with self._pg.cursor() as cur:
                cur.execute(self.sql(statement))
                return [d.name for d in cur.description or ()]
        cursor = self._lite_cursor(statement)
        try:
            return [d[0] for d in cursor.description]
        finally:
            cursor.close()

    def select_list(self, table: str, columns: Sequence[str]) -> str:
        """``columns`` of ``table`` for a SELECT whose values come out JSON-ready: on PostgreSQL,
        dates, numerics, uuids and bytes are turned into text by the server."""
        if self._pg is None:
            return ", ".join(quote(c) for c in columns)
        probe = f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)} WHERE 1 = 0"  # noqa: S608
        with self._pg.cursor() as cur:
            cur.execute(self.sql(probe))
            types = [d.type_code for d in cur.description or ()]
        expressions = []
        for column, oid in zip(columns, types, strict=True):
            template = _PG_AS_TEXT.get(oid)
            expressions.append(f"{template.format(quote(column))} AS {quote(column)}" if template else quote(column))
        return ", ".join(expressions)

    def stream(self, statement: str, params: Sequence[Any] = (), *, size: int = FETCH_SIZE) -> Iterator[list[Any]]:
        """The rows of a statement in batches of ``size``, never all at once.

        PostgreSQL: a named (server-side) cursor, ``size`` rows per round trip, inside the caller's
        transaction or one of its own. SQLite: the statement is stepped ``size`` rows at a time.
        PostgreSQL values that are not JSON-ready (dates, numerics, uuids, bytes) are made plain.
        """
        if self._pg is None:
            cursor = self._lite_cursor(statement, params)
            try:
                while batch := cursor.fetchmany(size):
                    yield batch
            finally:
                cursor.close()
            return
        idle = self._pg.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._pg.transaction() if idle else _nothing():
            server = self._pg.cursor(name=f"compliance_{uuid.uuid4().hex}")
            try:
                server.itersize = size
                server.execute(self.sql(statement), params)
                convert = [i for i, d in enumerate(server.description or ()) if d.type_code in _PG_CONVERTED_OIDS]
                while rows := server.fetchmany(size):
                    yield [_converted(row, convert) for row in rows] if convert else rows
            finally:
                server.close()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _connect_sqlite(path: str, *, create: bool) -> sqlite3.Connection:
    """No implicit transactions (``Database.transaction`` opens them). A data system never creates
    a missing file: a wrong path must fail, not read back as an empty, "clean" database."""
    if path == ":memory:":
        return sqlite3.connect(path, isolation_level=None)
    file = Path(path)
    if create:
        file.parent.mkdir(parents=True, exist_ok=True)
    elif not file.is_file():
        raise DatasetError(f"the SQLite database {path} does not exist")
    return sqlite3.connect(
        f"{file.as_uri()}?mode={'rwc' if create else 'rw'}", uri=True, isolation_level=None, timeout=30
    )


@contextmanager
def open_database(url: str, *, create: bool = False) -> Iterator[Database]:
    """A connection to the database at ``url`` (postgresql:// or sqlite:///), closed on exit.
    ``create``: make a missing SQLite file (schema set-up only)."""
    db = Database(url, create=create)
    try:
        yield db
    finally:
        db.close()


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL; a relative path is relative to the project (BASE_DIR)."""
    name = str(dj_database_url.parse(url)["NAME"] or ":memory:")
    if name == ":memory:" or Path(name).is_absolute():
        return name
    return str(Path(settings.BASE_DIR) / name)


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


def pseudonym(value: str) -> str:
    """The keyed pseudonym that erasure writes: HMAC-SHA256 of the value under BLIND_INDEX_KEY,
    purpose "pseudonym" (the same value gives the same pseudonym in every table and system)."""
    return blind_index(value, purpose=PSEUDONYM_PURPOSE)


def _pseudonym_or_null(value: Any) -> str | None:
    return None if value is None else pseudonym(str(value))


# --- The data system -----------------------------------------------------------------------------


class SqlDataSystem:
    """A connected SQL database driven by its dataset (``compliance.systems.base.DataSystem``).

    ``database_url`` overrides the URL the dataset names (tests, one-off runs). Otherwise it is the
    Django setting named by ``connection.url_env`` when set, else that environment variable, else
    the dataset's ``default_url``.
    """

    def __init__(self, dataset: Dataset, *, database_url: str | None = None, fetch_size: int = FETCH_SIZE) -> None:
        if fetch_size < 1:
            raise ValueError("fetch_size must be at least 1")
        self.dataset = dataset
        self.name = dataset.system
        self.fetch_size = fetch_size
        self._url = database_url

    def __repr__(self) -> str:
        return f"<SqlDataSystem {self.name}>"

    @property
    def database_url(self) -> str:
        if self._url:
            return self._url
        env = self.dataset.url_env
        url = str(getattr(settings, env, "") or os.environ.get(env, "") or self.dataset.default_url)
        if not url:
            raise DatasetError(
                f"{self.dataset.origin}: connection.url_env: {env} is not set and there is no default_url"
            )
        return url

    def connect(self) -> AbstractContextManager[Database]:
        """``with system.connect() as db:`` a connection to the system's database, closed on exit."""
        return open_database(self.database_url)

    def source(self, table: Table) -> str:
        return self.dataset.source(table)

    # -- GDPR Art. 15(1) information --------------------------------------------------------------

    def describe(self) -> Description:
        ds = self.dataset
        categories: set[Category] = set()
        for table in ds.tables:
            categories |= table.categories
        return Description(
            name=ds.system,
            purposes=tuple(p.purpose for p in ds.purposes),
            lawful_bases=tuple(p.lawful_basis.value for p in ds.purposes),
            categories=tuple(sorted(c.value for c in categories)),
            recipients=ds.recipients,
            retention=ds.retention,
            sources=ds.sources,
        )

    def check(self) -> list[str]:
        """Where the dataset and the live schema disagree (tables or columns missing)."""
        problems: list[str] = []
        with self.connect() as db:
            for table in self.dataset.tables:
                try:
                    present = set(db.columns(table.name))
                except (sqlite3.Error, psycopg.Error) as exc:
                    problems.append(f"{self.source(table)}: the table cannot be read ({type(exc).__name__})")
                    continue
                for column in dict.fromkeys([table.identity_column, table.primary_key, *table.export_columns]):
                    if column not in present:
                        problems.append(f"{self.source(table)}.{column}: no such column")
        return problems

    # -- Export (G-15, G-20) -----------------------------------------------------------------------

    def export(self, subject: SubjectRef) -> Iterator[Record]:
        """Every row holding the subject's data, table by table, from one consistent snapshot,
        streamed (never all in memory). Kept rows of ``keep`` tables are included: they are still
        the subject's data. The identity column is not exported (it is how the rows were found)."""
        with self.connect() as db, db.transaction(read_only=True):
            for table in self.dataset.tables:
                columns = table.export_columns
                where, params = self._match(table, subject, kept_too=True)
                statement = (
                    f"SELECT {db.select_list(table.name, columns)} FROM {quote(table.name)} "  # noqa: S608
                    f"WHERE {where} ORDER BY {self._order(table)}"
                )
                source, category = self.source(table), table.category.value
                for batch in db.stream(statement, params, size=self.fetch_size):
                    for row in batch:
                        yield Record(category, source, dict(zip(columns, row)))  # noqa: B905 (hot path; same length)

    def export_batches(self, subject: SubjectRef) -> Iterator[RecordBatch]:
        """The records of :meth:`export`, the same values in the same order, ``EXPORT_BATCH`` rows at
        a time (``compliance.systems.base.BatchExport``): :meth:`export_copy` with COPY's text made
        into values."""
        for batch in self.export_copy(subject):
            yield batch.record_batch() if isinstance(batch, CopyBatch) else batch

    def export_copy(self, subject: SubjectRef) -> Iterator[CopyBatch | RecordBatch]:
        """What the export task writes (``compliance.exports.records_of``): the rows of
        :meth:`export_batches`, but on PostgreSQL as COPY's text, unparsed (:class:`CopyBatch`), for
        each table whose every column's type it can read: ``COPY (SELECT ...) TO STDOUT``, inside
        the same read-only snapshot. Other tables go through the named cursor, and SQLite steps the
        statement ``EXPORT_BATCH`` rows at a time (:class:`RecordBatch`)."""
        size = max(self.fetch_size, EXPORT_BATCH)
        with self.connect() as db, db.transaction(read_only=True):
            for table in self.dataset.tables:
                columns = table.export_columns
                where, params = self._match(table, subject, kept_too=True)
                order = self._order(table)
                source, category = self.source(table), table.category.value
                copied = _copy_batches(
                    db, table.name, columns, where, order, params, size=size, category=category, source=source
                )
                if copied is not None:
                    yield from copied
                    continue
                statement = (
                    f"SELECT {db.select_list(table.name, columns)} FROM {quote(table.name)} "  # noqa: S608
                    f"WHERE {where} ORDER BY {order}"
                )
                for rows in db.stream(statement, params, size=size):
                    yield RecordBatch(category, source, columns, list(chain.from_iterable(rows)))

    # -- Erasure (G-17, C-14, C-17) ----------------------------------------------------------------

    def erase(self, subject: SubjectRef) -> ErasureResult:
        """Apply each table's erasure action, one transaction per table; idempotent.

        ``counts`` names every table with the rows this call deleted, nulled, pseudonymised or
        minimised (all zero when run again); ``kept`` lists what stays under a legal exception
        (the same every time).
        """
        result = ErasureResult()
        with self.connect() as db:
            for table in self.dataset.tables:
                with db.transaction():
                    result.counts[self.source(table)] = self._erase_table(db, table, subject)
            result.kept = self._kept(db, subject)
        return result

    def _erase_table(self, db: Database, table: Table, subject: SubjectRef) -> int:
        name, ident = quote(table.name), quote(table.identity_column)
        value = self._identity(table, subject)
        if table.action == Erasure.DELETE_ROW:
            return db.execute(f"DELETE FROM {name} WHERE {ident} = ?", [value])  # noqa: S608
        actions = {f.name: table.field_action(f) for f in table.personal_fields}
        to_pseudonymise = [c for c, a in actions.items() if a == Erasure.PSEUDONYMISE]
        if to_pseudonymise:
            self._pseudonymise(db, table, value, to_pseudonymise)
        assignments = [f"{ident} = ?", *(f"{quote(c)} = NULL" for c, a in actions.items() if a == Erasure.NULL)]
        new_identity = None if table.identity_action == Erasure.NULL else pseudonym(value)
        return db.execute(
            f"UPDATE {name} SET {', '.join(assignments)} WHERE {ident} = ?",  # noqa: S608
            [new_identity, value],
        )

    def _pseudonymise(self, db: Database, table: Table, value: str, columns: list[str]) -> None:
        """Replace each value by its pseudonym, a primary-key batch at a time (memory stays flat).
        The identity column still matches until the caller's last UPDATE, in the same transaction."""
        name, pk, ident = quote(table.name), quote(table.primary_key), quote(table.identity_column)
        selected = ", ".join(quote(c) for c in columns)
        limit = int(self.fetch_size)
        first = f"SELECT {pk}, {selected} FROM {name} WHERE {ident} = ? ORDER BY {pk} LIMIT {limit}"  # noqa: S608
        after = f"SELECT {pk}, {selected} FROM {name} WHERE {ident} = ? AND {pk} > ? ORDER BY {pk} LIMIT {limit}"  # noqa: S608
        update = f"UPDATE {name} SET {', '.join(f'{quote(c)} = ?' for c in columns)} WHERE {pk} = ?"  # noqa: S608
        rows = db.fetch(first, [value], limit=limit)
        while rows:
            db.executemany(update, [[*(_pseudonym_or_null(v) for v in row[1:]), row[0]] for row in rows])
            rows = db.fetch(after, [value, rows[-1][0]], limit=limit)

    # -- Read-back: the evidence that nothing remains -------------------------------------------------

    def apply(self, subject: SubjectRef, state: SubjectState) -> dict[str, int]:
        """Write the subject's current choices, restriction and (for a rectification) corrected
        values into the dataset's ``choices`` table: an update of their row, or an insert when the
        system has none yet. Idempotent. Systems without a ``choices`` section change nothing."""
        choices = self.dataset.choices
        if choices is None:
            return {}
        values: list[tuple[str, Any]] = [(column, state.purposes[p]) for p, column in choices.purposes]
        if choices.restricted:
            values.append((choices.restricted, state.restricted))
        if state.profile is not None:
            values.extend((column, state.profile.get(field, "")) for field, column in choices.profile)
        if choices.updated_at:
            values.append((choices.updated_at, datetime.datetime.now(datetime.UTC).isoformat()))
        table = choices.table
        identity = self._identity(table, subject)
        assignments = ", ".join(f"{quote(c)} = ?" for c, _ in values)
        with self.connect() as db, db.transaction():
            changed = db.execute(
                f"UPDATE {quote(table.name)} SET {assignments} WHERE {quote(table.identity_column)} = ?",  # noqa: S608
                [v for _, v in values] + [identity],
            )
            if changed == 0:
                columns = [table.identity_column] + [c for c, _ in values]
                db.execute(
                    f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' for _ in columns)})",
                    [identity] + [v for _, v in values],
                )
                changed = 1
        return {self.source(table): changed}

    def read_back(self, subject: SubjectRef) -> dict[str, int]:
        """Rows still holding the subject's personal data beyond what is kept, per source.

        Every table is counted by the subject's identity; kept rows of a ``keep`` table count too
        if a field that minimisation drops still holds a value. After :meth:`erase` every count is
        zero; the kept, minimised rows are reported separately by :meth:`kept`.
        """
        counts: dict[str, int] = {}
        with self.connect() as db, db.transaction(read_only=True):
            for table in self.dataset.tables:
                name, ident = quote(table.name), quote(table.identity_column)
                value = self._identity(table, subject)
                remaining = int(db.scalar(f"SELECT COUNT(*) FROM {name} WHERE {ident} = ?", [value]))  # noqa: S608
                dropped = [f.name for f in table.personal_fields if table.field_action(f) == Erasure.NULL]
                if table.action == Erasure.KEEP and dropped:
                    held = " OR ".join(f"{quote(c)} IS NOT NULL" for c in dropped)
                    statement = f"SELECT COUNT(*) FROM {name} WHERE {ident} = ? AND ({held})"  # noqa: S608
                    remaining += int(db.scalar(statement, [pseudonym(value)]))
                counts[self.source(table)] = remaining
        return counts

    def kept(self, subject: SubjectRef) -> list[Kept]:
        """What stays under a legal exception: rows of ``keep`` tables linked by the subject's pseudonym."""
        with self.connect() as db:
            return self._kept(db, subject)

    def _kept(self, db: Database, subject: SubjectRef) -> list[Kept]:
        kept: list[Kept] = []
        for table in self.dataset.tables:
            if table.action != Erasure.KEEP:
                continue
            statement = f"SELECT COUNT(*) FROM {quote(table.name)} WHERE {quote(table.identity_column)} = ?"  # noqa: S608
            count = int(db.scalar(statement, [pseudonym(self._identity(table, subject))]))
            if count:
                kept.append(Kept(self.source(table), count, str(table.exception), table.keep_fields))
        return kept

    # -- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _identity(table: Table, subject: SubjectRef) -> str:
        value = getattr(subject, table.matches)
        if not value:
            raise ValueError(f"the subject has no {table.matches} to match {table.name}.{table.identity_column}")
        return str(value)

    def _match(self, table: Table, subject: SubjectRef, *, kept_too: bool) -> tuple[str, list[str]]:
        ident = quote(table.identity_column)
        value = self._identity(table, subject)
        if kept_too and table.action == Erasure.KEEP:
            return f"{ident} IN (?, ?)", [value, pseudonym(value)]
        return f"{ident} = ?", [value]

    @staticmethod
    def _order(table: Table) -> str:
        terms = [f"{quote(t[1:])} DESC" if t.startswith("-") else quote(t) for t in table.order_by]
        return ", ".join(terms or [quote(table.primary_key)])


def load_systems() -> list[SqlDataSystem]:
    """The connected SQL databases listed in ``settings.CONNECTED_DATASETS`` (paths relative to BASE_DIR)."""
    systems: list[SqlDataSystem] = []
    for entry in getattr(settings, "CONNECTED_DATASETS", []):
        path = Path(entry)
        if not path.is_absolute():
            path = Path(settings.BASE_DIR) / path
        systems.append(SqlDataSystem(load_dataset(path)))
    return systems
