"""The consent ledger: every listener's choice per processing purpose, provable (REGULATIONS.md
"Build one consent ledger", G-03, G-04, G-06, G-07, G-21, C-19..C-24).

A choice is the newest :class:`~compliance.models.ConsentRecord` for a purpose; before any record,
the purpose's default applies, which is "no" for everything that rests on consent or is a sale or
sharing (G-03: silence and pre-ticked boxes are not consent). Records are never changed: a
withdrawal is a new record, so what was agreed before it stays provable (G-06).

Rules applied here, once, for the portal, the API, opt-out signals and requests alike:

- granting a consent needs the id of the user interaction that gave it (G-03);
- a sale or sharing of a listener under 13 needs a parent, and every sale/sharing opt-in is a
  two-step process: a request, then a separate confirmation (C-22, C-24);
- withdrawing is always one step, on the same surfaces as granting (G-06);
- withdrawing a sale/sharing purpose is a CCPA opt-out, and withdrawing the use of sensitive
  information is a request to limit: each files a request of that type, which carries the choice to
  every connected system and tells the listener when it is honoured (C-20);
- an opt-out preference signal (``Sec-GPC: 1``) opts a signed-in listener out of every sale and
  sharing, and its later absence never opts them back in (C-21).
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.db import transaction
from django.db.models import Q, Subquery
from django.utils import timezone

from compliance import audit
from compliance.deadlines import jurisdiction_for
from compliance.models import ConsentRecord, PrivacyRequest
from compliance.registry import LawfulBasis

NOTICE_VERSION = "2026-11"
NOTICE_TEMPLATE = Path(settings.BASE_DIR) / "templates" / "compliance" / "portal" / "notice.html"
OPT_IN_CONFIRMATION_SECONDS = 600


@dataclass(frozen=True)
class Purpose:
    name: str
    label: str
    description: str
    legal_basis: str
    default: bool = False
    sale_sharing: bool = False  # a "sale" or "sharing" under CCPA §1798.140: opt-out, two-step opt-in
    # For a sale or sharing, what the right to know must name (§1798.115(a), REGULATIONS.md C-09):
    # "sale" or "sharing", the categories of personal information (registry codes) and the
    # categories of third parties they go to.
    disclosure: str = ""
    categories: tuple[str, ...] = ()
    third_parties: tuple[str, ...] = ()
    sensitive: bool = False  # use of sensitive personal information (CCPA §1798.121): limit
    direct_marketing: bool = False  # an objection is absolute (GDPR Art. 21(2)-(3))

    @property
    def basis_label(self) -> str:
        return str(LawfulBasis(self.legal_basis).label)

    @property
    def rests_on_consent(self) -> bool:
        return self.legal_basis == LawfulBasis.CONSENT


PURPOSES: dict[str, Purpose] = {
    p.name: p
    for p in (
        Purpose(
            "personalised_recommendations",
            "Recommendations from your listening",
            "We suggest music from what you play. You can object at any time; we then stop unless we "
            "show compelling grounds, and keep your data only stored while we decide.",
            LawfulBasis.LEGITIMATE_INTERESTS,
            default=True,
        ),
        Purpose(
            "marketing_email",
            "News and offers by e-mail",
            "Occasional e-mails about new features and offers.",
            LawfulBasis.CONSENT,
            direct_marketing=True,
        ),
        Purpose(
            "push_new_releases",
            "New releases from artists you follow",
            "Push notifications on your devices when an artist you follow releases music.",
            LawfulBasis.CONSENT,
            direct_marketing=True,
        ),
        Purpose(
            "personalised_ads",
            "Ads based on your listening (sharing)",
            "Your listening is shared with advertising partners to choose the ads you hear. Under "
            "California law this is 'sharing'.",
            LawfulBasis.CONSENT,
            sale_sharing=True,
            disclosure="sharing",
            categories=("usage",),
            third_parties=("advertising partners (ad networks that choose the ads you hear)",),
        ),
        Purpose(
            "partner_insights",
            "Listening insights for labels and partners (sale)",
            "Aggregated insights that include your listening are sold to labels and partners. Under "
            "California law this is a 'sale'.",
            LawfulBasis.CONSENT,
            sale_sharing=True,
            disclosure="sale",
            categories=("usage",),
            third_parties=("record labels and music-industry partners (aggregated listening insights)",),
        ),
        Purpose(
            "sensitive_inferences",
            "Mood and wellbeing from your listening (sensitive)",
            "We infer your mood from what you play to tune playlists. This is sensitive personal "
            "information; you can limit its use at any time.",
            LawfulBasis.CONSENT,
            sensitive=True,
        ),
    )
}
SALE_SHARING = tuple(name for name, p in PURPOSES.items() if p.sale_sharing)
SENSITIVE = tuple(name for name, p in PURPOSES.items() if p.sensitive)
DIRECT_MARKETING = tuple(name for name, p in PURPOSES.items() if p.direct_marketing)


class ChoiceRefused(ValueError):
    """A choice the rules do not allow as asked; ``code`` is the API's problem code."""

    def __init__(self, code: str, message: str, *, status: int = 400, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.extra = extra or {}


@dataclass(frozen=True)
class Choice:
    purpose: str
    granted: bool
    record: ConsentRecord | None  # None: the default, nothing was ever chosen

    def as_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "granted": self.granted,
            "default": r is None,
            "notice_version": r.notice_version if r else None,
            "given_at": r.recorded_at.isoformat() if r else None,
            "given_by": r.actor if r else None,
            "surface": r.surface if r else None,
            "method": r.method if r else None,
        }


