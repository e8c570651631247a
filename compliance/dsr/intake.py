"""Requests from people who do not sign in, and from authorised agents (issue #4; REGULATIONS.md 4.8).

**Without an account (C-27).** The person gives an e-mail address, the request type and the data
points the type's verification level needs; a one-time code goes to the address. Only once the code
comes back are the data points compared with what the matched account already holds (C-25: existing
records only). Every answer on screen is the same whether or not an account holds the address, and
so is the work behind it: the submit step does one account lookup, one key statement (the account's
key read, or a key of the intake's own made), one row and one mail; a wrong code, the fifth that
closes the intake, and a new code cost the same either way; a right code only spends the code, and
the matching and filing run in a task (``match_public_request``). What happened is told by e-mail,
to the mailbox that proved it is the person's:

- filed: the usual acknowledgement (``compliance.notices``);
- no account holds the address: an e-mail saying so; the intake keeps no address;
- the data points did not match: an e-mail saying the details could not be verified, never which.

**Verification levels** (``VerificationLevel``, C-27) gate each type:

- ``none``: opt-out of sale/sharing, limit sensitive data. C-20 forbids verification for these; the
  code is still sent, not to verify identity but to find the records to act on and to answer the
  person (the 2026 confirmation duty). Sec-GPC needs no code at all (compliance.middleware).
- ``reasonable`` (2 points: the code and the date of birth): access to categories, rectification,
  restriction, objection.
- ``reasonably_high`` (3 points: the code, the date of birth, the country, and a declaration under
  penalty of perjury kept as a ``SignedDeclaration``): access, portability, erasure.

**Accounts with a second factor.** For access, portability and erasure the strongest verification
available for an account that has a second factor is that factor (the portal and the API ask for
it). A request for those types through this channel is therefore filed but waits for an officer
(status ``verifying``) instead of being verified by the C-27 checks alone: someone who can sign in is
pointed to the quicker route, someone who lost their factor is still served, and mailbox-plus-birthday
fraud against an account that chose stronger protection is stopped (CCR §7060(f)).

**Authorised agents (C-28).** The agent gives their name, address and organisation, the consumer's
address, the request and a signed permission (or a power of attorney under Probate Code
§§4121-4130). The agent's own address is confirmed by code. Then:

- no account holds the consumer's address: nothing is kept (document deleted, intake key shredded);
- a power of attorney: the request is filed at once and waits for an officer to check the document;
- an opt-out: filed at once on the signed permission (CCR §7026(d); no consumer verification, C-20);
- otherwise the consumer gets a signed, expiring link (its token stored as an HMAC) to confirm or
  refuse, confirming with the data points of the type's level; confirming files the request (channel
  ``agent``), refusing closes it and records that.

The agent hears the same thing in every case.

Every change writes an audit event whose data carries ids only. Refusals change nothing but the
counters that throttle them.
"""

from __future__ import annotations

import datetime
import hmac
import io
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.crypto import salted_hmac

from compliance import audit
from compliance.dsr.services import STRONG_VERIFICATION, submit_request
from compliance.dsr.states import check
from compliance.exports import EncryptedWriter, read_encrypted
from compliance.models import (
    AgentAuthorisation,
    PrivacyRequest,
    RequestIntake,
    SignedDeclaration,
    VerificationLevel,
)
from identity.crypto import keystore
from identity.crypto.blind import blind_index, email_index, normalise_email

K = PrivacyRequest.Kind
L = VerificationLevel
I = RequestIntake.Status  # noqa: E741

LEVEL_FOR_KIND: dict[str, VerificationLevel] = {
    K.OPT_OUT_SALE_SHARING: L.NONE,
    K.LIMIT_SENSITIVE: L.NONE,
    K.ACCESS_CATEGORIES: L.REASONABLE,
    K.RECTIFICATION: L.REASONABLE,
    K.RESTRICTION: L.REASONABLE,
    K.OBJECTION: L.REASONABLE,
    K.ACCESS: L.REASONABLY_HIGH,
    K.PORTABILITY: L.REASONABLY_HIGH,
    K.ERASURE: L.REASONABLY_HIGH,
}
# The data points each level matches, the e-mailed code counting as the first (C-27).
DATA_POINTS: dict[str, tuple[str, ...]] = {
    L.NONE: ("email",),
    L.REASONABLE: ("email", "date_of_birth"),
    L.REASONABLY_HIGH: ("email", "date_of_birth", "country"),
}
METHOD: dict[str, str] = {
    L.NONE: "none:email",
    L.REASONABLE: "reasonable:email+dob",
    L.REASONABLY_HIGH: "reasonably_high:email+dob+country+decl",
}

