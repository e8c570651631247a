"""AES-256-GCM model fields: every value is encrypted under its data subject's own key.

A model with encrypted fields has a UUID attribute naming the subject's data key (``data_key_id``
by default; ``key_field=`` names another). Values are encrypted in ``pre_save``, where the row is
known, and decrypted when loaded; the ciphertext names its key, so reading needs no row context.

What can go wrong, and what happens (docs/architecture.md, "Field encryption"):

- altered ciphertext, or a value moved from another column: ``DecryptionError``
- a data key that does not exist, or a KEK that is not configured: ``UnknownKeyError``
- the configured KEK is not the one the data key was wrapped with: ``KeyUnwrapError``
- the subject's key was destroyed (erasure): the value reads as ``Erased`` (``str()`` "[erased]")

Encrypted columns cannot be filtered, ordered or updated in SQL: the only lookup allowed is
``isnull``. Exact lookups go through a blind index column (``identity.crypto.blind``).

Loading is batched: querysets of ``EncryptedQuerySet`` (models with many subjects per page, such
as users) take their rows' ciphertexts as they are, up to ``BATCH`` rows, unwrap the keys not yet
cached in one query, and decrypt the rows before handing them out (``open_rows``): a page of a
hundred users costs two queries, not a hundred and one, and a warm page no key lookup per value.
Elsewhere (``values()``, a related object of another model's query) a value whose key is cached is
decrypted as the row is read; otherwise it stays ``Sealed`` until first read.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import uuid
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from django import forms
from django.core import checks, exceptions, validators
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Lookup
from django.db.models.query import ModelIterable
from django.db.models.query_utils import DeferredAttribute
from django.utils.dateparse import parse_date
from django.utils.functional import cached_property

from identity.crypto import envelope, keystore
from identity.crypto.envelope import Erased

BATCH = 100


class Sealed:
    """A loaded value whose key is not unwrapped yet; opened on first read. Shows no content."""

    __slots__ = ("field", "token")

    def __init__(self, token: bytes, field: EncryptedField) -> None:
        self.token = token
        self.field = field

    @property
    def key_id(self) -> bytes:
        return self.token[1:17]

    def open(self) -> Any:
        plaintext = envelope.decrypt(self.token, context=self.field.aad_suffix)
        return plaintext if isinstance(plaintext, Erased) else self.field.decode_value(plaintext)

    def __repr__(self) -> str:
        return f"<Sealed {self.field.context}>"

    def __str__(self) -> str:
        return str(self.open())


class UnsealingAttribute(DeferredAttribute):
    """The field's attribute on instances: opens a sealed value the first time it is read.

    A data descriptor (it defines ``__set__``), so reads come here even though the value sits in
    the instance's ``__dict__``.
    """

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        try:
            value = instance.__dict__[self.field.attname]
        except KeyError:  # deferred: let Django load it
            value = super().__get__(instance, cls)
        if type(value) is Sealed:
            value = value.open()
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


def open_sealed(objects: list[models.Model], attnames: list[str]) -> None:
    """Open every sealed value of ``objects``, unwrapping all their keys in one query."""
    sealed = [(obj, name) for obj in objects for name in attnames if type(obj.__dict__.get(name)) is Sealed]
    if not sealed:
        return
    keystore.load_keys({obj.__dict__[name].key_id for obj, name in sealed})
    for obj, name in sealed:
        obj.__dict__[name] = obj.__dict__[name].open()


# The ids of the fields whose values the running DecryptingModelIterable decrypts itself: while its
# query starts, these fields give the compiler no converter, so their rows keep the ciphertext.
_BATCHED: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar("identity_batched", default=frozenset())
_END: Any = object()


def open_rows(objects: list[models.Model], fields: list[EncryptedField]) -> None:
    """Decrypt the ciphertexts ``DecryptingModelIterable`` left in ``objects``: the keys not cached
    are unwrapped in one query, then every value is opened with its key, found in a dict of the
    batch's keys. The hot path of every page of rows: kept flat on purpose."""
    if not objects:
        return
    names = [(f.attname, f.aad_suffix, f.fast_decode, f) for f in fields]
    ciphers: dict[bytes, Any] = {}
    minimum, version = envelope.MIN_LENGTH, envelope.VERSION
    for obj in objects:  # a row's values share its subject's key: look at the first one
        values = obj.__dict__
        for name, *_ in names:
            token = values.get(name)
            if isinstance(token, bytes | memoryview | bytearray) and len(token) >= minimum and token[0] == version:
                kid = bytes(token[1:17])
                if kid not in ciphers:
                    ciphers[kid] = keystore.peek(kid)
                break  # (a value that is no ciphertext is refused below, by open_token)
    missing = [kid for kid, cipher in ciphers.items() if cipher is False]
    if missing:
        keystore.load_keys(missing)
        for kid in missing:
            ciphers[kid] = keystore.peek(kid)
    for obj in objects:
        values = obj.__dict__
        head = b""  # version and key id of the row's last value opened here, with its cipher
        cipher: Any = None
        for name, aad, decode, field in names:
            token = values.get(name)
            if type(token) is not bytes:
                if not isinstance(token, memoryview | bytearray):
                    continue  # None, or a value set since
                token = bytes(token)
            if not (head and token.startswith(head)):
                head, cipher = token[:17], ciphers.get(token[1:17], False)
                if cipher is False or cipher is None or token[0] != version:
                    values[name] = field.open_token(token, cipher)  # every other case, and its error
                    head = b""
                    continue
            if len(token) < minimum:
                field.open_token(token, cipher)  # raises UnsupportedFormatError
            try:
                values[name] = decode(cipher.decrypt(token[17:29], token[29:], head + aad))
            except InvalidTag:
                envelope.open_with(cipher, token, aad)  # raises DecryptionError
                raise


