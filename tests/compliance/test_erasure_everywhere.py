"""An erasure that reaches every database: this service's and the connected streaming history.

Requirement: issue #4 "an erasure after which a dump of every database (main and connected) holds
none of the subject's personal values, and sign-in and tokens fail"; REGULATIONS.md G-17 (erasure
reaches every store), C-16 (confirming deletion; what may be kept), C-17 (exceptions).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import time_machine
from django.core import mail
from django.db import connection
from rest_framework.test import APIClient

from compliance import fulfilment
from compliance.dsr import services
from compliance.models import PrivacyRequest, SystemRun
from compliance.systems import streaming_demo
from tests.accounts.api_helpers import assert_problem, bearer, login

VALUES = ("Zora.Erasable-9917@listeners.example", "Zora Quillfeather", "+1 646 555 0188")


def _erase(user, django_capture_on_commit_callbacks) -> PrivacyRequest:  # type: ignore[no-untyped-def]
    request = services.submit_request(
        subject=user, kind="erasure", channel="api", actor=user, verification="session+mfa"
    ).request
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=8)
    with time_machine.travel(later), django_capture_on_commit_callbacks(execute=True):
        fulfilment.start_fulfilment(request=request, actor="system:officer")
    return PrivacyRequest.objects.get(pk=request.pk)


def _subject(make_user):  # type: ignore[no-untyped-def]
    return make_user(VALUES[0], display_name=VALUES[1], phone=VALUES[2])


def _check_everything_gone(request: PrivacyRequest, access: str) -> None:
    assert request.status == "completed", request.evidence
    assert request.evidence["read_back_clean"] is True
    systems = {run.system: run for run in SystemRun.objects.filter(request=request)}
    assert len(systems) == 2 and all(run.status == "done" for run in systems.values())
    streaming = next(name for name in systems if name != "identity")
    assert systems[streaming].counts  # rows were erased there
    assert [k["source"].split(".")[-1] for k in systems[streaming].kept] == ["invoices"]  # kept under tax law
    assert_problem(bearer(APIClient(), access).get("/api/v1/me"), 401, "invalid_token")
    assert_problem(login(APIClient(), VALUES[0]), 401, "invalid_credentials")


@pytest.mark.django_db
def test_erasure_reaches_the_connected_sqlite_database(
    make_user, tmp_path: Path, settings, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    database = tmp_path / "streaming.sqlite3"
    settings.STREAMING_DATABASE_URL = f"sqlite:///{database}"
    user = _subject(make_user)
    streaming_demo.seed(settings.STREAMING_DATABASE_URL, [str(user.pk)], events_per_user=300, seed=7)
    access = login(APIClient(), VALUES[0]).json()["access"]
    request = _erase(user, django_capture_on_commit_callbacks)
    _check_everything_gone(request, access)
    # The answer lists what is kept and why (G-17 exceptions, C-17): the invoices, minimised.
    (answer,) = [m for m in mail.outbox if m.subject == "Your privacy request is complete"]
    assert "What the law requires us to keep" in answer.body and "3 records (streaming_history.invoices)" in answer.body
    assert "kept only as: issued_at, amount_cents" in answer.body and "17(3)(b)" in answer.body
    raw = database.read_bytes()
    assert str(user.pk).encode() not in raw  # the identity column was deleted or pseudonymised everywhere


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_dumps_of_both_databases_hold_none_of_the_subjects_values(
    make_user, settings, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    params = connection.settings_dict
    host, port, who = params["HOST"] or "127.0.0.1", str(params["PORT"] or 5432), params["USER"] or "postgres"
    name = f"identity_erasure_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=host, port=port, user=who, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        settings.STREAMING_DATABASE_URL = f"postgresql://{who}@{host}:{port}/{name}"
        user = _subject(make_user)
        streaming_demo.seed(settings.STREAMING_DATABASE_URL, [str(user.pk)], events_per_user=300, seed=7)
        access = login(APIClient(), VALUES[0]).json()["access"]
        request = _erase(user, django_capture_on_commit_callbacks)
        _check_everything_gone(request, access)
        env = {**os.environ, "PGPASSWORD": params.get("PASSWORD") or ""}
        for database in (params["NAME"], name):
            dump = subprocess.run(
                ["pg_dump", "-h", host, "-p", port, "-U", who, database], env=env, capture_output=True, check=True
            ).stdout.decode("utf-8", errors="replace")
            assert "CREATE TABLE" in dump
            for needle in (*VALUES, "Quillfeather", "646 555 0188", str(user.pk)):
                if database == params["NAME"] and needle == str(user.pk):
                    continue  # opaque ids stay in this service's records (requests, audit chain): not personal values
                assert needle.lower() not in dump.lower(), (database, needle)
    finally:
        with psycopg.connect(host=host, port=port, user=who, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
