"""Requests from authorised agents: signed permission confirmed by the consumer, or a power of attorney.

Requirement: issue #4 "Channels" (authorised agents); REGULATIONS.md C-28 (signed permission and a
consumer confirmation task; the POA path skips confirmation), C-25 (verification data kept only as
needed), C-27 (the consumer confirms at the type's level), G-17 (destroyed with the subject's key),
C-29 (records), and "audit data carries ids only".
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from compliance.api import public as public_api
from compliance.dsr import intake as svc
from compliance.dsr.services import verify_request
from compliance.models import AgentAuthorisation, AuditEvent, PrivacyRequest, RequestIntake
from identity.crypto import keystore
from tests.accounts.api_helpers import assert_problem

pytestmark = pytest.mark.django_db

START = "/api/v1/privacy/agent-requests"
SECRET = b"ALICE-LISTENER-SIGNED-PERMISSION-2026"
PDF = b"%PDF-1.7\n" + SECRET + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + SECRET


@pytest.fixture(autouse=True)
def documents(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    settings.AGENT_DOCUMENT_ROOT = str(tmp_path / "agent-documents")
    return tmp_path / "agent-documents"


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def run(django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return call


def start(api: APIClient, run: Any, *, content: bytes = PDF, name: str = "permission.pdf", **fields: Any) -> Any:
    body: dict[str, Any] = {
        "agent_name": "Dana Agent",
        "agent_email": "dana@agency.test",
        "agent_organisation": "Privacy Helpers LLC",
        "subject_email": "alice@example.test",
        "type": "rectification",
        "details": "please correct the display name",
        "document": SimpleUploadedFile(name, content, content_type="application/pdf"),
        **fields,
    }
    return run(api.post, START, body, format="multipart")


def code_in(mail: Any) -> str:
    found = re.search(r"\b(\d{8})\b", mail.body)
    assert found, mail.body
    return found.group(1)


def confirmed_agent(api: APIClient, run: Any, mailoutbox: list[Any], **fields: Any) -> str:
    started = start(api, run, **fields)
    assert started.status_code == 202, started.content
    checked = run(api.post, f"{START}/{started.json()['id']}/verify", {"code": code_in(mailoutbox[0])}, format="json")
    assert checked.status_code == 200, checked.content
    return str(started.json()["id"])


def link_in(mail: Any) -> str:
    found = re.search(r"/privacy/agent/confirm/(\S+)/", mail.body)
    assert found, mail.body
    return found.group(0)


def test_the_agent_hears_the_same_whether_or_not_the_consumer_has_an_account(  # type: ignore[no-untyped-def]
    api, run, alice, mailoutbox, documents
) -> None:
    """C-28 / issue #4: no enumeration of consumers through the agent channel."""
    known_start = start(api, run)
    unknown_start = start(api, run, subject_email="nobody@example.test", agent_email="erin@agency.test")
    assert known_start.status_code == unknown_start.status_code == 202
    assert {k: v for k, v in known_start.json().items() if k != "id"} == {
        k: v for k, v in unknown_start.json().items() if k != "id"
    }
    answers = []
    for started, mail in ((known_start, mailoutbox[0]), (unknown_start, mailoutbox[1])):
        answers.append(
            run(api.post, f"{START}/{started.json()['id']}/verify", {"code": code_in(mail)}, format="json").json()[
                "detail"
            ]
        )
    assert answers == [public_api.AGENT_CHECKED, public_api.AGENT_CHECKED]
    agent_mails = [m for m in mailoutbox if m.subject == "We received your request as an authorised agent"]
    assert [m.to for m in agent_mails] == [["dana@agency.test"], ["erin@agency.test"]]
    assert agent_mails[0].body == agent_mails[1].body
    # Behind the identical answers: the consumer we know is asked; nothing is kept about the other.
    assert [m.to for m in mailoutbox if "authorised them" in m.body] == [["alice@example.test"]]
    unknown = RequestIntake.objects.get(pk=unknown_start.json()["id"])
    assert (unknown.status, unknown.email, unknown.subject) == ("no_account", None, None)
    assert keystore.is_shredded(unknown.data_key_id)
    assert AgentAuthorisation.objects.count() == 1 and len(list(documents.iterdir())) == 1