DECLARATION_VERSION = "2026-01"
DECLARATION_TEXT = (
    "I declare under penalty of perjury under the laws of the State of California that I am the person "
    "whose personal information this request concerns, and that the information I have given is true and correct."
)

CODE_DIGITS = 8
CODE_MINUTES = 15
MAX_CODE_ATTEMPTS = 5
MAX_CODES = 3
RESEND_AFTER_SECONDS = 60
INTAKE_HOURS = 24
CONFIRM_DAYS = 7
MAX_ANSWER_ATTEMPTS = 5
PER_ADDRESS_PER_HOUR = 3
PER_IP_PER_HOUR = 20
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
DOCUMENT_TYPES = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}
LINK_SALT = "compliance.agent-confirm"


class IntakeRefused(ValueError):
    """A refused step; ``code`` is stable, ``errors`` names fields, nothing in it is personal data."""

    def __init__(
        self, code: str, message: str, *, errors: dict[str, str] | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.errors = errors or {}
        self.retry_after = retry_after


@dataclass
class Claims:
    """Data points given to be matched against the account (C-25, C-27)."""

    date_of_birth: datetime.date | None = None
    country: str = ""
    declaration_name: str = ""
    declaration_accepted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "date_of_birth": self.date_of_birth.isoformat() if self.date_of_birth else "",
            "country": self.country.strip().upper(),
        }


@dataclass
class Document:
    content: bytes
    size: int
    media_type: str = field(default="")


def level_for(kind: str) -> VerificationLevel:
    return LEVEL_FOR_KIND[kind]


def check_kind(kind: str) -> VerificationLevel:
    if kind not in LEVEL_FOR_KIND:
        raise IntakeRefused("validation_error", "Unknown request type.", errors={"type": "Unknown request type."})
    return level_for(kind)


def claim_errors(level: str, claims: Claims) -> dict[str, str]:
    """What the level needs and is missing, per field (an empty dict: complete)."""
    errors: dict[str, str] = {}
    if level in (L.REASONABLE, L.REASONABLY_HIGH) and claims.date_of_birth is None:
        errors["date_of_birth"] = "This request type needs your date of birth, to match the records we hold."
    if level == L.REASONABLY_HIGH:
        country = claims.country.strip()
        if not country:
            errors["country"] = "This request type needs your country, to match the records we hold."
        elif len(country) != 2 or not country.isalpha():
            errors["country"] = "Give the country as its two-letter code (for example US or DE)."
        if not claims.declaration_accepted:
            errors["declaration_accepted"] = "This request type needs the signed declaration."
        if not claims.declaration_name.strip():
            errors["declaration_name"] = "Type your full name as your signature."
        elif len(claims.declaration_name.strip()) > 200:
            errors["declaration_name"] = "At most 200 characters."
    return errors


def sniff_document(content: bytes) -> str:
    """The document's type from its first bytes, not its name: PDF, PNG or JPEG, else ""."""
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return ""


def check_document(document: Document) -> str:
    if document.size > MAX_DOCUMENT_BYTES:
        raise IntakeRefused(
            "validation_error",
            "The document is too large.",
            errors={"document": f"The document is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB."},
        )
    if document.size == 0:
        raise IntakeRefused("validation_error", "The document is empty.", errors={"document": "The file is empty."})
    media_type = sniff_document(document.content)
    if not media_type:
        raise IntakeRefused(
            "validation_error",
            "The document must be a PDF, PNG or JPEG file.",
            errors={"document": "The file is not a PDF, PNG or JPEG (checked from its content, not its name)."},
        )
    return media_type


