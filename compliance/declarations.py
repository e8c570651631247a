"""Registry declarations for the platform's own models and for django-auditlog's entries."""

from __future__ import annotations

from compliance.registry import Category, Erasure, LawfulBasis, declare, not_personal, personal, pseudonymous

AUDIT_RETENTION = "6 years from the event (accountability, GDPR Art. 5(2)); personal details redacted on erasure"


def declare_platform_models() -> None:
    declare(
        "identity.SubjectKey",
        subject="the subject whose data the key protects",
        purpose="protect each subject's personal data at rest with their own key (GDPR Art. 32)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention="until the subject is erased; the key material is then destroyed, the row kept as proof",
        erasure=Erasure.SHRED,
        fields={
            "id": not_personal("random key id"),
            "kek_id": not_personal(),
            "wrapped_key": not_personal("key material, never exported"),
            "created_at": not_personal(),
            "rewrapped_at": not_personal(),
            "shredded_at": not_personal(),
        },
    )
    declare(
        "compliance.AuditEvent",
        subject="subject_ref (whose data it is); actor_ref (who acted)",
        subject_lookup="subject_ref",
        purpose="prove who did what to whose personal data, and when (accountability)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention=AUDIT_RETENTION,
        erasure=Erasure.SHRED,
        fields={
            "id": not_personal(),
            "occurred_at": not_personal(),
            "action": not_personal(),
            "actor_type": not_personal(),
            "actor_ref": pseudonymous(Category.AUDIT, "opaque user id"),
            "subject_ref": pseudonymous(Category.AUDIT, "opaque user id"),
            "data_key_id": not_personal(),
            "payload": personal(Category.AUDIT, "details and IP, AES-256-GCM under the subject's key"),
            "details": not_personal("only for events with no subject and no actor; secrets masked"),
            "ip_index": pseudonymous(Category.SECURITY, "blind index of the IP"),
            "prev_hash": not_personal(),
            "entry_hash": not_personal(),
        },
        sources=("the data subject", "the service's own systems"),
    )
    declare(
        "compliance.AuditChainHead",
        subject="none: chain bookkeeping",
        purpose="detect deleted entries at the end of the audit log",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention="permanent",
        erasure=Erasure.KEEP,
        legal_exception="holds no personal data",
        fields={
            "id": not_personal(),
            "last_event_id": not_personal(),
            "last_hash": not_personal(),
            "length": not_personal(),
        },
    )
    declare(
        "auditlog.LogEntry",
        subject="object_pk when the object is a user; actor (who changed it)",
        purpose="record staff changes to records (who changed what, when)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention=AUDIT_RETENTION,
        erasure=Erasure.PSEUDONYMISE,
        notes="Encrypted fields are masked in diffs; actor_email, remote_addr and remote_port are never filled.",
        fields={
            "id": not_personal(),
            "content_type": not_personal(),
            "object_pk": pseudonymous(Category.AUDIT, "opaque id of the changed row"),
            "object_id": pseudonymous(Category.AUDIT, "opaque id of the changed row"),
            "object_repr": not_personal("models' __str__ shows ids only"),
            "serialized_data": not_personal("not enabled"),
            "action": not_personal(),
            "changes_text": not_personal("encrypted fields masked"),
            "changes": not_personal("encrypted fields masked"),
            "actor": pseudonymous(Category.AUDIT, "who changed it"),
            "cid": not_personal("correlation id"),
            "timestamp": not_personal(),
            "additional_data": not_personal(),
            "actor_email": not_personal("never filled (compliance.modelchanges)"),
            "remote_addr": not_personal("never filled (AUDITLOG_DISABLE_REMOTE_ADDR)"),
            "remote_port": not_personal("never filled"),
        },
    )
    declare(
        "admin.LogEntry",
        subject="user (the member of staff who acted); object_id when the object is a user",
        purpose="record what staff changed in the admin console",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention=AUDIT_RETENTION,
        erasure=Erasure.PSEUDONYMISE,
        notes="object_repr is the model's __str__, which shows ids only; change_message names fields, not values.",
        fields={
            "user": pseudonymous(Category.AUDIT, "the member of staff"),
            "object_id": pseudonymous(Category.AUDIT),
            "object_repr": not_personal("ids only"),
            "change_message": not_personal("field names only"),
        },
    )
    declare_request_models()
    declare_choice_models()


