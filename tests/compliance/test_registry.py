"""The personal-data registry: manage.py check fails, naming the field, when a field is unclassified.

Requirement: issue #2 "personal-data registry"; REGULATIONS.md G-01 (one lawful basis per purpose)
and G-17 (erasure reaches every store); GDPR Art. 30 (records of processing).
"""

from __future__ import annotations

import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import models
from django.test.utils import isolate_apps

from compliance.checks import run_registry_checks
from compliance.registry import (
    Category,
    Erasure,
    LawfulBasis,
    Registry,
    RegistryError,
    not_personal,
    personal,
    registry,
)
from identity.crypto.fields import EncryptedTextField


@pytest.fixture
def ours(settings):  # type: ignore[no-untyped-def]
    """Treat the test app as one of ours, so that its fields must be classified."""
    settings.PERSONAL_DATA_APPS = [*settings.PERSONAL_DATA_APPS, "testapp"]


def test_the_project_passes_its_own_registry_check() -> None:
    out = StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


def test_library_models_holding_personal_data_are_declared() -> None:
    for label in (
        "axes.AccessAttempt",
        "axes.AccessLog",
        "axes.AccessFailureLog",
        "auditlog.LogEntry",
        "sessions.Session",
        "accounts.TotpFactor",
        "accounts.BackupCodeFactor",
        "admin.LogEntry",
    ):
        assert label in registry, label


def test_every_declaration_has_exactly_one_lawful_basis_and_an_erasure_action() -> None:
    for declaration in registry:
        assert isinstance(declaration.lawful_basis, LawfulBasis)
        assert isinstance(declaration.erasure, Erasure)
        assert declaration.purpose and declaration.retention


@isolate_apps("tests.testapp")
def test_an_unclassified_field_fails_the_check_and_is_named(ours) -> None:  # type: ignore[no-untyped-def]
    class Playlist(models.Model):
        data_key_id = models.UUIDField(default=uuid.uuid4)
        title = EncryptedTextField()
        mood = models.CharField(max_length=20)

        class Meta:
            app_label = "testapp"

    reg = Registry()
    reg.declare(
        "testapp.Playlist",
        subject="owner",
        purpose="playlists",
        lawful_basis=LawfulBasis.CONTRACT,
        retention="while the account exists",
        erasure=Erasure.DELETE_ROW,
        fields={"id": not_personal(), "data_key_id": not_personal(), "title": personal(Category.USAGE)},
    )
    errors = run_registry_checks(reg, [Playlist])
    assert [(e.id, e.msg) for e in errors] == [
        ("compliance.E002", "testapp.Playlist.mood is not classified in the personal-data registry")
    ]


@isolate_apps("tests.testapp")
def test_an_undeclared_model_and_a_clear_text_personal_field_fail(ours) -> None:  # type: ignore[no-untyped-def]
    class Note(models.Model):
        body = models.TextField()

        class Meta:
            app_label = "testapp"

    assert [e.id for e in run_registry_checks(Registry(), [Note])] == ["compliance.E001"]

    reg = Registry()
    reg.declare(
        "testapp.Note",
        subject="author",
        purpose="notes",
        lawful_basis=LawfulBasis.CONTRACT,
        retention="a year",
        erasure=Erasure.DELETE_ROW,
        fields={"id": not_personal(), "body": personal(Category.USAGE), "gone": not_personal()},
    )
    errors = run_registry_checks(reg, [Note])
    assert sorted(e.id for e in errors) == ["compliance.E003", "compliance.E004"]
    assert any("testapp.Note.body is personal data stored in clear" in e.msg for e in errors)


@isolate_apps("tests.testapp")
def test_a_library_model_pointing_at_users_must_be_declared() -> None:
    # testapp is not one of ours here: it stands for a third-party library.
    from django.conf import settings

    class Listening(models.Model):
        user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)

        class Meta:
            app_label = "testapp"

    errors = run_registry_checks(Registry(), [Listening])
    assert [e.id for e in errors] == ["compliance.E005"]


def test_declarations_are_validated() -> None:
    reg = Registry()
    common = {
        "subject": "s",
        "purpose": "p",
        "retention": "r",
        "fields": {},
    }
    with pytest.raises(RegistryError, match="legal exception"):
        reg.declare("a.B", lawful_basis=LawfulBasis.CONTRACT, erasure=Erasure.KEEP, **common)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="Art. 6"):
        reg.declare("a.C", lawful_basis="because", erasure=Erasure.NULL, **common)  # type: ignore[arg-type]
    reg.declare("a.D", lawful_basis=LawfulBasis.CONSENT, erasure=Erasure.NULL, **common)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="twice"):
        reg.declare("a.D", lawful_basis=LawfulBasis.CONSENT, erasure=Erasure.NULL, **common)  # type: ignore[arg-type]