class BoundedMemoryUploadHandler(FileUploadHandler):
    """Keeps an upload in memory only, so the permission document never lands in a clear temporary
    file on disk, and keeps at most MAX_DOCUMENT_BYTES + 1 of it: a larger file arrives cut short
    with its real size, and is refused by ``check_document``."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.buffer = io.BytesIO()
        self.total = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.total += len(raw_data)
        room = MAX_DOCUMENT_BYTES + 1 - self.buffer.tell()
        if room > 0:
            self.buffer.write(raw_data[:room])
        return None

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            file=self.buffer,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=self.total,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )


# -- helpers ------------------------------------------------------------------------------------------


def _within_limit(key: str, limit: int, seconds: int = 3600) -> bool:
    cache.add(key, 0, seconds)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, seconds)
        count = 1
    return int(count) <= limit


def _throttle(*, address_index: str, ip: str | None) -> None:
    """At most PER_IP_PER_HOUR intakes from a network address and PER_ADDRESS_PER_HOUR for an e-mail
    address (whatever holds it: the answer says nothing about accounts). Keys are blind indexes."""
    if ip and not _within_limit(f"compliance:intake:ip:{blind_index(ip, purpose='ip')}", PER_IP_PER_HOUR):
        raise IntakeRefused("rate_limited", "Too many requests from this network; try again later.", retry_after=3600)
    if not _within_limit(f"compliance:intake:addr:{address_index}", PER_ADDRESS_PER_HOUR):
        raise IntakeRefused(
            "rate_limited", "Too many requests for this address; try again in an hour.", retry_after=3600
        )


def _account_for(address: str) -> Any:
    """The active account holding the address, or None. Only its id and key id are read: loading its
    encrypted fields would unwrap its key here when the key is not cached yet (a query an unknown
    address never costs); ``_key_for`` reads the key once, cached or not."""
    users = get_user_model()._default_manager
    return users.filter(email_index=email_index(address), is_active=True).only("pk", "data_key_id").first()


def _key_for(user: Any) -> tuple[uuid.UUID, bool]:
    """The matched account's key, or a new key of the intake's own (destroyed when it closes).

    Either path is one statement on the key table, whether or not this process has the account's key
    cached: a key not cached is read and unwrapped (then used from the cache to encrypt the intake), a
    cached one is checked for shredding, and a new key is made and written. So the submit step costs
    the same whether or not an account holds the address.
    """
    if user is not None and keystore.is_live(user.data_key_id):
        return user.data_key_id, False
    return keystore.create_key(), True


def _destroy_own_key(intake: RequestIntake) -> None:
    """Destroy the intake's own key (an unknown address); for an account's key, which must live on,
    the same statements run and change nothing (``keystore.shred_in_time``), so closing an intake,
    which the fifth wrong code does for anyone who has its id, costs the same whether or not an
    account holds the address."""
    keystore.shred_in_time(intake.data_key_id, destroy=intake.own_key)


def _code_digest(intake_id: Any, code: str) -> str:
    return salted_hmac("compliance.intake.code", f"{intake_id}:{code}", algorithm="sha256").hexdigest()


def _token_digest(token: str) -> str:
    return salted_hmac("compliance.agent.confirm", token, algorithm="sha256").hexdigest()


def _issue_code(intake: RequestIntake, now: datetime.datetime) -> str:
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    intake.code_hmac = _code_digest(intake.pk, code)
    intake.code_expires_at = now + datetime.timedelta(minutes=CODE_MINUTES)
    intake.code_attempts = 0
    intake.codes_sent += 1
    intake.code_sent_at = now
    return code


def _mail(address: str, template: str, context: dict[str, Any]) -> None:
    """Send after commit, in this process: codes and links never sit in a queue."""
    context = {"site_url": settings.SITE_URL, **context}

    def send() -> None:
        subject = render_to_string(f"compliance/email/{template}_subject.txt", context).strip()
        body = render_to_string(f"compliance/email/{template}.txt", context)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address])

    transaction.on_commit(send)


def _close(intake: RequestIntake, status: str, now: datetime.datetime) -> None:
    """Close an intake and drop its verification data (C-25); an intake key of its own is destroyed."""
    intake.status = status
    intake.closed_at = now
    intake.email = None
    intake.email_index = ""
    intake.details = None
    intake.claims = None
    intake.declaration_name = None
    intake.code_hmac = ""
    intake.save()
    _destroy_own_key(intake)


def _matches(user: Any, level: str, claims: dict[str, Any], declared: bool) -> bool:
    """Compare every data point with what the account already holds (no short cut: the same work
    whichever fails, and the caller never learns which)."""
    results = [True]
    if level in (L.REASONABLE, L.REASONABLY_HIGH):
        held = getattr(user, "date_of_birth", None)
        given = str(claims.get("date_of_birth") or "")
        results.append(isinstance(held, datetime.date) and hmac.compare_digest(held.isoformat(), given))
    if level == L.REASONABLY_HIGH:
        held_country = getattr(user, "country", "")
        given_country = str(claims.get("country") or "").upper()
        results.append(
            isinstance(held_country, str)
            and bool(held_country)
            and hmac.compare_digest(held_country.upper().encode(), given_country.encode())
        )
        results.append(declared)
    return all(results)


def _await_officer(request: PrivacyRequest, reason: str, actor: Any) -> None:
    """A filed request whose verification an officer finishes (power of attorney, second factor held)."""
    if request.status != PrivacyRequest.Status.RECEIVED:
        return
    check(request.status, PrivacyRequest.Status.VERIFYING)
    request.status = PrivacyRequest.Status.VERIFYING
    request.save(update_fields=["status"])
    audit.record(
        "compliance.dsr.verification_by_officer",
        actor=actor,
        subject=request.subject,
        data={"request": str(request.pk), "reason": reason},
    )


def _file(
    intake: RequestIntake,
    user: Any,
    *,
    method: str,
    actor: Any,
    ip: str | None,
    now: datetime.datetime,
    officer_reason: str = "",
    declaration_name: str = "",
) -> PrivacyRequest:
    """File the request through submit_request, keep the declaration, close the intake."""
    if not officer_reason and intake.kind in STRONG_VERIFICATION and getattr(user, "has_second_factor", False):
        officer_reason = "second_factor_held"  # the strongest level available is that factor (module docstring)
    submission = submit_request(
        subject=user,
        kind=intake.kind,
        channel=intake.channel,
        actor=actor,
        details=str(intake.details or ""),
        verification="" if officer_reason else method,
        ip=ip,
    )
    request = submission.request
    if submission.created and officer_reason:
        _await_officer(request, officer_reason, actor)
    if intake.level == L.REASONABLY_HIGH and declaration_name:
        declaration = SignedDeclaration.objects.create(
            request=request,
            subject_ref=str(user.pk),
            data_key_id=user.data_key_id,
            signed_name=declaration_name.strip()[:200],
            statement_version=DECLARATION_VERSION,
            statement=DECLARATION_TEXT,
            signed_at=now,
        )
        audit.record(
            "compliance.dsr.declaration_signed",
            actor=actor,
            subject=user,
            data={"request": str(request.pk), "declaration": declaration.pk, "version": DECLARATION_VERSION},
        )
    intake.request = request
    _close(intake, I.FILED, now)
    audit.record(
        "compliance.intake.filed",
        actor=actor,
        subject=user,
        data={"intake": str(intake.pk), "request": str(request.pk), "level": intake.level, "method": method},
        ip=ip,
    )
    return request


# -- without an account -----------------------------------------------------------------------------


@transaction.atomic
def start_public_request(
    *, email: str, kind: str, details: str = "", claims: Claims, channel: str, ip: str | None = None
) -> RequestIntake:
    """Record a request from someone without a session and e-mail them a code (C-27).

    The same work happens whether or not an account holds the address, and the caller answers the same.
    """
    level = check_kind(kind)
    errors = claim_errors(level, claims)
    if errors:
        raise IntakeRefused("validation_error", "Some details this request type needs are missing.", errors=errors)
    address = normalise_email(email)
    _throttle(address_index=email_index(address), ip=ip)
    user = _account_for(address)
    key_id, own = _key_for(user)
    now = timezone.now()
    intake = RequestIntake(
        source=RequestIntake.Source.PUBLIC,
        channel=channel,
        kind=kind,
        level=level,
        data_key_id=key_id,
        own_key=own,
        subject=user,
        email=address,
        email_index=email_index(address),
        details=details,
        claims=claims.as_json(),
        declaration_name=claims.declaration_name.strip() if level == L.REASONABLY_HIGH else None,
        created_at=now,
        expires_at=now + datetime.timedelta(hours=INTAKE_HOURS),
    )
    code = _issue_code(intake, now)
    intake.save(force_insert=True)
    audit.record(
        "compliance.intake.received",
        actor=None,
        data={"intake": str(intake.pk), "source": "public", "kind": kind, "level": level},
        ip=ip,
    )
    _mail(address, "intake_code", {"code": code, "minutes": CODE_MINUTES})
    return intake


@transaction.atomic
def resend_code(*, intake_id: Any, source: str, ip: str | None = None) -> RequestIntake:
    """A new code for an intake still waiting for one: at most MAX_CODES, one a minute."""
    intake = _open_for_code(intake_id, source)
    now = timezone.now()
    if intake.codes_sent >= MAX_CODES:
        raise IntakeRefused("rate_limited", "No more codes can be sent for this request; please start again.")
    waited = (now - intake.code_sent_at).total_seconds() if intake.code_sent_at else RESEND_AFTER_SECONDS
    if waited < RESEND_AFTER_SECONDS:
        wait = int(RESEND_AFTER_SECONDS - waited) + 1
        raise IntakeRefused("rate_limited", "Wait a minute before asking for another code.", retry_after=wait)
    code = _issue_code(intake, now)
    intake.save(update_fields=["code_hmac", "code_expires_at", "code_attempts", "codes_sent", "code_sent_at"])
    audit.record("compliance.intake.code_resent", actor=None, data={"intake": str(intake.pk)}, ip=ip)
    template = "agent_code" if intake.source == RequestIntake.Source.AGENT else "intake_code"
    _mail(str(intake.email), template, {"code": code, "minutes": CODE_MINUTES})
    return intake


def _open_for_code(intake_id: Any, source: str) -> RequestIntake:
    try:
        intake = RequestIntake.objects.select_for_update().filter(pk=intake_id, source=source).first()
    except ValidationError:
        intake = None
    if intake is None:
        raise IntakeRefused("not_found", "No such request.")
    now = timezone.now()
    if intake.status == I.AWAITING_CODE and now >= intake.expires_at:
        raise IntakeRefused("code_expired", "This request has expired; please start again.")
    if intake.status != I.AWAITING_CODE or not intake.code_hmac:  # no code: the right one came already
        raise IntakeRefused("invalid_state", "This request was already checked or has closed; please start again.")
    return intake


def verify_code(*, intake_id: Any, code: str, source: str, ip: str | None = None) -> RequestIntake:
    """Check the e-mailed code, then carry on in a task (public: match and file; agent: ask the
    consumer), so that this step, its answer and its timing are the same whoever holds the address.

    A wrong code is counted and committed before the refusal is raised; the fifth closes the intake.
    """
    failure: IntakeRefused | None = None
    with transaction.atomic():
        intake = _open_for_code(intake_id, source)
        now = timezone.now()
        if intake.code_expires_at is None or now >= intake.code_expires_at:
            raise IntakeRefused("code_expired", "This code has expired; ask for a new one.")
        given = "".join(ch for ch in code if ch.isdigit())
        if not intake.code_hmac or not hmac.compare_digest(intake.code_hmac, _code_digest(intake.pk, given)):
            intake.code_attempts += 1
            if intake.code_attempts >= MAX_CODE_ATTEMPTS:
                _close(intake, I.LOCKED, now)
                audit.record("compliance.intake.locked", actor=None, data={"intake": str(intake.pk)}, ip=ip)
                failure = IntakeRefused("too_many_attempts", "Too many wrong codes: this request is closed.")
            else:
                intake.save(update_fields=["code_attempts"])
                audit.record(
                    "compliance.intake.code_failed",
                    actor=None,
                    data={"intake": str(intake.pk), "attempts": intake.code_attempts},
                    ip=ip,
                )
                left = MAX_CODE_ATTEMPTS - intake.code_attempts
                failure = IntakeRefused("invalid_code", f"This code is not right ({left} tries left).")
        else:
            intake.code_hmac = ""  # single use
            intake.save(update_fields=["code_hmac"])
            if intake.source == RequestIntake.Source.AGENT:
                _agent_address_confirmed(intake, ip=ip, now=now)
            else:
                _public_address_confirmed(intake, ip=ip)
    if failure is not None:
        raise failure
    return intake


def _public_address_confirmed(intake: RequestIntake, *, ip: str | None) -> None:
    """The address is the person's. Matching it with an account and filing (or not) is different work
    for a known and an unknown address, so it runs in a task (``match_public_request``), as an agent's
    next step does. The intake waits, its code spent, in ``awaiting_code``."""
    audit.record("compliance.intake.code_confirmed", actor=None, data={"intake": str(intake.pk)}, ip=ip)
    _after_commit("match_public_request", intake)


@transaction.atomic
def match_public_request(intake_id: Any) -> str:
    """After a public intake's code was confirmed (a task; idempotent): compare the data points with
    the account that holds the address and file the request, or close the intake and say why by
    e-mail. Returns what was done: ``filed``, ``no_account``, ``not_matched`` or ``nothing``."""
    intake = (
        RequestIntake.objects.select_for_update()
        .filter(pk=intake_id, source=RequestIntake.Source.PUBLIC, status=I.AWAITING_CODE, code_hmac="")
        .first()
    )
    if intake is None:
        return "nothing"
    return _match_and_file(intake, now=timezone.now())


def _match_and_file(intake: RequestIntake, *, now: datetime.datetime) -> str:
    address = str(intake.email)
    user = intake.subject
    if user is None or not user.is_active or user.email_index != intake.email_index:
        _close(intake, I.NO_ACCOUNT, now)
        audit.record("compliance.intake.no_account", actor=None, data={"intake": str(intake.pk)})
        _mail(address, "intake_no_account", {"kind": PrivacyRequest.Kind(intake.kind).label})
        return "no_account"
    claims = intake.claims if isinstance(intake.claims, dict) else {}
    declaration = str(intake.declaration_name or "")
    if not _matches(user, intake.level, claims, declared=bool(declaration.strip())):
        _close(intake, I.NOT_MATCHED, now)
        audit.record("compliance.intake.not_matched", actor=None, subject=user, data={"intake": str(intake.pk)})
        _mail(address, "intake_not_verified", {"kind": PrivacyRequest.Kind(intake.kind).label})
        return "not_matched"
    _file(intake, user, method=METHOD[intake.level], actor=user, ip=None, now=now, declaration_name=declaration)
    return "filed"


# -- authorised agents ----------------------------------------------------------------------------------


def document_root() -> Path:
    root = Path(settings.AGENT_DOCUMENT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def document_context(authorisation: AgentAuthorisation) -> str:
    return f"compliance.agent-document.{authorisation.pk}"


def read_document(authorisation: AgentAuthorisation) -> bytes:
    """The decrypted document. LookupError: the consumer's key was destroyed; FileNotFoundError: deleted."""
    path = document_root() / authorisation.document_name
    return b"".join(read_encrypted(path, context=document_context(authorisation)))


