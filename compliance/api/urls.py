from django.urls import path

from compliance.api import public, views

app_name = "privacy-api"

urlpatterns = [
    path("privacy/consents", views.ConsentsApi.as_view(), name="consents"),
    path("privacy/requests", views.PrivacyRequestsApi.as_view(), name="requests"),
    path("privacy/requests/<uuid:request_id>", views.PrivacyRequestApi.as_view(), name="request"),
    path("privacy/requests/<uuid:request_id>/cancel", views.CancelPrivacyRequestApi.as_view(), name="cancel"),
    path("privacy/requests/<uuid:request_id>/download", views.DownloadExportApi.as_view(), name="download"),
    path("privacy/callbacks/<str:service>", views.ServiceCallbackApi.as_view(), name="service-callback"),
    # Without an account (C-27) and from authorised agents (C-28): compliance/api/public.py
    path("privacy/public-requests", public.StartPublicRequestApi.as_view(), name="public-requests"),
    path("privacy/public-requests/<uuid:intake_id>/verify", public.VerifyIntakeApi.as_view(), name="public-verify"),
    path("privacy/public-requests/<uuid:intake_id>/resend", public.ResendCodeApi.as_view(), name="public-resend"),
    path("privacy/agent-requests", public.StartAgentRequestApi.as_view(), name="agent-requests"),
    path("privacy/agent-requests/<uuid:intake_id>/verify", public.VerifyAgentApi.as_view(), name="agent-verify"),
    path("privacy/agent-requests/<uuid:intake_id>/resend", public.ResendAgentCodeApi.as_view(), name="agent-resend"),
]
