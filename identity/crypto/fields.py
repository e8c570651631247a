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

Loading is batched, for every query the ORM compiles (identity.backends.compiler): the encrypted
columns of up to ``BATCH`` rows are opened together (``open_columns``), the keys not yet cached
unwrapped in one query, before the rows become instances, ``values()`` or related objects: a page of
a hundred users costs two queries, not a hundred and one, and a warm page no key lookup per value.
Outside the ORM's compilers (a fixed statement's rows converted with the fields' own converters,
``from_db_value``) a value is decrypted as it is converted, its key fetched then if not cached.
"""

from __future__ import annotations

import datetime
import json
import os
import uuid
from typing import Any

from cryptography.exceptions import InvalidTag
from django import forms
from django.core import checks, exceptions, validators
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Lookup
from django.utils.dateparse import parse_date
from django.utils.functional import cached_property

from identity.crypto import envelope, keystore
from identity.crypto.envelope import Erased

BATCH = 100


def open_columns(rows: list[list[Any]], columns: dict[int, EncryptedField]) -> None:
    """Decrypt, in place, the encrypted ``columns`` (position: field) of a batch of ``rows`` as the
    driver gave them (identity.backends.compiler). The hot path of every page of rows, kept flat on
    purpose:

    1. each row's key is named by its first value (a row's values are its subject's); the keys not
       cached are unwrapped in one query;
    2. every value whose header (version and key id) is the first value's is opened with that key,
       the header and the field's context as its authenticated data. Every other value takes the
       per-value path, ``EncryptedField.open_token``, which reads its own header: a value under
       another key (its key fetched then), a destroyed key (``Erased``), and every error, named (too
       short, unknown version, unknown key, failed authentication).
    """
    fields = [(position, f.aad_suffix, f.fast_decode, f) for position, f in columns.items()]
    positions = list(columns)
    peek = keystore.peek
    ciphers: dict[bytes, Any] = {}
    for row in rows:
        for position in positions:
            token = row[position]
            if token is not None:
                if type(token) is not bytes:
                    token = row[position] = _as_bytes(token)
                kid = token[1:17]
                if kid not in ciphers:
                    ciphers[kid] = peek(kid)
                break
    missing = [kid for kid, cipher in ciphers.items() if cipher is False and len(kid) == 16]
    if missing:
        keystore.load_keys(missing)
        for kid in missing:
            ciphers[kid] = peek(kid)
    for row in rows:
        head = None
        cipher: Any = None
        for position, aad, decode, field in fields:
            token = row[position]
            if token is None:
                continue
            if type(token) is not bytes:
                token = _as_bytes(token)
            if head is None:
                head = token[:17]
                cipher = ciphers.get(token[1:17])
            elif not token.startswith(head):  # another key or version: its own header decides
                row[position] = field.open_token(token, peek(token[1:17]))
                continue
            try:
                row[position] = decode(cipher.decrypt(token[17:29], token[29:], head + aad))
            except Exception:  # not under the row's key, or not a value: the slow path decides
                row[position] = field.open_token(token, peek(token[1:17]))


def _as_bytes(value: Any) -> bytes:
    """A stored value as bytes: a driver's memoryview, or text that SQLite keeps in a BLOB column
    when someone wrote a string there by hand (which then reads as no ciphertext, never a TypeError)."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)


