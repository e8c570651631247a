"""Compliance records: the hash-chained audit event log."""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.db import models

from identity.crypto.fields import (
    EncryptedEmailField,
    EncryptedJSONField,
    EncryptedQuerySet,
    EncryptedTextField,
)


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def for_subject_ref(self, subject_ref: str) -> AuditEventQuerySet:
        return self.filter(subject_ref=subject_ref)


class AuditEvent(models.Model):
    """One entry of the append-only, hash-chained event log (``compliance.audit.record``).

    Who acted (``actor_*``) is kept apart from whose data it is (``subject_ref``). Personal details
    are in ``payload``, AES-256-GCM ciphertext under the subject's data key (or the actor's when
    there is no subject), so erasing the subject redacts them without touching the chain.
    ``entry_hash`` is HMAC-SHA256 over the entry's stored bytes and ``prev_hash``.
    """

    class ActorType(models.TextChoices):
        USER = "user", "user"
        SYSTEM = "system", "system"
        ANONYMOUS = "anonymous", "anonymous"

    # Assigned by record() under the chain-head lock: consecutive, so a gap is visible too.
    id = models.BigIntegerField(primary_key=True)
    occurred_at = models.DateTimeField()
    action = models.CharField(max_length=100, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_ref = models.CharField(max_length=64, blank=True, db_index=True)
    subject_ref = models.CharField(max_length=64, blank=True, db_index=True)
    data_key_id = models.UUIDField(null=True, blank=True)
    payload = models.BinaryField(null=True)
    details = models.JSONField(default=dict, blank=True)
    ip_index = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["subject_ref", "occurred_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action}"


class AuditChainHead(models.Model):
    """The single row that serialises appends and remembers the last entry (so a deleted tail shows)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_event_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    length = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"audit chain head at #{self.last_event_id}"


class PrivacyRequestQuerySet(EncryptedQuerySet):
    def open(self) -> PrivacyRequestQuerySet:
        return self.exclude(status__in=PrivacyRequest.CLOSED)

    def for_subject(self, user: object) -> PrivacyRequestQuerySet:
        return self.filter(subject=user)

    def overdue(self, today: datetime.date) -> PrivacyRequestQuerySet:
        return self.open().filter(due_on__lt=today)

    def due_within(self, today: datetime.date, days: int) -> PrivacyRequestQuerySet:
        return self.open().filter(due_on__gte=today, due_on__lte=today + datetime.timedelta(days=days))


class PrivacyRequest(models.Model):
    """A data-subject request (GDPR Arts. 15-22, CCPA/CPRA rights), tracked to the day.

    The deadlines are computed once at receipt by ``compliance.deadlines`` and stored as absolute
    dates with the rules that made them (``deadlines``); ``due_on``/``legal_due_on`` hold the current
    response deadline for queries and sorting. Free text from the subject is encrypted under their
    key. The row outlives the account it concerns (its own retention: REGULATIONS.md, Fides #743).
    """

    class Kind(models.TextChoices):
        ACCESS = "access", "access (a copy of the data)"
        ACCESS_CATEGORIES = "access_categories", "access to categories only (CCPA)"
        PORTABILITY = "portability", "portability"
        ERASURE = "erasure", "erasure"
        RECTIFICATION = "rectification", "rectification"
        RESTRICTION = "restriction", "restriction of processing"
        OBJECTION = "objection", "objection"
        OPT_OUT_SALE_SHARING = "opt_out_sale_sharing", "opt-out of sale/sharing"
        LIMIT_SENSITIVE = "limit_sensitive", "limit use of sensitive data"

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        VERIFYING = "verifying", "verifying identity"
        VERIFIED = "verified", "verified"
        AWAITING_REVIEW = "awaiting_review", "awaiting officer review"
        IN_PROGRESS = "in_progress", "in progress"
        COMPLETED = "completed", "completed"
        DENIED = "denied", "denied"
        CANCELLED = "cancelled", "cancelled"
        ON_HOLD = "on_hold", "on hold (legal hold)"

    class Channel(models.TextChoices):
        PORTAL = "portal", "portal"
        API = "api", "mobile app"
        PHONE = "phone", "phone (filed by an officer)"
        MAIL = "mail", "post (filed by an officer)"
        EMAIL = "email", "e-mail (filed by an officer)"
        AGENT = "agent", "authorised agent"

    CLOSED = (Status.COMPLETED, Status.DENIED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="privacy_requests"
    )
    subject_ref = models.CharField(max_length=64, db_index=True)
    data_key_id = models.UUIDField()
    kind = models.CharField(max_length=30, choices=Kind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    details = EncryptedTextField(blank=True)
    jurisdiction = models.CharField(max_length=20)
    regime = models.CharField(max_length=20)
    received_at = models.DateTimeField()
    received_on = models.DateField()
    deadlines = models.JSONField(default=list)
    ack_due_on = models.DateField(null=True, blank=True)
    due_on = models.DateField(db_index=True)
    legal_due_on = models.DateField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_method = models.CharField(max_length=40, blank=True)
    extended_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    hold_reason = models.TextField(blank=True)
    hold_placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    hold_placed_at = models.DateTimeField(null=True, blank=True)
    status_before_hold = models.CharField(max_length=20, blank=True)
    denial_basis = models.CharField(max_length=200, blank=True)
    denial_text = models.TextField(blank=True)
    execute_after = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    # The last failure of the request's last step (the ZIP, or the end of an erasure), redacted;
    # empty once it succeeds. Every system may be done while this says why the request is not.
    finish_error = models.CharField(max_length=300, blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    due_soon_alerted_on = models.DateField(null=True, blank=True)
    overdue_alerted_on = models.DateField(null=True, blank=True)
    # The evidence pack, frozen when the request closes (before an erasure destroys the subject's key).
    evidence = models.JSONField(default=dict, blank=True)
    # Restriction, objection and opt-outs: the processing purposes concerned (compliance.consents.PURPOSES).
    purposes = models.JSONField(default=list, blank=True)

    objects = PrivacyRequestQuerySet.as_manager()

    class Meta:
        ordering = ["due_on", "received_at"]
        indexes = [models.Index(fields=["status", "due_on"]), models.Index(fields=["subject", "kind", "status"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} request {self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status not in self.CLOSED


class RequestPause(models.Model):
    """An interval in which the clock stood still (waiting for identity or clarification), where
    the law allows it (compliance.deadlines.apply_pauses)."""

    request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE, related_name="pauses")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=200)

    class Meta:
        ordering = ["started_at"]

    def __str__(self) -> str:
        return f"pause of {self.request_id}"


class SystemRun(models.Model):
    """One data system's part of a request (an export or an erasure), as a resumable unit of work.

    Officers see every run with its attempts and last error, so a stuck request can be explained
    (PITFALLS.md, Fides #8252); the counts and read-back are the per-system evidence (Fides #4164).
    """

    class Action(models.TextChoices):
        EXPORT = "export", "export"
        ERASE = "erase", "erase"
        RECTIFY = "rectify", "rectify (corrected values)"
        RESTRICT = "restrict", "restrict processing"
        LIFT_RESTRICTION = "unrestrict", "lift a restriction"
        OPT_OUT = "opt_out", "stop processing for purposes (opt-out, objection, withdrawal)"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        WAITING = "waiting", "waiting for the service's callback"
        DONE = "done", "done"
        FAILED = "failed", "failed (will retry)"
        GAVE_UP = "gave_up", "failed (needs an officer)"

    id = models.BigAutoField(primary_key=True)
    request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE, related_name="runs")
    system = models.CharField(max_length=100)
    action = models.CharField(max_length=10, choices=Action.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    kept = models.JSONField(default=list, blank=True)
    read_back = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "system", "action"], name="systemrun_once")]

    def __str__(self) -> str:
        return f"{self.action} in {self.system}"


class ExportFile(models.Model):
    """A finished export: a ZIP encrypted (AES-256-GCM, in chunks) under the subject's key, on disk or
    object storage, downloadable by its owner through an expiring link, deleted when the link expires."""

    request = models.OneToOneField(PrivacyRequest, on_delete=models.CASCADE, related_name="export")
    path = models.CharField(max_length=500)
    size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    downloaded_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"export of {self.request_id}"


class SuppressionEntry(models.Model):
    """An erased subject's e-mail, as a keyed hash only: a later import or sign-up with it is
    recognised (issue #4) without keeping the address."""

    email_hmac = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=40, default="erasure")

    def __str__(self) -> str:
        return "suppressed address"


class ConsentRecordQuerySet(models.QuerySet["ConsentRecord"]):
    def for_subject(self, user: object) -> ConsentRecordQuerySet:
        return self.filter(subject=user)


class ConsentRecord(models.Model):
    """One entry of the consent ledger (REGULATIONS.md "Build one consent ledger", G-03, G-04, G-06,
    C-20, C-21): every grant, withdrawal, opt-out and objection, never changed once written.

    The current choice for a purpose is the newest entry for it; a withdrawal is a new entry, so
    what was agreed before it stays provable. Each entry says who decided (the listener, a parent,
    an authorised agent, an officer, or a browser signal), under which notice version and text hash,
    on which surface, how, and the user interaction that made it.
    """

    class Actor(models.TextChoices):
        SELF = "self", "the listener"
        PARENT = "parent", "a parent or guardian"
        AGENT = "agent", "an authorised agent"
        OFFICER = "officer", "a privacy officer (recording the listener's request)"
        SIGNAL = "signal", "an opt-out preference signal (Global Privacy Control)"

    class Surface(models.TextChoices):
        PORTAL = "portal", "web portal"
        API = "api", "mobile app"
        GPC = "gpc", "Sec-GPC header"
        REQUEST = "request", "a data-subject request"
        ADMIN = "admin", "admin console"

    id = models.BigAutoField(primary_key=True)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="consent_records"
    )
    subject_ref = models.CharField(max_length=64, db_index=True)
    purpose = models.CharField(max_length=40)
    granted = models.BooleanField()
    actor = models.CharField(max_length=10, choices=Actor.choices)
    actor_ref = models.CharField(max_length=64, blank=True)
    legal_basis = models.CharField(max_length=30)
    notice_version = models.CharField(max_length=20)
    notice_hash = models.CharField(max_length=64)
    surface = models.CharField(max_length=10, choices=Surface.choices)
    method = models.CharField(max_length=40)
    interaction_id = models.CharField(max_length=64, blank=True)
    jurisdiction = models.CharField(max_length=20)
    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="consent_records"
    )
    recorded_at = models.DateTimeField()

    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        ordering = ["recorded_at", "id"]
        indexes = [models.Index(fields=["subject", "purpose", "recorded_at"])]

    def __str__(self) -> str:
        return f"{self.purpose} {'granted' if self.granted else 'refused'} ({self.pk})"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("consent records are never changed; record a new choice instead")
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class ProcessingRestriction(models.Model):
    """A restriction of processing (GDPR Art. 18; REGULATIONS.md G-18): while it is in force the
    subject's data may only be stored (and kept under a legal hold); every other processor asks
    ``compliance.processing.may_process`` first. It is lifted only after the subject was told."""

    class Ground(models.TextChoices):
        ACCURACY = "accuracy", "Art. 18(1)(a): accuracy contested, while it is checked"
        UNLAWFUL = "unlawful", "Art. 18(1)(b): unlawful processing, restriction preferred to erasure"
        LEGAL_CLAIMS = "legal_claims", "Art. 18(1)(c): needed by the subject for legal claims"
        OBJECTION = "objection", "Art. 18(1)(d): an objection under Art. 21(1) is pending"

    id = models.BigAutoField(primary_key=True)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="restrictions"
    )
    subject_ref = models.CharField(max_length=64, db_index=True)
    ground = models.CharField(max_length=20, choices=Ground.choices)
    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="restrictions"
    )
    placed_at = models.DateTimeField()
    lift_notified_at = models.DateTimeField(null=True, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lift_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-placed_at"]
        indexes = [models.Index(fields=["subject", "lifted_at"])]

    def __str__(self) -> str:
        return f"restriction {self.pk} ({self.ground})"

    @property
    def in_force(self) -> bool:
        return self.lifted_at is None


# -- Requests without a session, and from authorised agents (issue #4; REGULATIONS.md 4.8) --------------


class VerificationLevel(models.TextChoices):
    """How sure we must be of who someone without a session is, per request type (C-27; compliance.dsr.intake)."""

    NONE = "none", "none: the e-mailed code only (opt-outs, C-20)"
    REASONABLE = "reasonable", "reasonable: 2 matching data points"
    REASONABLY_HIGH = "reasonably_high", "reasonably high: 3 matching data points and a signed declaration"


class RequestIntake(models.Model):
    """A request received without a session (C-27) or from an authorised agent (C-28), while its
    e-mailed code, its data points or the consumer's answer are being checked.

    Temporary verification data (C-25): the address, details, data points and typed signature are
    encrypted under the matched account's key (or a key of the intake's own when no account holds the
    address) and cleared as soon as the intake closes; the code is kept only as an HMAC. What stays is
    the bare record (type, level, status, dates, the request it became).
    """

    class Source(models.TextChoices):
        PUBLIC = "public", "without an account"
        AGENT = "agent", "authorised agent"

    class Status(models.TextChoices):
        AWAITING_CODE = "awaiting_code", "waiting for the e-mailed code"
        AWAITING_SUBJECT = "awaiting_subject", "waiting for the consumer's confirmation"
        FILED = "filed", "filed as a request"
        NOT_MATCHED = "not_matched", "details did not match"
        NO_ACCOUNT = "no_account", "no account holds the address"
        REFUSED = "refused", "the consumer said they gave no permission"
        LOCKED = "locked", "too many wrong codes"
        EXPIRED = "expired", "expired"

    OPEN = (Status.AWAITING_CODE, Status.AWAITING_SUBJECT)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=10, choices=Source.choices)
    channel = models.CharField(max_length=10)
    kind = models.CharField(max_length=30, choices=PrivacyRequest.Kind.choices)
    level = models.CharField(max_length=20, choices=VerificationLevel.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AWAITING_CODE, db_index=True)
    data_key_id = models.UUIDField()
    own_key = models.BooleanField(default=False)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    email = EncryptedEmailField(null=True, blank=True)
    email_index = models.CharField(max_length=64, blank=True, db_index=True)
    details = EncryptedTextField(null=True, blank=True)
    claims = EncryptedJSONField(null=True, blank=True)
    declaration_name = EncryptedTextField(null=True, blank=True)
    code_hmac = models.CharField(max_length=64, blank=True)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    code_attempts = models.PositiveSmallIntegerField(default=0)
    codes_sent = models.PositiveSmallIntegerField(default=0)
    code_sent_at = models.DateTimeField(null=True, blank=True)
    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="intakes"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"intake {self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class AgentAuthorisation(models.Model):
    """An authorised agent's request for a consumer and its proof of authority (C-28): a signed
    permission the consumer confirms, or a power of attorney (Probate Code §§4121-4130) an officer checks.

    The agent's name, address and organisation and the uploaded document are encrypted under the
    consumer's data key, so they are destroyed with it on erasure; the document lives on disk only as
    AES-256-GCM chunks (compliance.exports.EncryptedWriter) under a random name.
    """

    class Proof(models.TextChoices):
        SIGNED_PERMISSION = "signed_permission", "signed permission"
        POWER_OF_ATTORNEY = "power_of_attorney", "power of attorney (Probate Code §§4121-4130)"

    class Answer(models.TextChoices):
        NOT_ASKED = "not_asked", "not asked"
        PENDING = "pending", "asked, no answer yet"
        CONFIRMED = "confirmed", "confirmed they gave permission"
        REFUSED = "refused", "said they gave no permission"
        NOT_VERIFIED = "not_verified", "details did not match"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # SET_NULL: an erasure deletes the subject's intakes but keeps this record (its values are shredded).
    intake = models.OneToOneField(RequestIntake, null=True, blank=True, on_delete=models.SET_NULL, related_name="agent")
    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="agent_authorisations"
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject_ref = models.CharField(max_length=64, blank=True, db_index=True)
    data_key_id = models.UUIDField()
    agent_name = EncryptedTextField(max_length=200)
    agent_email = EncryptedEmailField()
    agent_organisation = EncryptedTextField(max_length=200, blank=True)
    proof = models.CharField(max_length=20, choices=Proof.choices)
    document_name = models.CharField(max_length=80)
    document_type = models.CharField(max_length=40)
    document_size = models.PositiveIntegerField()
    document_deleted_at = models.DateTimeField(null=True, blank=True)
    answer = models.CharField(max_length=20, choices=Answer.choices, default=Answer.NOT_ASKED)
    token_hmac = models.CharField(max_length=64, blank=True, db_index=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    answer_attempts = models.PositiveSmallIntegerField(default=0)
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"agent authorisation {self.pk}"


class SignedDeclaration(models.Model):
    """A declaration under penalty of perjury, kept as a record of the request (C-27, CCR §7062(c))."""

    id = models.BigAutoField(primary_key=True)
    request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE, related_name="declarations")
    subject_ref = models.CharField(max_length=64, db_index=True)
    data_key_id = models.UUIDField()
    signed_name = EncryptedTextField(max_length=200)
    statement_version = models.CharField(max_length=20)
    statement = models.TextField()
    signed_at = models.DateTimeField()

    class Meta:
        ordering = ["-signed_at"]

    def __str__(self) -> str:
        return f"declaration {self.pk} for {self.request_id}"
