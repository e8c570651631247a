"""The personal-data registry: what every model holds about people, why, for how long, and what erasure does.

One declaration per model says whose data a row is, how each field is classified, the purpose and
lawful basis (GDPR Art. 6(1), REGULATIONS.md G-01), the retention, and the erasure action
(G-17). Export, erasure, retention purges and the records of processing (Art. 30) are driven
from here; ``manage.py check`` fails when a model of ours has a field nobody classified
(``compliance.checks``).

Apps declare their models from ``AppConfig.ready()``::

    registry.declare(
        "accounts.User",
        subject="the row is the listener",
        purpose="provide the listener's account",
        lawful_basis=LawfulBasis.CONTRACT,
        retention="while the account exists",
        erasure=Erasure.SHRED,
        fields={"email": personal(Category.CONTACT), "id": not_personal(), ...},
    )
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from django.apps import apps
from django.db import models


class Category(models.TextChoices):
    IDENTITY = "identity", "identity (name, date of birth)"
    CONTACT = "contact", "contact details (e-mail, phone)"
    LOCATION = "location", "location (country, region, coarse place)"
    ACCOUNT = "account", "account and preferences"
    SECURITY = "security", "security and sign-in records (IP, device, user agent)"
    AUTHENTICATION = "authentication", "authentication factors"
    USAGE = "usage", "listening and usage history"
    AUDIT = "audit", "audit and compliance records"
    CONSENT = "consent", "consent and privacy choices"


class LawfulBasis(models.TextChoices):
    """GDPR Art. 6(1)(a)-(f): exactly one per purpose (REGULATIONS.md G-01)."""

    CONSENT = "consent", "Art. 6(1)(a) consent"
    CONTRACT = "contract", "Art. 6(1)(b) performance of a contract"
    LEGAL_OBLIGATION = "legal_obligation", "Art. 6(1)(c) legal obligation"
    VITAL_INTERESTS = "vital_interests", "Art. 6(1)(d) vital interests"
    PUBLIC_TASK = "public_task", "Art. 6(1)(e) public task"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Art. 6(1)(f) legitimate interests"


class Erasure(models.TextChoices):
    """What erasing the subject does to a row (G-17)."""

    DELETE_ROW = "delete_row", "delete the row"
    NULL = "null", "null the personal fields"
    PSEUDONYMISE = "pseudonymise", "replace the personal fields with pseudonyms"
    SHRED = "shred", "destroy the subject's data key (every copy, backups included, becomes unreadable)"
    KEEP = "keep", "keep under a legal exception (GDPR Art. 17(3))"


class Kind(models.TextChoices):
    PERSONAL = "personal", "personal data"
    PSEUDONYMOUS = "pseudonymous", "pseudonymous (keyed hash or token; personal data with the key)"
    SECRET = "secret", "secret (hash or key material; never exported)"
    NOT_PERSONAL = "not_personal", "not personal data"


@dataclass(frozen=True)
class FieldClass:
    kind: Kind
    category: Category | None = None
    note: str = ""
    # Why a personal field of ours may be stored unencrypted (the check requires a reason).
    clear_reason: str = ""


def personal(category: Category, note: str = "", *, stored_in_clear: str = "") -> FieldClass:
    return FieldClass(Kind.PERSONAL, category, note, stored_in_clear)


def pseudonymous(category: Category, note: str = "") -> FieldClass:
    return FieldClass(Kind.PSEUDONYMOUS, category, note)


def secret(note: str = "") -> FieldClass:
    return FieldClass(Kind.SECRET, Category.AUTHENTICATION, note)


def not_personal(note: str = "") -> FieldClass:
    return FieldClass(Kind.NOT_PERSONAL, None, note)


@dataclass(frozen=True)
class Declaration:
    label: str
    subject: str
    purpose: str
    lawful_basis: LawfulBasis
    retention: str
    erasure: Erasure
    fields: Mapping[str, FieldClass]
    legal_exception: str = ""
    notes: str = ""
    sources: tuple[str, ...] = field(default=("the data subject",))
    # How to find a subject's rows: an ORM path to the user ("user", "session__user", "pk"), or
    # "email_index:<field>" for rows keyed by the blind index of the e-mail. Empty: not per subject.
    subject_lookup: str = ""

    @property
    def model(self) -> type[models.Model]:
        return apps.get_model(self.label)

    def fields_of(self, kind: Kind) -> dict[str, FieldClass]:
        return {name: fc for name, fc in self.fields.items() if fc.kind == kind}

    @property
    def categories(self) -> set[Category]:
        return {fc.category for fc in self.fields.values() if fc.category and fc.kind != Kind.NOT_PERSONAL}


class RegistryError(ValueError):
    pass


class Registry:
    def __init__(self) -> None:
        self._declarations: dict[str, Declaration] = {}

    def declare(
        self,
        label: str,
        *,
        subject: str,
        purpose: str,
        lawful_basis: LawfulBasis,
        retention: str,
        erasure: Erasure,
        fields: Mapping[str, FieldClass],
        legal_exception: str = "",
        notes: str = "",
        sources: tuple[str, ...] = ("the data subject",),
        subject_lookup: str = "",
    ) -> Declaration:
        key = label.lower()
        if key in self._declarations:
            raise RegistryError(f"{label} is declared twice in the personal-data registry")
        if not purpose.strip() or not retention.strip() or not subject.strip():
            raise RegistryError(f"{label}: subject, purpose and retention must all be stated")
        if not isinstance(lawful_basis, LawfulBasis):
            raise RegistryError(f"{label}: lawful_basis must be one of the six GDPR Art. 6(1) bases")
        if erasure == Erasure.KEEP and not legal_exception.strip():
            raise RegistryError(f"{label}: erasure KEEP needs the legal exception (GDPR Art. 17(3)) it relies on")
        for name, fc in fields.items():
            if fc.kind in (Kind.PERSONAL, Kind.PSEUDONYMOUS) and fc.category is None:
                raise RegistryError(f"{label}.{name}: personal data needs a category")
        declaration = Declaration(
            label=label,
            subject=subject,
            purpose=purpose,
            lawful_basis=lawful_basis,
            retention=retention,
            erasure=erasure,
            fields=dict(fields),
            legal_exception=legal_exception,
            notes=notes,
            sources=sources,
            subject_lookup=subject_lookup,
        )
        self._declarations[key] = declaration
        return declaration

    def set_subject_lookup(self, label: str, lookup: str) -> None:
        """Say how to find a subject's rows of a declared model (see ``Declaration.subject_lookup``)."""
        declaration = self.get(label)
        if declaration is None:
            raise RegistryError(f"{label} is not declared")
        self._declarations[label.lower()] = replace(declaration, subject_lookup=lookup)

    def get(self, label: str) -> Declaration | None:
        return self._declarations.get(label.lower())

    def for_model(self, model: type[models.Model]) -> Declaration | None:
        return self.get(model._meta.label)

    def __iter__(self) -> Iterator[Declaration]:
        return iter(sorted(self._declarations.values(), key=lambda d: d.label))

    def __contains__(self, label: str) -> bool:
        return label.lower() in self._declarations

    def remove(self, label: str) -> None:
        """For tests that declare a throw-away model."""
        self._declarations.pop(label.lower(), None)


registry = Registry()
declare = registry.declare
