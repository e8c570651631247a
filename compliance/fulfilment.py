"""Carrying a request out: one task per data system, then the finish (the export ZIP, or the end of
an erasure: crypto-shredding, read-back, evidence).

Tasks take ids, are enqueued on commit, run eagerly without REDIS_URL and on Celery workers with it,
retry with back-off, and are idempotent: a run that is done is never redone, a run killed part-way
starts again from the beginning of its system (exports write parts atomically; erasures are
conditional deletes and updates). The request completes only when every system has reported.
"""

from __future__ import annotations

import datetime
import logging
import re
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance import audit, consents, exports, notices, suppression
from compliance.dsr.services import RequestRefused
from compliance.models import AuditEvent, ExportFile, PrivacyRequest, SystemRun
from compliance.registry import Category
from compliance.systems.base import DataSystem, SubjectRef
from compliance.systems.internal import InternalSystem
from identity.crypto import keystore
from identity.crypto.envelope import Erased
from identity.hooks import subject_erased
from identity.logging import redact

logger = logging.getLogger(__name__)

S = PrivacyRequest.Status
EXPORT_KINDS = frozenset({"access", "access_categories", "portability"})
PROPAGATION_ACTIONS = frozenset(
    {SystemRun.Action.RECTIFY, SystemRun.Action.RESTRICT, SystemRun.Action.LIFT_RESTRICTION, SystemRun.Action.OPT_OUT}
)
MAX_ATTEMPTS = 5


def systems() -> list[DataSystem]:
    """Every system a request fans out to: this service's database and the connected ones."""
    found: list[DataSystem] = [InternalSystem()]
    if getattr(settings, "CONNECTED_DATASETS", None):
        from compliance.systems.sql import load_systems

        found.extend(load_systems())
    if getattr(settings, "CONNECTED_SERVICES", None):
        from compliance.systems.webhooks import load_services

        found.extend(load_services())
    return found


def system_named(name: str) -> DataSystem:
    for system in systems():
        if system.name == name:
            return system
    raise LookupError(f"no data system named {name!r} is configured")


def subject_of(request: PrivacyRequest) -> SubjectRef:
    user = request.subject
    if user is None:
        raise RequestRefused("invalid_state", "the request has no subject account")
    return subject_ref_for(user)


def subject_ref_for(user: Any) -> SubjectRef:
    email = user.email if not isinstance(user.email, Erased) else None
    return SubjectRef(
        user_id=str(user.pk),
        email_index=user.email_index,
        data_key_id=user.data_key_id,
        email=str(email) if email else None,
    )


@transaction.atomic
def start_fulfilment(*, request: PrivacyRequest, actor: Any) -> list[SystemRun]:
    """Move a verified request into progress and fan it out, one run per system."""
    request = PrivacyRequest.objects.select_for_update().get(pk=request.pk)
    if request.kind not in EXPORT_KINDS | {"erasure"}:
        raise RequestRefused("invalid_state", "only exports and erasures are carried out across systems")
    if request.status not in (S.VERIFIED, S.AWAITING_REVIEW, S.IN_PROGRESS):
        raise RequestRefused("invalid_state", f"a request that is {request.status} cannot be carried out")
    if request.kind == "erasure" and request.execute_after and timezone.now() < request.execute_after:
        raise RequestRefused("invalid_state", "the erasure is still inside its cancellation window")
    action = SystemRun.Action.ERASE if request.kind == "erasure" else SystemRun.Action.EXPORT
    return fan_out(request, systems(), action=action, actor=actor)


