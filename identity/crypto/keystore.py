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
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import router, transaction
from django.utils import timezone

from identity.crypto.errors import KeyShreddedError, KeyUnwrapError, UnknownKeyError
from identity.crypto.kek import keyring
from identity.models import SubjectKey

_NONCE = 12


def _wrap_aad(key_id: uuid.UUID, kek_id: str) -> bytes:
    return b"identity.subjectkey\x00" + key_id.bytes + b"\x00" + kek_id.encode()


def wrap(dek: bytes, *, key_id: uuid.UUID, kek_id: str | None = None) -> tuple[str, bytes]:
    ring = keyring()
    kek_id = kek_id or ring.current_id
    nonce = os.urandom(_NONCE)
    return kek_id, nonce + AESGCM(ring.get(kek_id)).encrypt(nonce, dek, _wrap_aad(key_id, kek_id))


def unwrap(wrapped: bytes | memoryview, *, key_id: uuid.UUID, kek_id: str) -> bytes:
    wrapped = bytes(wrapped)
    kek = keyring().get(kek_id)
    try:
        return AESGCM(kek).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _wrap_aad(key_id, kek_id))
    except InvalidTag:
        raise KeyUnwrapError(
            f"data key {key_id} could not be unwrapped with key-encryption key {kek_id!r}: "
            "the configured key material is not the one it was wrapped with"
        ) from None


@dataclass
class _Entry:
    cipher: AESGCM | None  # None: the key was shredded
    expires_at: float
    confirmed: bool


class _Cache:
    def __init__(self) -> None:
        self._entries: OrderedDict[uuid.UUID, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key_id: uuid.UUID) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is None:
                return None
            if entry.expires_at < time.monotonic():
                del self._entries[key_id]
                return None
            self._entries.move_to_end(key_id)
            return entry

    def put(self, key_id: uuid.UUID, cipher: AESGCM | None, *, confirmed: bool) -> None:
        ttl = settings.DEK_CACHE_TTL_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key_id] = _Entry(cipher, time.monotonic() + ttl, confirmed)
            self._entries.move_to_end(key_id)
            while len(self._entries) > settings.DEK_CACHE_MAX_ENTRIES:
                self._entries.popitem(last=False)

    def confirm(self, key_id: uuid.UUID) -> None:
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is not None:
                entry.confirmed = True

    def drop(self, key_id: uuid.UUID) -> None:
        with self._lock:
            self._entries.pop(key_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _Cache()


def clear_cache() -> None:
    """Forget every unwrapped key in this process (tests; after a KEK is withdrawn)."""
    _cache.clear()


def _db_alias() -> str:
    return router.db_for_write(SubjectKey)


def _remember(key_id: uuid.UUID, cipher: AESGCM | None) -> None:
    """Cache a key; confirmed at once in autocommit, else when the current transaction commits."""
    alias = _db_alias()
    in_transaction = transaction.get_connection(alias).in_atomic_block
    _cache.put(key_id, cipher, confirmed=not in_transaction)
    if in_transaction:
        transaction.on_commit(lambda: _cache.confirm(key_id), using=alias)


def _load(key_id: uuid.UUID) -> SubjectKey | None:
    return SubjectKey.objects.using(_db_alias()).filter(pk=key_id).first()


def _cipher_from_row(row: SubjectKey) -> AESGCM | None:
    if row.is_shredded or row.wrapped_key is None:
        return None
    return AESGCM(unwrap(row.wrapped_key, key_id=row.pk, kek_id=row.kek_id))


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
    """Create, in one statement, the DEKs among ``key_ids`` that do not exist yet. Returns how many."""
    wanted = set(key_ids)
    alias = _db_alias()
    existing = set(SubjectKey.objects.using(alias).filter(pk__in=wanted).values_list("pk", flat=True))
    rows: list[SubjectKey] = []
    ciphers: dict[uuid.UUID, AESGCM] = {}
    for key_id in wanted - existing:
        dek = AESGCM.generate_key(bit_length=256)
        kek_id, wrapped = wrap(dek, key_id=key_id)
        rows.append(SubjectKey(id=key_id, kek_id=kek_id, wrapped_key=wrapped))
        ciphers[key_id] = AESGCM(dek)
    SubjectKey.objects.using(alias).bulk_create(rows, batch_size=1000)
    for key_id, cipher in ciphers.items():
        _remember(key_id, cipher)
    return len(rows)


def _usable(cipher: AESGCM | None, key_id: uuid.UUID) -> AESGCM:
    if cipher is None:
        raise KeyShreddedError(f"data key {key_id} was destroyed; the subject has been erased")
    return cipher


def cipher_for_encrypt(key_id: uuid.UUID) -> AESGCM:
    """The subject's cipher for new values, creating the DEK on first use.

    Raises KeyShreddedError for a subject whose key was destroyed: nothing new may be written
    for an erased subject under their old identity. An unconfirmed cache entry (its key was made
    in a transaction not yet committed) is checked against the database before use.
    """
    entry = _cache.get(key_id)
    if entry is not None and entry.confirmed:
        return _usable(entry.cipher, key_id)
    row = _load(key_id)
    if row is None:
        return _create(key_id)
    cipher = _cipher_from_row(row)
    _remember(key_id, cipher)
    return _usable(cipher, key_id)


def cipher_for_decrypt(key_id: uuid.UUID) -> AESGCM | None:
    """The subject's cipher, or None when the key was destroyed. Unknown keys are an error."""
    entry = _cache.get(key_id)
    if entry is not None:
        return entry.cipher
    row = _load(key_id)
    if row is None:
        raise UnknownKeyError(f"data key {key_id} does not exist in the key store")
    cipher = _cipher_from_row(row)
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
    _cache.drop(key_id)
    return updated == 1


def is_shredded(key_id: uuid.UUID) -> bool:
    return SubjectKey.objects.using(_db_alias()).filter(pk=key_id, shredded_at__isnull=False).exists()


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
