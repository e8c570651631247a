"""Listeners and staff. Every personal field is AES-256-GCM ciphertext under the user's own key."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone

from identity.crypto.blind import email_index, phone_index
from identity.crypto.fields import (
    EncryptedDateField,
    EncryptedEmailField,
    EncryptedJSONField,
    EncryptedQuerySet,
    EncryptedTextField,
)


class UserQuerySet(EncryptedQuerySet):
    def with_email(self, email: str) -> UserQuerySet:
        """Exact, case-insensitive lookup through the blind index (the column itself is ciphertext)."""
        return self.filter(email_index=email_index(email))

    def with_phone(self, phone: str) -> UserQuerySet:
        return self.filter(phone_index=phone_index(phone))


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_queryset(self) -> UserQuerySet:
        return UserQuerySet(self.model, using=self._db)

    def with_email(self, email: str) -> UserQuerySet:
        return self.get_queryset().with_email(email)

    def with_phone(self, phone: str) -> UserQuerySet:
        return self.get_queryset().with_phone(phone)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get_queryset().with_email(username or "").get()

    def create_user(
        self,
        email: str,
        password: str | None = None,
        *,
        display_name: str = "",
        phone: str = "",
        date_of_birth: datetime.date | None = None,
        country: str = "",
        region: str = "",
        **extra: Any,
    ) -> User:
        if not email:
            raise ValueError("an e-mail address is required")
        user = self.model(
            email=self.normalize_email(email).strip(),
            display_name=display_name,
            phone=phone,
            date_of_birth=date_of_birth,
            country=country.upper(),
            region=region.upper(),
            **extra,
        )
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        if not extra["is_staff"] or not extra["is_superuser"]:
            raise ValueError("a superuser must have is_staff and is_superuser set")
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A listener, a parent, or a member of staff. Signs in with an e-mail address.

    ``email_index``/``phone_index`` are blind indexes kept in step with the encrypted values by
    ``save()`` (an invariant of the row, not business logic): lookups and uniqueness use them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    data_key_id = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)

    email = EncryptedEmailField("e-mail address")
    email_index = models.CharField(max_length=64, unique=True, editable=False)
    display_name = EncryptedTextField("display name", max_length=150, blank=True)
    date_of_birth = EncryptedDateField("date of birth", null=True, blank=True)
    country = EncryptedTextField("country (ISO 3166-1 alpha-2)", max_length=2, blank=True)
    region = EncryptedTextField("region (ISO 3166-2)", max_length=6, blank=True)
    phone = EncryptedTextField("phone number", max_length=32, blank=True)
    phone_index = models.CharField(max_length=64, blank=True, editable=False, db_index=True)

    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    password_changed_at = models.DateTimeField(null=True, blank=True)
    # Set by "this was not me": the next sign-in must choose a new password.
    must_change_password = models.BooleanField(default=False)
    # The last successful sign-ins as the risk engine reads them (accounts.risk.summary), written
    # only by the sign-in services, with QuerySet.update() in the statement that sets last_login.
    signin_summary = EncryptedJSONField("sign-in summary", null=True, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []  # type: ignore[misc]

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"

    def __str__(self) -> str:
        # Ids only: this string lands in admin history, auditlog entries and log lines.
        return f"user {self.pk}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.refresh_indexes()
        update_fields = kwargs.get("update_fields")
        if update_fields is None and not self._state.adding and not kwargs.get("force_insert"):
            # A whole-row save (the admin, a form) must not write back a sign-in summary read
            # before a sign-in that happened since: only the sign-in services write it.
            update_fields = kwargs["update_fields"] = SAVED_BY_DEFAULT
        if update_fields is not None:
            extra = {"email": "email_index", "phone": "phone_index"}
            kwargs["update_fields"] = set(update_fields) | {extra[f] for f in update_fields if f in extra}
        super().save(*args, **kwargs)

    def refresh_indexes(self) -> None:
        if isinstance(self.email, str) and self.email:
            self.email_index = email_index(self.email)
        if isinstance(self.phone, str):
            self.phone_index = phone_index(self.phone) if self.phone else ""

    def seal_signin_summary(self, document: dict[str, Any]) -> bytes:
        """The summary encrypted under this user's key, for ``QuerySet.update()`` (which cannot encrypt)."""
        self.signin_summary = document
        sealed = User._meta.get_field("signin_summary").encrypt_for(self, document)  # type: ignore[attr-defined]
        assert isinstance(sealed, bytes)
        return sealed

    @property
    def has_second_factor(self) -> bool:
        known = self.__dict__.get("_has_second_factor")
        if known is not None:  # read with the row by the bearer-token lookup (accounts.services.sessions)
            return bool(known)
        from accounts.services.factors import methods_for

        return bool(methods_for(self))

    def get_full_name(self) -> str:
        return str(self.display_name or "")

    def get_short_name(self) -> str:
        return self.get_full_name()


SAVED_BY_DEFAULT = frozenset(
    f.name for f in User._meta.concrete_fields if not f.primary_key and f.name != "signin_summary"
)


class ParentalConsentRequest(models.Model):
    """A child under 13 signed up: the account stays inactive until a parent consents (COPPA
    §312.5). The parent flow itself comes later; this keeps what it needs."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting for the parent"
        GRANTED = "granted", "consent given"
        REFUSED = "refused", "consent refused"
        EXPIRED = "expired", "no answer in time"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    child = models.OneToOneField(User, on_delete=models.CASCADE, related_name="parental_consent")
    data_key_id = models.UUIDField()
    parent_email = EncryptedEmailField()
    parent_email_index = models.CharField(max_length=64, db_index=True)
    requested_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    decided_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"parental consent request {self.pk}"