@cache
def notice_hash() -> str:
    """SHA-256 of the privacy notice the choices are given under (G-04: to what notice version)."""
    return hashlib.sha256(NOTICE_TEMPLATE.read_bytes()).hexdigest()


def current(user: Any) -> dict[str, Choice]:
    """The listener's choice per purpose: the newest record, else the purpose's default.

    One query, whatever the length of the ledger: per purpose, a subquery picks the id of the newest
    record (by ``recorded_at``, then id; one seek on the subject/purpose/recorded_at index), and only
    those rows are read. Plain SQL, so the same on SQLite and PostgreSQL.
    """
    newest = Q()
    for name in PURPOSES:
        ledger = ConsentRecord.objects.filter(subject=user, purpose=name).order_by("-recorded_at", "-id")
        newest |= Q(pk=Subquery(ledger.values("pk")[:1]))
    latest = {record.purpose: record for record in ConsentRecord.objects.filter(newest)}
    return {
        name: Choice(name, latest[name].granted if name in latest else p.default, latest.get(name))
        for name, p in PURPOSES.items()
    }


def sold_or_shared(user: Any, *, until: datetime.datetime) -> list[dict[str, Any]]:
    """What the right to know must say was sold or shared about the listener (CCPA §1798.115(a),
    REGULATIONS.md C-09): per sale or sharing purpose the listener ever allowed, "sale" or
    "sharing", the categories of personal information and of third parties, and the periods (from
    the ledger, up to ``until``) in which they allowed it. Nothing is sold or shared without an
    opt-in (G-03, C-22), so a purpose never allowed is not listed. One query."""
    periods: dict[str, list[dict[str, str | None]]] = {name: [] for name in SALE_SHARING}
    ledger = ConsentRecord.objects.filter(subject=user, purpose__in=SALE_SHARING, recorded_at__lte=until)
    for record in ledger.order_by("recorded_at", "id"):
        spans = periods[record.purpose]
        open_span = bool(spans) and spans[-1]["until"] is None
        if record.granted and not open_span:
            spans.append({"from": record.recorded_at.isoformat(), "until": None})
        elif not record.granted and open_span:
            spans[-1]["until"] = record.recorded_at.isoformat()
    return [
        {
            "purpose": name,
            "label": PURPOSES[name].label,
            "disclosure": PURPOSES[name].disclosure,
            "categories": list(PURPOSES[name].categories),
            "third_parties": list(PURPOSES[name].third_parties),
            "periods": spans,
        }
        for name, spans in periods.items()
        if spans
    ]


def opted_out_of_sale_sharing(user: Any) -> bool:
    choices = current(user)
    return not any(choices[name].granted for name in SALE_SHARING)


def last_opt_out(user: Any) -> PrivacyRequest | None:
    """The newest opt-out of sale/sharing, for the 'Opt-Out Request Honored' confirmation (C-20)."""
    return (
        PrivacyRequest.objects.filter(subject=user, kind=PrivacyRequest.Kind.OPT_OUT_SALE_SHARING)
        .order_by("-received_at")
        .first()
    )


REASK_AFTER = datetime.timedelta(days=365)


