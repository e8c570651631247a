"""Requests from people who do not sign in, verified by an e-mailed code and matched data points.

Requirement: issue #4 "Channels" (requests without an account); REGULATIONS.md C-05 (no account needed
to make a request: the web form's requests are accepted), C-25 (match only what is held;
verification data has a TTL), C-27 (verification levels gate each type; declarations kept), C-20
(opt-outs need no verification), G-11 (ask only for data already held), C-29 (records).
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from compliance.api import public as public_api
from compliance.dsr import intake as svc
from compliance.models import AuditEvent, PrivacyRequest, RequestIntake, SignedDeclaration, VerificationLevel
from identity.crypto import keystore
from tests.accounts.api_helpers import assert_problem

pytestmark = pytest.mark.django_db

START = "/api/v1/privacy/public-requests"
NOBODY = "nobody@example.test"


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def run(django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Call fn and run what it left for after commit (mail, tasks), as a real request would."""

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return call


def start(api: APIClient, run: Any, **fields: Any) -> Any:
    body = {"email": "alice@example.test", "type": "rectification", "date_of_birth": "1990-05-17", **fields}
    return run(api.post, START, body, format="json")


def verify(api: APIClient, run: Any, intake_id: str, code: str) -> Any:
    return run(api.post, f"{START}/{intake_id}/verify", {"code": code}, format="json")


def code_in(mail: Any) -> str:
    found = re.search(r"\b(\d{8})\b", mail.body)
    assert found, mail.body
    return found.group(1)


def high(**fields: Any) -> dict[str, Any]:
    return {
        "date_of_birth": "1990-05-17",
        "country": "US",
        "declaration_accepted": True,
        "declaration_name": "Charlie Other",
        **fields,
    }


def all_audit_text() -> str:
    return " ".join(f"{e.action} {e.details}" for e in AuditEvent.objects.all())


