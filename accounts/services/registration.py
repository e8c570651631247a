"""Sign-up: a listener can sign in at once; the e-mail stays unverified until the welcome link is
followed; a child under 13 waits, inactive, for a parent (COPPA). Enumeration-safe: signing up
with an address that has an account answers exactly as a new sign-up does, and the owner is told."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ParentalConsentRequest, User
from accounts.notifications import email_verification_token, notify
from compliance import audit, suppression
from identity.crypto.blind import email_index

COPPA_AGE = 13


def age_on(birth: datetime.date, day: datetime.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class Registration:
    status: str  # created | parental_consent_required
    profile: dict[str, Any]


def _profile(
    user_id: uuid.UUID,
    *,
    email: str,
    display_name: str,
    date_of_birth: datetime.date,
    country: str,
    region: str,
    created_at: datetime.datetime,
) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "email": email,
        "display_name": display_name,
        "date_of_birth": date_of_birth.isoformat(),
        "country": country,
        "region": region,
        "phone": None,
        "mfa_enrolled": False,
        "email_verified": False,
        "created_at": created_at.isoformat(),
    }


def register_listener(
    *,
    email: str,
    password: str,
    date_of_birth: datetime.date,
    country: str,
    region: str = "",
    display_name: str = "",
    parent_email: str = "",
    ip: str | None = None,
) -> Registration:
    """Create the account (inputs already validated). Same answer whether or not the address is taken."""
    now = timezone.now()
    child = age_on(date_of_birth, now.date()) < COPPA_AGE
    status = "parental_consent_required" if child else "created"
    existing = User.objects.with_email(email).first()
    if existing is not None:
        make_password(password)  # the same work as a real sign-up, so timing tells nothing
        notify(existing, "signup_attempt")
        fake = _profile(
            uuid.uuid4(),
            email=email,
            display_name=display_name,
            date_of_birth=date_of_birth,
            country=country.upper(),
            region=region.upper(),
            created_at=now,
        )
        return Registration(status, fake)
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email=email,
                password=password,
                display_name=display_name,
                date_of_birth=date_of_birth,
                country=country,
                region=region,
                is_active=not child,
            )
            if child:
                ParentalConsentRequest.objects.create(
                    child=user,
                    data_key_id=user.data_key_id,
                    parent_email=parent_email,
                    parent_email_index=email_index(parent_email),
                )
            # An erased listener may come back: a new account, recognised as such, never linked to the old one.
            returning = suppression.is_suppressed(email)
            audit.record(
                "accounts.user.registered",
                actor=user,
                subject=user,
                data={"child": child, "country": country, "returning_after_erasure": returning},
                ip=ip,
            )
            if not child:
                notify(user, "welcome")
    except IntegrityError:
        # Two sign-ups raced for the same address: the loser answers like any taken address.
        fake = _profile(
            uuid.uuid4(),
            email=email,
            display_name=display_name,
            date_of_birth=date_of_birth,
            country=country.upper(),
            region=region.upper(),
            created_at=now,
        )
        return Registration(status, fake)
    return Registration(
        status,
        _profile(
            user.pk,
            email=str(user.email),
            display_name=str(user.display_name),
            date_of_birth=date_of_birth,
            country=str(user.country),
            region=str(user.region),
            created_at=user.date_joined,
        ),
    )


@transaction.atomic
def verify_email(*, token: str, max_age_days: int = 7) -> User | None:
    """Follow the welcome link: marks the address verified if it is still the account's address."""
    try:
        data = signing.loads(token, salt="accounts.verify-email", max_age=max_age_days * 86400)
    except signing.BadSignature:
        return None
    user = User.objects.filter(pk=data.get("u"), email_index=data.get("e")).first()
    if user is None:
        return None
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
        audit.record("accounts.user.email_verified", actor=user, subject=user)
    return user


__all__ = ["Registration", "email_verification_token", "register_listener", "verify_email"]