def _delete_document(authorisation: AgentAuthorisation, now: datetime.datetime) -> None:
    (document_root() / authorisation.document_name).unlink(missing_ok=True)
    authorisation.document_deleted_at = now


@transaction.atomic
def start_agent_request(
    *,
    agent_name: str,
    agent_email: str,
    agent_organisation: str = "",
    subject_email: str,
    kind: str,
    details: str = "",
    power_of_attorney: bool,
    document: Document,
    channel: str,
    ip: str | None = None,
) -> RequestIntake:
    """Record an authorised agent's request with its proof, and e-mail the agent a code (C-28).

    The document is written encrypted under the consumer's key when an account holds their address
    (under the intake's own key otherwise, deleted when the agent confirms); the agent is answered the
    same either way.
    """
    level = check_kind(kind)
    errors: dict[str, str] = {}
    if not agent_name.strip():
        errors["agent_name"] = "Give the agent's name."
    if normalise_email(agent_email) == normalise_email(subject_email):
        errors["subject_email"] = "The consumer's address must differ from the agent's own."
    if errors:
        raise IntakeRefused("validation_error", "Some fields are missing or wrong.", errors=errors)
    media_type = check_document(document)
    agent_address = normalise_email(agent_email)
    _throttle(address_index=email_index(agent_address), ip=ip)
    user = _account_for(subject_email)
    key_id, own = _key_for(user)
    now = timezone.now()
    intake = RequestIntake(
        source=RequestIntake.Source.AGENT,
        channel=PrivacyRequest.Channel.AGENT,
        kind=kind,
        level=level,
        data_key_id=key_id,
        own_key=own,
        subject=user,
        email=agent_address,
        email_index=email_index(agent_address),
        details=details,
        created_at=now,
        expires_at=now + datetime.timedelta(hours=INTAKE_HOURS),
    )
    code = _issue_code(intake, now)
    intake.save(force_insert=True)
    authorisation = AgentAuthorisation(
        intake=intake,
        subject=user,
        subject_ref=str(user.pk) if user is not None else "",
        data_key_id=key_id,
        agent_name=agent_name.strip()[:200],
        agent_email=agent_address,
        agent_organisation=agent_organisation.strip()[:200],
        proof=(
            AgentAuthorisation.Proof.POWER_OF_ATTORNEY
            if power_of_attorney
            else AgentAuthorisation.Proof.SIGNED_PERMISSION
        ),
        document_name=f"{uuid.uuid4().hex}.enc",
        document_type=media_type,
        document_size=document.size,
        created_at=now,
    )
    authorisation.save(force_insert=True)
    writer = EncryptedWriter(
        document_root() / authorisation.document_name, key_id=key_id, context=document_context(authorisation)
    )
    try:
        writer.write(document.content)
    finally:
        writer.close()
    audit.record(
        "compliance.agent.received",
        actor=None,
        data={
            "intake": str(intake.pk),
            "authorisation": str(authorisation.pk),
            "kind": kind,
            "proof": authorisation.proof,
            "channel": channel,
        },
        ip=ip,
    )
    _mail(agent_address, "agent_code", {"code": code, "minutes": CODE_MINUTES})
    return intake


