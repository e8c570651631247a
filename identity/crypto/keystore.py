"""Per-subject data-encryption keys: create, unwrap (with a cache), rewrap, and destroy.

Each data subject has one DEK, a random 256-bit AES key stored only wrapped under a key-encryption
key (KEK) from FIELD_ENCRYPTION_KEYS. Unwrapped keys are cached in the process (LRU with a TTL) so
that reading a page of rows unwraps each subject's key once, not once per field.

A key created inside a transaction is cached as *unconfirmed* until the transaction commits: if
it rolls back, the next use finds the row gone and makes a new key, so nothing is ever encrypted
under a key that was not stored.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, router, transaction
from django.utils import timezone

from identity.crypto.errors import KeyShreddedError, KeyUnwrapError, UnknownKeyError
from identity.crypto.kek import kek_cipher, keyring
from identity.db import fixed_cursor
from identity.models import SubjectKey

_NONCE = 12


def _wrap_aad(key_id: uuid.UUID | bytes, kek_id: str) -> bytes:
    raw = key_id if type(key_id) is bytes else key_id.bytes  # type: ignore[union-attr]
    return b"identity.subjectkey\x00" + raw + b"\x00" + kek_id.encode()


def wrap(dek: bytes, *, key_id: uuid.UUID, kek_id: str | None = None) -> tuple[str, bytes]:
    kek_id = kek_id or keyring().current_id
    nonce = os.urandom(_NONCE)
    return kek_id, nonce + kek_cipher(kek_id).encrypt(nonce, dek, _wrap_aad(key_id, kek_id))


def unwrap(wrapped: bytes | memoryview, *, key_id: uuid.UUID | bytes, kek_id: str) -> bytes:
    wrapped = bytes(wrapped)
    kek = kek_cipher(kek_id)
    try:
        return kek.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _wrap_aad(key_id, kek_id))
    except InvalidTag:
        named = key_id if isinstance(key_id, uuid.UUID) else uuid.UUID(bytes=key_id)
        raise KeyUnwrapError(
            f"data key {named} could not be unwrapped with key-encryption key {kek_id!r}: "
            "the configured key material is not the one it was wrapped with"
        ) from None


class _PendingBatch:
    """Keys made inside one transaction (at one savepoint depth) and not yet committed.

    Its ``callback`` is registered with ``transaction.on_commit``. While the callback is still queued
    on the connection, the transaction that made the keys is alive and may use them; once it has
    run, the keys are committed; if Django dropped it (rollback of the transaction or of the
    savepoint), the keys were never stored and must not be used.
    """

    __slots__ = ("alias", "callback", "committed")

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.committed = False
        self.callback = self._confirm

    def _confirm(self) -> None:
        self.committed = True

    def alive(self) -> bool:
        if self.committed:
            return True
        connection = transaction.get_connection(self.alias)
        return any(entry[1] is self.callback for entry in connection.run_on_commit)


class _Entry:
    __slots__ = ("batch", "cipher", "expires_at")

    def __init__(self, cipher: AESGCM | None, expires_at: float, batch: _PendingBatch | None) -> None:
        self.cipher = cipher  # None: the key was shredded
        self.expires_at = expires_at
        self.batch = batch  # None: committed (or read outside any transaction)

    def usable_for_new_values(self) -> bool:
        if self.batch is None:
            return True
        if self.batch.committed:
            self.batch = None
            return True
        return self.batch.alive()


class _Cache:
    """Unwrapped keys by their 16-byte id. Reads take no lock (dict access is atomic in CPython);
    eviction is oldest-first once DEK_CACHE_MAX_ENTRIES is reached."""

    def __init__(self) -> None:
        self._entries: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, key_id: bytes) -> _Entry | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if entry.expires_at < time.monotonic():
            self._entries.pop(key_id, None)
            return None
        return entry

    def put(self, key_id: bytes, cipher: AESGCM | None, batch: _PendingBatch | None) -> None:
        ttl = settings.DEK_CACHE_TTL_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            self._entries.pop(key_id, None)
            self._entries[key_id] = _Entry(cipher, time.monotonic() + ttl, batch)
            overflow = len(self._entries) - settings.DEK_CACHE_MAX_ENTRIES
            if overflow > 0:
                for old in list(self._entries)[:overflow]:
                    self._entries.pop(old, None)

    def put_many(self, entries: list[tuple[bytes, AESGCM | None]], batch: _PendingBatch | None) -> None:
        """``put`` for the keys of a page: one lock, one expiry time, one check of the size."""
        ttl = settings.DEK_CACHE_TTL_SECONDS
        if ttl <= 0 or not entries:
            return
        expires_at = time.monotonic() + ttl
        with self._lock:
            for key_id, cipher in entries:
                self._entries.pop(key_id, None)
                self._entries[key_id] = _Entry(cipher, expires_at, batch)
            overflow = len(self._entries) - settings.DEK_CACHE_MAX_ENTRIES
            if overflow > 0:
                for old in list(self._entries)[:overflow]:
                    self._entries.pop(old, None)

    def drop(self, key_id: bytes) -> None:
        self._entries.pop(key_id, None)

    def clear(self) -> None:
        self._entries.clear()


_cache = _Cache()


def clear_cache() -> None:
    """Forget every unwrapped key in this process (tests; after a KEK is withdrawn)."""
    _cache.clear()


def _db_alias() -> str:
    return router.db_for_write(SubjectKey)


def _current_batch(alias: str) -> _PendingBatch | None:
    """The pending batch for the current transaction and savepoint, or None in autocommit."""
    connection = transaction.get_connection(alias)
    if not connection.in_atomic_block:
        return None
    batches: dict[tuple[str, ...], _PendingBatch] = connection.__dict__.setdefault("_identity_key_batches", {})
    depth = tuple(connection.savepoint_ids)
    batch = batches.get(depth)
    if batch is None or batch.committed or not batch.alive():
        if len(batches) > 32:  # forget batches of transactions that have ended
            for stale in [k for k, b in batches.items() if b.committed or not b.alive()]:
                del batches[stale]
        batch = _PendingBatch(alias)
        transaction.on_commit(batch.callback, using=alias)
        batches[depth] = batch
    return batch


def _remember(key_id: uuid.UUID, cipher: AESGCM | None) -> None:
    """Cache a key; in a transaction it stays tied to it until commit (see _PendingBatch)."""
    _cache.put(key_id.bytes, cipher, _current_batch(_db_alias()))


def peek(key_id: bytes) -> AESGCM | bool | None:
    """The cached cipher for a raw key id: AESGCM, None (shredded), or False (not cached)."""
    entry = _cache.get(key_id)
    return False if entry is None else entry.cipher


def _load(key_id: uuid.UUID) -> SubjectKey | None:
    return SubjectKey.objects.using(_db_alias()).filter(pk=key_id).first()


def _cipher_from_row(row: SubjectKey) -> AESGCM | None:
    if row.is_shredded or row.wrapped_key is None:
        return None
    return AESGCM(unwrap(row.wrapped_key, key_id=row.pk, kek_id=row.kek_id))


def load_keys(key_ids: Iterable[bytes]) -> None:
    """Unwrap and cache, in one query, every key among ``key_ids`` (raw 16-byte ids) that is not
    cached yet. Ids that do not exist stay uncached: reading a value under one raises
    UnknownKeyError then."""
    missing = [kid for kid in dict.fromkeys(key_ids) if _cache.get(kid) is None]
    if not missing:
        return
    found: list[tuple[bytes, AESGCM | None]] = []
    keks: dict[str, AESGCM] = {}  # ``unwrap`` inlined: a cold page's keys are almost always under one KEK
    for kid, kek_id, wrapped in _key_rows(missing):
        if wrapped is None:  # shredded
            found.append((kid, None))
            continue
        kek = keks.get(kek_id)
        if kek is None:
            kek = keks[kek_id] = kek_cipher(kek_id)  # UnknownKeyError for a KEK not configured
        try:
            dek = kek.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _wrap_aad(kid, kek_id))
        except InvalidTag:
            unwrap(wrapped, key_id=kid, kek_id=kek_id)  # raises KeyUnwrapError, naming the key
            raise
        found.append((kid, AESGCM(dek)))
    _cache.put_many(found, _current_batch(_db_alias()))


def _key_rows(ids: list[bytes]) -> list[tuple[bytes, str, bytes | None]]:
    """(raw id, KEK id, wrapped key) of the rows among the raw 16-byte ``ids``: the cold page's key
    read, kept to the bytes it needs (no UUID parsed from text). On PostgreSQL one fixed statement
    with the ids as one binary array parameter, prepared once (``identity.db.fixed_cursor``),
    whatever their number, and its rows in binary: a cold page of 100 people asked the ORM to
    compile, and the server to plan, an ``IN`` of 100 parameters every time, and in text the array
    of ids cost more to write and read than the query (100 keys: 0.74 -> 0.44 ms). SQLite keeps a
    UUID as its 32 hex digits (the field's own conversion), one placeholder per id."""
    alias = _db_alias()
    connection = connections[alias]
    select = _KEYS_SQL.get(alias)
    if select is None:
        q = connection.ops.quote_name
        id_column, kek_column, wrapped_column = (
            q(str(getattr(SubjectKey._meta.get_field(n), "column", n))) for n in ("id", "kek_id", "wrapped_key")
        )
        # Only quoted names from the model's metadata go into the text; the ids are parameters.
        # PostgreSQL returns the id as its 16 bytes (uuid_send), SQLite as the hex digits it keeps.
        returned = f"uuid_send({id_column})" if connection.vendor == "postgresql" else id_column
        select = _KEYS_SQL[alias] = (
            f"SELECT {returned}, {kek_column}, {wrapped_column} FROM {q(SubjectKey._meta.db_table)} "  # noqa: S608
            f"WHERE {id_column} "
        )
    if connection.vendor == "postgresql":
        # In binary both ways: the ids as a binary uuid[], the rows' ids as their 16 bytes
        # (uuid_send) and the wrapped keys as bytes; in text every id was a hex string parsed twice.
        with fixed_cursor(alias, binary_results=True) as cursor:
            cursor.execute(select + "= ANY(%b::uuid[])", [[uuid.UUID(bytes=kid) for kid in ids]])
            return cursor.fetchall()
    hexes = [kid.hex() for kid in ids]
    with connection.cursor() as cursor:
        cursor.execute(select + "IN (" + ", ".join(["%s"] * len(hexes)) + ")", hexes)
        return [(bytes.fromhex(key_id), kek_id, wrapped) for key_id, kek_id, wrapped in cursor.fetchall()]


_KEYS_SQL: dict[str, str] = {}


def _create(key_id: uuid.UUID) -> AESGCM:
    dek = AESGCM.generate_key(bit_length=256)
    kek_id, wrapped = wrap(dek, key_id=key_id)
    SubjectKey.objects.using(_db_alias()).create(id=key_id, kek_id=kek_id, wrapped_key=wrapped)
    cipher = AESGCM(dek)
    _remember(key_id, cipher)
    return cipher


def create_key(key_id: uuid.UUID | None = None) -> uuid.UUID:
    """Make and store a new DEK; return its id."""
    key_id = key_id or uuid.uuid4()
    _create(key_id)
    return key_id


def ensure_keys(key_ids: Iterable[uuid.UUID]) -> int:
    """Create the DEKs among ``key_ids`` that do not exist yet, with one statement per 1,000 keys
    (``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id``: a key that exists, or that another
    process makes at the same moment, is left as it is and not cached). Returns how many it made.

    The batch's keys and their wrapping nonces are one read of the random source. On PostgreSQL the
    statement's text never changes (prepared once, ``identity.db.fixed_cursor``): the ids and the
    wrapped keys are two array parameters, unnested; a text with 4,000 placeholders cost more to
    compose and parse than the insert itself. SQLite takes a VALUES list, a UUID as its 32 hex
    digits (the field's own conversion)."""
    alias = _db_alias()
    connection = connections[alias]
    if not connection.features.can_return_rows_from_bulk_insert:
        raise ImproperlyConfigured("the key store needs INSERT ... RETURNING: PostgreSQL, or SQLite 3.35 or later")
    wanted = list(dict.fromkeys(key_ids))
    postgres = connection.vendor == "postgresql"
    kek_id = keyring().current_id
    kek = kek_cipher(kek_id)
    now = _key_field("created_at").get_db_prep_save(timezone.now(), connection)
    made: list[tuple[bytes, AESGCM | None]] = []
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        deks: dict[bytes, bytes] = {}
        wrapped_keys: list[bytes] = []
        randomness = os.urandom((32 + _NONCE) * len(chunk))
        at = 0
        for key_id in chunk:
            raw = key_id.bytes
            dek, nonce = randomness[at : at + 32], randomness[at + 32 : at + 32 + _NONCE]
            at += 32 + _NONCE
            deks[raw] = dek
            wrapped_keys.append(nonce + kek.encrypt(nonce, dek, _wrap_aad(raw, kek_id)))
        if postgres:
            with fixed_cursor(alias) as cursor:
                cursor.execute(_insert_keys_sql(connection, None), [kek_id, now, chunk, wrapped_keys])
                inserted = [key_id.bytes for (key_id,) in cursor.fetchall()]
        else:
            params: list[Any] = []
            for key_id, wrapped in zip(chunk, wrapped_keys, strict=True):
                params += (key_id.hex, kek_id, wrapped, now)
            with connection.cursor() as cursor:
                cursor.execute(_insert_keys_sql(connection, len(chunk)), params)
                inserted = [bytes.fromhex(key_id) for (key_id,) in cursor.fetchall()]
        made.extend((raw, AESGCM(deks[raw])) for raw in inserted)
    _cache.put_many(made, _current_batch(alias))
    return len(made)


def _key_field(name: str) -> models.Field[Any, Any]:
    return cast("models.Field[Any, Any]", SubjectKey._meta.get_field(name))


def _insert_keys_sql(connection: Any, rows: int | None) -> str:
    """The key store's INSERT: for ``rows`` rows of four parameters (id, KEK id, wrapped key, time),
    or, with ``rows=None`` (PostgreSQL), of the KEK id, the time, and two arrays: ids and wrapped keys."""
    q = connection.ops.quote_name
    table = q(SubjectKey._meta.db_table)
    id_column = q(_key_field("id").column)
    columns = ", ".join(q(_key_field(n).column) for n in ("id", "kek_id", "wrapped_key", "created_at"))
    # Only quoted names from the model's metadata go into the text; every value is a parameter.
    if rows is None:
        # The two arrays in binary (%b): bound on the client, every wrapped key would be escaped in Python.
        source = "SELECT k.id, %s, k.wrapped, %s FROM unnest(%b::uuid[], %b::bytea[]) AS k(id, wrapped)"
    else:
        source = "VALUES " + ", ".join(["(%s, %s, %s, %s)"] * rows)
    return f"INSERT INTO {table} ({columns}) {source} ON CONFLICT ({id_column}) DO NOTHING RETURNING {id_column}"


def _usable(cipher: AESGCM | None, key_id: uuid.UUID) -> AESGCM:
    if cipher is None:
        raise KeyShreddedError(f"data key {key_id} was destroyed; the subject has been erased")
    return cipher


def cipher_for_encrypt(key_id: uuid.UUID) -> AESGCM:
    """The subject's cipher for new values, creating the DEK on first use.

    Raises KeyShreddedError for a subject whose key was destroyed: nothing new may be written
    for an erased subject under their old identity. A key made by a transaction that has since
    rolled back is never used: it is looked up again (and made anew).
    """
    entry = _cache.get(key_id.bytes)
    if entry is not None and entry.usable_for_new_values():
        return _usable(entry.cipher, key_id)
    row = _load(key_id)
    if row is None:
        return _create(key_id)
    cipher = _cipher_from_row(row)
    _remember(key_id, cipher)
    return _usable(cipher, key_id)


def cipher_for_decrypt(key_id: uuid.UUID) -> AESGCM | None:
    """The subject's cipher, or None when the key was destroyed. Unknown keys are an error."""
    entry = _cache.get(key_id.bytes)
    if entry is not None:
        return entry.cipher
    rows = _key_rows([key_id.bytes])  # the page's key statement: prepared on PostgreSQL, no ORM compiling
    if not rows:
        raise UnknownKeyError(f"data key {key_id} does not exist in the key store")
    _, kek_id, wrapped = rows[0]
    cipher = None if wrapped is None else AESGCM(unwrap(wrapped, key_id=key_id, kek_id=kek_id))
    _remember(key_id, cipher)
    return cipher


def shred(key_id: uuid.UUID) -> bool:
    """Destroy a subject's DEK. Every value under it reads as erased from now on, everywhere.

    Idempotent: returns True when this call destroyed the key, False when it was already gone.
    """
    alias = _db_alias()
    with transaction.atomic(using=alias):
        updated = (
            SubjectKey.objects.using(alias)
            .filter(pk=key_id, shredded_at__isnull=True)
            .update(wrapped_key=None, kek_id="", shredded_at=timezone.now())
        )
    _cache.drop(key_id.bytes)
    return updated == 1


def shred_in_time(key_id: uuid.UUID, *, destroy: bool) -> bool:
    """:func:`shred` when ``destroy``; otherwise the same statements, changing nothing (an UPDATE no
    key row meets: a live key has its wrapped key, a shredded one its time). For a caller whose
    timing must not show whether there was a key of its own to destroy (a request without an
    account, ``compliance.dsr.intake``), as Django's ModelBackend hashes a password for an unknown
    user."""
    if destroy:
        return shred(key_id)
    alias = _db_alias()
    with transaction.atomic(using=alias):
        SubjectKey.objects.using(alias).filter(pk=key_id, wrapped_key__isnull=True, shredded_at__isnull=True).update(
            kek_id="", shredded_at=timezone.now()
        )
    return False


def is_shredded(key_id: uuid.UUID) -> bool:
    return SubjectKey.objects.using(_db_alias()).filter(pk=key_id, shredded_at__isnull=False).exists()


def is_live(key_id: uuid.UUID) -> bool:
    """Whether the key exists and was not destroyed, asked of the key table with exactly one
    statement whether or not this process has the key cached: a key not cached is read and
    unwrapped (and cached: the caller is about to use it), a cached one is checked for shredding
    since. For answers that must take the same time whatever the key's state (no enumeration)."""
    kid = key_id.bytes
    if peek(kid) is False:
        load_keys([kid])
        cipher = peek(kid)
        return cipher is not None and cipher is not False
    return not is_shredded(key_id)


def rewrap(row: SubjectKey) -> bool:
    """Re-wrap one DEK under the current KEK. Returns False when there was nothing to do."""
    current = keyring().current_id
    if row.is_shredded or row.kek_id == current or row.wrapped_key is None:
        return False
    dek = unwrap(row.wrapped_key, key_id=row.pk, kek_id=row.kek_id)
    kek_id, wrapped = wrap(dek, key_id=row.pk, kek_id=current)
    # Conditional on the old kek_id: a concurrent rewrap or shred wins, and we do nothing.
    updated = (
        SubjectKey.objects.using(_db_alias())
        .filter(pk=row.pk, kek_id=row.kek_id, shredded_at__isnull=True)
        .update(kek_id=kek_id, wrapped_key=wrapped, rewrapped_at=timezone.now())
    )
    return updated == 1
