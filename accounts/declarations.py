"""What accounts, and the libraries it uses for sign-in, hold about people (compliance registry)."""

from __future__ import annotations

from compliance.registry import (
    Category,
    Erasure,
    LawfulBasis,
    declare,
    not_personal,
    personal,
    pseudonymous,
    secret,
)

ACCOUNT_PURPOSE = "provide the listener's account and the streaming service"
SECURITY_PURPOSE = "protect accounts against takeover and abuse (sign-in security, lockout)"


def declare_account_models() -> None:
    declare(
        "accounts.User",
        subject="the row is the data subject",
        purpose=ACCOUNT_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention="while the account exists; erased on request after the grace period",
        erasure=Erasure.SHRED,
        fields={
            "id": pseudonymous(Category.ACCOUNT, "opaque user id"),
            "data_key_id": not_personal("id of the subject's data key"),
            "email": personal(Category.CONTACT),
            "email_index": pseudonymous(Category.CONTACT, "blind index of the e-mail"),
            "display_name": personal(Category.IDENTITY),
            "date_of_birth": personal(Category.IDENTITY, "age gating (COPPA, GDPR Art. 8)"),
            "country": personal(Category.LOCATION, "jurisdiction of requests"),
            "region": personal(Category.LOCATION, "jurisdiction of requests (US state)"),
            "phone": personal(Category.CONTACT),
            "phone_index": pseudonymous(Category.CONTACT, "blind index of the phone number"),
            "password": secret("Argon2id hash"),
            "last_login": personal(
                Category.SECURITY, stored_in_clear="a timestamp: needed in SQL for inactivity purges"
            ),
            "is_active": not_personal(),
            "is_staff": not_personal(),
            "is_superuser": not_personal(),
            "email_verified_at": not_personal(),
            "password_changed_at": not_personal(),
            "must_change_password": not_personal(),
            "signin_summary": personal(
                Category.SECURITY,
                "the last 200 successful sign-ins for the risk engine: time, network and country (blind "
                "indexes), the newest one's place",
            ),
            "date_joined": personal(
                Category.ACCOUNT, stored_in_clear="a timestamp: needed in SQL for ordering and retention"
            ),
            "groups": not_personal("staff roles"),
            "user_permissions": not_personal("staff permissions"),
        },
    )
    declare(
        "accounts.ParentalConsentRequest",
        subject="child (and the parent, by e-mail)",
        purpose="obtain verifiable parental consent before collecting a child's data (COPPA §312.5)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        retention="until consent is decided; the parent's e-mail is deleted if no consent comes in reasonable time",
        erasure=Erasure.DELETE_ROW,
        fields={
            "id": not_personal(),
            "child": pseudonymous(Category.ACCOUNT),
            "data_key_id": not_personal(),
            "parent_email": personal(Category.CONTACT, "the parent's address"),
            "parent_email_index": pseudonymous(Category.CONTACT),
            "requested_at": not_personal(),
            "status": not_personal(),
            "decided_at": not_personal(),
        },
        sources=("the child", "the parent"),
    )
    declare(
        "sessions.Session",
        subject="the user id inside session_data",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention="idle 1 hour, absolute 24 hours; all revoked on password change or erasure",
        erasure=Erasure.DELETE_ROW,
        fields={
            "session_key": secret("bearer secret"),
            "session_data": pseudonymous(Category.SECURITY, "signed; holds the user id"),
            "expire_date": not_personal(),
        },
    )
    axes_fields = {
        "username": pseudonymous(Category.SECURITY, "blind index of the e-mail, not the e-mail"),
        "ip_address": pseudonymous(Category.SECURITY, "keyed pseudonym of the IP, not the IP"),
        "user_agent": personal(Category.SECURITY),
        "http_accept": not_personal(),
        "path_info": not_personal(),
        "attempt_time": not_personal(),
    }
    for label, retention in (
        ("axes.AccessAttempt", "until the cool-off ends or the next successful sign-in"),
        ("axes.AccessLog", "disabled (AXES_DISABLE_ACCESS_LOG = True): it would store the e-mail in clear"),
        ("axes.AccessFailureLog", "disabled (AXES_ENABLE_ACCESS_FAILURE_LOG = False)"),
    ):
        declare(
            label,
            subject="username (blind index of the e-mail)",
            purpose=SECURITY_PURPOSE,
            lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
            retention=retention,
            erasure=Erasure.DELETE_ROW,
            fields=axes_fields,
            sources=("the sign-in request",),
        )
    declare_sign_in_models()


FACTOR_RETENTION = "until the factor is removed or the account erased"
DEVICE_FIELDS = {
    "id": not_personal(),
    "user": pseudonymous(Category.AUTHENTICATION, "owner"),
    "name": personal(Category.AUTHENTICATION, stored_in_clear="a label the listener chose for the factor"),
    "confirmed": not_personal(),
    "throttling_failure_timestamp": not_personal(),
    "throttling_failure_count": not_personal(),
}