def _agent_address_confirmed(intake: RequestIntake, *, ip: str | None, now: datetime.datetime) -> None:
    """The agent's address is confirmed. What follows depends on whether we know the consumer, so it
    runs in a task (``continue_agent_request``): this step, its answer and its timing are the same
    whoever the consumer is, and the agent is told the same thing."""
    intake.status = I.AWAITING_SUBJECT
    intake.save(update_fields=["status"])
    audit.record("compliance.agent.address_confirmed", actor=None, data={"intake": str(intake.pk)}, ip=ip)
    _mail(str(intake.email), "agent_received", {"kind": PrivacyRequest.Kind(intake.kind).label})
    _after_commit("continue_agent_request", intake)


def _after_commit(task_name: str, intake: RequestIntake) -> None:
    """Enqueue ``compliance.tasks.<task_name>`` for the intake once this transaction commits."""
    intake_id = str(intake.pk)

    def enqueue() -> None:
        from compliance import tasks

        getattr(tasks, task_name).delay(intake_id)

    transaction.on_commit(enqueue)


@transaction.atomic
def continue_agent_request(intake_id: Any) -> str:
    """After the agent's address is confirmed (a task; idempotent): drop what concerns an unknown
    consumer, file a power of attorney for an officer or an opt-out at once, else ask the consumer.
    The link's token is made here, in the worker, and never passes through the broker. Returns what
    was done."""
    intake = RequestIntake.objects.select_for_update().filter(pk=intake_id, status=I.AWAITING_SUBJECT).first()
    authorisation = AgentAuthorisation.objects.select_for_update().filter(intake_id=intake_id).first()
    if intake is None or authorisation is None or authorisation.answer != AgentAuthorisation.Answer.NOT_ASKED:
        return "nothing"
    now = timezone.now()
    user = intake.subject
    if user is None or not user.is_active or user.data_key_id != authorisation.data_key_id:
        _delete_document(authorisation, now)
        authorisation.delete()  # nothing about a consumer we do not know is kept
        _close(intake, I.NO_ACCOUNT, now)
        audit.record("compliance.agent.no_account", actor="system:intake", data={"intake": str(intake.pk)})
        return "no_account"
    data = {"authorisation": str(authorisation.pk), "intake": str(intake.pk)}
    if authorisation.proof == AgentAuthorisation.Proof.POWER_OF_ATTORNEY or intake.level == L.NONE:
        poa = authorisation.proof == AgentAuthorisation.Proof.POWER_OF_ATTORNEY
        request = _file(
            intake,
            user,
            method="none:agent+signed_permission",
            actor="system:intake",
            ip=None,
            now=now,
            officer_reason="power_of_attorney" if poa else "",
        )
        authorisation.request = request
        authorisation.save(update_fields=["request"])
        audit.record(
            "compliance.agent.filed",
            actor="system:intake",
            subject=user,
            data={**data, "request": str(request.pk), "proof": authorisation.proof},
        )
        return "filed"
    token = secrets.token_urlsafe(32)
    authorisation.token_hmac = _token_digest(token)
    authorisation.token_expires_at = now + datetime.timedelta(days=CONFIRM_DAYS)
    authorisation.answer = AgentAuthorisation.Answer.PENDING
    authorisation.save(update_fields=["token_hmac", "token_expires_at", "answer"])
    intake.expires_at = authorisation.token_expires_at
    intake.save(update_fields=["expires_at"])
    audit.record("compliance.agent.consumer_asked", actor="system:intake", subject=user, data=data)
    link = signing.dumps({"a": str(authorisation.pk), "t": token}, salt=LINK_SALT, compress=True)
    _mail(
        str(user.email),
        "agent_confirm",
        {
            "agent_name": str(authorisation.agent_name),
            "agent_organisation": str(authorisation.agent_organisation or ""),
            "kind": PrivacyRequest.Kind(intake.kind).label,
            "level": intake.level,
            "url": f"{settings.SITE_URL}/privacy/agent/confirm/{link}/",
            "days": CONFIRM_DAYS,
        },
    )
    return "consumer_asked"


