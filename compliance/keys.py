"""Key management use cases: rewrap data keys under the newest KEK, re-encrypt stale values.

Both are idempotent and safe to interrupt: each unit of work is one conditional update, and a
second run picks up what is left. Both leave an entry in the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import connections, models, router, transaction

from compliance import audit
from identity.crypto import envelope, keystore
from identity.crypto.fields import EncryptedField
from identity.crypto.kek import keyring
from identity.models import SubjectKey

Progress = Callable[[int], None]


def _noop(_: int) -> None:
    return None


@dataclass
class RotationResult:
    pending: int
    rewrapped: int = 0
    skipped: int = 0


def rotate_keys(*, batch_size: int = 500, dry_run: bool = False, progress: Progress = _noop) -> RotationResult:
    """Rewrap every live data key that is not under the current KEK (CONTRACT.md: rotate_keys)."""
    current = keyring().current_id
    pending_qs = SubjectKey.objects.needing_rewrap(current).order_by("pk")
    result = RotationResult(pending=pending_qs.count())
    if dry_run:
        return result
    last_pk: uuid.UUID | None = None
    while True:
        batch_qs = pending_qs if last_pk is None else pending_qs.filter(pk__gt=last_pk)
        batch = list(batch_qs[:batch_size])
        if not batch:
            break
        for row in batch:
            if keystore.rewrap(row):
                result.rewrapped += 1
            else:
                result.skipped += 1
        last_pk = batch[-1].pk
        progress(len(batch))
    audit.record(
        "compliance.keys.rotated",
        actor="system:rotate_keys",
        data={"kek_id": current, "rewrapped": result.rewrapped, "skipped": result.skipped},
    )
    return result


def encrypted_models() -> list[tuple[type[models.Model], list[EncryptedField]]]:
    found = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedField)]
        if fields:
            found.append((model, fields))
    return found


def _raw_rows(model: type[models.Model], fields: list[EncryptedField], batch_size: int) -> Iterator[list[tuple]]:
    """Batches of (pk, key attribute, raw ciphertext...) read without decrypting."""
    alias = router.db_for_read(model)
    connection = connections[alias]
    qn = connection.ops.quote_name
    meta = model._meta
    table = qn(meta.db_table)
    pk_col = qn(str(meta.pk.column if meta.pk else "id"))
    key_col = qn(str(meta.get_field(fields[0].key_field).column))  # type: ignore[union-attr]
    value_cols = [qn(str(f.column)) for f in fields]
    columns = ", ".join([pk_col, key_col, *value_cols])
    last: object = None
    while True:
        where = f" WHERE {pk_col} > %s" if last is not None else ""
        params: list[Any] = [last] if last is not None else []
        sql = f"SELECT {columns} FROM {table}{where} ORDER BY {pk_col} LIMIT {int(batch_size)}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _is_stale(raw: bytes | memoryview | None, row_key: object) -> bool:
    if raw is None:
        return False
    token = bytes(raw)
    if token[0] != envelope.VERSION:
        return True
    return str(envelope.key_id_of(token)) != str(uuid.UUID(str(row_key)))


@dataclass
class ReencryptResult:
    scanned: int = 0
    stale: int = 0
    rewritten: int = 0
    erased_skipped: int = 0
    per_model: dict[str, int] = field(default_factory=dict)


def reencrypt(
    *, batch_size: int = 500, dry_run: bool = False, everything: bool = False, progress: Progress = _noop
) -> ReencryptResult:
    """Rewrite values that are not under their row's current data key and ciphertext version.

    With ``everything`` every value is decrypted and written again with a fresh nonce (which also
    proves that every stored value still authenticates).
    """
    result = ReencryptResult()
    for model, fields in encrypted_models():
        names = [f.attname for f in fields]
        label = model._meta.label
        result.per_model[label] = 0
        for rows in _raw_rows(model, fields, batch_size):
            result.scanned += len(rows)
            targets = [row[0] for row in rows if everything or any(_is_stale(raw, row[1]) for raw in row[2:])]
            result.stale += len(targets)
            if targets and not dry_run:
                with transaction.atomic(using=router.db_for_write(model)):
                    for instance in model._base_manager.select_for_update().filter(pk__in=targets):
                        if keystore.is_shredded(getattr(instance, fields[0].key_field)):
                            result.erased_skipped += 1
                            continue
                        instance.save(update_fields=names)
                        result.rewritten += 1
                        result.per_model[label] += 1
            progress(len(rows))
    if not dry_run:
        audit.record(
            "compliance.keys.reencrypted",
            actor="system:reencrypt",
            data={"scanned": result.scanned, "rewritten": result.rewritten, "everything": everything},
        )
    return result


def total_encrypted_rows() -> int:
    return sum(model._base_manager.count() for model, _ in encrypted_models())