def fan_out(
    request: PrivacyRequest, targets: list[DataSystem], *, action: str, actor: Any, robust: bool = False
) -> list[SystemRun]:
    """One run per system for ``action`` (existing ones kept: idempotent), the request in progress
    (unless the action completes nothing, like lifting a restriction), the runs enqueued on commit.
    ``robust``: a failure to enqueue (or, with eager tasks, a failing run) is logged, not raised, so
    that the listener's own action (an opt-out, a choice) never fails because a system is down."""
    runs = [SystemRun.objects.get_or_create(request=request, system=s.name, action=action)[0] for s in targets]
    if action != SystemRun.Action.LIFT_RESTRICTION and request.status != S.IN_PROGRESS:
        request.status = S.IN_PROGRESS
        request.save(update_fields=["status"])
        audit.record(
            "compliance.dsr.started",
            actor=actor,
            subject=request.subject,
            data={"request": str(request.pk), "systems": [r.system for r in runs], "action": action},
        )
    pending = [run.pk for run in runs if run.status != SystemRun.Status.DONE]
    if pending:
        transaction.on_commit(lambda: [run_system.delay(pk) for pk in pending], robust=robust)
    elif runs:  # every system is done, yet the request is not: its last step failed; try it again
        transaction.on_commit(lambda: finish_request.delay(str(request.pk)), robust=robust)
    return runs


def _claim(run_id: int) -> SystemRun | None:
    with transaction.atomic():
        run = (
            SystemRun.objects.select_for_update(of=("self",))
            .select_related("request", "request__subject")
            .get(pk=run_id)
        )
        if run.status in (SystemRun.Status.DONE, SystemRun.Status.GAVE_UP):
            return None
        run.status, run.attempts, run.started_at = SystemRun.Status.RUNNING, run.attempts + 1, timezone.now()
        run.save(update_fields=["status", "attempts", "started_at"])
        return run


def execute(run: SystemRun) -> bool:
    """Do a run's work; False when it now waits for an external service's callback."""
    system = system_named(run.system)
    subject = subject_of(run.request)
    if run.action in PROPAGATION_ACTIONS:
        from compliance.propagation import subject_state

        state = subject_state(run.request.subject, with_profile=run.action == SystemRun.Action.RECTIFY)
        if getattr(system, "asynchronous", False):
            system.dispatch(  # type: ignore[attr-defined]
                run_id=run.pk, request_id=str(run.request_id), action=run.action, subject=subject, state=state
            )
            return False
        run.counts = system.apply(subject, state)  # type: ignore[attr-defined]
        return True
    if getattr(system, "asynchronous", False):
        system.dispatch(run_id=run.pk, request_id=str(run.request_id), action=run.action, subject=subject)  # type: ignore[attr-defined]
        return False
    if run.action == SystemRun.Action.EXPORT:
        run.counts = _exported(run.request, system.name, subject.data_key_id, exports.records_of(system, subject))
    else:
        result = system.erase(subject)
        run.counts = result.counts
        run.kept = [
            {"source": k.source, "count": k.count, "exception": k.exception, "minimised_to": list(k.minimised_to)}
            for k in result.kept
        ]
    return True


def _exported(request: PrivacyRequest, system_name: str, key_id: Any, records: Any) -> dict[str, int]:
    """A system's records for an export, as records per category: written to the request's parts, or
    for a request for the categories only only counted, with no copy of the records (C-12)."""
    if request.kind == PrivacyRequest.Kind.ACCESS_CATEGORIES:
        return exports.count_records(records)
    return exports.write_parts(request.pk, system_name, key_id, records)


def failure_message(exc: BaseException) -> str:
    """What a failed task keeps on its record: the class and a redacted message, never values."""
    return redact(f"{type(exc).__name__}: {exc}")[:300]


def backoff(attempt: int) -> int:
    """Seconds before the next try after ``attempt`` failed tries: 30, 60, 120, ... up to 10 minutes."""
    return min(600, 15 * 2**attempt)


@shared_task(bind=True, max_retries=MAX_ATTEMPTS, acks_late=True, reject_on_worker_lost=True)
def run_system(self: Any, run_id: int) -> str:
    run = _claim(run_id)
    if run is None:
        return "already done"
    try:
        finished = execute(run)
    except Exception as exc:
        message = failure_message(exc)
        gave_up = run.attempts >= MAX_ATTEMPTS
        SystemRun.objects.filter(pk=run.pk).update(
            status=SystemRun.Status.GAVE_UP if gave_up else SystemRun.Status.FAILED, last_error=message
        )
        logger.warning("system run failed", extra={"run": run.pk, "system": run.system, "error": type(exc).__name__})
        if gave_up:
            return "gave up"
        raise self.retry(exc=exc, countdown=backoff(run.attempts)) from exc
    if not finished:
        SystemRun.objects.filter(pk=run.pk).update(status=SystemRun.Status.WAITING, last_error="")
        return "waiting for the service"
    SystemRun.objects.filter(pk=run.pk).update(
        status=SystemRun.Status.DONE, finished_at=timezone.now(), counts=run.counts, kept=run.kept, last_error=""
    )
    finish_request.apply_async(args=[str(run.request_id)], **_same_queue(self))
    return "done"


