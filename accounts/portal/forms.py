"""The portal's forms. Where the API has an input serializer, the form delegates to it, so both
doors accept exactly the same input with the same messages (sign-up, profile, e-mail change);
password rules come from ``accounts.passwords`` with every reason."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib.auth.password_validation import password_validators_help_texts
from rest_framework import serializers

from accounts import passwords
from accounts.api.serializers import MePatchInput, RegisterInput
from accounts.models import User

METHOD_LABELS = {
    "totp": "Authenticator app",
    "backup_code": "Backup code",
    "email": "Code sent by e-mail",
    "webauthn": "Passkey",
}
REQUIRED = "This field is required."


def _password_help() -> str:
    return " ".join(password_validators_help_texts())


def country_field() -> forms.CharField:
    """The country of sign-up and of the profile: the API checks it (ISO 3166-1 alpha-2)."""
    return forms.CharField(
        label="Country",
        max_length=2,
        help_text="Two letters, such as DE, FR or US.",
        widget=forms.TextInput(attrs={"autocomplete": "country", "autocapitalize": "characters", "size": "3"}),
    )


def region_field(label: str, help_text: str) -> forms.CharField:
    """The state or region (ISO 3166-2), which must lie in the country (MePatchInput, RegisterInput)."""
    return forms.CharField(
        label=label,
        required=False,
        max_length=6,
        help_text=help_text,
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "size": "7"}),
    )


class PortalForm(forms.Form):
    """Labels without Django's trailing colon."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SerializerForm(PortalForm):
    """A form whose validation is an API input serializer's. The form's own fields only render
    the inputs (labels, help, browser hints); the serializer decides what is valid."""

    serializer_class: ClassVar[type[serializers.Serializer]]  # type: ignore[type-arg]
    partial = False
    # Sign-up omits empty inputs so that optional fields take the serializer's defaults; a
    # profile form sends them, since clearing a field is a change.
    omit_blank = True

    def serializer_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in self.fields:
            value = self.data.get(self.add_prefix(name), "")
            if value == "" and self.omit_blank:
                continue
            data[name] = value
        return data

    def full_clean(self) -> None:
        self._errors = forms.utils.ErrorDict()
        self.cleaned_data = {}
        if not self.is_bound:
            return
        serializer = self.serializer_class(data=self.serializer_data(), partial=self.partial)
        if serializer.is_valid():
            self.cleaned_data = dict(serializer.validated_data)
        else:
            self._add_serializer_errors(serializer.errors)
        self.clean_more()

    def _add_serializer_errors(self, errors: Any) -> None:
        for name, messages in errors.items():
            field = name if name in self.fields else None
            for message in messages if isinstance(messages, list) else [messages]:
                code = getattr(message, "code", "")
                text = REQUIRED if code in {"required", "blank", "null"} else str(message)
                self.add_error(field, text)

    def clean_more(self) -> None:
        """Checks after the serializer's (hook for subclasses)."""


class SignUpForm(SerializerForm):
    """The fields and rules of the API's RegisterInput (CONTRACT.md POST /auth/register)."""

    serializer_class = RegisterInput

    email = forms.CharField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    display_name = forms.CharField(
        label="Display name (optional)",
        required=False,
        max_length=150,
        help_text="What we call you. It can be a nickname.",
        widget=forms.TextInput(attrs={"autocomplete": "nickname"}),
    )
    date_of_birth = forms.CharField(
        label="Date of birth",
        help_text="We ask to know which privacy rules protect you.",
        widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}),
    )
    country = country_field()
    region = region_field("State or region (optional)", "In the US, your state, such as US-CA.")
    parent_email = forms.CharField(
        label="A parent's e-mail address (only if you are under 13)",
        required=False,
        max_length=254,
        help_text="Under 13, a parent or guardian must agree before you can use your account.",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password"].help_text = _password_help()

    def _add_serializer_errors(self, errors: Any) -> None:
        super()._add_serializer_errors(errors)
        # The serializer checks the password only once every field is valid; tell every reason at once.
        password = self.data.get(self.add_prefix("password"), "")
        if password and "password" not in self._errors:
            for problem in passwords.problems(
                password,
                email=str(self.data.get(self.add_prefix("email"), "")),
                display_name=str(self.data.get(self.add_prefix("display_name"), "")),
            ):
                self.add_error("password", str(problem.message))


class ProfileForm(SerializerForm):
    """Rectification (GDPR Art. 16) with the API's MePatchInput; e-mail has its own page (step-up)."""

    serializer_class = MePatchInput
    partial = True
    omit_blank = False

    display_name = forms.CharField(
        label="Display name",
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "nickname"}),
    )
    phone = forms.CharField(
        label="Phone number",
        required=False,
        max_length=32,
        help_text="Optional. Digits, spaces and dashes, with + and the country code.",
        widget=forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}),
    )
    country = country_field()
    region = region_field("State or region", "Optional. In the US, your state, such as US-CA.")

    def changes(self, user: User) -> dict[str, str]:
        return {name: value for name, value in self.cleaned_data.items() if value != str(getattr(user, name) or "")}