def declare_sign_in_models() -> None:
    declare(
        "accounts.TotpFactor",
        subject="user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention=FACTOR_RETENTION,
        erasure=Erasure.DELETE_ROW,
        fields={
            **DEVICE_FIELDS,
            "created_at": not_personal(),
            "last_used_at": not_personal(),
            "data_key_id": not_personal(),
            "secret": secret("TOTP key, AES-256-GCM under the listener's key"),
            "digits": not_personal(),
            "step": not_personal(),
            "t0": not_personal(),
            "tolerance": not_personal(),
            "last_t": not_personal(),
        },
    )
    declare(
        "accounts.BackupCodeFactor",
        subject="user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention=FACTOR_RETENTION,
        erasure=Erasure.DELETE_ROW,
        fields={**DEVICE_FIELDS, "generated_at": not_personal()},
    )
    declare_passkey_models()
    declare(
        "accounts.BackupCode",
        subject="factor.user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention=FACTOR_RETENTION,
        erasure=Erasure.DELETE_ROW,
        fields={
            "id": not_personal(),
            "factor": not_personal(),
            "code_hash": secret("keyed digest of a single-use code"),
            "used_at": not_personal(),
        },
    )
    declare(
        "accounts.KnownDevice",
        subject="user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        retention="while the account exists; listed to the listener, who can remove it",
        erasure=Erasure.DELETE_ROW,
        fields={
            "id": not_personal(),
            "user": pseudonymous(Category.SECURITY),
            "data_key_id": not_personal(),
            "device_index": pseudonymous(Category.SECURITY, "blind index of the app's device id"),
            "name": personal(Category.SECURITY),
            "platform": not_personal(),
            "first_seen_at": personal(Category.SECURITY, stored_in_clear="timestamps drive the risk engine"),
            "last_seen_at": personal(Category.SECURITY, stored_in_clear="timestamps drive the risk engine"),
        },
    )
    declare(
        "accounts.SecurityEvent",
        subject="user (or account_index for attempts on unknown accounts)",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        retention="13 months (shown to the listener; replayed by the risk simulation)",
        erasure=Erasure.DELETE_ROW,
        fields={
            "id": not_personal(),
            "user": pseudonymous(Category.SECURITY),
            "data_key_id": not_personal(),
            "occurred_at": personal(Category.SECURITY, stored_in_clear="time windows for velocity checks"),
            "kind": not_personal(),
            "decision": not_personal(),
            "level": not_personal(),
            "score": not_personal(),
            "reasons": not_personal("signal codes and weights only"),
            "device": pseudonymous(Category.SECURITY),
            "account_index": pseudonymous(Category.SECURITY, "blind index of the e-mail tried"),
            "ip_index": pseudonymous(Category.SECURITY, "blind index of the IP"),
            "network_index": pseudonymous(Category.SECURITY, "blind index of the IP prefix"),
            "country_index": pseudonymous(Category.LOCATION, "blind index of the country"),
            "context": personal(Category.SECURITY, "IP, place and user agent, encrypted"),
        },
        sources=("the sign-in request",),
    )
    declare(
        "accounts.SecurityAlert",
        subject="user, when the alert concerns one account",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        retention="13 months",
        erasure=Erasure.DELETE_ROW,
        fields={
            "id": not_personal(),
            "raised_at": not_personal(),
            "kind": not_personal(),
            "severity": not_personal(),
            "user": pseudonymous(Category.SECURITY),
            "event": pseudonymous(Category.SECURITY),
            "details": not_personal("counts and signal codes only"),
            "acknowledged_at": not_personal(),
            "acknowledged_by": pseudonymous(Category.AUDIT, "the analyst"),
        },
    )
    session_fields = {
        "id": not_personal(),
        "user": pseudonymous(Category.SECURITY),
        "data_key_id": not_personal(),
        "kind": not_personal(),
        "device": pseudonymous(Category.SECURITY),
        "created_at": personal(Category.SECURITY, stored_in_clear="session lifetime"),
        "last_used_at": personal(Category.SECURITY, stored_in_clear="idle timeout"),
        "expires_at": not_personal(),
        "revoked_at": not_personal(),
        "revoked_reason": not_personal(),
        "mfa_at": not_personal(),
        "web_session_hash": secret("digest of the web session key"),
        "context": personal(Category.SECURITY, "IP, coarse place, user agent, encrypted"),
    }
    declare(
        "accounts.AuthSession",
        subject="user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention="until revoked or expired, then 30 days",
        erasure=Erasure.DELETE_ROW,
        fields=session_fields,
    )
    token_fields = {
        "token_hash": secret("SHA-256 of the token"),
        "session": pseudonymous(Category.SECURITY),
        "created_at": not_personal(),
        "expires_at": not_personal(),
    }
    declare(
        "accounts.AccessToken",
        subject="session.user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention="15 minutes",
        erasure=Erasure.DELETE_ROW,
        fields=token_fields,
    )
    declare(
        "accounts.RefreshToken",
        subject="session.user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention="until the session's absolute lifetime ends",
        erasure=Erasure.DELETE_ROW,
        fields={**token_fields, "used_at": not_personal()},
    )
    declare(
        "accounts.MfaChallenge",
        subject="user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention="minutes (single use)",
        erasure=Erasure.DELETE_ROW,
        fields={
            "token_hash": secret("SHA-256 of the mfa_token"),
            "user": pseudonymous(Category.SECURITY),
            "data_key_id": not_personal(),
            "purpose": not_personal(),
            "session": pseudonymous(Category.SECURITY),
            "device": pseudonymous(Category.SECURITY),
            "methods": not_personal(),
            "risk": not_personal("level and signal codes"),
            "created_at": not_personal(),
            "expires_at": not_personal(),
            "used_at": not_personal(),
            "attempts": not_personal(),
            "email_code_hash": secret("keyed digest of the e-mailed code"),
            "email_code_expires_at": not_personal(),
            "email_codes_sent": not_personal(),
            "context": personal(Category.SECURITY, "sign-in context, encrypted"),
        },
    )