@pytest.mark.parametrize("keys_cached", [True, False], ids=["keys-cached", "keys-not-cached"])
def test_an_agents_request_costs_the_same_whether_or_not_the_consumer_has_an_account(  # type: ignore[no-untyped-def]
    api, run, alice, keys_cached
) -> None:
    """C-28 / issue #4: no enumeration of consumers by timing either: the same answer and the same
    number of statements, also when this process has not cached the consumer's key."""
    assert start(api, run, subject_email="warm-up@example.test", agent_email="fay@agency.test").status_code == 202
    answers, work = [], []
    for consumer, agent in (("alice@example.test", "dana@agency.test"), ("nobody@example.test", "erin@agency.test")):
        if not keys_cached:
            keystore.clear_cache()
        with CaptureQueriesContext(connection) as queries:
            started = start(api, run, subject_email=consumer, agent_email=agent)
        answers.append((started.status_code, {k: v for k, v in started.json().items() if k != "id"}))
        work.append(len(queries.captured_queries))
    assert answers[0] == answers[1] and answers[0][0] == 202
    assert work[0] == work[1]


def test_the_document_is_stored_encrypted_under_the_consumers_key(api, run, alice, documents) -> None:  # type: ignore[no-untyped-def]
    """C-28: the signed permission is on disk only as AES-256-GCM ciphertext, under the subject's key."""
    start(api, run)
    authorisation = AgentAuthorisation.objects.get()
    raw = (documents / authorisation.document_name).read_bytes()
    assert SECRET not in raw and b"%PDF" not in raw
    assert authorisation.data_key_id == alice.data_key_id
    assert (authorisation.document_type, authorisation.document_size) == ("application/pdf", len(PDF))
    assert svc.read_document(authorisation) == PDF
    assert str(authorisation.pk) not in authorisation.document_name  # a random name, no ids or names
    with connection.cursor() as cursor:
        cursor.execute("SELECT agent_name, agent_email, agent_organisation FROM compliance_agentauthorisation")
        row = b"".join(bytes(v) for v in cursor.fetchone())
    assert b"Dana" not in row and b"agency" not in row and b"Privacy Helpers" not in row


