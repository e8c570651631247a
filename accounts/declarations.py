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
            "date_joined": personal(
                Category.ACCOUNT, stored_in_clear="a timestamp: needed in SQL for ordering and retention"
            ),
            "groups": not_personal("staff roles"),
            "user_permissions": not_personal("staff permissions"),
        },
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
        ("axes.AccessLog", "90 days (sign-in history shown to the listener)"),
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
    for label in ("otp_totp.TOTPDevice", "otp_static.StaticDevice"):
        declare(
            label,
            subject="user",
            purpose=SECURITY_PURPOSE,
            lawful_basis=LawfulBasis.CONTRACT,
            retention="until the factor is removed or the account erased",
            erasure=Erasure.DELETE_ROW,
            fields={"user": pseudonymous(Category.AUTHENTICATION), "name": personal(Category.AUTHENTICATION)},
        )
