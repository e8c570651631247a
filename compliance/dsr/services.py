"""Use cases of the data-subject request workflow: intake, verification, officer decisions.

Every change writes an audit event in the same transaction (who acted, whose request, what);
every notice the law requires is sent after commit and recorded. Refused changes have no side
effects: no row changes, no audit event, no mail.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance import audit, notices
from compliance.deadlines import (
    OPT_OUTS,
    ExtensionRefused,
    Pause,
    apply_pauses,
    check_extension,
    jurisdiction_for,
    jurisdiction_from_code,
    schedule,
)
from compliance.dsr.states import TransitionRefused, check
from compliance.models import PrivacyRequest, RequestPause

S = PrivacyRequest.Status
K = PrivacyRequest.Kind

# Requests that need the strongest verification available (issue #4; G-11, C-12).
STRONG_VERIFICATION = frozenset({K.ACCESS, K.ACCESS_CATEGORIES, K.PORTABILITY, K.ERASURE})


class RequestRefused(ValueError):
    """A request or an officer's decision the rules do not allow; the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def strong_enough(kind: str, verification: str) -> bool:
    """Whether ``verification`` suffices for a request in STRONG_VERIFICATION.

    A session's fresh second factor ("...mfa...", C-26) always does. A person without a session is
    verified by compliance.dsr.intake, which names the C-27 level before a colon
    ("reasonably_high:email+dob+country+decl"): reasonably high suffices for every strong kind,
    reasonable only for access to categories (CCR §7062(b)).
    """
    if "mfa" in verification:
        return True
    level = verification.split(":", 1)[0] if ":" in verification else ""
    return level == "reasonably_high" or (kind == K.ACCESS_CATEGORIES and level == "reasonable")


@dataclass(frozen=True)
class Submission:
    request: PrivacyRequest
    created: bool  # False: an open request of the same kind existed and is returned instead


def _deadline_rows(s: Any) -> list[dict[str, str]]:
    return [
        {"name": d.name, "due": d.due.isoformat(), "legal": d.legal.isoformat(), "rule": d.rule} for d in s.deadlines
    ]


def _store_schedule(request: PrivacyRequest, s: Any) -> None:
    request.deadlines = _deadline_rows(s)
    respond = s.get("respond")
    ack = s.get("acknowledge")
    request.due_on, request.legal_due_on = respond.due, respond.legal
    request.ack_due_on = ack.due if ack else None


@transaction.atomic
def submit_request(
    *,
    subject: Any,
    kind: str,
    channel: str,
    actor: Any,
    details: str = "",
    verification: str = "",
    received_at: datetime.datetime | None = None,
    ip: str | None = None,
    purposes: list[str] | None = None,
    choices_recorded: bool = False,
) -> Submission:
    """File a request for ``subject`` (a user). ``verification`` names how the subject was verified
    ("session+mfa", "session", ...) or is empty when that is still to be done.

    The jurisdiction is the subject's country and region at receipt, stored on the request; the
    deadlines are computed now, once, and stored as dates with their rules. ``purposes`` names the
    processing purposes an objection, restriction or opt-out is about (compliance.consents);
    ``choices_recorded`` says the consent ledger already holds the withdrawal (a settings toggle).
    Opt-outs, objections and restrictions take effect at once (compliance.propagation).
    """
    if kind not in K.values:
        raise RequestRefused("validation_error", f"unknown request type {kind!r}")
    purposes = _checked_purposes(kind, purposes or [])
    existing = PrivacyRequest.objects.open().filter(subject=subject, kind=kind).order_by("received_at").first()
    if existing is not None:
        audit.record(
            "compliance.dsr.duplicate_linked",
            actor=actor,
            subject=subject,
            data={"request": str(existing.pk), "channel": channel},
            ip=ip,
        )
        return Submission(existing, created=False)

    now = received_at or timezone.now()
    j = jurisdiction_for(str(getattr(subject, "country", "") or ""), str(getattr(subject, "region", "") or ""))
    received_on = now.date()
    request = PrivacyRequest(
        subject=subject,
        subject_ref=str(subject.pk),
        data_key_id=subject.data_key_id,
        kind=kind,
        channel=channel,
        details=details,
        jurisdiction=j.code,
        regime=j.regime,
        received_at=now,
        received_on=received_on,
        purposes=purposes,
    )
    _store_schedule(request, schedule(j, kind, received_on))
    if kind in OPT_OUTS:
        verification = verification or "not_required"  # C-20: opt-outs need no verification
    if kind in STRONG_VERIFICATION and verification and not strong_enough(kind, verification):
        verification = ""  # the strongest level available is a fresh second factor; anything less waits
    if verification:
        request.status = S.VERIFIED
        request.verified_at = now
        request.verification_method = verification
    review_reason = frequency_review_reason(subject, kind, now)
    if review_reason and request.status == S.VERIFIED:
        request.status = S.AWAITING_REVIEW  # an officer decides: answer, charge (GDPR) or decline
    if kind == K.ERASURE:
        request.execute_after = now + datetime.timedelta(days=settings.ERASURE_GRACE_DAYS)
    request.save(force_insert=True)
    audit.record(
        "compliance.dsr.received",
        actor=actor,
        subject=subject,
        data={
            "request": str(request.pk),
            "kind": kind,
            "channel": channel,
            "jurisdiction": j.code,
            "due_on": request.due_on.isoformat(),
            "verification": verification or "pending",
            "review": review_reason,
        },
        ip=ip,
    )
    notices.send(request, "acknowledgement")
    from compliance import propagation

    propagation.after_receipt(request, choices_recorded=choices_recorded)
    return Submission(request, created=True)


