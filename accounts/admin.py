"""Support and security staff see accounts here; searching by e-mail goes through the blind index."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, ReadOnlyPasswordHashField
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from accounts.models import AuthSession, SecurityAlert, SecurityEvent, User
from accounts.risk.signals import DESCRIPTIONS
from identity.crypto.envelope import Erased


class UserCreationForm(forms.ModelForm):  # type: ignore[type-arg]
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    class Meta:
        model = User
        fields = ("email", "display_name", "country", "region", "is_staff")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"]
        if User.objects.with_email(email).exists():
            raise forms.ValidationError("An account with this e-mail address already exists.")
        return str(email)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data

    def save(self, commit: bool = True) -> User:
        user: User = super().save(commit=False)
        user.set_password(self.cleaned_data["password1"])
        if commit:
            user.save()
        return user


class UserChangeForm(forms.ModelForm):  # type: ignore[type-arg]
    password = ReadOnlyPasswordHashField(label="Password")

    class Meta:
        model = User
        fields = (
            "email",
            "display_name",
            "date_of_birth",
            "country",
            "region",
            "phone",
            "is_active",
            "is_staff",
            "is_superuser",
            "groups",
            "user_permissions",
        )


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ("id", "email", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff", "is_superuser")
    ordering = ("-date_joined",)
    search_fields = ("id",)
    search_help_text = "Exact e-mail address, phone number, or user id."
    readonly_fields = ("id", "data_key_id", "date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Profile", {"fields": ("display_name", "date_of_birth", "country", "region", "phone")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Record", {"fields": ("data_key_id", "date_joined", "last_login")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "display_name", "country", "region", "is_staff")}),
        ("Password", {"fields": ("password1", "password2")}),
    )
    filter_horizontal = ("groups", "user_permissions")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[User], search_term: str
    ) -> tuple[QuerySet[User], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            return queryset.with_email(term), False  # type: ignore[attr-defined]
        if term.lstrip("+").replace(" ", "").isdigit():
            return queryset.with_phone(term), False  # type: ignore[attr-defined]
        try:
            return queryset.filter(pk=term), False
        except Exception:
            return queryset.none(), False


# -- security analysts ------------------------------------------------------------------------------


def staff(request: HttpRequest) -> User:
    """The signed-in member of staff (the admin lets no one else in)."""
    assert isinstance(request.user, User)
    return request.user


@admin.action(description="Revoke every session (sign the account out everywhere)")
def revoke_all(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[User]) -> None:  # type: ignore[type-arg]
    from accounts.services.sessions import revoke_all_sessions

    total = 0
    for user in queryset:
        total += revoke_all_sessions(user=user, actor=staff(request), reason="revoked_by_staff")
    modeladmin.message_user(request, f"Revoked {total} sessions.")


@admin.action(description="Lock the account (sign out everywhere, refuse sign-in)")
def lock_accounts(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[User]) -> None:  # type: ignore[type-arg]
    from accounts.services.account import lock_account

    for user in queryset:
        lock_account(user=user, actor=staff(request))
    modeladmin.message_user(request, f"Locked {queryset.count()} accounts.")


@admin.action(description="Unlock the account")
def unlock_accounts(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[User]) -> None:  # type: ignore[type-arg]
    from accounts.services.account import unlock_account

    unlocked = 0
    for user in queryset:
        try:
            unlock_account(user=user, actor=staff(request))
            unlocked += 1
        except ValueError as exc:
            modeladmin.message_user(request, f"{user}: {exc}", level="error")
    modeladmin.message_user(request, f"Unlocked {unlocked} accounts.")


UserAdmin.actions = [revoke_all, lock_accounts, unlock_accounts]  # type: ignore[misc]


class ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReadOnly):
    list_display = ("occurred_at", "kind", "decision", "level", "score", "reason_codes", "user")
    list_filter = ("kind", "decision", "level")
    list_select_related = ("user",)
    search_fields = ("=user__id",)
    date_hierarchy = "occurred_at"
    fields = ("occurred_at", "kind", "decision", "level", "score", "reason_text", "user", "device", "context_shown")
    readonly_fields = fields

    @admin.display(description="reasons")
    def reason_codes(self, obj: SecurityEvent) -> str:
        return ", ".join(obj.reasons) or "-"

    @admin.display(description="reasons")
    def reason_text(self, obj: SecurityEvent) -> str:
        return "; ".join(f"{c}: {DESCRIPTIONS.get(c, c)}" for c in obj.reasons) or "-"

    @admin.display(description="context (decrypted for this view; never logged)")
    def context_shown(self, obj: SecurityEvent) -> str:
        if obj.context is None:
            return "-"
        if isinstance(obj.context, Erased):
            return "[erased]"
        context = dict(obj.context)
        context.pop("idx", None)
        return format_html("<pre>{}</pre>", json.dumps(context, indent=2, ensure_ascii=False))


class OpenAlertFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "open"), ("acknowledged", "acknowledged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SecurityAlert]) -> QuerySet[SecurityAlert]:
        if self.value() == "open":
            return queryset.filter(acknowledged_at__isnull=True)
        if self.value() == "acknowledged":
            return queryset.filter(acknowledged_at__isnull=False)
        return queryset


@admin.register(SecurityAlert)
class SecurityAlertAdmin(ReadOnly):
    """Alerts as they happen: the list refreshes itself every 15 seconds (see the template)."""

    change_list_template = "admin/accounts/securityalert/change_list.html"
    list_display = ("raised_at", "severity", "kind", "user", "details", "acknowledged_at", "acknowledged_by")
    list_filter = (OpenAlertFilter, "severity", "kind")
    list_select_related = ("user", "acknowledged_by")
    actions = ["acknowledge"]
    readonly_fields = (
        "raised_at",
        "severity",
        "kind",
        "user",
        "event",
        "details",
        "acknowledged_at",
        "acknowledged_by",
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("accounts.change_securityalert"))

    @admin.action(description="Acknowledge (I am on it)")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[SecurityAlert]) -> None:
        from django.utils import timezone

        from compliance import audit

        count = queryset.filter(acknowledged_at__isnull=True).update(
            acknowledged_at=timezone.now(), acknowledged_by=request.user
        )
        audit.record("accounts.alerts.acknowledged", actor=request.user, data={"count": count})
        self.message_user(request, f"Acknowledged {count} alerts.")


@admin.register(AuthSession)
class AuthSessionAdmin(ReadOnly):
    list_display = ("id", "user", "kind", "created_at", "last_used_at", "expires_at", "revoked_at", "revoked_reason")
    list_filter = ("kind", "revoked_reason")
    list_select_related = ("user",)
    search_fields = ("=user__id", "=id")
    actions = ["revoke"]
    fields = (
        "id",
        "user",
        "kind",
        "device",
        "created_at",
        "last_used_at",
        "expires_at",
        "mfa_at",
        "revoked_at",
        "revoked_reason",
    )
    readonly_fields = fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("accounts.change_authsession"))

    @admin.action(description="Revoke the selected sessions")
    def revoke(self, request: HttpRequest, queryset: QuerySet[AuthSession]) -> None:
        from accounts.services.sessions import revoke_session

        count = sum(int(revoke_session(session=s, actor=staff(request), reason="revoked_by_staff")) for s in queryset)
        self.message_user(request, f"Revoked {count} sessions.")
