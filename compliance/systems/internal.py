"""This service's own database as a data system, driven entirely by the personal-data registry.

Every declared model with a ``subject_lookup`` is exported (personal and pseudonymous fields, never
secrets) and erased as its declaration says. Crypto-shredding of the subject's key is not done
here but once, at the end of an erasure, after every system has reported (compliance.fulfilment).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db import models

from compliance.registry import Declaration, Erasure, Kind, Registry, registry
from compliance.systems.base import Description, ErasureResult, Kept, Record, SubjectRef
from identity.crypto import keystore
from identity.crypto.envelope import Erased

EXPORTED_KINDS = (Kind.PERSONAL, Kind.PSEUDONYMOUS)


def jsonable(value: Any) -> Any:
    if isinstance(value, Erased):
        return "[erased]"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, bytes | memoryview):
        return "[binary]"
    return value


def _withheld(declaration: Declaration, name: str, note: str) -> str:
    """A secret field as the export names it: "user password: Argon2id hash"."""
    meta = apps.get_model(declaration.label)._meta
    return f"{meta.verbose_name} {meta.get_field(name).verbose_name}: {note or 'a secret'}"


class InternalSystem:
    name = "identity"

    def __init__(self, reg: Registry = registry) -> None:
        self.registry = reg

    def declarations(self) -> list[Declaration]:
        return [d for d in self.registry if d.subject_lookup]

    def _rows(self, declaration: Declaration, subject: SubjectRef) -> models.QuerySet[Any]:
        model = apps.get_model(declaration.label)
        lookup = declaration.subject_lookup
        manager = model._base_manager
        if lookup.startswith("email_index:"):
            return manager.filter(**{lookup.split(":", 1)[1]: subject.email_index})
        if lookup == "pk":
            return manager.filter(pk=subject.user_id)
        if isinstance(model._meta.get_field(lookup.split("__")[0]), models.CharField):
            return manager.filter(**{lookup: subject.user_id})  # an opaque id kept as text
        return manager.filter(**{f"{lookup}__pk": subject.user_id})

    def describe(self) -> Description:
        ds = self.declarations()
        return Description(
            name="account and security records (this service)",
            purposes=tuple(sorted({d.purpose for d in ds})),
            lawful_bases=tuple(sorted({d.lawful_basis.label for d in ds})),
            categories=tuple(sorted({c.label for d in ds for c in d.categories})),
            recipients=("our hosting and e-mail providers (processors under GDPR Art. 28)",),
            retention="; ".join(sorted({f"{d.label}: {d.retention}" for d in ds})),
            sources=tuple(sorted({s for d in ds for s in d.sources})),
            withheld=tuple(
                sorted(
                    {_withheld(d, name, fc.note) for d in ds for name, fc in d.fields.items() if fc.kind == Kind.SECRET}
                )
            ),
        )

    def export(self, subject: SubjectRef) -> Iterator[Record]:
        """One record per row and category: a user row gives a contact, an identity and a location record."""
        for declaration in self.declarations():
            by_category: dict[str, list[str]] = {}
            for name, fc in declaration.fields.items():
                if fc.kind in EXPORTED_KINDS:
                    by_category.setdefault(str(fc.category or "account"), []).append(name)
            model = apps.get_model(declaration.label)
            attnames = {f.name: f.attname for f in model._meta.concrete_fields}
            for obj in self._rows(declaration, subject).iterator(chunk_size=500):
                for category, names in by_category.items():
                    values = {name: jsonable(getattr(obj, attnames.get(name, name), None)) for name in names}
                    yield Record(category=category, source=declaration.label, values=values)

    def erase(self, subject: SubjectRef) -> ErasureResult:
        result = ErasureResult()
        for declaration in self.declarations():
            rows = self._rows(declaration, subject)
            if declaration.erasure == Erasure.DELETE_ROW:
                deleted, _ = rows.delete()
                result.counts[declaration.label] = deleted
            elif declaration.erasure == Erasure.KEEP:
                count = rows.count()
                if count:
                    result.kept.append(Kept(declaration.label, count, declaration.legal_exception))
            else:
                # SHRED and PSEUDONYMISE: the rows stay; their personal values become unreadable when the
                # subject's key is destroyed at the end of the erasure, and their ids are opaque.
                result.counts[declaration.label] = 0
        return result

    def read_back(self, subject: SubjectRef) -> dict[str, int]:
        found: dict[str, int] = {}
        for declaration in self.declarations():
            if declaration.erasure == Erasure.KEEP:
                continue
            rows = self._rows(declaration, subject)
            if declaration.erasure == Erasure.DELETE_ROW:
                found[declaration.label] = rows.count()
                continue
            # SHRED (and pseudonymised rows under the subject's key): readable only while the key lives.
            found[declaration.label] = 0 if keystore.is_shredded(subject.data_key_id) else rows.count()
        return found