def declare_request_models() -> None:
    declare(
        "compliance.PrivacyRequest",
        subject="subject (subject_ref keeps the id after erasure)",
        subject_lookup="subject",
        purpose="handle data-subject requests within their legal deadlines and prove it (GDPR Arts. 12-22, CCPA)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention="24 months after the request is closed (accountability; CCPA §7101 record keeping)",
        erasure=Erasure.KEEP,
        legal_exception="GDPR Art. 17(3)(b) legal obligation and (e) legal claims: the record that a request was "
        "handled; its free text is erased with the subject's key",
        fields={
            "id": not_personal(),
            "subject": pseudonymous(Category.ACCOUNT),
            "subject_ref": pseudonymous(Category.ACCOUNT, "opaque user id"),
            "data_key_id": not_personal(),
            "kind": not_personal(),
            "channel": not_personal(),
            "status": not_personal(),
            "details": personal(Category.ACCOUNT, "what the subject wrote, encrypted"),
            "jurisdiction": personal(Category.LOCATION, stored_in_clear="coarse (country or state): drives deadlines"),
            "regime": not_personal(),
            "received_at": not_personal(),
            "received_on": not_personal(),
            "deadlines": not_personal("dates and rules"),
            "ack_due_on": not_personal(),
            "due_on": not_personal(),
            "legal_due_on": not_personal(),
            "acknowledged_at": not_personal(),
            "verified_at": not_personal(),
            "verification_method": not_personal(),
            "extended_at": not_personal(),
            "extension_reason": not_personal("written by an officer; no personal data by policy"),
            "hold_reason": not_personal("written by an officer; no personal data by policy"),
            "hold_placed_by": pseudonymous(Category.AUDIT, "the officer"),
            "hold_placed_at": not_personal(),
            "status_before_hold": not_personal(),
            "denial_basis": not_personal(),
            "denial_text": not_personal("the legal text sent; no personal data by policy"),
            "execute_after": not_personal(),
            "completed_at": not_personal(),
            "progress": not_personal(),
            "duplicate_of": not_personal(),
            "due_soon_alerted_on": not_personal(),
            "overdue_alerted_on": not_personal(),
            "evidence": not_personal("actions, actors (ids), dates, counts, hashes; no personal values"),
            "purposes": not_personal("names of processing purposes"),
        },
    )
    declare(
        "compliance.RequestPause",
        subject="request.subject",
        purpose="record when a request's clock stood still (UK GDPR Art. 12A; EDPB 01/2022)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention="as the request",
        erasure=Erasure.KEEP,
        legal_exception="GDPR Art. 17(3)(b): part of the request record; holds no personal data",
        fields={
            "id": not_personal(),
            "request": not_personal(),
            "started_at": not_personal(),
            "ended_at": not_personal(),
            "reason": not_personal("why the clock stopped; no personal data by policy"),
        },
    )
    declare(
        "compliance.SystemRun",
        subject="request.subject",
        purpose="carry out requests across data systems and keep per-system evidence",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention="as the request",
        erasure=Erasure.KEEP,
        legal_exception="GDPR Art. 17(3)(b) and Art. 5(2): evidence of the erasure; counts only, no personal data",
        fields={
            "id": not_personal(),
            "request": not_personal(),
            "system": not_personal(),
            "action": not_personal(),
            "status": not_personal(),
            "attempts": not_personal(),
            "last_error": not_personal("error class and message; values are never included"),
            "started_at": not_personal(),
            "finished_at": not_personal(),
            "counts": not_personal(),
            "kept": not_personal(),
            "read_back": not_personal(),
        },
    )
    declare(
        "compliance.ExportFile",
        subject="request.subject",
        purpose="deliver a copy of the subject's data (GDPR Arts. 15 and 20)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention="until the download link expires; the file is then deleted",
        erasure=Erasure.DELETE_ROW,
        subject_lookup="request__subject",
        fields={
            "id": not_personal(),
            "request": not_personal(),
            "path": not_personal("a random file name; the content is encrypted under the subject's key"),
            "size": not_personal(),
            "created_at": not_personal(),
            "expires_at": not_personal(),
            "downloaded_at": not_personal(),
            "deleted_at": not_personal(),
        },
    )
    declare(
        "compliance.SuppressionEntry",
        subject="none: a keyed hash of an erased subject's e-mail",
        purpose="recognise an erased subject's address in later imports and sign-ups",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        retention="as long as imports and marketing lists exist",
        erasure=Erasure.KEEP,
        legal_exception="GDPR Art. 17(3)(b)/(e): needed to keep honouring the erasure; holds no readable data",
        fields={
            "id": not_personal(),
            "email_hmac": pseudonymous(Category.CONTACT, "HMAC of the normalised e-mail (suppression purpose)"),
            "created_at": not_personal(),
            "reason": not_personal(),
        },
    )