PURPOSE_KINDS = frozenset({K.OBJECTION, K.RESTRICTION, K.OPT_OUT_SALE_SHARING, K.LIMIT_SENSITIVE})


def _checked_purposes(kind: str, purposes: list[str]) -> list[str]:
    from compliance.consents import PURPOSES, SALE_SHARING, SENSITIVE

    if not purposes:
        return []
    if kind not in PURPOSE_KINDS:
        raise RequestRefused("validation_error", f"a {kind} request does not take purposes")
    unknown = sorted(set(purposes) - set(PURPOSES))
    if unknown:
        raise RequestRefused("validation_error", f"unknown purpose(s): {', '.join(unknown)}")
    allowed = {K.OPT_OUT_SALE_SHARING: SALE_SHARING, K.LIMIT_SENSITIVE: SENSITIVE}.get(K(kind))
    if allowed is not None and set(purposes) - set(allowed):
        raise RequestRefused("validation_error", f"a {kind} request is about: {', '.join(allowed)}")
    return sorted(set(purposes))


KNOW_KINDS = frozenset({K.ACCESS, K.ACCESS_CATEGORIES, K.PORTABILITY})


def frequency_review_reason(subject: Any, kind: str, now: datetime.datetime) -> str:
    """Why a request to know goes to an officer first, or "" (REGULATIONS.md C-08: a business need
    not answer more than twice in 12 months; G-14: manifestly excessive, in particular repetitive,
    requests may be refused or charged, with the burden of proof on the controller)."""
    if kind not in KNOW_KINDS:
        return ""
    earlier = (
        PrivacyRequest.objects.filter(
            subject=subject, kind__in=KNOW_KINDS, received_at__gte=now - datetime.timedelta(days=365)
        )
        .exclude(status__in=(S.CANCELLED, S.DENIED))
        .count()
    )
    if earlier >= 2:
        return f"C-08/G-14: {earlier + 1} requests to know in 12 months; an officer may answer, charge or decline"
    return ""


def _transition(request: PrivacyRequest, wanted: str) -> None:
    try:
        check(request.status, wanted)
    except TransitionRefused as exc:
        raise RequestRefused("invalid_state", str(exc)) from exc


def _locked(request: PrivacyRequest) -> PrivacyRequest:
    return PrivacyRequest.objects.select_for_update().get(pk=request.pk)


@transaction.atomic
def verify_request(*, request: PrivacyRequest, method: str, actor: Any) -> PrivacyRequest:
    request = _locked(request)
    _transition(request, S.VERIFIED)
    if not method.strip():
        raise RequestRefused("validation_error", "say how the identity was verified")
    now = timezone.now()
    request.status, request.verified_at, request.verification_method = S.VERIFIED, now, method[:40]
    request.save(update_fields=["status", "verified_at", "verification_method"])
    _close_open_pause(request, now)
    audit.record(
        "compliance.dsr.verified",
        actor=actor,
        subject=request.subject,
        data={"request": str(request.pk), "method": method[:40]},
    )
    from compliance import propagation

    propagation.after_receipt(request)
    return request


