"""The data-subject request workflow: intake, verification, deadlines stored, officer decisions.

Requirement: issue #4 "Requests" and "Deadlines"; REGULATIONS.md §0 rule 1 (jurisdiction per request,
stored), G-11 (proportionate verification), G-12 (one month, one extension with reasons),
G-13 (denial with reasons and remedies), C-06/C-07 (CCPA acknowledgement and answer), C-20 (opt-outs
need no verification); STYLE.md (a denied path has no side effects).
"""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.core import mail

from compliance.dsr import services
from compliance.dsr.services import RequestRefused
from compliance.models import AuditEvent, PrivacyRequest

pytestmark = pytest.mark.django_db

RECEIVED = datetime.datetime(2026, 1, 31, 10, 0, tzinfo=datetime.UTC)


def submit(subject, kind: str = "access", verification: str = "session+mfa", **kw):  # type: ignore[no-untyped-def]
    return services.submit_request(
        subject=subject, kind=kind, channel="api", actor=subject, verification=verification, received_at=RECEIVED, **kw
    ).request


def test_a_request_stores_its_jurisdiction_and_absolute_deadlines(alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(alice, details="everything you hold about me")
    request.refresh_from_db()
    assert (request.jurisdiction, request.regime, request.status) == ("EU-DE", "gdpr", "verified")
    assert (request.due_on, request.legal_due_on) == (datetime.date(2026, 2, 28), datetime.date(2026, 3, 2))
    assert [d["name"] for d in request.deadlines] == ["respond", "respond_extended", "extension_notice"]
    assert "G-12" in request.deadlines[0]["rule"]
    assert request.details == "everything you hold about me"  # encrypted at rest under Alice's key
    assert request.acknowledged_at is not None
    (ack,) = mail.outbox
    assert ack.subject == "We have received your privacy request" and "28 February 2026" in ack.body
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["compliance.dsr.received", "compliance.dsr.notice_sent"]


def test_ccpa_request_has_an_acknowledgement_deadline(charlie) -> None:  # type: ignore[no-untyped-def]
    request = submit(charlie, kind="erasure")
    assert (request.jurisdiction, request.ack_due_on) == ("US-CA", datetime.date(2026, 2, 13))
    assert request.execute_after == RECEIVED + datetime.timedelta(days=7)  # ERASURE_GRACE_DAYS


def test_opt_outs_need_no_verification_c20(charlie) -> None:  # type: ignore[no-untyped-def]
    request = submit(charlie, kind="opt_out_sale_sharing", verification="")
    # Verified without asking anything, and carried out at once (compliance.propagation).
    assert (request.status, request.verification_method) == ("in_progress", "not_required")
    assert request.due_on == datetime.date(2026, 2, 20)  # 15 business days


def test_erasure_without_a_fresh_second_factor_waits_for_verification(alice) -> None:  # type: ignore[no-untyped-def]
    request = submit(alice, kind="erasure", verification="session")
    assert request.status == "received" and request.verified_at is None


def test_a_duplicate_open_request_is_linked_not_repeated(alice) -> None:  # type: ignore[no-untyped-def]
    first = submit(alice)
    again = services.submit_request(
        subject=alice, kind="access", channel="portal", actor=alice, verification="session+mfa"
    )
    assert not again.created and again.request.pk == first.pk
    assert PrivacyRequest.objects.count() == 1
    assert AuditEvent.objects.filter(action="compliance.dsr.duplicate_linked").count() == 1


def test_one_extension_with_reasons_inside_the_first_month_g12(alice, bob, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    request = submit(alice)
    with pytest.raises(RequestRefused, match="reason"):
        services.extend_request(request=request, reason="", actor=bob, on=datetime.date(2026, 2, 10))
    with django_capture_on_commit_callbacks(execute=True):
        services.extend_request(
            request=request, reason="many systems to search", actor=bob, on=datetime.date(2026, 2, 10)
        )
    request.refresh_from_db()
    assert (request.due_on, request.extension_reason) == (datetime.date(2026, 4, 30), "many systems to search")
    assert mail.outbox[-1].subject == "We need more time for your privacy request"
    with pytest.raises(RequestRefused, match="once"):
        services.extend_request(request=request, reason="again", actor=bob, on=datetime.date(2026, 2, 11))


def test_a_late_extension_is_refused_without_side_effects(alice, bob) -> None:  # type: ignore[no-untyped-def]
    request = submit(alice)
    before = AuditEvent.objects.count()
    with pytest.raises(RequestRefused, match="too late"):
        services.extend_request(request=request, reason="forgot", actor=bob, on=datetime.date(2026, 3, 5))
    request.refresh_from_db()
    assert request.extended_at is None and request.due_on == datetime.date(2026, 2, 28)
    assert AuditEvent.objects.count() == before and len(mail.outbox) == 0


def test_denial_needs_basis_and_text_and_tells_of_remedies_g13(alice, bob, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    request = submit(alice)
    with pytest.raises(RequestRefused, match="legal basis"):
        services.deny_request(request=request, basis="", text="no", actor=bob)
    assert PrivacyRequest.objects.get(pk=request.pk).status == "verified"
    with django_capture_on_commit_callbacks(execute=True):
        services.deny_request(
            request=request,
            basis="GDPR Art. 12(5)(b) manifestly excessive",
            text="You asked for the same copy four times this month.",
            actor=bob,
        )
    denial = mail.outbox[-1]
    assert "supervisory authority" in denial.body and "judicial remedy" in denial.body
    assert "manifestly excessive" in denial.body
    with pytest.raises(RequestRefused, match="cannot become"):
        services.place_hold(request=request, reason="late hold", actor=bob)


def test_legal_hold_stops_and_release_restores(alice, bob) -> None:  # type: ignore[no-untyped-def]
    request = submit(alice, kind="erasure", verification="session+mfa")
    held = services.place_hold(request=request, reason="litigation hold, case 2026-17", actor=bob)
    assert (held.status, held.hold_placed_by, held.status_before_hold) == ("on_hold", bob, "verified")
    with pytest.raises(RequestRefused, match="needs its reason"):
        services.place_hold(request=request, reason=" ", actor=bob)
    released = services.release_hold(request=request, actor=bob)
    assert released.status == "verified"


def test_the_subject_cancels_an_erasure_only_inside_its_grace_period(alice) -> None:  # type: ignore[no-untyped-def]
    request = submit(alice, kind="erasure")
    late = time_machine.travel(RECEIVED + datetime.timedelta(days=8))
    with late, pytest.raises(RequestRefused, match="cancellation window"):
        services.cancel_request(request=request, actor=alice)
    assert PrivacyRequest.objects.get(pk=request.pk).status == "verified"
    with time_machine.travel(RECEIVED + datetime.timedelta(days=2)):
        assert services.cancel_request(request=request, actor=alice).status == "cancelled"


def test_a_pause_moves_uk_deadlines_on_resume_u02(make_user, bob) -> None:  # type: ignore[no-untyped-def]
    briton = make_user("briton@example.test", country="GB")
    request = submit(briton, kind="access", verification="")
    assert request.due_on == datetime.date(2026, 2, 28)
    with time_machine.travel(datetime.datetime(2026, 2, 2, 9, 0, tzinfo=datetime.UTC)):
        services.pause_clock(request=request, reason="asked for proof of identity", actor=bob)
    assert PrivacyRequest.objects.get(pk=request.pk).status == "verifying"
    with time_machine.travel(datetime.datetime(2026, 2, 12, 9, 0, tzinfo=datetime.UTC)):
        verified = services.verify_request(request=request, method="matched account e-mail", actor=bob)
    assert verified.due_on == datetime.date(2026, 3, 10)  # ten days later
    assert "moved 10 days" in verified.deadlines[0]["rule"]


def test_ccpa_clock_does_not_pause_c07(charlie, bob) -> None:  # type: ignore[no-untyped-def]
    request = submit(charlie, kind="access", verification="")
    with time_machine.travel(datetime.datetime(2026, 2, 2, 9, 0, tzinfo=datetime.UTC)):
        services.pause_clock(request=request, reason="identity", actor=bob)
    with time_machine.travel(datetime.datetime(2026, 2, 20, 9, 0, tzinfo=datetime.UTC)):
        verified = services.verify_request(request=request, method="matched account e-mail", actor=bob)
    assert verified.due_on == datetime.date(2026, 3, 16)  # received + 44: unmoved


def test_a_third_request_to_know_in_12_months_goes_to_an_officer_c08(alice, bob) -> None:  # type: ignore[no-untyped-def]
    """C-08 (twice in 12 months), G-14 (repetitive requests: an officer decides, with the reason
    recorded; answers are otherwise free and automatic)."""
    first = submit(alice, kind="access")
    PrivacyRequest.objects.filter(pk=first.pk).update(status="completed")
    second = services.submit_request(
        subject=alice,
        kind="portability",
        channel="api",
        actor=alice,
        verification="session+mfa",
        received_at=RECEIVED + datetime.timedelta(days=30),
    ).request
    PrivacyRequest.objects.filter(pk=second.pk).update(status="completed")
    third = services.submit_request(
        subject=alice,
        kind="access",
        channel="api",
        actor=alice,
        verification="session+mfa",
        received_at=RECEIVED + datetime.timedelta(days=60),
    ).request
    assert (second.status, third.status) == ("verified", "awaiting_review")
    event = AuditEvent.objects.filter(action="compliance.dsr.received").order_by("-id").first()
    from compliance.audit import read_payload

    assert "C-08" in read_payload(event)["data"]["review"]  # type: ignore[index]
    objection = services.submit_request(
        subject=alice,
        kind="rectification",
        channel="api",
        actor=alice,
        verification="session",
        received_at=RECEIVED + datetime.timedelta(days=70),
    ).request
    assert objection.status == "verified"  # other rights are not limited
