"""Support and security staff see accounts here; searching by e-mail goes through the blind index."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, ReadOnlyPasswordHashField
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User


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
