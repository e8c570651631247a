"""Rectification, restriction, objection and opt-outs: applied to the account at once, then carried
to every connected system that keeps choices or copies (issue #4; REGULATIONS.md G-16, G-18, G-19,
G-21, C-20, C-21).

What happens per request type (the request's own life is in compliance.dsr.services):

- **opt-out of sale/sharing, limit sensitive**: no verification (C-20). The listener's choices are
  withdrawn in the consent ledger the moment the request is received ("flips in real time"), then
  every system is told; the request completes when each has acknowledged, and the listener sees
  "Opt-Out Request Honored".
- **objection**: to direct marketing, absolute (Art. 21(2)-(3)): the purposes stop at once, as an
  opt-out does. To processing under legitimate interests (Art. 21(1)): the data is restricted while
  an officer reviews (Art. 18(1)(d)); upholding stops the purposes and ends the restriction,
  rejecting it (a denial with the compelling grounds) ends the restriction; either way the
  listener is told first.
- **restriction**: a verified request restricts processing at once (store only: compliance.processing)
  and every system is told; the restriction stays until an officer lifts it, and the listener is
  told before it is lifted (Art. 18(3)).
- **rectification**: an officer corrects the account, then completing the request carries the
  corrected values to every system that keeps a copy; a listener's own correction (PATCH /me, the
  profile page) is carried the same way, without a request.

Systems receive the subject's current state (compliance.systems.base.SubjectState), never a delta,
so a retried or reordered delivery converges. Each request's delivery to each system is a
SystemRun (compliance.fulfilment runs it: idempotent, retried, visible to officers); the
acknowledgements are the evidence G-19 asks for.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from compliance import audit, notices
from compliance.models import ConsentRecord, PrivacyRequest, ProcessingRestriction, SystemRun
from compliance.systems.base import SubjectState

logger = logging.getLogger(__name__)

K = PrivacyRequest.Kind
S = PrivacyRequest.Status
A = SystemRun.Action

ACTION_FOR = {
    K.RECTIFICATION: A.RECTIFY,
    K.RESTRICTION: A.RESTRICT,
    K.OBJECTION: A.OPT_OUT,
    K.OPT_OUT_SALE_SHARING: A.OPT_OUT,
    K.LIMIT_SENSITIVE: A.OPT_OUT,
}
PROPAGATING_KINDS = frozenset(ACTION_FOR)
PROFILE_FIELDS = ("display_name", "country", "region")


class PropagationRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def propagating_systems() -> list[Any]:
    from compliance.fulfilment import systems

    return [s for s in systems() if hasattr(s, "apply")]


def subject_state(user: Any, *, with_profile: bool = False) -> SubjectState:
    from compliance.consents import current
    from compliance.processing import is_restricted

    profile = None
    if with_profile:
        profile = {name: str(getattr(user, name, "") or "") for name in PROFILE_FIELDS}
    return SubjectState(
        purposes={name: c.granted for name, c in current(user).items()},
        restricted=is_restricted(user),
        profile=profile,
    )


def purposes_of(request: PrivacyRequest) -> list[str]:
    from compliance.consents import PURPOSES, SALE_SHARING, SENSITIVE

    if request.purposes:
        return [p for p in request.purposes if p in PURPOSES]
    if request.kind == K.OPT_OUT_SALE_SHARING:
        return list(SALE_SHARING)
    if request.kind == K.LIMIT_SENSITIVE:
        return list(SENSITIVE)
    if request.kind == K.OBJECTION:
        return ["personalised_recommendations"]
    return []


def is_absolute_objection(request: PrivacyRequest) -> bool:
    from compliance.consents import PURPOSES

    return all(PURPOSES[p].direct_marketing for p in purposes_of(request))


def _withdraw(request: PrivacyRequest, purposes: list[str], *, actor: Any, method: str) -> list[ConsentRecord]:
    from compliance.consents import current, write_record

    user = request.subject
    if user is None:
        return []
    choices = current(user)
    now = timezone.now()
    officer = actor is not None and getattr(actor, "pk", None) not in (None, user.pk)
    return [
        write_record(
            user,
            name,
            False,
            actor=ConsentRecord.Actor.OFFICER if officer else ConsentRecord.Actor.SELF,
            actor_ref=getattr(actor, "pk", "") or user.pk,
            surface=ConsentRecord.Surface.REQUEST,
            method=method,
            jurisdiction=request.jurisdiction,
            request=request,
            at=now,
        )
        for name in purposes
        if choices[name].granted
    ]


def place_restriction(request: PrivacyRequest, *, ground: str) -> ProcessingRestriction:
    existing = ProcessingRestriction.objects.filter(request=request, lifted_at__isnull=True).first()
    if existing is not None:
        return existing
    restriction = ProcessingRestriction.objects.create(
        subject=request.subject,
        subject_ref=request.subject_ref,
        ground=ground,
        request=request,
        placed_at=timezone.now(),
    )
    audit.record(
        "compliance.restriction.placed",
        actor="system:propagation",
        subject=request.subject,
        data={"request": str(request.pk), "restriction": restriction.pk, "ground": ground},
    )
    return restriction


def after_receipt(request: PrivacyRequest, *, choices_recorded: bool = False) -> None:
    """What a new (verified) request of a propagating type does at once. Called by submit_request
    and verify_request inside their transaction."""
    if request.subject is None or request.status not in (S.VERIFIED, S.AWAITING_REVIEW):
        return
    if request.kind in (K.OPT_OUT_SALE_SHARING, K.LIMIT_SENSITIVE):
        if not choices_recorded:
            _withdraw(request, purposes_of(request), actor=request.subject, method=f"{request.kind} request")
        carry_out(request, actor="system:propagation")
    elif request.kind == K.OBJECTION:
        if is_absolute_objection(request):
            _withdraw(request, purposes_of(request), actor=request.subject, method="objection to direct marketing")
            carry_out(request, actor="system:propagation")
        else:
            # Art. 21(1): an officer weighs it; meanwhile the data is only stored (Art. 18(1)(d)).
            place_restriction(request, ground=ProcessingRestriction.Ground.OBJECTION)
            if request.status == S.VERIFIED:
                request.status = S.AWAITING_REVIEW
                request.save(update_fields=["status"])
            choices_changed(request.subject)
    elif request.kind == K.RESTRICTION:
        place_restriction(request, ground=ProcessingRestriction.Ground.ACCURACY)
        carry_out(request, actor="system:propagation")


def carry_out(request: PrivacyRequest, *, actor: Any, action: str | None = None) -> list[SystemRun]:
    """Tell every propagating system; the request completes when each has acknowledged."""
    from compliance.fulfilment import fan_out, finish_if_complete

    action = action or ACTION_FOR[K(request.kind)]
    runs = fan_out(request, propagating_systems(), action=action, actor=actor, robust=True)
    request_id = request.pk
    if not runs and action != A.LIFT_RESTRICTION:
        transaction.on_commit(lambda: finish_if_complete(request_id), robust=True)
    return runs


def complete_by_officer(request: PrivacyRequest, *, actor: Any, note: str) -> None:
    """An officer's "complete" for a propagating request (compliance.dsr.services.complete_request)."""
    if request.status == S.IN_PROGRESS:
        raise PropagationRefused("invalid_state", "this request is being carried to the connected systems")
    if request.kind == K.OBJECTION and not is_absolute_objection(request):
        # Upheld: the purposes stop for good; the restriction pending the decision ends (the
        # completion notice, sent first, tells the listener).
        _withdraw(request, purposes_of(request), actor=actor, method="objection upheld")
        _lift_for(request, actor=actor, reason="objection upheld", notified=True)
    elif request.kind == K.RESTRICTION and not request.restrictions.exists():
        place_restriction(request, ground=ProcessingRestriction.Ground.ACCURACY)
    elif request.kind in (K.OPT_OUT_SALE_SHARING, K.LIMIT_SENSITIVE) or (
        request.kind == K.OBJECTION and is_absolute_objection(request)
    ):
        _withdraw(request, purposes_of(request), actor=actor, method=f"{request.kind} request")
    audit.record(
        "compliance.dsr.officer_completed",
        actor=actor,
        subject=request.subject,
        data={"request": str(request.pk), "note": note.strip()[:500]},
    )
    carry_out(request, actor=actor)