def may_ask_from(user: Any) -> dict[str, str]:
    """Per sale/sharing or sensitive purpose the listener opted out of or limited: the first day an
    app may ask them to opt in again (C-22: at least 12 months after the opt-out or limit). A
    listener may still opt in on their own before then; apps only must not ask."""
    withdrawn: dict[str, datetime.datetime] = {}
    asked = [*SALE_SHARING, *SENSITIVE]
    for record in ConsentRecord.objects.filter(subject=user, purpose__in=asked, granted=False):
        withdrawn[record.purpose] = max(record.recorded_at, withdrawn.get(record.purpose, record.recorded_at))
    requests = PrivacyRequest.objects.filter(
        subject=user, kind__in=(PrivacyRequest.Kind.OPT_OUT_SALE_SHARING, PrivacyRequest.Kind.LIMIT_SENSITIVE)
    ).exclude(status__in=(PrivacyRequest.Status.DENIED, PrivacyRequest.Status.CANCELLED))
    for request in requests:
        names = SALE_SHARING if request.kind == PrivacyRequest.Kind.OPT_OUT_SALE_SHARING else SENSITIVE
        for name in names:
            withdrawn[name] = max(request.received_at, withdrawn.get(name, request.received_at))
    return {name: (at + REASK_AFTER).date().isoformat() for name, at in sorted(withdrawn.items())}


def _age(user: Any, today: datetime.date) -> int | None:
    born = getattr(user, "date_of_birth", None)
    if not isinstance(born, datetime.date):
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _confirmation_key(user: Any, purpose: str) -> str:
    return f"consent-opt-in:{user.pk}:{purpose}"


def record_choices(
    user: Any,
    choices: dict[str, bool],
    *,
    surface: str,
    interaction_id: str = "",
    confirmation: str = "",
    actor: str = ConsentRecord.Actor.SELF,
    actor_ref: Any = None,
    method: str = "",
    ip: str | None = None,
    channel: str = "",
) -> dict[str, Any]:
    """Apply a listener's choices. Returns ``{"recorded": [...], "requests": [...], "pending": {...}}``:
    records written, opt-out/limit requests filed, and sale/sharing opt-ins waiting for their
    confirmation (C-22: the second step), each with a confirmation token to send back.

    Unchanged choices write nothing. Nothing is written when any choice is refused.
    """
    unknown = sorted(set(choices) - set(PURPOSES))
    if unknown:
        raise ChoiceRefused("validation_error", f"unknown purpose(s): {', '.join(unknown)}")
    if not all(isinstance(v, bool) for v in choices.values()):
        raise ChoiceRefused("validation_error", "each purpose takes true or false")
    now = timezone.now()
    before = current(user)
    changes = {name: granted for name, granted in choices.items() if before[name].granted != granted}
    grants = [name for name, granted in changes.items() if granted]
    if grants and not interaction_id.strip():
        raise ChoiceRefused(
            "interaction_required",
            "Agreeing needs the id of the screen interaction where the listener agreed (interaction_id): "
            "consent is a clear affirmative act, never a default.",
        )
    pending: dict[str, str] = {}
    sale_grants = [name for name in grants if PURPOSES[name].sale_sharing]
    if sale_grants:
        age = _age(user, now.date())
        if age is not None and age < 13 and actor != ConsentRecord.Actor.PARENT:
            raise ChoiceRefused(
                "parental_authorisation_required",
                "A sale or sharing of a child's data needs a parent's or guardian's authorisation.",
                status=403,
            )
        fresh = secrets.token_urlsafe(16)
        for name in sale_grants:
            token = shared_cache.get(_confirmation_key(user, name))
            if not (confirmation and token and secrets.compare_digest(str(token), confirmation)):
                pending[name] = fresh
        if pending:
            for name, token in pending.items():
                shared_cache.set(_confirmation_key(user, name), token, OPT_IN_CONFIRMATION_SECONDS)
            # The first step records nothing; the listener confirms separately (C-22).
            for name in pending:
                changes.pop(name)
    for name in sale_grants:
        if name not in pending:
            shared_cache.delete(_confirmation_key(user, name))
            forget_gpc_marker(user)  # a browser still sending the signal opts them out again (C-21)

    jurisdiction = jurisdiction_for(str(user.country or ""), str(user.region or "")).code
    recorded: list[ConsentRecord] = []
    filed: list[PrivacyRequest] = []
    with transaction.atomic():
        for name, granted in changes.items():
            recorded.append(
                write_record(
                    user,
                    name,
                    granted,
                    actor=actor,
                    actor_ref=actor_ref.pk if hasattr(actor_ref, "pk") else actor_ref or user.pk,
                    surface=surface,
                    method=method or ("grant" if granted else "withdraw"),
                    interaction_id=interaction_id,
                    jurisdiction=jurisdiction,
                    at=now,
                )
            )
        if recorded:
            audit.record(
                "compliance.consent.recorded",
                actor=actor_ref if hasattr(actor_ref, "pk") else (user if actor == ConsentRecord.Actor.SELF else actor),
                subject=user,
                data={
                    "records": [r.pk for r in recorded],
                    "choices": {r.purpose: r.granted for r in recorded},
                    "surface": surface,
                },
                ip=ip,
            )
            filed = _file_opt_outs(user, recorded, channel=channel or _channel(surface), ip=ip)
            from compliance import propagation

            propagation.choices_changed(user)
    return {"recorded": recorded, "requests": filed, "pending": pending}


