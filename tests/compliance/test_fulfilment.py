"""Carrying requests out across systems: the export ZIP, the erasure that reaches everything, evidence.

Requirement: issue #4 "Fulfilment across data systems", "Export", "Erasure", "Evidence" and the tests it
names: "an export holding every registered category", "an erasure after which ... sign-in and tokens
fail", "a task killed part-way and run again giving the same result"; REGULATIONS.md G-15 (Art. 15
information beside the data), G-17 (erasure reaches every store), G-20 (portability); C-11 (fields
never disclosed: named, not given) and C-12 (a request for the categories only gets no specific
pieces).
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import zipfile
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import AuthSession, SecurityEvent, TotpFactor, User
from accounts.services.factors import start_totp
from compliance import consents, exports, fulfilment
from compliance.audit import read_payload
from compliance.dsr import services
from compliance.models import AuditEvent, ExportFile, PrivacyRequest, SuppressionEntry, SystemRun
from identity.crypto.blind import blind_index
from identity.crypto.envelope import Erased
from tests.accounts.api_helpers import assert_problem, bearer, login
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _export_root(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXPORT_ROOT = str(tmp_path / "exports")
    settings.CONNECTED_DATASETS = []  # this file tests the internal system; connected ones have their own tests


def with_history(user: User) -> str:
    """Give the listener a session, sign-in events and a factor; return a live access token."""
    api = APIClient()
    access = login(api, str(user.email)).json()["access"]
    factor = start_totp(user=user, name="Phone")
    factor.confirmed = True
    factor.save(update_fields=["confirmed"])
    return access


def file(user: User, kind: str) -> PrivacyRequest:
    return services.submit_request(
        subject=user, kind=kind, channel="api", actor=user, verification="session+mfa"
    ).request


def fulfilled(user: User, kind: str, django_capture_on_commit_callbacks) -> PrivacyRequest:  # type: ignore[no-untyped-def]
    """A request of ``kind`` by a listener with some history, carried out to the end."""
    with_history(user)
    request = file(user, kind)
    with django_capture_on_commit_callbacks(execute=True):
        fulfilment.start_fulfilment(request=request, actor=user)
    request.refresh_from_db()
    assert (request.status, request.progress) == ("completed", 100)
    return request


def open_zip(request: PrivacyRequest) -> zipfile.ZipFile:
    export = ExportFile.objects.get(request=request)
    data = b"".join(exports.read_encrypted(Path(export.path), context=f"compliance.export.{request.pk}"))
    return zipfile.ZipFile(io.BytesIO(data))


def every_member(archive: zipfile.ZipFile) -> bytes:
    return b"".join(archive.read(name) for name in archive.namelist())


def test_a_request_for_the_categories_only_gets_the_categories_and_counts_not_the_data_c12(  # type: ignore[no-untyped-def]
    alice, django_capture_on_commit_callbacks
) -> None:
    """CCPA's request to know the categories (CCR §7024(a)-(b)): verified only to a reasonable degree,
    so the answer names the categories, their sources and purposes and how many records each holds,
    and no record itself."""
    request = fulfilled(alice, "access_categories", django_capture_on_commit_callbacks)
    archive = open_zip(request)
    assert {n for n in archive.namelist() if not n.startswith("schema/")} == {"about-this-export.json", "index.html"}
    info = json.loads(archive.read("about-this-export.json"))
    assert info["specific_pieces"] is False
    assert {"contact", "identity", "security", "authentication"} <= set(info["record_counts"])
    assert all(count > 0 for count in info["record_counts"].values())
    assert b"alice@example.test" not in every_member(archive) and b"Alice" not in every_member(archive)
    assert b"not included" in archive.read("index.html")


def test_a_request_for_the_categories_only_makes_no_copy_of_the_records_c12(  # type: ignore[no-untyped-def]
    alice, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    """C-12 and data minimisation (GDPR Art. 5(1)(c)): the systems count the subject's records and
    write no export part, not even an encrypted one; the answer's counts are theirs."""

    def no_parts(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request for the categories only wrote an export part")

    monkeypatch.setattr(exports, "write_parts", no_parts)
    request = fulfilled(alice, "access_categories", django_capture_on_commit_callbacks)
    counted: dict[str, int] = {}
    for run in SystemRun.objects.filter(request=request):
        for category, count in run.counts.items():
            counted[category] = counted.get(category, 0) + count
    info = json.loads(open_zip(request).read("about-this-export.json"))
    assert info["record_counts"] == {k: v for k, v in sorted(counted.items()) if v}
    assert info["record_counts"]["contact"] >= 1
    parts = Path(exports.export_root()) / str(request.pk) / "parts"
    assert not parts.exists() or not any(parts.iterdir())


@pytest.mark.parametrize("kind", ["access", "access_categories"])
def test_the_answer_names_what_was_sold_or_shared_and_disclosed_for_a_business_purpose_c09(  # type: ignore[no-untyped-def]
    alice, django_capture_on_commit_callbacks, kind: str
) -> None:
    """CCPA §1798.110(a) and §1798.115(a): categories collected, their sources, the purposes, the
    categories of third parties, the specific pieces (for a request for a copy), what was sold or
    shared with its third parties, and what each system discloses for a business purpose; the
    about-this-export.json carrying them validates against the schema in the ZIP."""
    from jsonschema import Draft202012Validator

    consents.write_record(
        alice,
        "personalised_ads",
        True,
        actor="self",
        actor_ref=alice.pk,
        surface="api",
        method="grant",
        jurisdiction="US-CA",
        at=datetime.datetime(2026, 1, 5, tzinfo=datetime.UTC),
    )
    request = fulfilled(alice, kind, django_capture_on_commit_callbacks)
    archive = open_zip(request)
    info = json.loads(archive.read("about-this-export.json"))
    Draft202012Validator(json.loads(archive.read("schema/about-this-export.schema.json"))).validate(info)
    assert info["categories"] and info["sources"] and info["purposes"] and info["recipients"]
    assert info["specific_pieces"] is (kind == "access")
    (shared,) = info["sold_or_shared"]
    assert (shared["purpose"], shared["disclosure"], shared["categories"]) == ("personalised_ads", "sharing", ["usage"])
    assert shared["periods"] == [{"from": "2026-01-05T00:00:00+00:00", "until": None}]
    assert any("this service" in d["system"] and d["recipients"] for d in info["disclosed_for_business_purpose"])
    page = archive.read("index.html").decode()
    assert "Sold or shared" in page and "sharing with advertising partners" in page and "since 2026-01-05" in page
    assert "Disclosed for a business purpose" in page


def test_an_answer_says_when_nothing_was_sold_or_shared_c09(alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    archive = open_zip(fulfilled(alice, "access", django_capture_on_commit_callbacks))
    assert json.loads(archive.read("about-this-export.json"))["sold_or_shared"] == []
    assert b"We have not sold or shared your personal information." in archive.read("index.html")


def test_what_is_never_disclosed_is_named_and_not_given_c11(alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    """CCR §7024(d): the password and the second-factor secrets are held but never disclosed; the
    export says they were collected and holds no trace of them."""
    request = fulfilled(alice, "access", django_capture_on_commit_callbacks)
    factor = TotpFactor.objects.get(user=alice)
    archive = open_zip(request)
    info = json.loads(archive.read("about-this-export.json"))
    assert info["specific_pieces"] is True
    assert "user password: Argon2id hash" in info["withheld"]
    assert any(w.startswith("TOTP factor secret:") for w in info["withheld"])
    everything = every_member(archive)
    alice.refresh_from_db()
    assert alice.password.encode() not in everything and alice.password.split("$")[-1].encode() not in everything
    assert str(factor.secret).encode() not in everything
    assert base64.b32encode(factor.bin_key).rstrip(b"=") not in everything  # as an authenticator shows it
    assert b"Held but never shown" in archive.read("index.html")


def test_an_export_holds_every_category_with_the_art15_information(alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    request = fulfilled(alice, "access", django_capture_on_commit_callbacks)
    archive = open_zip(request)
    names = set(archive.namelist())
    categories = {n.rsplit(".", 1)[0] for n in names if n.endswith(".json") and "/" not in n} - {"about-this-export"}
    assert categories >= {"contact", "identity", "location", "security", "authentication", "audit"}
    assert {f"{c}.csv" for c in categories} <= names and {"index.html", "about-this-export.json"} <= names
    contact = json.loads(archive.read("contact.json"))
    assert {"source": "accounts.User", "values": contact[0]["values"]} == contact[0]
    assert contact[0]["values"]["email"] == "alice@example.test"
    assert (
        "password" not in json.dumps(contact)
        and "secret" not in json.loads(archive.read("authentication.json"))[0]["values"]
    )
    info = json.loads(archive.read("about-this-export.json"))
    for key in (
        "purposes",
        "lawful_bases",
        "categories",
        "recipients",
        "retention",
        "sources",
        "your_rights",
        "complaint",
        "automated_decision_making",
        "international_transfers",
    ):
        assert info[key], key
    assert b"Your personal data" in archive.read("index.html")
    raw = Path(ExportFile.objects.get(request=request).path).read_bytes()
    assert b"alice@example.test" not in raw and b"PK" not in raw[:64]  # encrypted at rest
    assert list(SystemRun.objects.filter(request=request).values_list("system", "status")) == [("identity", "done")]
    assert request.evidence["systems"][0]["counts"]["contact"] == 1


def test_an_erasure_reaches_everything_and_leaves_evidence(alice, charlie, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    access = with_history(alice)
    with_history(charlie)
    request = file(alice, "erasure")
    with pytest.raises(services.RequestRefused, match="cancellation window"):
        fulfilment.start_fulfilment(request=request, actor="system:test")
    with (
        time_machine.travel(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=8)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        fulfilment.start_fulfilment(request=request, actor="system:officer")
    request.refresh_from_db()
    assert (request.status, request.progress) == ("completed", 100)
    assert request.evidence["read_back_clean"] is True
    assert request.evidence["read_back"]["identity"]["accounts.User"] == 0

    # Sign-in and tokens fail; sessions ended; the account's values read as erased.
    assert_problem(bearer(APIClient(), access).get("/api/v1/me"), 401, "invalid_token")
    assert_problem(login(APIClient(), "alice@example.test", PASSWORD), 401, "invalid_credentials")
    erased = User.objects.get(pk=alice.pk)
    assert isinstance(erased.email, Erased) and not erased.is_active
    assert not AuthSession.objects.filter(user=alice, revoked_at__isnull=True).exists()
    assert not SecurityEvent.objects.filter(user=alice).exists() and not TotpFactor.objects.filter(user=alice).exists()
    # Audit entries about Alice are redacted, never deleted, and the chain still verifies.
    entries = AuditEvent.objects.filter(subject_ref=str(alice.pk))
    assert entries.exists() and all(isinstance(read_payload(e), Erased) for e in entries)
    call_command("verify_audit_chain", stdout=io.StringIO())
    # The address is on the suppression list, as a keyed hash only.
    assert SuppressionEntry.objects.filter(email_hmac=blind_index("alice@example.test", purpose="suppression")).exists()
    # The evidence pack names the decisions and the systems, without personal values.
    actions = [d["action"] for d in request.evidence["decisions"]]
    assert actions[:2] == ["compliance.dsr.received", "compliance.dsr.started"]
    assert "alice" not in json.dumps(request.evidence).lower()
    # Charlie is untouched.
    assert User.objects.get(pk=charlie.pk).email == "charlie@example.test"
    assert login(APIClient(), "charlie@example.test").status_code == 200


def test_a_failed_last_step_is_recorded_on_the_request_and_carry_out_tries_it_again(  # type: ignore[no-untyped-def]
    alice, client, verified_admin, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """Every system done, the ZIP not made (a full disk): the request must not stand "in progress"
    with nothing to say why (PITFALLS.md: requests stuck with no diagnostics). The failure is on the
    request, redacted, on its admin page; the officer's "carry out" makes the last step again."""
    from django.urls import reverse

    with_history(alice)
    request = file(alice, "access")
    real_assemble = exports.assemble

    def disk_full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("No space left on device while writing the export of alice@example.test")

    monkeypatch.setattr(exports, "assemble", disk_full)
    with django_capture_on_commit_callbacks(execute=True):
        fulfilment.start_fulfilment(request=request, actor=alice)
    request.refresh_from_db()
    assert request.status == "in_progress"
    assert all(run.status == "done" for run in request.runs.all())
    assert request.finish_error == "OSError: No space left on device while writing the export of [email]"
    page = client.get(reverse("admin:compliance_privacyrequest_change", args=[request.pk]))
    assert b"No space left on device" in page.content and b"alice@example.test" not in page.content

    monkeypatch.setattr(exports, "assemble", real_assemble)
    with django_capture_on_commit_callbacks(execute=True):
        act = client.post(reverse("admin:compliance_privacyrequest_act", args=[request.pk, "carry_out"]), {})
    assert act.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.finish_error) == ("completed", "")
    assert ExportFile.objects.filter(request=request).exists()


def test_an_erasure_whose_last_step_fails_after_the_evidence_is_frozen_finishes_once_on_the_repeat(  # type: ignore[no-untyped-def]
    alice, monkeypatch, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    """The completion notice, the suppression entry and the evidence pack are committed before the
    key is destroyed (fulfilment.freeze_erasure). A read-back that fails (a connected database
    down) leaves them in place; the repeat neither notifies twice nor loses the officers' decisions,
    which it could no longer read once the key is gone (as when the key store is its own database)."""
    from compliance.systems.internal import InternalSystem

    with_history(alice)
    request = file(alice, "erasure")
    real_read_back = InternalSystem.read_back
    calls = {"n": 0}

    def down_once(self, subject):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("the streaming database is down")
        return real_read_back(self, subject)

    monkeypatch.setattr(InternalSystem, "read_back", down_once)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=8)
    with time_machine.travel(later), django_capture_on_commit_callbacks(execute=True):
        fulfilment.start_fulfilment(request=request, actor="system:officer")
    request.refresh_from_db()
    assert (request.status, request.finish_error) == ("in_progress", "ConnectionError: the streaming database is down")
    frozen = request.evidence
    assert frozen["frozen_at"] and [d["action"] for d in frozen["decisions"]][:2] == [
        "compliance.dsr.received",
        "compliance.dsr.started",
    ]
    completion = [m for m in mailoutbox if "alice@example.test" in m.to]
    with time_machine.travel(later), django_capture_on_commit_callbacks(execute=True):
        fulfilment.start_fulfilment(request=request, actor="system:officer")  # the officer's carry out
    request.refresh_from_db()
    assert (request.status, request.finish_error) == ("completed", "")
    assert request.evidence["decisions"] == frozen["decisions"] and request.evidence["read_back_clean"] is True
    assert [m for m in mailoutbox if "alice@example.test" in m.to] == completion  # nothing sent twice
    assert isinstance(User.objects.get(pk=alice.pk).email, Erased)


def test_the_last_step_is_retried_with_back_off_on_a_worker_then_given_up(alice, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """On a Celery worker (not eager) a failed last step is retried with back-off, as a system's run
    is, and after the last attempt the task gives up, the reason left on the request."""
    request = file(alice, "access")

    def failing(request_id):  # type: ignore[no-untyped-def]
        raise ConnectionError("database went away")

    monkeypatch.setattr(fulfilment, "finish_if_complete", failing)
    scheduled: list[int] = []
    monkeypatch.setattr(
        fulfilment.finish_request, "retry", lambda **kw: scheduled.append(kw["countdown"]) or RuntimeError("retry")
    )
    task = fulfilment.finish_request
    for retries in range(fulfilment.MAX_ATTEMPTS):
        task.push_request(is_eager=False, retries=retries)
        try:
            with pytest.raises(RuntimeError, match="retry"):
                task.run(str(request.pk))
        finally:
            task.pop_request()
    assert scheduled == [30, 60, 120, 240, 480]
    task.push_request(is_eager=False, retries=fulfilment.MAX_ATTEMPTS)
    try:
        assert task.run(str(request.pk)) == "gave up"
    finally:
        task.pop_request()
    assert PrivacyRequest.objects.get(pk=request.pk).finish_error == "ConnectionError: database went away"


def test_a_run_killed_part_way_runs_again_to_the_same_result(
    alice, monkeypatch, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with_history(alice)
    request = file(alice, "portability")
    real_write = exports.write_parts
    calls = {"n": 0}

    def crash_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database went away (alice@example.test)")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(exports, "write_parts", crash_once)
    monkeypatch.setattr(fulfilment.run_system, "retry", lambda **kw: RuntimeError("retry scheduled"))
    with pytest.raises(RuntimeError, match="retry scheduled"), django_capture_on_commit_callbacks(execute=True):
        fulfilment.start_fulfilment(request=request, actor=alice)
    run = SystemRun.objects.get(request=request)
    assert (run.status, run.attempts) == ("failed", 1)
    assert run.last_error == "ConnectionError: database went away ([email])"  # no personal data kept
    assert PrivacyRequest.objects.get(pk=request.pk).status == "in_progress"
    assert fulfilment.run_system.apply(args=[run.pk]).get() == "done"
    assert fulfilment.run_system.apply(args=[run.pk]).get() == "already done"
    request.refresh_from_db()
    assert request.status == "completed" and SystemRun.objects.get(pk=run.pk).attempts == 2
    assert json.loads(open_zip(request).read("contact.json"))[0]["values"]["email"] == "alice@example.test"