def _same_queue(task: Any) -> dict[str, str]:
    """The queue the running task was taken from, for the task it queues next: a deployment that
    gives privacy work a queue of its own keeps all of it there (and so does the worker test)."""
    routing_key = (getattr(task.request, "delivery_info", None) or {}).get("routing_key")
    return {"queue": routing_key} if routing_key else {}


@shared_task(bind=True, max_retries=MAX_ATTEMPTS, acks_late=True, reject_on_worker_lost=True)
def finish_request(self: Any, request_id: str) -> str:
    """The request's last step once every system has reported: the export's ZIP, or the end of an
    erasure (``finish_if_complete``). A failure (a part missing, a full disk, the database gone) is
    recorded on the request, redacted, and retried with back-off; after the last attempt the request
    says why it stands still, and an officer's "carry out" tries the last step again (``fan_out``).
    Idempotent: a request already finished, or still waiting for a system, is left as it is."""
    try:
        freeze_erasure(request_id)
        finished = finish_if_complete(request_id)
    except Exception as exc:
        PrivacyRequest.objects.filter(pk=request_id).update(finish_error=failure_message(exc))
        logger.warning("request finish failed", extra={"request": str(request_id), "error": type(exc).__name__})
        if self.request.is_eager:  # no worker to retry later (make run): the request says why; carry out again
            return "failed; recorded on the request"
        if self.request.retries >= MAX_ATTEMPTS:
            return "gave up"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries + 1)) from exc
    if finished:
        PrivacyRequest.objects.filter(pk=request_id).exclude(finish_error="").update(finish_error="")
    return "finished" if finished else "not finished: a system has not reported, or the request is not in progress"


def finish_if_complete(request_id: Any) -> bool:
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update(of=("self",)).select_related("subject").get(pk=request_id)
        runs = [r for r in request.runs.all() if r.action == completing_action(request.kind)]
        propagating = request.kind not in EXPORT_KINDS | {"erasure"}
        if request.status != S.IN_PROGRESS or not (runs or propagating):
            return False
        done = sum(r.status == SystemRun.Status.DONE for r in runs)
        if done < len(runs):
            PrivacyRequest.objects.filter(pk=request.pk).update(progress=int(90 * done / len(runs)))
            return False
        if request.kind == "erasure":
            _finish_erasure(request, runs)
        elif propagating:
            from compliance.propagation import finish

            finish(request, runs)
        else:
            _finish_export(request, runs)
        return True


def completing_action(kind: str) -> str:
    """The runs whose end completes a request of ``kind`` (a lifted restriction's runs complete nothing)."""
    if kind == "erasure":
        return SystemRun.Action.ERASE
    if kind in EXPORT_KINDS:
        return SystemRun.Action.EXPORT
    from compliance.propagation import ACTION_FOR

    return ACTION_FOR[PrivacyRequest.Kind(kind)]