def test_the_answer_is_the_same_whether_or_not_an_account_holds_the_address(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """issue #4 channels; no account enumeration: same status, same body, same mail, same work."""
    with CaptureQueriesContext(connection) as known_queries:
        known = start(api, run)
    with CaptureQueriesContext(connection) as unknown_queries:
        unknown = start(api, run, email=NOBODY)
    assert known.status_code == unknown.status_code == 202
    strip = lambda body: {k: v for k, v in body.items() if k != "id"}  # noqa: E731
    assert (
        strip(known.json())
        == strip(unknown.json())
        == {
            "verification_level": "reasonable",
            "code_valid_minutes": 15,
            "detail": public_api.STARTED,
        }
    )
    assert [m.to for m in mailoutbox] == [["alice@example.test"], [NOBODY]]
    assert mailoutbox[0].subject == mailoutbox[1].subject
    assert mailoutbox[0].body.replace(code_in(mailoutbox[0]), "X") == mailoutbox[1].body.replace(
        code_in(mailoutbox[1]), "X"
    )
    # The same statements either way (an account's key is read, or an intake key made: one query each).
    assert len(known_queries.captured_queries) == len(unknown_queries.captured_queries)


def without_id(response: Any) -> tuple[int, dict[str, Any]]:
    return response.status_code, {k: v for k, v in response.json().items() if k != "id"}


def warm_up(api: APIClient, run: Any) -> None:
    """One request first, so what a process or a test does once (whatever the address) is not counted
    against the first address measured."""
    assert start(api, run, email="warm-up@example.test").status_code == 202


def statements(queries: CaptureQueriesContext) -> list[str]:
    """What each statement did and to which table (no values: they may hold pseudonymous data)."""
    found = (re.match(r'\s*(\w+)(?:.*?(?:FROM|INTO|UPDATE)\s+"(\w+)")?', q["sql"]) for q in queries.captured_queries)
    return [" ".join(filter(None, m.groups())) if m else "?" for m in found]


@pytest.mark.parametrize("keys_cached", [True, False], ids=["keys-cached", "keys-not-cached"])
def test_submitting_costs_the_same_whether_or_not_the_accounts_key_is_cached(  # type: ignore[no-untyped-def]
    api, run, alice, keys_cached
) -> None:
    """issue #4 channels (no account enumeration): a process that has not cached the account's key
    yet (a fresh worker, or after the TTL) must not spend an extra key query on a known address."""
    warm_up(api, run)
    answers, work = [], []
    for email in ("alice@example.test", NOBODY):
        if not keys_cached:
            keystore.clear_cache()
        with CaptureQueriesContext(connection) as queries:
            answers.append(without_id(start(api, run, email=email)))
        work.append(statements(queries))
    assert answers[0] == answers[1] and answers[0][0] == 202
    assert len(work[0]) == len(work[1]), work


def test_a_right_code_gets_the_same_answer_and_work_and_the_outcome_follows_in_a_task(  # type: ignore[no-untyped-def]
    api, run, alice, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    """issue #4 channels, C-27: the verify step only spends the code; matching the account and filing
    (or telling the person no account holds the address) run after commit, in a task."""
    warm_up(api, run)
    answers, work, pending, ids = [], [], [], []
    for email in ("alice@example.test", NOBODY):
        started = start(api, run, email=email).json()
        ids.append(started["id"])
        sent = len(mailoutbox)
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as callbacks:
            code = code_in(mailoutbox[-1])
            answers.append(without_id(api.post(f"{START}/{started['id']}/verify", {"code": code}, format="json")))
        work.append(len(queries.captured_queries))
        pending.append(callbacks)
        # Nothing that depends on the account has happened yet: no request, no mail.
        assert not PrivacyRequest.objects.exists() and len(mailoutbox) == sent
        intake = RequestIntake.objects.get(pk=started["id"])
        assert (intake.status, intake.code_hmac) == ("awaiting_code", "")
        assert_problem(verify(api, run, started["id"], code_in(mailoutbox[-1])), 409, "invalid_state")
    assert answers[0] == answers[1] == (200, {"detail": public_api.CHECKED})
    assert work[0] == work[1] and len(pending[0]) == len(pending[1]) == 1

    for callbacks in pending:  # the task, as a worker runs it after commit
        with django_capture_on_commit_callbacks(execute=True):
            callbacks[0]()
    assert PrivacyRequest.objects.get().subject == alice
    assert [RequestIntake.objects.get(pk=pk).status for pk in ids] == ["filed", "no_account"]
    assert [m.to for m in mailoutbox[-2:]] == [["alice@example.test"], [NOBODY]]
    assert svc.match_public_request(ids[0]) == "nothing"  # idempotent


def test_wrong_codes_and_the_closing_fifth_cost_the_same_for_a_known_and_an_unknown_address(  # type: ignore[no-untyped-def]
    api, run, alice, mailoutbox
) -> None:
    """issue #4 channels: anyone holding an intake's id may send wrong codes; the fifth closes the
    intake and destroys a key of its own, which must not take longer than closing a known address's."""
    warm_up(api, run)
    answers, work, intakes = [], [], []
    for email in ("alice@example.test", NOBODY):
        started = start(api, run, email=email).json()
        code = code_in(mailoutbox[-1])
        wrong = f"{(int(code) + 1) % 10**8:08d}"
        for _ in range(svc.MAX_CODE_ATTEMPTS):
            with CaptureQueriesContext(connection) as queries:
                response = verify(api, run, started["id"], wrong)
            answers.append((email, without_id(response)))
            work.append((email, len(queries.captured_queries)))
        intakes.append(RequestIntake.objects.get(pk=started["id"]))
    for known, unknown in zip(answers[:5], answers[5:], strict=True):
        assert known[1] == unknown[1]
    assert [n for _, n in work[:5]] == [n for _, n in work[5:]]
    assert answers[4][1][0] == 429
    assert [i.status for i in intakes] == ["locked", "locked"]
    assert not keystore.is_shredded(alice.data_key_id)  # the account's key lives on
    assert keystore.is_shredded(intakes[1].data_key_id)  # the intake's own key does not


def test_a_new_code_costs_the_same_for_a_known_and_an_unknown_address(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """issue #4 channels: resending answers and works the same whoever holds the address."""
    warm_up(api, run)
    now = datetime.datetime.now(datetime.UTC)
    answers, work = [], []
    for email in ("alice@example.test", NOBODY):
        with time_machine.travel(now, tick=False):
            started = start(api, run, email=email).json()
        with time_machine.travel(now + datetime.timedelta(seconds=61), tick=False):
            with CaptureQueriesContext(connection) as queries:
                answers.append(without_id(run(api.post, f"{START}/{started['id']}/resend")))
            work.append(len(queries.captured_queries))
    assert answers[0] == answers[1] and answers[0][0] == 202
    assert work[0] == work[1]
    assert mailoutbox[-1].body.replace(code_in(mailoutbox[-1]), "X") == mailoutbox[-3].body.replace(
        code_in(mailoutbox[-3]), "X"
    )


def test_a_matching_date_of_birth_files_a_verified_request(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-27 reasonable (2 points: code + date of birth) for rectification; C-25 data dropped after use."""
    started = start(api, run, details="my display name is wrong").json()
    checked = verify(api, run, started["id"], code_in(mailoutbox[0]))
    assert checked.status_code == 200 and checked.json() == {"id": started["id"], "detail": public_api.CHECKED}
    request = PrivacyRequest.objects.get()
    assert (request.subject, request.kind, request.channel) == (alice, "rectification", "api")
    assert (request.status, request.verification_method) == ("verified", "reasonable:email+dob")
    assert request.details == "my display name is wrong"
    intake = RequestIntake.objects.get()
    assert (intake.status, intake.request, intake.level) == ("filed", request, "reasonable")
    assert (intake.email, intake.email_index, intake.claims, intake.details, intake.code_hmac) == (
        None,
        "",
        None,
        None,
        "",
    )
    assert mailoutbox[-1].to == ["alice@example.test"] and "We received your" in mailoutbox[-1].body
    assert "alice@example.test" not in all_audit_text()


def test_no_account_is_told_by_mail_only_and_the_address_is_not_kept(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """issue #4: no account for the address: same answer on screen, a mail says so, no plaintext kept."""
    started = start(api, run, email=NOBODY).json()
    intake = RequestIntake.objects.get(pk=started["id"])
    assert intake.own_key and intake.subject is None
    checked = verify(api, run, started["id"], code_in(mailoutbox[0]))
    assert checked.status_code == 200 and checked.json() == {"id": started["id"], "detail": public_api.CHECKED}
    assert not PrivacyRequest.objects.exists()
    assert mailoutbox[-1].to == [NOBODY] and "We hold no account for this e-mail address" in mailoutbox[-1].body
    intake.refresh_from_db()
    assert (intake.status, intake.email, intake.email_index) == ("no_account", None, "")
    assert keystore.is_shredded(intake.data_key_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM compliance_requestintake")
        row = repr(cursor.fetchall())
    assert "nobody" not in row
    assert AuditEvent.objects.filter(action="compliance.intake.no_account").count() == 1
    assert NOBODY not in all_audit_text()


@pytest.mark.parametrize(
    "wrong",
    [{"date_of_birth": "1991-05-17"}, {"country": "DE"}, {"declaration_name": "   "}],
    ids=["date_of_birth", "country", "declaration"],
)
def test_wrong_data_points_are_refused_without_saying_which(api, run, charlie, mailoutbox, wrong) -> None:  # type: ignore[no-untyped-def]
    """C-27: a failed match files nothing and never names the data point that was wrong."""
    fields = high(**wrong)
    if "declaration_name" in wrong:  # a blank signature is caught by the form; prove the matcher too
        fields = high()
    started = start(api, run, email="charlie@example.test", type="access", **fields)
    assert started.status_code == 202
    if "declaration_name" in wrong:
        RequestIntake.objects.filter(pk=started.json()["id"]).update(declaration_name=None)
    checked = verify(api, run, started.json()["id"], code_in(mailoutbox[0]))
    assert checked.status_code == 200 and checked.json()["detail"] == public_api.CHECKED
    assert not PrivacyRequest.objects.exists() and not SignedDeclaration.objects.exists()
    outcome = mailoutbox[-1]
    assert outcome.subject == "Your privacy request: we could not confirm it is you"
    assert "birth" not in outcome.body and "country" not in outcome.body.lower()
    intake = RequestIntake.objects.get()
    assert (intake.status, intake.claims, intake.declaration_name) == ("not_matched", None, None)


EXPECTED_LEVEL = {
    "opt_out_sale_sharing": "none",
    "limit_sensitive": "none",
    "access_categories": "reasonable",
    "rectification": "reasonable",
    "restriction": "reasonable",
    "objection": "reasonable",
    "access": "reasonably_high",
    "portability": "reasonably_high",
    "erasure": "reasonably_high",
}
MISSING = {
    "none": set(),
    "reasonable": {"date_of_birth"},
    "reasonably_high": {"date_of_birth", "country", "declaration_accepted", "declaration_name"},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_LEVEL))
def test_each_type_is_gated_by_its_verification_level(api, run, kind) -> None:  # type: ignore[no-untyped-def]
    """C-27: the enum {none, reasonable, reasonably_high} gates every request type; C-20 opt-outs."""
    level = EXPECTED_LEVEL[kind]
    assert svc.level_for(kind) == VerificationLevel(level)
    response = run(api.post, START, {"email": NOBODY, "type": kind}, format="json")
    if level == "none":
        assert response.status_code == 202 and response.json()["verification_level"] == "none"
        return
    body = assert_problem(response, 400, "validation_error")
    assert set(body["errors"]) == MISSING[level]
    assert not RequestIntake.objects.exists()


def test_every_request_type_has_a_level() -> None:
    """C-27: no type is left without a verification level."""
    assert set(svc.LEVEL_FOR_KIND) == set(PrivacyRequest.Kind.values)


def test_reasonably_high_files_access_and_keeps_the_declaration(api, run, charlie, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-27: 3 points and a declaration under penalty of perjury, kept as a record (encrypted)."""
    started = start(api, run, email="charlie@example.test", type="access", **high())
    verify(api, run, started.json()["id"], code_in(mailoutbox[0]))
    request = PrivacyRequest.objects.get()
    assert (request.subject, request.kind, request.status) == (charlie, "access", "verified")
    assert request.verification_method == "reasonably_high:email+dob+country+decl"
    declaration = SignedDeclaration.objects.get()
    assert (declaration.request, declaration.signed_name) == (request, "Charlie Other")
    assert declaration.statement == svc.DECLARATION_TEXT and declaration.statement_version == svc.DECLARATION_VERSION
    with connection.cursor() as cursor:
        cursor.execute("SELECT signed_name FROM compliance_signeddeclaration")
        (raw,) = cursor.fetchone()
    assert b"Charlie" not in bytes(raw)
    assert AuditEvent.objects.filter(action="compliance.dsr.declaration_signed").count() == 1


def test_categories_need_only_the_reasonable_level(api, run, charlie, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-27 (§7062(b)): access to categories is verified with 2 points; submit_request accepts it."""
    started = start(api, run, email="charlie@example.test", type="access_categories")
    verify(api, run, started.json()["id"], code_in(mailoutbox[0]))
    request = PrivacyRequest.objects.get()
    assert (request.status, request.verification_method) == ("verified", "reasonable:email+dob")


def test_a_reasonable_level_is_not_enough_for_a_copy() -> None:
    """C-27/C-26: submit_request accepts the strong kinds only with MFA or reasonably_high."""
    from compliance.dsr.services import strong_enough

    assert strong_enough("access", "session+mfa")
    assert strong_enough("erasure", "reasonably_high:email+dob+country+decl")
    assert not strong_enough("access", "reasonable:email+dob")
    assert strong_enough("access_categories", "reasonable:email+dob")
    assert not strong_enough("portability", "session")


def test_an_account_with_a_second_factor_waits_for_an_officer(api, run, charlie, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-26/C-27 decision: for a copy, portability or erasure the strongest level available to an
    account with a second factor is that factor, so this channel files the request for an officer."""
    from accounts.services.factors import start_totp

    factor = start_totp(user=charlie, name="Phone")
    factor.confirmed = True
    factor.save(update_fields=["confirmed"])
    started = start(api, run, email="charlie@example.test", type="erasure", **high())
    verify(api, run, started.json()["id"], code_in(mailoutbox[0]))
    request = PrivacyRequest.objects.get()
    assert (request.status, request.verification_method, request.verified_at) == ("verifying", "", None)
    event = AuditEvent.objects.get(action="compliance.dsr.verification_by_officer")
    assert event.subject_ref == str(charlie.pk)
    assert SignedDeclaration.objects.filter(request=request).count() == 1


def test_opt_outs_need_only_the_code(api, run, charlie, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-20: no verification for an opt-out; the code only finds the records and the person to answer."""
    started = run(api.post, START, {"email": "charlie@example.test", "type": "opt_out_sale_sharing"}, format="json")
    verify(api, run, started.json()["id"], code_in(mailoutbox[0]))
    request = PrivacyRequest.objects.get()
    assert (request.kind, request.verification_method) == ("opt_out_sale_sharing", "none:email")
    assert request.status in ("verified", "in_progress", "completed")


def test_the_code_expires_after_15_minutes(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """issue #4: a code is valid at most 15 minutes."""
    now = datetime.datetime.now(datetime.UTC)
    with time_machine.travel(now, tick=False):
        started = start(api, run).json()
    with time_machine.travel(now + datetime.timedelta(minutes=15, seconds=1), tick=False):
        assert_problem(verify(api, run, started["id"], code_in(mailoutbox[0])), 410, "code_expired")
    assert not PrivacyRequest.objects.exists()


def test_the_code_works_once(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """issue #4: single use."""
    started = start(api, run).json()
    code = code_in(mailoutbox[0])
    assert verify(api, run, started["id"], code).status_code == 200
    assert_problem(verify(api, run, started["id"], code), 409, "invalid_state")
    assert PrivacyRequest.objects.count() == 1


def test_wrong_codes_are_counted_and_the_fifth_closes_the_request(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """issue #4: attempts are throttled; failures are committed before the error."""
    started = start(api, run).json()
    code = code_in(mailoutbox[0])
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    for tries_left in (4, 3, 2, 1):
        body = assert_problem(verify(api, run, started["id"], wrong), 400, "invalid_code")
        assert f"{tries_left} tries left" in body["detail"]
    assert_problem(verify(api, run, started["id"], wrong), 429, "too_many_attempts")
    assert_problem(verify(api, run, started["id"], code), 409, "invalid_state")
    intake = RequestIntake.objects.get()
    assert (intake.status, intake.code_attempts, intake.email) == ("locked", 5, None)
    assert AuditEvent.objects.filter(action="compliance.intake.code_failed").count() == 4
    assert not PrivacyRequest.objects.exists()


def test_resending_is_throttled_and_replaces_the_code(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """issue #4: resend throttled (one a minute, three in all); an old code stops working."""
    now = datetime.datetime.now(datetime.UTC)
    with time_machine.travel(now, tick=False):
        started = start(api, run).json()
        too_soon = run(api.post, f"{START}/{started['id']}/resend")
        assert_problem(too_soon, 429, "rate_limited")
        assert int(too_soon["Retry-After"]) <= 61
    with time_machine.travel(now + datetime.timedelta(seconds=61), tick=False):
        assert run(api.post, f"{START}/{started['id']}/resend").status_code == 202
    with time_machine.travel(now + datetime.timedelta(seconds=122), tick=False):
        assert run(api.post, f"{START}/{started['id']}/resend").status_code == 202
    with time_machine.travel(now + datetime.timedelta(seconds=183), tick=False):
        assert_problem(run(api.post, f"{START}/{started['id']}/resend"), 429, "rate_limited")
        first, last = code_in(mailoutbox[0]), code_in(mailoutbox[2])
        if first != last:
            assert_problem(verify(api, run, started["id"], first), 400, "invalid_code")
        assert verify(api, run, started["id"], last).status_code == 200
    assert len(mailoutbox) == 4  # three codes and the acknowledgement


def test_requests_per_address_are_throttled(api, run, alice) -> None:  # type: ignore[no-untyped-def]
    """issue #4: the same address at most 3 times an hour, whoever holds it (no enumeration)."""
    for _ in range(3):
        assert start(api, run).status_code == 202
    assert_problem(start(api, run), 429, "rate_limited")
    for _ in range(3):
        assert start(api, run, email=NOBODY).status_code == 202
    assert_problem(start(api, run, email=NOBODY), 429, "rate_limited")
    assert RequestIntake.objects.count() == 6


def test_the_code_is_stored_only_as_an_hmac(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """issue #4: codes are at least 6 digits and never stored in clear."""
    start(api, run)
    code = code_in(mailoutbox[0])
    assert len(code) >= 6
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM compliance_requestintake")
        row = repr(cursor.fetchall())
    assert code not in row
    assert len(RequestIntake.objects.get().code_hmac) == 64


def test_unchecked_verification_data_expires(api, run, alice, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    """C-25: a temporary verification artefact has a TTL; purging clears it and destroys its own key."""
    now = datetime.datetime.now(datetime.UTC)
    with time_machine.travel(now, tick=False):
        start(api, run)
        start(api, run, email=NOBODY)
    assert svc.purge_expired_intakes(now=now + datetime.timedelta(hours=1)) == 0
    assert svc.purge_expired_intakes(now=now + datetime.timedelta(hours=25), dry_run=True) == 2
    assert svc.purge_expired_intakes(now=now + datetime.timedelta(hours=25)) == 2
    for intake in RequestIntake.objects.all():
        assert (intake.status, intake.email, intake.claims, intake.details) == ("expired", None, None, None)
        assert keystore.is_shredded(intake.data_key_id) == intake.own_key
    assert not keystore.is_shredded(alice.data_key_id)
    assert AuditEvent.objects.filter(action="compliance.intake.expired").count() == 2


def test_the_portal_form_and_code_page(client, alice, mailoutbox, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    """issue #4 channels: the public portal page, without signing in; errors name the missing field."""
    page = client.get("/privacy/requests/without-account/")
    assert page.status_code == 200 and svc.DECLARATION_TEXT.encode() in page.content
    missing = client.post("/privacy/requests/without-account/", {"email": "alice@example.test", "kind": "access"})
    assert missing.status_code == 400 and b"needs your date of birth" in missing.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/privacy/requests/without-account/",
            {"email": "alice@example.test", "kind": "restriction", "date_of_birth": "1990-05-17"},
        )
    intake = RequestIntake.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/privacy/requests/without-account/{intake.pk}/code"
    wrong = client.post(response["Location"], {"code": "00000000" if code_in(mailoutbox[0]) != "00000000" else "1"})
    assert wrong.status_code == 400 and b"not right" in wrong.content
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(response["Location"], {"code": code_in(mailoutbox[0])})
    assert done.status_code == 302 and done["Location"] == "/privacy/requests/without-account/done"
    request = PrivacyRequest.objects.get()
    assert (request.channel, request.kind, request.subject) == ("portal", "restriction", alice)


def test_the_portal_answers_the_same_for_an_unknown_address(client, alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    """issue #4: no enumeration on the portal either."""
    answers = []
    for email in ("alice@example.test", NOBODY):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/privacy/requests/without-account/",
                {"email": email, "kind": "limit_sensitive"},
            )
        page = client.get(response["Location"]).content.decode()
        answers.append((response.status_code, re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)))
    assert answers[0] == answers[1] and answers[0][0] == 302