class DecryptingModelIterable(ModelIterable):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        model = self.queryset.model
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedField)]
        batched = frozenset(map(id, fields))
        rows = super().__iter__()
        # The query runs, and the compiler asks the fields for their converters, on the first row:
        # only then is the flag set (get_db_converters), not for the rows after.
        mark = _BATCHED.set(batched)
        try:
            first = next(rows, _END)
        finally:
            _BATCHED.reset(mark)
        if first is _END:
            return
        buffer: list[models.Model] = [cast(models.Model, first)]
        for obj in rows:
            if len(buffer) >= BATCH:
                open_rows(buffer, fields)
                yield from buffer
                buffer = []
            buffer.append(obj)
        open_rows(buffer, fields)
        yield from buffer


def _opened(value: Any) -> Any:
    return value.open() if type(value) is Sealed else value


def open_values(rows: list[Any]) -> list[Any]:
    """Rows of ``values()``/``values_list()`` (dicts, tuples, named tuples or single values) with
    every sealed value opened, their keys unwrapped in one query (there is no attribute to open
    them on first read)."""
    sealed: set[bytes] = set()
    for row in rows:
        items = row.values() if isinstance(row, dict) else row if isinstance(row, tuple) else (row,)
        sealed.update(v.key_id for v in items if type(v) is Sealed)
    if not sealed:
        return rows
    keystore.load_keys(sealed)
    opened: list[Any] = []
    for row in rows:
        if isinstance(row, dict):
            opened.append({k: _opened(v) for k, v in row.items()})
        elif isinstance(row, tuple):
            values = [_opened(v) for v in row]
            opened.append(type(row)(*values) if hasattr(row, "_fields") else tuple(values))
        else:
            opened.append(_opened(row))
    return opened


def _opening(iterable_class: type) -> type:
    """``iterable_class`` (a values iterable) with its rows opened a batch at a time."""
    opening = _OPENING.get(iterable_class)
    if opening is None:

        def __iter__(self: Any) -> Any:
            buffer: list[Any] = []
            for row in cast(Any, iterable_class).__iter__(self):
                buffer.append(row)
                if len(buffer) >= BATCH:
                    yield from open_values(buffer)
                    buffer = []
            yield from open_values(buffer)

        opening = _OPENING[iterable_class] = type(
            f"Opening{iterable_class.__name__}", (iterable_class,), {"__iter__": __iter__}
        )
    return opening


_OPENING: dict[type, type] = {}