class EmailChangeForm(SerializerForm):
    serializer_class = MePatchInput
    partial = True
    omit_blank = False

    email = forms.CharField(
        label="New e-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )


class SignInForm(PortalForm):
    email = forms.EmailField(
        label="E-mail address", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "username"})
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class SecondFactorForm(PortalForm):
    """Pick one of the methods the challenge offers and enter its code."""

    method = forms.ChoiceField(label="How do you want to confirm?", widget=forms.RadioSelect)
    code = forms.CharField(
        label="Code",
        max_length=64,
        help_text="A 6-digit code from your app or e-mail, or a backup code such as ABCD-EFGH-JKLM-NPQR.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "characters", "spellcheck": "false"}
        ),
    )

    def __init__(self, *args: Any, methods: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(m, METHOD_LABELS.get(m, m)) for m in methods if m != "webauthn"]
        field = self.fields["method"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices
        if len(choices) == 1:
            field.widget = forms.HiddenInput()
            field.initial = choices[0][0]
            label, help_text = {
                "totp": ("Code from your authenticator app", "The 6 digits the app shows now."),
                "email": ("Code from the e-mail", "The 6 digits we e-mailed you."),
                "backup_code": ("Backup code", "One of your backup codes, such as ABCD-EFGH-JKLM-NPQR."),
            }.get(choices[0][0], ("Code", ""))
            self.fields["code"].label, self.fields["code"].help_text = label, help_text
            if choices[0][0] in {"totp", "email"}:
                self.fields["code"].widget.attrs["inputmode"] = "numeric"
        elif self.initial.get("method") is None and choices:
            field.initial = choices[0][0]


class PasskeyNameForm(PortalForm):
    name = forms.CharField(
        label="Name",
        max_length=64,
        help_text="Something you will recognise, such as “Work laptop” or “Phone”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class SetPasswordForm(PortalForm):
    """A new password, checked against the rules with the reasons shown (accounts.passwords)."""

    new_password = forms.CharField(
        label="New password",
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["new_password"].help_text = _password_help()

    def clean_new_password(self) -> str:
        value = str(self.cleaned_data["new_password"])
        found = passwords.problems(
            value,
            email=str(self.user.email),
            display_name=str(self.user.display_name),
            has_second_factor=self.user.has_second_factor,
        )
        if found:
            raise forms.ValidationError([str(e.message) for e in found])
        return value


class PasswordChangeForm(SetPasswordForm):
    """The same, after the current password (changing it needs the old one)."""

    current_password = forms.CharField(
        label="Current password",
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    field_order = ["current_password", "new_password"]

    def clean_current_password(self) -> str:
        value = self.cleaned_data["current_password"]
        if not self.user.check_password(value):
            raise forms.ValidationError("This is not your current password.")
        return str(value)


class PasswordResetRequestForm(PortalForm):
    email = forms.EmailField(
        label="E-mail address", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )


class AddTotpForm(PortalForm):
    name = forms.CharField(
        label="Name",
        max_length=64,
        initial="Authenticator app",
        help_text="So you can tell your devices apart, such as “Phone”.",
    )


class CodeForm(PortalForm):
    code = forms.CharField(
        label="Code from the app",
        max_length=16,
        help_text="Six digits. Enter the code the app shows now.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*", "spellcheck": "false"}
        ),
    )