def finish(request: PrivacyRequest, runs: list[SystemRun]) -> None:
    """Every system acknowledged: the request is complete (called under the request's lock)."""
    from compliance.fulfilment import evidence_for

    request.status, request.progress, request.completed_at = S.COMPLETED, 100, timezone.now()
    evidence = evidence_for(request, runs)
    evidence["consent_records"] = list(request.consent_records.values_list("pk", flat=True))
    evidence["restrictions"] = [
        {"id": r.pk, "ground": r.ground, "placed_at": r.placed_at.isoformat(), "in_force": r.in_force}
        for r in request.restrictions.all()
    ]
    request.evidence = evidence
    request.save(update_fields=["status", "progress", "completed_at", "evidence"])
    audit.record(
        "compliance.dsr.completed",
        actor="system:propagation",
        subject=request.subject,
        data={"request": str(request.pk), "systems": {r.system: r.counts for r in runs}},
    )
    notices.send(request, "completion")


def ended_without_completion(request: PrivacyRequest, *, actor: Any) -> None:
    """A denied or cancelled request ends the restriction it placed; the denial notice (or the
    listener's own cancellation) told them first."""
    _lift_for(request, actor=actor, reason=f"request {request.status}", notified=True)


def _lift_for(request: PrivacyRequest, *, actor: Any, reason: str, notified: bool) -> None:
    for restriction in ProcessingRestriction.objects.filter(request=request, lifted_at__isnull=True):
        lift_restriction(restriction, actor=actor, reason=reason, notified=notified)


