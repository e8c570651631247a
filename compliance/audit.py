"""The tamper-evident event log: ``record()`` appends, ``verify_chain()`` proves nothing was rewritten.

Each entry carries ``prev_hash`` (the previous entry's hash) and its own ``entry_hash``: an
HMAC-SHA256, under a key derived from BLIND_INDEX_KEY, over the entry's stored bytes and
``prev_hash``. Altering, inserting or deleting an entry breaks the chain at that entry; deleting
the newest entries shows against the chain head. The key means that someone who can write to the
database but does not hold the application's keys cannot forge a consistent chain.

Personal data never lies in clear in an entry: ``data`` and ``ip`` are encrypted under the
subject's data key (else the actor's); with neither, ``data`` must not be personal (it is stored
as-is, secrets masked) and the IP is kept only as a blind index.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.models import AuditChainHead, AuditEvent
from identity.crypto import envelope
from identity.crypto.blind import blind_index
from identity.crypto.kek import decode_key

GENESIS = "0" * 64
PAYLOAD_CONTEXT = "compliance.auditevent.payload"
SECRET_MARKERS = ("password", "secret", "token", "otp", "code", "key", "credential", "authorization")
MASK = "********"


@lru_cache(maxsize=2)
def _chain_key(encoded: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"identity.audit-chain.v1")
    return hkdf.derive(decode_key(encoded, name="BLIND_INDEX_KEY"))


def mask_secrets(value: Any) -> Any:
    """Replace the values of secret-looking keys, at any depth, with a mask."""
    if isinstance(value, dict):
        return {
            k: (MASK if any(marker in str(k).lower() for marker in SECRET_MARKERS) else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


@dataclass(frozen=True)
class Party:
    """Who acted or whose data it is, reduced to what the log stores."""

    type: str
    ref: str
    data_key_id: uuid.UUID | None


def _party(obj: Any) -> Party:
    if obj is None:
        return Party(AuditEvent.ActorType.ANONYMOUS, "", None)
    if isinstance(obj, str):
        return Party(AuditEvent.ActorType.SYSTEM, obj[:64], None)
    pk = getattr(obj, "pk", None)
    if pk is None:
        raise ValueError("an audit actor or subject must be a saved user, a system name, or None")
    return Party(AuditEvent.ActorType.USER, str(pk), getattr(obj, "data_key_id", None))


def _canonical(event: AuditEvent) -> bytes:
    payload = bytes(event.payload) if event.payload is not None else b""
    fields = [
        event.pk,
        event.occurred_at.astimezone(datetime.UTC).isoformat(),
        event.action,
        event.actor_type,
        event.actor_ref,
        event.subject_ref,
        str(event.data_key_id) if event.data_key_id else "",
        payload.hex(),
        event.details,
        event.ip_index,
        event.prev_hash,
    ]
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def compute_hash(event: AuditEvent) -> str:
    return hmac.new(_chain_key(settings.BLIND_INDEX_KEY), _canonical(event), hashlib.sha256).hexdigest()


def _head_for_update() -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        AuditChainHead.objects.get_or_create(pk=1, defaults={"last_hash": GENESIS})
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


@transaction.atomic
def record(
    action: str,
    *,
    actor: Any,
    subject: Any = None,
    data: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append an event. ``actor``/``subject``: a saved user, a system name (str), or None.

    Call it inside the transaction that makes the change, so that the change and its record
    commit or roll back together.
    """
    actor_party = _party(actor)
    subject_party = _party(subject) if subject is not None else None
    key_id = (subject_party.data_key_id if subject_party else None) or actor_party.data_key_id
    clean = mask_secrets(data or {})

    event = AuditEvent(
        occurred_at=timezone.now(),
        action=action,
        actor_type=actor_party.type,
        actor_ref=actor_party.ref,
        subject_ref=subject_party.ref if subject_party else "",
    )
    if key_id is not None:
        plaintext = json.dumps({"data": clean, "ip": ip}, sort_keys=True, separators=(",", ":")).encode()
        event.data_key_id = key_id
        event.payload = envelope.encrypt(plaintext, key_id=key_id, context=PAYLOAD_CONTEXT)
        event.details = {}
    else:
        event.details = clean
        event.ip_index = blind_index(ip, purpose="ip") if ip else ""

    head = _head_for_update()
    event.id = head.last_event_id + 1
    event.prev_hash = head.last_hash
    event.entry_hash = compute_hash(event)
    event.save(force_insert=True)
    head.last_event_id = event.pk
    head.last_hash = event.entry_hash
    head.length += 1
    head.save(update_fields=["last_event_id", "last_hash", "length"])
    return event


def read_payload(event: AuditEvent) -> dict[str, Any] | envelope.Erased:
    """The decrypted ``{"data", "ip"}`` of an event, ``details`` for a keyless one, or Erased."""
    if event.payload is None:
        return {"data": event.details, "ip": None}
    plaintext = envelope.decrypt(event.payload, context=PAYLOAD_CONTEXT)
    if isinstance(plaintext, envelope.Erased):
        return plaintext
    result: dict[str, Any] = json.loads(plaintext)
    return result


@dataclass(frozen=True)
class ChainProblem:
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"entry #{self.event_id}" if self.event_id is not None else "chain head"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    length: int
    head_hash: str
    problem: ChainProblem | None

    @property
    def intact(self) -> bool:
        return self.problem is None


def _events(chunk_size: int) -> Iterator[AuditEvent]:
    return AuditEvent.objects.order_by("id").iterator(chunk_size=chunk_size)


def verify_chain(*, chunk_size: int = 2000) -> ChainReport:
    """Walk the log in order; return the first broken entry, if any. Memory stays flat."""
    expected_prev = GENESIS
    count = 0
    last_id = 0
    for event in _events(chunk_size):
        if event.prev_hash != expected_prev:
            return ChainReport(
                count,
                expected_prev,
                ChainProblem(event.pk, "does not follow the entry before it (an entry was deleted or inserted)"),
            )
        if not hmac.compare_digest(compute_hash(event), event.entry_hash):
            return ChainReport(
                count, expected_prev, ChainProblem(event.pk, "content does not match its hash (altered)")
            )
        expected_prev = event.entry_hash
        last_id = event.pk
        count += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    head_hash = head.last_hash if head else GENESIS
    head_id = head.last_event_id if head else 0
    if head_hash != expected_prev or head_id != last_id:
        return ChainReport(
            count,
            expected_prev,
            ChainProblem(
                head_id or None,
                f"the chain head names entry #{head_id} but the log ends at #{last_id} "
                "(newest entries were deleted, or the head was altered)",
            ),
        )
    return ChainReport(count, expected_prev, None)