class EncryptedQuerySet(models.QuerySet):  # type: ignore[type-arg]
    """A queryset that opens the encrypted values of each batch of rows with one key query, model
    instances and ``values()``/``values_list()`` rows alike."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._iterable_class = DecryptingModelIterable

    def values(self, *fields: Any, **expressions: Any) -> Any:
        clone = super().values(*fields, **expressions)
        clone._iterable_class = _opening(clone._iterable_class)
        return clone

    def values_list(self, *fields: Any, flat: bool = False, named: bool = False) -> Any:
        clone = super().values_list(*fields, flat=flat, named=named)
        clone._iterable_class = _opening(clone._iterable_class)
        return clone


EncryptedManager = models.Manager.from_queryset(EncryptedQuerySet)


class EncryptedField(models.Field):  # type: ignore[type-arg]
    """Base class: subclasses say how a Python value becomes bytes and back."""

    empty_strings_allowed = False
    description = "AES-256-GCM encrypted value"
    descriptor_class = UnsealingAttribute

    def __init__(self, *args: Any, key_field: str = "data_key_id", **kwargs: Any) -> None:
        self.key_field = key_field
        super().__init__(*args, **kwargs)

    # -- subclasses ---------------------------------------------------------------------------
    def encode_value(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode_value(self, data: bytes) -> Any:
        raise NotImplementedError

    @cached_property
    def fast_decode(self) -> Any:
        """``decode_value``, or a builtin that does the same without a Python call (open_rows)."""
        return self.decode_value

    # -- Django plumbing ----------------------------------------------------------------------
    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.key_field != "data_key_id":
            kwargs["key_field"] = self.key_field
        return name, path, args, kwargs

    def get_internal_type(self) -> str:
        return "BinaryField"

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)
        if self.unique or getattr(self, "db_index", False):
            errors.append(
                checks.Error(
                    "An encrypted field cannot be unique or indexed: its ciphertext is random. "
                    "Put uniqueness on a blind-index column.",
                    obj=self,
                    id="identity.E001",
                )
            )
        model = getattr(self, "model", None)
        if model is not None and not model._meta.abstract:
            names = {f.attname for f in model._meta.concrete_fields}
            if self.key_field not in names:
                errors.append(
                    checks.Error(
                        f"Encrypted field needs the data key attribute {self.key_field!r} on its model.",
                        obj=self,
                        id="identity.E002",
                    )
                )
        return errors

    @property
    def context(self) -> str:
        return f"{self.model._meta.label_lower}.{self.name}"

    @cached_property
    def aad_suffix(self) -> bytes:
        return self.context.encode()

    def get_lookup(self, lookup_name: str) -> type[Lookup] | None:  # type: ignore[override]
        # Comparing ciphertexts is meaningless and would silently match nothing: refuse it.
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        return None

    def get_transform(self, lookup_name: str) -> Any:
        return None

    def encrypt_for(self, instance: models.Model, value: Any) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, Erased):
            return value.raw
        if type(value) is Sealed:
            return value.token  # read but never opened: unchanged
        key_id = getattr(instance, self.key_field)
        if key_id is None:
            raise exceptions.ImproperlyConfigured(
                f"{self.model._meta.label}.{self.key_field} is empty: no data key to encrypt {self.name} under"
            )
        if not isinstance(key_id, uuid.UUID):
            key_id = uuid.UUID(str(key_id))
        return envelope.encrypt(self.encode_value(self.to_python(value)), key_id=key_id, context=self.aad_suffix)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        # From __dict__, not the attribute: a value nobody read is written back still sealed.
        return self.encrypt_for(model_instance, model_instance.__dict__.get(self.attname))

    def get_db_prep_value(self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False) -> Any:
        if value is None:
            return None
        if isinstance(value, Erased):
            value = value.raw
        elif type(value) is Sealed:
            value = value.token
        if not isinstance(value, bytes | memoryview):
            # Only pre_save knows the row, and so the key: QuerySet.update() cannot encrypt.
            raise exceptions.FieldError(
                f"{self.model._meta.label}.{self.name} is encrypted; write it by saving the instance, "
                "not with QuerySet.update() or a raw value"
            )
        return connection.Database.Binary(bytes(value))  # type: ignore[attr-defined]

    def get_db_converters(self, connection: BaseDatabaseWrapper) -> list[Any]:
        # Read by the compiler as a DecryptingModelIterable's query starts: its rows keep the
        # ciphertext as the driver gave it, and open_rows decrypts them (no call per value here).
        if id(self) in _BATCHED.get():
            return []
        return super().get_db_converters(connection)

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is None:
            return None
        token = value if type(value) is bytes else bytes(value)
        cipher = keystore.peek(token[1:17])
        if cipher is False:
            if len(token) < envelope.MIN_LENGTH or token[0] != envelope.VERSION:
                envelope.check_header(token)  # raises, naming what is wrong
            return Sealed(token, self)  # opened on first read
        return self.open_token(token, cipher)

    def open_token(self, token: bytes, cipher: Any) -> Any:
        """The value of a ciphertext under ``cipher`` (AESGCM; None: shredded; False: not cached,
        fetched now). The hot path of every page of rows: kept flat on purpose."""
        if len(token) < envelope.MIN_LENGTH or token[0] != envelope.VERSION:
            envelope.check_header(token)  # raises, naming what is wrong
        if cipher is None:
            return Erased(token)
        if cipher is False:
            cipher = keystore.cipher_for_decrypt(uuid.UUID(bytes=token[1:17]))
            if cipher is None:
                return Erased(token)
        try:
            plaintext = cipher.decrypt(token[17:29], token[29:], token[:17] + self.aad_suffix)
        except InvalidTag:
            envelope.open_with(cipher, token, self.aad_suffix)  # raises DecryptionError
            raise
        return self.decode_value(plaintext)

    def value_to_string(self, obj: models.Model) -> str:
        value = self.value_from_object(obj)
        return "" if value is None else str(value)


class EncryptedTextField(EncryptedField):
    description = "AES-256-GCM encrypted text"
    empty_strings_allowed = True

    def encode_value(self, value: Any) -> bytes:
        return str(value).encode("utf-8")

    def decode_value(self, data: bytes) -> str:
        return data.decode("utf-8")

    @cached_property
    def fast_decode(self) -> Any:
        # bytes.decode is UTF-8, as decode_value; a subclass with its own decode_value keeps it.
        return bytes.decode if type(self).decode_value is EncryptedTextField.decode_value else self.decode_value

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, str | Erased):
            return value
        return str(value)

    def formfield(self, **kwargs: Any) -> Any:
        defaults: dict[str, Any] = {"form_class": forms.CharField, "max_length": self.max_length}
        if self.null:
            defaults["empty_value"] = None
        defaults.update(kwargs)
        return super().formfield(**defaults)


class EncryptedEmailField(EncryptedTextField):
    description = "AES-256-GCM encrypted e-mail address"
    default_validators = [validators.EmailValidator()]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 254)
        super().__init__(*args, **kwargs)

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"form_class": forms.EmailField, **kwargs})


class EncryptedDateField(EncryptedField):
    description = "AES-256-GCM encrypted date"

    def encode_value(self, value: Any) -> bytes:
        return value.isoformat().encode("ascii")

    def decode_value(self, data: bytes) -> datetime.date:
        return datetime.date.fromisoformat(data.decode("ascii"))

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, Erased):
            return value
        if isinstance(value, datetime.datetime):
            return value.date()
        if isinstance(value, datetime.date):
            return value
        try:
            parsed = parse_date(str(value))
        except ValueError:
            parsed = None
        if parsed is None:
            raise exceptions.ValidationError("Enter a valid date in YYYY-MM-DD format.", code="invalid_date")
        return parsed

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"form_class": forms.DateField, **kwargs})


class EncryptedJSONField(EncryptedField):
    description = "AES-256-GCM encrypted JSON document"

    def encode_value(self, value: Any) -> bytes:
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise exceptions.ValidationError(
                f"{self.name} holds a value that is not JSON-serialisable", code="invalid_json"
            ) from exc

    def decode_value(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))

    def to_python(self, value: Any) -> Any:
        return value

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"form_class": forms.JSONField, **kwargs})