def _finish_export(request: PrivacyRequest, runs: list[SystemRun]) -> None:
    subject = subject_of(request)
    expected: dict[str, int] = {}
    for run in runs:
        for category, count in (run.counts or {}).items():
            expected[category] = expected.get(category, 0) + int(count)
    path, size = exports.assemble(
        request.pk,
        subject.data_key_id,
        [s.describe() for s in systems()],
        expected,
        # CCPA's request for the categories only: no specific pieces (CCR §7024(a)-(b), REGULATIONS.md C-12).
        specific_pieces=request.kind != PrivacyRequest.Kind.ACCESS_CATEGORIES,
        sold_or_shared=consents.sold_or_shared(request.subject, until=timezone.now()),  # C-09
    )
    ExportFile.objects.update_or_create(
        request=request,
        defaults={
            "path": str(path),
            "size": size,
            "expires_at": timezone.now() + datetime.timedelta(days=settings.EXPORT_LINK_DAYS),
        },
    )
    request.status, request.progress, request.completed_at = S.COMPLETED, 100, timezone.now()
    request.evidence = evidence_for(request, runs, extra={"export_bytes": size})
    request.save(update_fields=["status", "progress", "completed_at", "evidence"])
    audit.record(
        "compliance.dsr.export_ready",
        actor="system:fulfilment",
        subject=request.subject,
        data={"request": str(request.pk), "bytes": size},
    )
    notices.send(request, "completion")


def freeze_erasure(request_id: Any) -> None:
    """The first half of an erasure's last step, committed on its own before any key is destroyed:
    the completion notice (while an address still exists), the suppression entry, and the evidence
    pack, frozen (it reads audit payloads encrypted under the key about to go). With the key store in
    a database of its own, its shredding commits apart from the rest: should a later step fail (a
    connected database down for the read-back), the repeat (a retry, an officer's carry out) finds the
    evidence whole and sends nothing twice. Does nothing unless every erasure run is done."""
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update(of=("self",)).select_related("subject").get(pk=request_id)
        if request.kind != PrivacyRequest.Kind.ERASURE or request.status != S.IN_PROGRESS:
            return
        if request.evidence.get("frozen_at"):
            return
        runs = [r for r in request.runs.all() if r.action == SystemRun.Action.ERASE]
        if not runs or any(r.status != SystemRun.Status.DONE for r in runs):
            return
        request.evidence = _erasure_first_half(request, runs)
        request.save(update_fields=["evidence"])


def _erasure_first_half(request: PrivacyRequest, runs: list[SystemRun]) -> dict[str, Any]:
    subject = subject_of(request)
    notices.deliver(request.pk, "completion")
    if subject.email:
        suppression.add(subject.email)
    return {**evidence_for(request, runs), "frozen_at": timezone.now().isoformat()}


def _finish_erasure(request: PrivacyRequest, runs: list[SystemRun]) -> None:
    user = request.subject
    subject = subject_of(request)
    # Tell the subject while an address still exists, then end the account and destroy the key:
    # done first and committed by freeze_erasure, or here when the last step is called directly.
    frozen = request.evidence.get("frozen_at")
    evidence = dict(request.evidence) if frozen else _erasure_first_half(request, runs)
    subject_erased(user)
    keystore.shred(subject.data_key_id)
    read_back = {}
    for system in systems():
        found = system.read_back(subject)
        read_back[system.name] = found
        SystemRun.objects.filter(request=request, system=system.name).update(read_back=found)
    clean = all(count == 0 for found in read_back.values() for count in found.values())
    evidence["read_back"] = read_back
    evidence["read_back_clean"] = clean
    evidence["key_destroyed_at"] = timezone.now().isoformat()
    request.evidence = evidence
    request.progress = 100 if clean else 95
    request.status = S.COMPLETED if clean else S.IN_PROGRESS
    request.completed_at = timezone.now() if clean else None
    request.save(update_fields=["evidence", "progress", "status", "completed_at"])
    # The subject's key is gone: this event names the request only, and is readable by everyone.
    audit.record(
        "compliance.dsr.erasure_completed" if clean else "compliance.dsr.erasure_readback_failed",
        actor="system:fulfilment",
        data={"request": str(request.pk), "read_back_clean": clean, "counts": {r.system: r.counts for r in runs}},
    )


