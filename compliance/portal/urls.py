from django.urls import path

from compliance.portal import public, views

app_name = "privacy"

urlpatterns = [
    path("privacy/", views.privacy, name="home"),
    path("privacy/choices/", views.choices, name="choices"),
    path("privacy/notice/", views.notice, name="notice"),
    path("privacy/requests/<uuid:request_id>/", views.request_detail, name="request"),
    path("privacy/requests/<uuid:request_id>/cancel", views.cancel, name="cancel"),
    path("privacy/requests/<uuid:request_id>/download", views.download, name="download"),
    # Without signing in (C-27) and from authorised agents (C-28): compliance/portal/public.py
    path("privacy/requests/without-account/", public.public_request, name="public-request"),
    path("privacy/requests/without-account/<uuid:intake_id>/code", public.public_code, name="public-code"),
    path("privacy/requests/without-account/done", public.public_done, name="public-done"),
    path("privacy/agent/", public.agent_request, name="agent-request"),
    path("privacy/agent/<uuid:intake_id>/code", public.agent_code, name="agent-code"),
    path("privacy/agent/done", public.agent_done, name="agent-done"),
    path("privacy/agent/confirm/", public.agent_confirm, name="agent-confirm"),
    path("privacy/agent/confirm/<str:link>/", public.agent_confirm_link, name="agent-confirm-link"),
]