def authorisation_for_link(link: str) -> AgentAuthorisation | None:
    """The authorisation a consumer's link is for, while it is valid and unanswered."""
    try:
        data = signing.loads(link, salt=LINK_SALT, max_age=CONFIRM_DAYS * 86400)
        authorisation = AgentAuthorisation.objects.select_related("intake", "subject").filter(pk=str(data["a"])).first()
    except (signing.BadSignature, ValidationError, KeyError, TypeError):
        return None
    if authorisation is None or not authorisation.token_hmac:
        return None
    if not hmac.compare_digest(authorisation.token_hmac, _token_digest(str(data.get("t", "")))):
        return None
    intake = authorisation.intake
    if (
        authorisation.answer != AgentAuthorisation.Answer.PENDING
        or intake is None
        or intake.status != I.AWAITING_SUBJECT
    ):
        return None
    if authorisation.token_expires_at is None or authorisation.token_expires_at <= timezone.now():
        return None
    if authorisation.subject is None or not authorisation.subject.is_active:
        return None
    return authorisation


def answer_agent_request(
    *, link: str, confirmed: bool, claims: Claims | None = None, ip: str | None = None
) -> AgentAuthorisation:
    """The consumer confirms (with the data points of the type's level) or refuses an agent's request."""
    failure: IntakeRefused | None = None
    with transaction.atomic():
        found = authorisation_for_link(link)
        if found is None:
            raise IntakeRefused("invalid_link", "This link is invalid, has expired or was already used.")
        authorisation = AgentAuthorisation.objects.select_for_update().get(pk=found.pk)
        assert found.intake is not None  # authorisation_for_link checked it
        intake = RequestIntake.objects.select_for_update().get(pk=found.intake.pk)
        user = found.subject
        now = timezone.now()
        data = {"authorisation": str(authorisation.pk), "intake": str(intake.pk)}
        if not confirmed:
            authorisation.answer = AgentAuthorisation.Answer.REFUSED
            authorisation.answered_at = now
            authorisation.token_hmac = ""
            authorisation.save(update_fields=["answer", "answered_at", "token_hmac"])
            _close(intake, I.REFUSED, now)
            audit.record("compliance.agent.refused", actor=user, subject=user, data=data, ip=ip)
            return authorisation
        claims = claims or Claims()
        errors = claim_errors(intake.level, claims)
        if errors:
            raise IntakeRefused("validation_error", "Some details are missing.", errors=errors)
        if not _matches(user, intake.level, claims.as_json(), declared=bool(claims.declaration_name.strip())):
            authorisation.answer_attempts += 1
            if authorisation.answer_attempts >= MAX_ANSWER_ATTEMPTS:
                authorisation.answer = AgentAuthorisation.Answer.NOT_VERIFIED
                authorisation.answered_at = now
                authorisation.token_hmac = ""
                _close(intake, I.NOT_MATCHED, now)
                failure = IntakeRefused("too_many_attempts", "The details did not match too often: the link is spent.")
            else:
                failure = IntakeRefused("not_matched", "These details do not match our records.")
            authorisation.save(update_fields=["answer", "answered_at", "token_hmac", "answer_attempts"])
            audit.record(
                "compliance.agent.confirmation_failed",
                actor=user,
                subject=user,
                data={**data, "attempts": authorisation.answer_attempts},
                ip=ip,
            )
        else:
            authorisation.answer = AgentAuthorisation.Answer.CONFIRMED
            authorisation.answered_at = now
            authorisation.token_hmac = ""
            request = _file(
                intake,
                user,
                method=f"{intake.level}:agent+consumer_confirmed"[:40],
                actor=user,
                ip=ip,
                now=now,
                declaration_name=claims.declaration_name,
            )
            authorisation.request = request
            authorisation.save(update_fields=["answer", "answered_at", "token_hmac", "request"])
            audit.record(
                "compliance.agent.confirmed", actor=user, subject=user, data={**data, "request": str(request.pk)}, ip=ip
            )
    if failure is not None:
        raise failure
    return authorisation


def purge_expired_intakes(*, now: datetime.datetime | None = None, dry_run: bool = False) -> int:
    """Close intakes past their time (C-25: verification data has a TTL): their values are cleared,
    an unfiled agent's document and record deleted, an intake key of its own destroyed."""
    now = now or timezone.now()
    expired = list(
        RequestIntake.objects.filter(status__in=RequestIntake.OPEN, expires_at__lte=now).values_list("pk", flat=True)
    )
    if dry_run:
        return len(expired)
    closed = 0
    for intake_id in expired:
        with transaction.atomic():
            intake = (
                RequestIntake.objects.select_for_update().filter(pk=intake_id, status__in=RequestIntake.OPEN).first()
            )
            if intake is None:
                continue
            authorisation = AgentAuthorisation.objects.filter(intake=intake, request__isnull=True).first()
            if authorisation is not None:
                _delete_document(authorisation, now)
                authorisation.delete()
            _close(intake, I.EXPIRED, now)
            audit.record(
                "compliance.intake.expired", actor="system:purge_expired_intakes", data={"intake": str(intake.pk)}
            )
            closed += 1
    return closed
