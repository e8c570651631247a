"""django-otp-webauthn's URL names, served by the portal's views (accounts.portal.passkeys).

The package's template tags and scripts reverse these names; its own views are deliberately not
mounted (they would add a passkey without step-up, record or notification, and cannot complete a
sign-in challenge). Only its JavaScript translation catalogue is served as it ships.
"""

from django.urls import path
from django.views.i18n import JavaScriptCatalog

from accounts.portal import passkeys

app_name = "otp_webauthn"

urlpatterns = [
    path(
        "registration/begin/",
        passkeys.BeginPasskeyRegistrationView.as_view(),
        name="credential-registration-begin",
    ),
    path(
        "registration/complete/",
        passkeys.CompletePasskeyRegistrationView.as_view(),
        name="credential-registration-complete",
    ),
    path(
        "authentication/begin/",
        passkeys.BeginPasskeyAuthenticationView.as_view(),
        name="credential-authentication-begin",
    ),
    path(
        "authentication/complete/",
        passkeys.CompletePasskeyAuthenticationView.as_view(),
        name="credential-authentication-complete",
    ),
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["django_otp_webauthn"]), name="js-i18n-catalog"),
]