def write_record(
    user: Any,
    purpose: str,
    granted: bool,
    *,
    actor: str,
    actor_ref: Any,
    surface: str,
    method: str,
    jurisdiction: str,
    at: datetime.datetime,
    interaction_id: str = "",
    request: PrivacyRequest | None = None,
) -> ConsentRecord:
    """Append one entry to the ledger, with everything G-04 needs to prove it."""
    return ConsentRecord.objects.create(
        subject=user,
        subject_ref=str(user.pk),
        purpose=purpose,
        granted=granted,
        actor=actor,
        actor_ref=str(actor_ref),
        legal_basis=PURPOSES[purpose].legal_basis,
        notice_version=NOTICE_VERSION,
        notice_hash=notice_hash(),
        surface=surface,
        method=method,
        interaction_id=interaction_id.strip()[:64],
        jurisdiction=jurisdiction,
        request=request,
        recorded_at=at,
    )


def _channel(surface: str) -> str:
    return PrivacyRequest.Channel.API if surface == ConsentRecord.Surface.API else PrivacyRequest.Channel.PORTAL


def _file_opt_outs(user: Any, recorded: list[ConsentRecord], *, channel: str, ip: str | None) -> list[PrivacyRequest]:
    """A withdrawn sale/sharing or sensitive purpose is a CCPA opt-out or limit request: tracked to
    its 15-business-day deadline, carried to every system, and confirmed to the listener (C-20)."""
    from compliance.dsr import services

    withdrawn = {r.purpose for r in recorded if not r.granted}
    kinds = []
    if withdrawn & set(SALE_SHARING):
        kinds.append(PrivacyRequest.Kind.OPT_OUT_SALE_SHARING)
    if withdrawn & set(SENSITIVE):
        kinds.append(PrivacyRequest.Kind.LIMIT_SENSITIVE)
    filed = []
    for kind in kinds:
        submission = services.submit_request(
            subject=user,
            kind=kind,
            channel=channel,
            actor=user,
            verification="not_required",
            ip=ip,
            purposes=sorted(
                withdrawn & set(SALE_SHARING if kind == PrivacyRequest.Kind.OPT_OUT_SALE_SHARING else SENSITIVE)
            ),
            choices_recorded=True,
        )
        filed.append(submission.request)
    for record in recorded:
        if record.request_id is None and filed:
            ConsentRecord.objects.filter(pk=record.pk).update(request=filed[0])
    return filed


def opt_out_of_sale_sharing(
    user: Any,
    *,
    surface: str,
    channel: str = "",
    actor: str = ConsentRecord.Actor.SELF,
    method: str = "",
    ip: str | None = None,
) -> bool:
    """Opt out of every sale and sharing: withdraw what was granted (which files the opt-out
    request), or, when nothing was ever granted, still file the request once so the opt-out is
    recorded, carried downstream and confirmed to the listener (C-20). True when something was done."""
    granted = [name for name, c in current(user).items() if name in SALE_SHARING and c.granted]
    if granted:
        record_choices(
            user, dict.fromkeys(granted, False), surface=surface, channel=channel, actor=actor, method=method, ip=ip
        )
        return True
    if PrivacyRequest.objects.filter(subject=user, kind=PrivacyRequest.Kind.OPT_OUT_SALE_SHARING).exists():
        return False
    from compliance.dsr import services

    with transaction.atomic():
        services.submit_request(
            subject=user,
            kind=PrivacyRequest.Kind.OPT_OUT_SALE_SHARING,
            channel=channel or _channel(surface),
            actor=user,
            verification="not_required",
            ip=ip,
            purposes=list(SALE_SHARING),
            choices_recorded=True,
        )
    return True


def honour_gpc(user: Any, *, surface: str, ip: str | None = None) -> bool:
    """``Sec-GPC: 1`` from a signed-in listener: opt out of every sale and sharing (C-21). True when
    something changed. The absence of the signal later never opts them back in."""
    marker = f"gpc-honoured:{user.pk}"
    if shared_cache.get(marker):
        return False
    changed = opt_out_of_sale_sharing(
        user,
        surface=ConsentRecord.Surface.GPC,
        channel=_channel(surface),
        actor=ConsentRecord.Actor.SIGNAL,
        method=f"Sec-GPC header ({surface})",
        ip=ip,
    )
    shared_cache.set(marker, 1, 24 * 3600)
    return changed


def forget_gpc_marker(user: Any) -> None:
    shared_cache.delete(f"gpc-honoured:{user.pk}")