def evidence_for(request: PrivacyRequest, runs: list[SystemRun], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The evidence pack (issue #4): verification, decisions with actor and reason, each system's
    result and counts, notices, and the audit-chain hashes that cover it. Ids and counts only."""
    from compliance.audit import read_payload

    decisions = []
    for event in AuditEvent.objects.filter(subject_ref=request.subject_ref, action__startswith="compliance.dsr."):
        payload = read_payload(event)
        data = payload.get("data", {}) if isinstance(payload, dict) else {}
        if data.get("request") != str(request.pk):
            continue
        decisions.append(
            {
                "entry": event.pk,
                "at": event.occurred_at.isoformat(),
                "action": event.action,
                "actor_type": event.actor_type,
                "actor": event.actor_ref,
                "entry_hash": event.entry_hash,
                "details": {k: v for k, v in data.items() if k != "request"},
            }
        )
    return {
        "request": str(request.pk),
        "kind": request.kind,
        "jurisdiction": request.jurisdiction,
        "received_at": request.received_at.isoformat(),
        "deadlines": request.deadlines,
        "due_on": request.due_on.isoformat(),
        "verification": {
            "method": request.verification_method,
            "at": request.verified_at.isoformat() if request.verified_at else None,
        },
        "decisions": decisions,
        "systems": [
            {
                "system": r.system,
                "action": r.action,
                "status": r.status,
                "attempts": r.attempts,
                "counts": r.counts,
                "kept": r.kept,
            }
            for r in runs
        ],
        "chain": {
            "first_entry": decisions[0]["entry"] if decisions else None,
            "last_entry_hash": decisions[-1]["entry_hash"] if decisions else None,
        },
        **(extra or {}),
    }


class CallbackRefused(ValueError):
    pass


_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _callback_records(records: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """An export callback's records, checked before anything is written: each names one of the
    registry's categories (the export's files and the count check use them as they are), a plain
    source name, and an object of values."""
    if not isinstance(records, list):
        raise CallbackRefused("records must be a list")
    known = {c.value for c in Category}
    checked = []
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("values", {}), dict):
            raise CallbackRefused("each record must be an object with an object of values")
        category, source = record.get("category"), record.get("source", "records")
        if category not in known:
            shown = str(category)[:40]
            raise CallbackRefused(f"unknown category {shown!r}: use one of {', '.join(sorted(known))}")
        if not isinstance(source, str) or not _SOURCE_NAME.match(source):
            raise CallbackRefused("a record's source must be 1-64 letters, digits, '.', '_' or '-'")
        checked.append((category, source, dict(record.get("values", {}))))
    return checked


def complete_from_callback(*, system_name: str, data: dict[str, Any]) -> SystemRun:
    """Finish a run with what an external service reported (compliance.systems.webhooks). Idempotent."""
    from compliance.systems.base import Record

    with transaction.atomic():
        run = (
            SystemRun.objects.select_for_update(of=("self",))
            .select_related("request", "request__subject")
            .filter(pk=data["run"], system=system_name)
            .first()
        )
        if run is None:
            raise CallbackRefused("no such run for this service")
        if run.status == SystemRun.Status.DONE:
            return run
        if run.status != SystemRun.Status.WAITING:
            raise CallbackRefused(f"the run is {run.status}, not waiting for a callback")
        if data["status"] == "failed":
            run.status = SystemRun.Status.FAILED
            run.last_error = redact(str(data.get("error", "the service reported a failure")))[:300]
            run.save(update_fields=["status", "last_error"])
            transaction.on_commit(lambda: run_system.apply_async(args=[run.pk], countdown=60))
            return run
        if run.action == SystemRun.Action.EXPORT:
            subject = subject_of(run.request)
            records = [
                Record(category=category, source=f"{system_name}.{source}", values=values)
                for category, source, values in _callback_records(data.get("records", []))
            ]
            run.counts = _exported(run.request, system_name, subject.data_key_id, iter(records))
        else:
            run.counts = {str(k): int(v) for k, v in dict(data.get("counts", {})).items()}
            run.kept = list(data.get("kept", []))
            run.read_back = {str(k): int(v) for k, v in dict(data.get("read_back", {})).items()}
        run.status, run.finished_at, run.last_error = SystemRun.Status.DONE, timezone.now(), ""
        run.save(update_fields=["status", "finished_at", "last_error", "counts", "kept", "read_back"])
    finish_request.delay(str(run.request_id))
    return run