def declare_choice_models() -> None:
    declare(
        "compliance.ConsentRecord",
        subject="subject (subject_ref keeps the id after erasure)",
        subject_lookup="subject",
        purpose="prove what each listener agreed to, refused or withdrew, when, how and under which notice "
        "(GDPR Art. 7(1), CCPA §7101, COPPA §312.5)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention="as long as the consent is relied on, then 24 months (C-29); kept after erasure as ids only",
        erasure=Erasure.KEEP,
        legal_exception="GDPR Art. 17(3)(b)/(e) and CCPA §1798.105(d): proof that choices were honoured; "
        "ids and purpose names only",
        fields={
            "id": not_personal(),
            "subject": pseudonymous(Category.CONSENT),
            "subject_ref": pseudonymous(Category.CONSENT, "opaque user id"),
            "purpose": personal(Category.CONSENT, stored_in_clear="a purpose name: the choice itself is the record"),
            "granted": personal(Category.CONSENT, stored_in_clear="the choice must be provable and queryable"),
            "actor": not_personal(),
            "actor_ref": pseudonymous(Category.CONSENT, "opaque id of who decided"),
            "legal_basis": not_personal(),
            "notice_version": not_personal(),
            "notice_hash": not_personal(),
            "surface": not_personal(),
            "method": not_personal(),
            "interaction_id": not_personal("a random id of the form or app event"),
            "jurisdiction": personal(Category.LOCATION, stored_in_clear="coarse (country or state)"),
            "request": not_personal(),
            "recorded_at": not_personal(),
        },
    )
    declare(
        "compliance.ProcessingRestriction",
        subject="subject (subject_ref keeps the id after erasure)",
        subject_lookup="subject",
        purpose="mark data whose processing is restricted (GDPR Art. 18) and prove the subject was told "
        "before it was lifted",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention="as the request that placed it",
        erasure=Erasure.KEEP,
        legal_exception="GDPR Art. 17(3)(b): part of the request record; holds no personal data",
        fields={
            "id": not_personal(),
            "subject": pseudonymous(Category.ACCOUNT),
            "subject_ref": pseudonymous(Category.ACCOUNT, "opaque user id"),
            "ground": not_personal(),
            "request": not_personal(),
            "placed_at": not_personal(),
            "lift_notified_at": not_personal(),
            "lifted_at": not_personal(),
            "lifted_by": pseudonymous(Category.AUDIT, "the officer"),
            "lift_reason": not_personal("written by an officer; no personal data by policy"),
        },
    )