def declare_passkey_models() -> None:
    """django-otp-webauthn's tables (a library's, so stored as it ships: no field is ours to encrypt).

    A passkey's private key never leaves the listener's authenticator; the server keeps its public
    key, which can check a signature but not make one.
    """
    declare(
        "django_otp_webauthn.WebAuthnCredential",
        subject="user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention=FACTOR_RETENTION,
        erasure=Erasure.DELETE_ROW,
        fields={
            "id": not_personal(),
            "user": DEVICE_FIELDS["user"],
            "confirmed": not_personal(),
            "name": personal(
                Category.AUTHENTICATION,
                stored_in_clear="a label for the passkey: the browser it was made in, or the listener's",
            ),
            "created_at": personal(
                Category.AUTHENTICATION, stored_in_clear="library column: when the passkey was added"
            ),
            "last_used_at": personal(
                Category.SECURITY, stored_in_clear="library column: when the passkey last confirmed a sign-in"
            ),
            "credential_type": not_personal("always public-key"),
            "credential_id": pseudonymous(
                Category.AUTHENTICATION,
                "identifier the authenticator chose for this site; a security key may wrap its own key in it, "
                "encrypted by the key",
            ),
            "credential_id_sha256": pseudonymous(Category.AUTHENTICATION, "SHA-256 of the credential id, for lookups"),
            "public_key": personal(Category.AUTHENTICATION, "COSE public key: checks signatures, cannot make them"),
            "sign_count": personal(
                Category.SECURITY,
                "the authenticator's use counter, checked to detect a cloned authenticator; a security key "
                "with one counter for every site reveals how often it is used",
                stored_in_clear="library column, compared on every use",
            ),
            "transports": not_personal("how the browser reaches the authenticator: usb, nfc, internal, hybrid"),
            "aaguid": personal(
                Category.AUTHENTICATION,
                "make and model of the authenticator (often all zeros)",
                stored_in_clear="library column",
            ),
            "discoverable": not_personal("whether the authenticator stores the passkey itself"),
            "backup_eligible": not_personal("authenticator flag: the passkey can be synced"),
            "backup_state": not_personal("authenticator flag: the passkey is synced"),
        },
        sources=("the listener's authenticator, through the browser",),
        subject_lookup="user",  # export and erasure find the rows (accounts.lookups keeps the others)
    )
    declare(
        "django_otp_webauthn.WebAuthnAttestation",
        subject="credential.user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention=FACTOR_RETENTION + " (deleted with its passkey)",
        erasure=Erasure.DELETE_ROW,
        fields={
            "id": not_personal(),
            "credential": pseudonymous(Category.AUTHENTICATION, "the passkey"),
            "fmt": not_personal("attestation format; we ask for none"),
            "data": personal(
                Category.AUTHENTICATION,
                "the registration's attestation object: credential id, public key, flags and counter "
                "(no maker's certificate: attestation none)",
            ),
            "client_data_json": personal(
                Category.SECURITY, "what the browser signed at registration: the site's origin and the challenge"
            ),
        },
        sources=("the listener's authenticator, through the browser",),
        subject_lookup="credential__user",
    )
    declare(
        "django_otp_webauthn.WebAuthnUserHandle",
        subject="user",
        purpose=SECURITY_PURPOSE,
        lawful_basis=LawfulBasis.CONTRACT,
        retention="while the account exists (kept when passkeys are removed, so a new one gets the same handle)",
        erasure=Erasure.DELETE_ROW,
        fields={
            "user": pseudonymous(Category.AUTHENTICATION, "owner (the primary key)"),
            "handle_hex": pseudonymous(
                Category.AUTHENTICATION,
                "random 64-byte handle our passkeys carry on the listener's authenticators instead of the user id",
            ),
        },
        subject_lookup="user",
    )