def notify_lift(restriction: ProcessingRestriction, *, actor: Any) -> ProcessingRestriction:
    """Step one of lifting: tell the listener (Art. 18(3): before the restriction is lifted)."""
    with transaction.atomic():
        restriction = ProcessingRestriction.objects.select_for_update().get(pk=restriction.pk)
        if restriction.lifted_at is not None:
            raise PropagationRefused("invalid_state", "this restriction is already lifted")
        if restriction.request is None:
            raise PropagationRefused("invalid_state", "this restriction has no request to write to the listener about")
        restriction.lift_notified_at = timezone.now()
        restriction.save(update_fields=["lift_notified_at"])
        notices.send(restriction.request, "restriction_lift")
        audit.record(
            "compliance.restriction.lift_notified",
            actor=actor,
            subject=restriction.subject,
            data={"restriction": restriction.pk, "request": str(restriction.request_id)},
        )
    return restriction


def lift_restriction(
    restriction: ProcessingRestriction, *, actor: Any, reason: str, notified: bool = False
) -> ProcessingRestriction:
    """Step two: lift, then tell every system. Refused until the listener was told (G-18)."""
    with transaction.atomic():
        restriction = ProcessingRestriction.objects.select_for_update().get(pk=restriction.pk)
        if restriction.lifted_at is not None:
            return restriction
        if restriction.lift_notified_at is None and not notified:
            raise PropagationRefused(
                "not_notified", "tell the listener first: a restriction is lifted only after they were told"
            )
        if not reason.strip():
            raise PropagationRefused("validation_error", "say why the restriction is lifted")
        now = timezone.now()
        restriction.lift_notified_at = restriction.lift_notified_at or now
        restriction.lifted_at, restriction.lift_reason = now, reason.strip()[:300]
        restriction.lifted_by = actor if getattr(actor, "pk", None) else None
        restriction.save(update_fields=["lift_notified_at", "lifted_at", "lift_reason", "lifted_by"])
        audit.record(
            "compliance.restriction.lifted",
            actor=actor,
            subject=restriction.subject,
            data={"restriction": restriction.pk, "request": str(restriction.request_id), "reason": reason[:300]},
        )
        if restriction.request is not None and restriction.request.kind == K.RESTRICTION:
            carry_out(restriction.request, actor=actor, action=A.LIFT_RESTRICTION)
        elif restriction.subject is not None:
            choices_changed(restriction.subject)
    return restriction


def choices_changed(user: Any) -> None:
    """A listener's own change (a consent toggle, a profile correction): tell every system after
    commit, without a request (sync_subject)."""
    user_id = str(user.pk)
    transaction.on_commit(lambda: sync_subject.delay(user_id), robust=True)


def profile_changed(user: Any, fields: list[str]) -> None:
    if set(fields) & set(PROFILE_FIELDS):
        user_id = str(user.pk)
        transaction.on_commit(lambda: sync_subject.delay(user_id, with_profile=True), robust=True)


@shared_task(bind=True, max_retries=5, acks_late=True)
def sync_subject(self: Any, user_id: str, with_profile: bool = False) -> dict[str, Any]:
    """Push the subject's current state to every propagating system (idempotent; retried)."""
    from compliance.fulfilment import subject_ref_for
    from identity.crypto import keystore

    user = get_user_model()._base_manager.filter(pk=user_id).first()
    if user is None or keystore.is_shredded(user.data_key_id):
        return {}  # erased: every system was told by the erasure itself
    subject = subject_ref_for(user)
    state = subject_state(user, with_profile=with_profile)
    results: dict[str, Any] = {}
    try:
        for system in propagating_systems():
            if getattr(system, "asynchronous", False):
                system.notify(subject=subject, state=state)
                results[system.name] = "sent"
            else:
                results[system.name] = system.apply(subject, state)
    except Exception as exc:
        logger.warning("choice propagation failed", extra={"error": type(exc).__name__})
        raise self.retry(exc=exc, countdown=min(600, 15 * 2**self.request.retries)) from exc
    audit.record(
        "compliance.choices.propagated",
        actor="system:propagation",
        subject=user,
        data={"systems": results, "profile": with_profile},
    )
    return results