@transaction.atomic
def cancel_request(*, request: PrivacyRequest, actor: Any) -> PrivacyRequest:
    """The subject withdraws a request that has not been carried out (an erasure until its grace ends)."""
    request = _locked(request)
    if request.status == S.IN_PROGRESS:
        raise RequestRefused("invalid_state", "this request is already being carried out")
    if request.kind == K.ERASURE and request.execute_after and timezone.now() >= request.execute_after:
        raise RequestRefused("invalid_state", "the cancellation window of this erasure has closed")
    _transition(request, S.CANCELLED)
    request.status = S.CANCELLED
    request.completed_at = timezone.now()
    request.save(update_fields=["status", "completed_at"])
    audit.record("compliance.dsr.cancelled", actor=actor, subject=request.subject, data={"request": str(request.pk)})
    _end_restrictions(request, actor)
    return request


def _end_restrictions(request: PrivacyRequest, actor: Any) -> None:
    if request.restrictions.filter(lifted_at__isnull=True).exists():
        from compliance import propagation

        propagation.ended_without_completion(request, actor=actor)


@transaction.atomic
def extend_request(
    *, request: PrivacyRequest, reason: str, actor: Any, on: datetime.date | None = None
) -> PrivacyRequest:
    """One extension, with the reason sent to the subject, inside the first period (G-12, C-07)."""
    request = _locked(request)
    if not request.is_open:
        raise RequestRefused("invalid_state", "a closed request cannot be extended")
    s = current_schedule(request)
    try:
        extended = check_extension(
            s, on=on or timezone.now().date(), reason=reason, already_extended=request.extended_at is not None
        )
    except ExtensionRefused as exc:
        raise RequestRefused("extension_refused", str(exc)) from exc
    request.extended_at = timezone.now()
    request.extension_reason = reason.strip()
    request.due_on, request.legal_due_on = extended.due, extended.legal
    request.save(update_fields=["extended_at", "extension_reason", "due_on", "legal_due_on"])
    audit.record(
        "compliance.dsr.extended",
        actor=actor,
        subject=request.subject,
        data={"request": str(request.pk), "due_on": extended.due.isoformat(), "rule": extended.rule},
    )
    notices.send(request, "extension")
    return request


@transaction.atomic
def deny_request(*, request: PrivacyRequest, basis: str, text: str, actor: Any) -> PrivacyRequest:
    """Refuse with the legal basis and the text sent to the subject (G-13: reasons, the right to
    complain to a supervisory authority and to a judicial remedy)."""
    request = _locked(request)
    if not basis.strip() or not text.strip():
        raise RequestRefused("validation_error", "a denial needs its legal basis and the text sent to the subject")
    _transition(request, S.DENIED)
    request.status = S.DENIED
    request.denial_basis, request.denial_text = basis.strip()[:200], text.strip()
    request.completed_at = timezone.now()
    request.save(update_fields=["status", "denial_basis", "denial_text", "completed_at"])
    audit.record(
        "compliance.dsr.denied",
        actor=actor,
        subject=request.subject,
        data={"request": str(request.pk), "basis": request.denial_basis},
    )
    notices.send(request, "denial")
    _end_restrictions(request, actor)
    return request


@transaction.atomic
def place_hold(*, request: PrivacyRequest, reason: str, actor: Any) -> PrivacyRequest:
    """A legal hold: nothing is carried out until it is released (e.g. litigation, an authority's order)."""
    request = _locked(request)
    if not reason.strip():
        raise RequestRefused("validation_error", "a legal hold needs its reason")
    _transition(request, S.ON_HOLD)
    request.status_before_hold = request.status
    request.status = S.ON_HOLD
    request.hold_reason, request.hold_placed_by, request.hold_placed_at = reason.strip(), actor, timezone.now()
    request.save(update_fields=["status", "status_before_hold", "hold_reason", "hold_placed_by", "hold_placed_at"])
    audit.record(
        "compliance.dsr.hold_placed",
        actor=actor,
        subject=request.subject,
        data={"request": str(request.pk), "reason": request.hold_reason},
    )
    return request