def seal_columns(objs: list[models.Model], fields: list[EncryptedField]) -> dict[int, dict[int, bytes | None]]:
    """Encrypt the values of ``fields`` for every object of one INSERT together
    (identity.backends.compiler): by ``id(field)``, then ``id(obj)``, what ``pre_save`` would give.

    The same values as ``EncryptedField.encrypt_for``, value by value, at a fraction of the cost: each
    subject's key is looked up once per row, not once per value, and the nonces of the whole batch
    are one read of the system's random source, cut into 96-bit pieces. A row whose values are all
    empty (or ``Erased``) asks for no key, as before: an erased subject's row can be written back.
    """
    spec: list[tuple[EncryptedField, str, bytes, str, bool, dict[int, bytes | None]]] = []
    for field in fields:
        cls = type(field)
        plain_text = (
            cls.encode_value is EncryptedTextField.encode_value and cls.to_python is EncryptedTextField.to_python
        )
        spec.append((field, field.attname, field.aad_suffix, field.key_field, plain_text, {}))
    size = envelope.NONCE
    nonces = os.urandom(size * len(objs) * len(fields))
    at = 0
    known: dict[Any, tuple[bytes, Any]] = {}  # key id: (header, cipher), once per subject in the batch
    for obj in objs:
        values = obj.__dict__
        keyed: dict[str, tuple[bytes, Any]] = {}
        for field, attname, aad, key_field, plain_text, out in spec:
            value = values.get(attname)
            if value is None:
                out[id(obj)] = None
                continue
            if isinstance(value, Erased):
                out[id(obj)] = value.raw
                continue
            entry = keyed.get(key_field)
            if entry is None:
                key_id = field.key_for(obj)
                entry = known.get(key_id)
                if entry is None:
                    entry = known[key_id] = (envelope.VERSION_BYTE + key_id.bytes, keystore.cipher_for_encrypt(key_id))
                keyed[key_field] = entry
            head, cipher = entry
            data = value.encode() if plain_text and type(value) is str else field.encode_value(field.to_python(value))
            nonce = nonces[at : at + size]
            at += size
            out[id(obj)] = head + nonce + cipher.encrypt(nonce, data, head + aad)
    return {id(field): out for field, *_, out in spec}


class EncryptedQuerySet(models.QuerySet):  # type: ignore[type-arg]
    """The queryset of models with encrypted fields. The decryption in batches of rows is the
    compilers' (identity.backends.compiler), for every query; this class stays for the models and
    querysets that build on it."""


EncryptedManager = models.Manager.from_queryset(EncryptedQuerySet)


class EncryptedField(models.Field):  # type: ignore[type-arg]
    """Base class: subclasses say how a Python value becomes bytes and back."""

    empty_strings_allowed = False
    description = "AES-256-GCM encrypted value"

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
        """``decode_value``, or a builtin that does the same without a Python call (open_columns)."""
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
        return envelope.encrypt(
            self.encode_value(self.to_python(value)), key_id=self.key_for(instance), context=self.aad_suffix
        )

    def key_for(self, instance: models.Model) -> uuid.UUID:
        """The data key id that ``instance``'s values of this field are encrypted under."""
        key_id = getattr(instance, self.key_field)
        if key_id is None:
            raise exceptions.ImproperlyConfigured(
                f"{self.model._meta.label}.{self.key_field} is empty: no data key to encrypt {self.name} under"
            )
        return key_id if isinstance(key_id, uuid.UUID) else uuid.UUID(str(key_id))

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        # From __dict__: a value under a destroyed key is written back as it was (Erased keeps it).
        return self.encrypt_for(model_instance, model_instance.__dict__.get(self.attname))

    def get_db_prep_value(self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False) -> Any:
        if value is None:
            return None
        if isinstance(value, Erased):
            value = value.raw
        if not isinstance(value, bytes | memoryview):
            # Only pre_save knows the row, and so the key: QuerySet.update() cannot encrypt.
            raise exceptions.FieldError(
                f"{self.model._meta.label}.{self.name} is encrypted; write it by saving the instance, "
                "not with QuerySet.update() or a raw value"
            )
        return connection.Database.Binary(bytes(value))  # type: ignore[attr-defined]

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is None:
            return None
        token = value if type(value) is bytes else _as_bytes(value)
        return self.open_token(token, keystore.peek(token[1:17]))

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


# The document as stored: compact, keys sorted, UTF-8. One encoder for every value (json.dumps with
# these options builds a new one per call).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class EncryptedJSONField(EncryptedField):
    description = "AES-256-GCM encrypted JSON document"

    def encode_value(self, value: Any) -> bytes:
        try:
            return _JSON.encode(value).encode("utf-8")
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
