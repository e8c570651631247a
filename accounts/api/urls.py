from django.urls import path

from accounts.api import views

app_name = "accounts-api"

urlpatterns = [
    path("auth/register", views.RegisterApi.as_view(), name="register"),
    path("auth/login", views.LoginApi.as_view(), name="login"),
    path("auth/mfa/verify", views.VerifyMfaApi.as_view(), name="mfa-verify"),
    path("auth/mfa/email", views.SendEmailCodeApi.as_view(), name="mfa-email"),
    path("auth/token/refresh", views.RefreshTokenApi.as_view(), name="token-refresh"),
    path("auth/logout", views.LogoutApi.as_view(), name="logout"),
    path("me", views.MeApi.as_view(), name="me"),
    path("me/password", views.ChangePasswordApi.as_view(), name="password"),
    path("me/sessions", views.ListSessionsApi.as_view(), name="sessions"),
    path("me/sessions/<uuid:session_id>", views.RevokeSessionApi.as_view(), name="session"),
    path("me/security-events", views.ListSecurityEventsApi.as_view(), name="security-events"),
    path("mfa/devices", views.FactorsApi.as_view(), name="factors"),
    path("mfa/devices/<str:factor_id>/confirm", views.ConfirmFactorApi.as_view(), name="factor-confirm"),
    path("mfa/devices/<str:factor_id>", views.DeleteFactorApi.as_view(), name="factor"),
    path("mfa/backup-codes", views.BackupCodesApi.as_view(), name="backup-codes"),
]