@transaction.atomic
def release_hold(*, request: PrivacyRequest, actor: Any) -> PrivacyRequest:
    request = _locked(request)
    if request.status != S.ON_HOLD:
        raise RequestRefused("invalid_state", "this request is not on hold")
    back = request.status_before_hold or S.RECEIVED
    _transition(request, back)
    request.status, request.status_before_hold = back, ""
    request.save(update_fields=["status", "status_before_hold"])
    audit.record(
        "compliance.dsr.hold_released",
        actor=actor,
        subject=request.subject,
        data={"request": str(request.pk), "status": back},
    )
    if back == S.IN_PROGRESS:
        # Systems may have reported while the hold stood: finish now if every one has.
        from compliance.fulfilment import finish_if_complete

        request_id = request.pk
        transaction.on_commit(lambda: finish_if_complete(request_id), robust=True)
    return request


@transaction.atomic
def pause_clock(*, request: PrivacyRequest, reason: str, actor: Any) -> PrivacyRequest:
    """Wait for the subject (identity, clarification). Moves deadlines only where the law allows."""
    request = _locked(request)
    if not request.is_open:
        raise RequestRefused("invalid_state", "a closed request has no clock")
    if request.pauses.filter(ended_at__isnull=True).exists():
        raise RequestRefused("invalid_state", "the clock is already paused")
    RequestPause.objects.create(request=request, started_at=timezone.now(), reason=reason.strip()[:200] or "waiting")
    if request.status in (S.RECEIVED,):
        request.status = S.VERIFYING
        request.save(update_fields=["status"])
    audit.record(
        "compliance.dsr.clock_paused",
        actor=actor,
        subject=request.subject,
        data={"request": str(request.pk), "reason": reason.strip()[:200]},
    )
    return request


def _close_open_pause(request: PrivacyRequest, now: datetime.datetime) -> None:
    pause = request.pauses.filter(ended_at__isnull=True).first()
    if pause is None:
        return
    pause.ended_at = now
    pause.save(update_fields=["ended_at"])
    s = current_schedule(request)
    respond = s.get("respond")
    if request.extended_at is None and respond is not None:
        request.due_on, request.legal_due_on = respond.due, respond.legal
        request.deadlines = _deadline_rows(s)
        request.save(update_fields=["due_on", "legal_due_on", "deadlines"])


@transaction.atomic
def resume_clock(*, request: PrivacyRequest, actor: Any) -> PrivacyRequest:
    request = _locked(request)
    if not request.pauses.filter(ended_at__isnull=True).exists():
        raise RequestRefused("invalid_state", "the clock is not paused")
    _close_open_pause(request, timezone.now())
    audit.record(
        "compliance.dsr.clock_resumed",
        actor=actor,
        subject=request.subject,
        data={"request": str(request.pk), "due_on": request.due_on.isoformat()},
    )
    return request


def current_schedule(request: PrivacyRequest) -> Any:
    """The request's schedule with every closed pause applied (where the law allows pausing)."""
    pauses = [Pause(p.started_at.date(), p.ended_at.date()) for p in request.pauses.all() if p.ended_at is not None]
    j = jurisdiction_from_code(request.jurisdiction)
    return apply_pauses(schedule(j, request.kind, request.received_on), pauses)


@transaction.atomic
def complete_request(*, request: PrivacyRequest, actor: Any, note: str = "") -> PrivacyRequest:
    """Close a request an officer has carried out by hand (rectification, restriction, objection,
    opt-outs), with the completion notice. Exports and erasures complete through compliance.fulfilment."""
    request = _locked(request)
    if request.kind in {K.ACCESS, K.ACCESS_CATEGORIES, K.PORTABILITY, K.ERASURE}:
        raise RequestRefused("invalid_state", "exports and erasures complete when every system has reported")
    if request.status not in (S.VERIFIED, S.AWAITING_REVIEW):
        _transition(request, S.COMPLETED)  # says why (e.g. not verified yet, on hold, closed)
    from compliance import propagation

    try:
        propagation.complete_by_officer(request, actor=actor, note=note)
    except propagation.PropagationRefused as exc:
        raise RequestRefused(exc.code, str(exc)) from exc
    return request
