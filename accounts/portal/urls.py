from django.urls import path

from accounts.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("account/sign-up", views.sign_up, name="sign-up"),
    path("account/sign-up/parent", views.parental_consent, name="parental-consent"),
    path("account/welcome", views.welcome, name="welcome"),
    # The address the e-mails already use (accounts.notifications).
    path("account/verify-email/<str:token>", views.verify_email_link, name="verify-email"),
    path("account/sign-in", views.sign_in_view, name="sign-in"),
    path("account/sign-in/verify", views.sign_in_verify, name="sign-in-verify"),
    path("account/sign-in/send-code", views.sign_in_send_code, name="sign-in-send-code"),
    path("account/sign-out", views.sign_out, name="sign-out"),
    path("account/verify", views.step_up, name="step-up"),
    path("account/verify/send-code", views.step_up_send_code, name="step-up-send-code"),
    path("account", views.account, name="account"),
    path("account/email", views.change_email, name="change-email"),
    path("account/password", views.change_password_view, name="change-password"),
    path("account/security", views.security, name="security"),
    path("account/security/totp", views.add_totp, name="totp-add"),
    path("account/security/totp/<int:factor_id>/confirm", views.confirm_totp, name="totp-confirm"),
    path("account/security/backup-codes", views.backup_codes, name="backup-codes"),
    path("account/security/passkeys/<int:factor_id>", views.passkey_name, name="passkey-name"),
    path("account/security/<str:kind>/<int:factor_id>/remove", views.remove_factor, name="factor-remove"),
    path("account/sessions", views.sessions_view, name="sessions"),
    path("account/sessions/<uuid:session_id>/revoke", views.revoke_session, name="session-revoke"),
    path("account/activity", views.activity, name="activity"),
    # The address the security e-mails already use (accounts.notifications.not_me_token).
    path("account/not-me/<str:token>", views.not_me, name="not-me"),
    path("account/password-reset", views.password_reset, name="password-reset"),
    path("account/password-reset/sent", views.password_reset_sent, name="password-reset-sent"),
    path(
        "account/password-reset/<str:uidb64>/<str:token>", views.password_reset_confirm, name="password-reset-confirm"
    ),
]
