"""Input and output shapes of the accounts API (CONTRACT.md). Inputs validate everything."""

from __future__ import annotations

import datetime
import re
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from accounts import passwords
from accounts.models import KnownDevice
from accounts.risk.signals import DESCRIPTIONS
from accounts.services.registration import COPPA_AGE, age_on

COUNTRY = re.compile(r"^[A-Za-z]{2}$")
REGION = re.compile(r"^[A-Za-z]{2}-[A-Za-z0-9]{1,3}$")
METHODS = ["totp", "backup_code", "email", "webauthn"]


def _country(value: str) -> str:
    if not COUNTRY.match(value):
        raise serializers.ValidationError("Use an ISO 3166-1 alpha-2 code, such as DE or US.")
    return value.upper()


class RegisterInput(serializers.Serializer):  # type: ignore[type-arg]
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(trim_whitespace=False, max_length=1024, write_only=True)
    date_of_birth = serializers.DateField(input_formats=["%Y-%m-%d"])
    country = serializers.CharField(max_length=2)
    region = serializers.CharField(max_length=6, required=False, allow_blank=True, default="")
    display_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    parent_email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")

    def validate_country(self, value: str) -> str:
        return _country(value)

    def validate_region(self, value: str) -> str:
        if value and not REGION.match(value):
            raise serializers.ValidationError("Use an ISO 3166-2 code, such as US-CA.")
        return value.upper()

    def validate_date_of_birth(self, value: datetime.date) -> datetime.date:
        today = timezone.now().date()
        if value > today:
            raise serializers.ValidationError("The date of birth is in the future.")
        if value.year < 1900:
            raise serializers.ValidationError("Enter a date of birth after 1900.")
        return value

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        if data["region"] and not data["region"].startswith(data["country"] + "-"):
            errors["region"] = ["The region must be in the country given."]
        if age_on(data["date_of_birth"], timezone.now().date()) < COPPA_AGE and not data["parent_email"]:
            errors["parent_email"] = ["A parent's e-mail address is required under 13."]
        if data["parent_email"] and data["parent_email"].casefold() == data["email"].casefold():
            errors["parent_email"] = ["The parent's address must differ from the child's."]
        found = passwords.problems(
            data["password"], email=data["email"], display_name=data["display_name"], has_second_factor=False
        )
        if found:
            errors["password"] = [str(e.message) for e in found]
        if errors:
            raise serializers.ValidationError(errors)
        return data


class ProfileOutput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    email = serializers.EmailField()
    display_name = serializers.CharField()
    date_of_birth = serializers.DateField(allow_null=True)
    country = serializers.CharField()
    region = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    mfa_enrolled = serializers.BooleanField()
    email_verified = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class RegisterOutput(serializers.Serializer):  # type: ignore[type-arg]
    user = ProfileOutput()


class ConsentRequiredOutput(serializers.Serializer):  # type: ignore[type-arg]
    status = serializers.ChoiceField(choices=["parental_consent_required"])


class DeviceInput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    platform = serializers.ChoiceField(choices=KnownDevice.Platform.choices, required=False, default="other")


class LoginInput(serializers.Serializer):  # type: ignore[type-arg]
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(trim_whitespace=False, max_length=1024, write_only=True)
    device = DeviceInput()


class RiskOutput(serializers.Serializer):  # type: ignore[type-arg]
    level = serializers.ChoiceField(choices=["low", "medium", "high"], allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())


class TokensOutput(serializers.Serializer):  # type: ignore[type-arg]
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.ChoiceField(choices=["Bearer"])
    expires_in = serializers.IntegerField()
    session_id = serializers.CharField()
    risk = RiskOutput(required=False)


class MfaRequiredOutput(serializers.Serializer):  # type: ignore[type-arg]
    mfa_required = serializers.BooleanField()
    mfa_token = serializers.CharField()
    methods = serializers.ListField(child=serializers.ChoiceField(choices=METHODS))
    risk = RiskOutput()


class MfaVerifyInput(serializers.Serializer):  # type: ignore[type-arg]
    mfa_token = serializers.CharField(max_length=200)
    method = serializers.ChoiceField(choices=METHODS)
    code = serializers.CharField(max_length=64, trim_whitespace=True)


class MfaTokenInput(serializers.Serializer):  # type: ignore[type-arg]
    mfa_token = serializers.CharField(max_length=200)


class RefreshInput(serializers.Serializer):  # type: ignore[type-arg]
    refresh = serializers.CharField(max_length=200)


class MePatchInput(serializers.Serializer):  # type: ignore[type-arg]
    display_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    country = serializers.CharField(max_length=2, required=False)
    region = serializers.CharField(max_length=6, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False)

    def validate_country(self, value: str) -> str:
        return _country(value)

    def validate_region(self, value: str) -> str:
        if value and not REGION.match(value):
            raise serializers.ValidationError("Use an ISO 3166-2 code, such as US-CA.")
        return value.upper()

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        """The region must lie in the country: the one sent, else the account's current one
        (``context["current_country"]``). The API and the portal's profile form both rely on this."""
        country = data.get("country") or self.context.get("current_country", "")
        region = data.get("region")
        if region and country and not region.startswith(f"{country}-"):
            raise serializers.ValidationError({"region": ["The region must be in the country given."]})
        return data

    def validate_phone(self, value: str) -> str:
        if value and not re.match(r"^\+?[0-9 ()-]{6,32}$", value):
            raise serializers.ValidationError("Use digits, spaces, brackets and dashes, with an optional leading +.")
        return value


class PasswordChangeInput(serializers.Serializer):  # type: ignore[type-arg]
    current_password = serializers.CharField(trim_whitespace=False, max_length=1024, write_only=True)
    new_password = serializers.CharField(trim_whitespace=False, max_length=1024, write_only=True)


class SessionOutput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    kind = serializers.CharField()
    device = serializers.DictField(allow_null=True)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    country = serializers.CharField(allow_null=True)
    current = serializers.BooleanField()


class ReasonOutput(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField()
    description = serializers.CharField()


def reasons_out(codes: list[str]) -> list[dict[str, str]]:
    return [{"code": code, "description": DESCRIPTIONS.get(code, code)} for code in codes]


class SecurityEventOutput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    kind = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    decision = serializers.CharField(allow_blank=True)
    level = serializers.CharField(allow_blank=True)
    reasons = ReasonOutput(many=True)
    country = serializers.CharField(allow_null=True)
    device = serializers.CharField(allow_null=True)


class FactorOutput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=["totp", "backup_code", "webauthn"])
    name = serializers.CharField()
    confirmed = serializers.BooleanField()


class FactorCreateInput(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.ChoiceField(choices=["totp"])
    name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="Authenticator app")


class FactorCreatedOutput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    type = serializers.CharField()
    otpauth_uri = serializers.CharField()
    confirmed = serializers.BooleanField()


class CodeInput(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField(max_length=16)


class BackupCodesOutput(serializers.Serializer):  # type: ignore[type-arg]
    codes = serializers.ListField(child=serializers.CharField())