def test_the_document_type_is_read_from_the_content(api, run, alice, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """C-28: PDF/PNG/JPEG only, checked from the bytes, size-limited."""
    body = assert_problem(
        start(api, run, content=b"MZ\x90\x00 not a pdf", name="permission.pdf"), 400, "validation_error"
    )
    assert list(body["errors"]) == ["document"]
    assert start(api, run, content=PNG, name="permission.pdf").status_code == 202
    assert AgentAuthorisation.objects.get().document_type == "image/png"
    monkeypatch.setattr(svc, "MAX_DOCUMENT_BYTES", len(PDF) - 1)
    body = assert_problem(start(api, run, agent_email="erin@agency.test"), 400, "validation_error")
    assert "larger than" in body["errors"]["document"][0]
    assert AgentAuthorisation.objects.count() == 1


def test_an_upload_never_lands_in_a_clear_temporary_file(api, run, alice, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """C-28: "never in clear on disk": uploads stay in memory even above FILE_UPLOAD_MAX_MEMORY_SIZE."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10

    def no_temporary_files(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an upload was written to a temporary file")

    monkeypatch.setattr("django.core.files.uploadhandler.TemporaryUploadedFile", no_temporary_files)
    assert start(api, run).status_code == 202


def test_the_consumer_confirms_and_the_request_is_filed_through_the_agent(  # type: ignore[no-untyped-def]
    api, run, client, alice, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    """C-28: consumer confirmation task; filed with channel agent and the method naming it (C-27 level)."""
    confirmed_agent(api, run, mailoutbox)
    authorisation = AgentAuthorisation.objects.get()
    assert (authorisation.answer, len(authorisation.token_hmac)) == ("pending", 64)
    ask = next(m for m in mailoutbox if m.to == ["alice@example.test"])
    assert "Dana Agent (Privacy Helpers LLC)" in ask.body
    link = link_in(ask)
    assert link.split("/")[-2] not in authorisation.token_hmac  # the token is stored only as an HMAC
    landing = client.get(link)
    assert landing.status_code == 302 and landing["Location"] == "/privacy/agent/confirm/"  # no token in the URL
    page = client.get("/privacy/agent/confirm/")
    assert page.status_code == 200 and b"Dana Agent" in page.content and b"Date of birth" in page.content
    wrong = client.post("/privacy/agent/confirm/", {"answer": "yes", "date_of_birth": "1991-01-01"})
    assert wrong.status_code == 400 and b"do not match our records" in wrong.content
    assert not PrivacyRequest.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post("/privacy/agent/confirm/", {"answer": "yes", "date_of_birth": "1990-05-17"})
    assert done.status_code == 200 and b"We have filed the request" in done.content
    request = PrivacyRequest.objects.get()
    assert (request.subject, request.channel, request.kind) == (alice, "agent", "rectification")
    assert (request.status, request.verification_method) == ("verified", "reasonable:agent+consumer_confirmed")
    assert request.details == "please correct the display name"
    authorisation.refresh_from_db()
    assert (authorisation.answer, authorisation.request, authorisation.token_hmac) == ("confirmed", request, "")
    assert RequestIntake.objects.get().status == "filed"
    assert client.get(link).status_code == 400  # the link works once
    assert AuditEvent.objects.filter(action="compliance.agent.confirmed", subject_ref=str(alice.pk)).count() == 1


def test_the_consumer_refuses_and_nothing_is_filed(api, run, client, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-28: refusing closes the agent's request and records that."""
    confirmed_agent(api, run, mailoutbox)
    client.get(link_in(next(m for m in mailoutbox if m.to == ["alice@example.test"])))
    done = client.post("/privacy/agent/confirm/", {"answer": "no"})
    assert done.status_code == 200 and b"We will not act on this request" in done.content
    assert not PrivacyRequest.objects.exists()
    authorisation = AgentAuthorisation.objects.get()
    assert (authorisation.answer, authorisation.token_hmac) == ("refused", "")
    intake = RequestIntake.objects.get()
    assert (intake.status, intake.email, intake.details) == ("refused", None, None)
    event = AuditEvent.objects.get(action="compliance.agent.refused")
    assert (event.actor_ref, event.subject_ref) == (str(alice.pk), str(alice.pk))


def test_wrong_details_from_the_consumer_are_limited(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-27/C-28: the consumer's data points are matched without naming the wrong one, five tries."""
    confirmed_agent(api, run, mailoutbox)
    link = link_in(next(m for m in mailoutbox if m.to == ["alice@example.test"])).split("/")[-2]
    claims = svc.Claims(date_of_birth=datetime.date(1991, 1, 1))
    for _ in range(4):
        with pytest.raises(svc.IntakeRefused) as refused:
            svc.answer_agent_request(link=link, confirmed=True, claims=claims)
        assert refused.value.code == "not_matched" and "birth" not in str(refused.value)
    with pytest.raises(svc.IntakeRefused) as refused:
        svc.answer_agent_request(link=link, confirmed=True, claims=claims)
    assert refused.value.code == "too_many_attempts"
    assert svc.authorisation_for_link(link) is None
    assert AgentAuthorisation.objects.get().answer == "not_verified"
    assert not PrivacyRequest.objects.exists()


def test_a_strong_request_needs_the_consumers_declaration(api, run, charlie, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-27 via C-28: an agent's erasure is confirmed by the consumer at the reasonably high level."""
    confirmed_agent(api, run, mailoutbox, subject_email="charlie@example.test", type="erasure")
    link = link_in(next(m for m in mailoutbox if m.to == ["charlie@example.test"])).split("/")[-2]
    with pytest.raises(svc.IntakeRefused) as refused:
        svc.answer_agent_request(link=link, confirmed=True, claims=svc.Claims(date_of_birth=datetime.date(1990, 5, 17)))
    assert set(refused.value.errors) == {"country", "declaration_accepted", "declaration_name"}
    svc.answer_agent_request(
        link=link,
        confirmed=True,
        claims=svc.Claims(
            date_of_birth=datetime.date(1990, 5, 17),
            country="us",
            declaration_accepted=True,
            declaration_name="Charlie Other",
        ),
    )
    request = PrivacyRequest.objects.get()
    assert (request.channel, request.status) == ("agent", "verified")
    assert request.verification_method == "reasonably_high:agent+consumer_confirmed"
    assert request.declarations.get().signed_name == "Charlie Other"


def test_a_power_of_attorney_skips_the_consumer_and_waits_for_an_officer(  # type: ignore[no-untyped-def]
    api, run, alice, bob, mailoutbox
) -> None:
    """C-28: the POA path skips confirmation; the request waits (verifying) for an officer."""
    confirmed_agent(api, run, mailoutbox, power_of_attorney="true", type="access")
    assert not [m for m in mailoutbox if "authorised them" in m.body]
    request = PrivacyRequest.objects.get()
    assert (request.subject, request.channel, request.status, request.verification_method) == (
        alice,
        "agent",
        "verifying",
        "",
    )
    authorisation = AgentAuthorisation.objects.get()
    assert (authorisation.proof, authorisation.answer, authorisation.request) == (
        "power_of_attorney",
        "not_asked",
        request,
    )
    assert AuditEvent.objects.filter(action="compliance.dsr.verification_by_officer").count() == 1
    verify_request(request=request, method="agent+poa_checked", actor=bob)
    request.refresh_from_db()
    assert (request.status, request.verification_method) == ("verified", "agent+poa_checked")


def test_an_agents_opt_out_is_filed_on_the_signed_permission(api, run, charlie, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-20 with C-28 (CCR §7026(d)): an opt-out needs the signed permission, not consumer verification."""
    confirmed_agent(api, run, mailoutbox, subject_email="charlie@example.test", type="opt_out_sale_sharing")
    request = PrivacyRequest.objects.get()
    assert (request.channel, request.verification_method) == ("agent", "none:agent+signed_permission")


def test_the_officer_sees_the_agent_and_downloads_the_document_audited(  # type: ignore[no-untyped-def]
    api, run, client, alice, verified_admin, mailoutbox
) -> None:
    """C-28: officers read the permission in the admin; every download writes an audit event (ids only)."""
    confirmed_agent(api, run, mailoutbox, power_of_attorney="true")
    request = PrivacyRequest.objects.get()
    authorisation = AgentAuthorisation.objects.get()
    page = client.get(f"/admin/compliance/privacyrequest/{request.pk}/change/")
    assert page.status_code == 200
    assert b"Dana Agent" in page.content and b"dana@agency.test" in page.content
    url = f"/admin/compliance/privacyrequest/agent-document/{authorisation.pk}/"
    assert url.encode() in page.content
    response = client.get(url)
    assert response.status_code == 200 and response.content == PDF
    assert response["Content-Type"] == "application/pdf" and "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="compliance.agent.document_downloaded")
    assert (event.actor_ref, event.subject_ref) == (str(verified_admin.pk), str(alice.pk))
    from compliance.audit import read_payload

    assert read_payload(event)["data"] == {"authorisation": str(authorisation.pk), "request": str(request.pk)}


def test_listeners_and_strangers_cannot_fetch_a_document(api, run, client, alice, charlie, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-28: only staff in the admin read documents; no other path serves them."""
    confirmed_agent(api, run, mailoutbox, power_of_attorney="true")
    url = f"/admin/compliance/privacyrequest/agent-document/{AgentAuthorisation.objects.get().pk}/"
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(charlie)
    assert client.get(url).status_code == 302
    client.force_login(alice)
    assert client.get(url).status_code == 302
    assert not AuditEvent.objects.filter(action="compliance.agent.document_downloaded").exists()


def test_the_document_is_unreadable_once_the_consumers_key_is_shredded(  # type: ignore[no-untyped-def]
    api, run, client, alice, verified_admin, mailoutbox, documents
) -> None:
    """G-17/C-28: the permission document is destroyed with the subject's key on erasure."""
    confirmed_agent(api, run, mailoutbox, power_of_attorney="true")
    authorisation = AgentAuthorisation.objects.get()
    keystore.shred(alice.data_key_id)
    keystore.clear_cache()
    with pytest.raises(LookupError):
        svc.read_document(authorisation)
    assert client.get(f"/admin/compliance/privacyrequest/agent-document/{authorisation.pk}/").status_code == 410
    assert SECRET not in (documents / authorisation.document_name).read_bytes()
    assert str(AgentAuthorisation.objects.get().agent_name) == "[erased]"


def test_invalid_agent_input_is_named(api, run, alice) -> None:  # type: ignore[no-untyped-def]
    """issue #4: specific errors (problem+json) and nothing recorded."""
    body = assert_problem(run(api.post, START, {"type": "access"}, format="multipart"), 400, "validation_error")
    assert set(body["errors"]) >= {"agent_name", "agent_email", "subject_email", "document"}
    same = assert_problem(start(api, run, agent_email="alice@example.test"), 400, "validation_error")
    assert list(same["errors"]) == ["subject_email"]
    assert not RequestIntake.objects.exists() and not AuditEvent.objects.exists()


def test_an_unconfirmed_agent_intake_expires_with_its_document(api, run, alice, documents) -> None:  # type: ignore[no-untyped-def]
    """C-25: what an agent sent and never confirmed is deleted after its TTL."""
    start(api, run)
    assert len(list(documents.iterdir())) == 1
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=25)
    assert svc.purge_expired_intakes(now=later) == 1
    assert not AgentAuthorisation.objects.exists() and not list(documents.iterdir())
    assert RequestIntake.objects.get().status == "expired"


def test_the_portal_agent_form(client, alice, mailoutbox, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    """issue #4 channels: the public agent page, with the upload kept in memory and CSRF still checked."""
    assert client.get("/privacy/agent/").status_code == 200
    fields = {
        "agent_name": "Dana Agent",
        "agent_email": "dana@agency.test",
        "subject_email": "alice@example.test",
        "kind": "objection",
    }
    bad = client.post("/privacy/agent/", {**fields, "document": SimpleUploadedFile("p.pdf", b"GIF89a")})
    assert bad.status_code == 400 and b"not a PDF, PNG or JPEG" in bad.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/privacy/agent/", {**fields, "document": SimpleUploadedFile("p.pdf", PDF)})
    intake = RequestIntake.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/privacy/agent/{intake.pk}/code"
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(response["Location"], {"code": code_in(mailoutbox[0])})
    assert done.status_code == 302 and done["Location"] == "/privacy/agent/done"
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    refused = strict.post("/privacy/agent/", {**fields, "document": SimpleUploadedFile("p.pdf", PDF)})
    assert refused.status_code == 403


def test_erasure_deletes_the_intakes_keeps_the_authorisation_and_shreds_it(  # type: ignore[no-untyped-def]
    api, run, alice, mailoutbox, documents
) -> None:
    """G-17/C-29: the registry drives erasure: intakes deleted, the agent record kept but unreadable."""
    from compliance.fulfilment import subject_ref_for
    from compliance.systems.internal import InternalSystem

    confirmed_agent(api, run, mailoutbox, power_of_attorney="true")
    ref = subject_ref_for(alice)
    exported = [r for r in InternalSystem().export(ref) if r.source == "compliance.AgentAuthorisation"]
    assert exported and any(r.values.get("agent_name") == "Dana Agent" for r in exported)
    result = InternalSystem().erase(ref)
    assert result.counts["compliance.RequestIntake"] == 1
    assert [k.count for k in result.kept if k.source == "compliance.AgentAuthorisation"] == [1]
    keystore.shred(alice.data_key_id)
    keystore.clear_cache()
    authorisation = AgentAuthorisation.objects.get()
    assert (authorisation.intake, str(authorisation.agent_name)) == (None, "[erased]")
    with pytest.raises(LookupError):
        svc.read_document(authorisation)
