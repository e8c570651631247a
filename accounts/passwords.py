"""Password rules from NIST SP 800-63B-4 and OWASP ASVS 5.0 (issue #3).

At least 15 characters without a second factor, 8 with one; at least 64 allowed (256 here);
length counted in Unicode code points; no composition rules; refused when on the blocklist of
common and breached passwords (Django's list of 20,000, shipped with Django, no network) or when
built from the account's e-mail or name. Every refusal says why.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import CommonPasswordValidator
from django.core.exceptions import ValidationError


@lru_cache(maxsize=1)
def _blocklist() -> frozenset[str]:
    return frozenset(CommonPasswordValidator().passwords)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def is_on_blocklist(password: str) -> bool:
    return _fold(password) in _blocklist()


def problems(
    password: str, *, email: str = "", display_name: str = "", has_second_factor: bool = False
) -> list[ValidationError]:
    found: list[ValidationError] = []
    minimum = settings.PASSWORD_MIN_LENGTH_WITH_MFA if has_second_factor else settings.PASSWORD_MIN_LENGTH
    length = len(password)  # code points, not bytes
    if length < minimum:
        found.append(
            ValidationError(
                f"Use at least {minimum} characters (this one has {length}). A passphrase of a few words works well.",
                code="password_too_short",
            )
        )
    if length > settings.PASSWORD_MAX_LENGTH:
        found.append(
            ValidationError(f"Use at most {settings.PASSWORD_MAX_LENGTH} characters.", code="password_too_long")
        )
    if is_on_blocklist(password):
        found.append(
            ValidationError(
                "This password is on a list of common or breached passwords. Choose another.",
                code="password_on_blocklist",
            )
        )
    folded = _fold(password)
    parts = []
    if email:
        local = _fold(email).split("@", 1)[0]
        parts.append(local)
        parts.extend(p for p in local.replace("_", ".").replace("-", ".").split(".") if p)
    if display_name:
        parts.extend(_fold(display_name).split())
    if any(len(part) >= 4 and part in folded for part in parts):
        found.append(
            ValidationError("Do not build the password from your e-mail address or name.", code="password_personal")
        )
    return found


def validate(password: str, **context: Any) -> None:
    errors = problems(password, **context)
    if errors:
        raise ValidationError(errors)


class PasswordPolicyValidator:
    """The same rules for Django's forms (admin, set-password) through AUTH_PASSWORD_VALIDATORS."""

    def validate(self, password: str, user: Any = None) -> None:
        validate(
            password,
            email=str(getattr(user, "email", "") or ""),
            display_name=str(getattr(user, "display_name", "") or ""),
            has_second_factor=bool(user is not None and user.pk and user.has_second_factor),
        )

    def get_help_text(self) -> str:
        return (
            f"At least {settings.PASSWORD_MIN_LENGTH} characters ({settings.PASSWORD_MIN_LENGTH_WITH_MFA} "
            "with a second factor); not a common or breached password; not built from your e-mail or name."
        )
