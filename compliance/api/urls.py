from django.urls import path

from compliance.api import views

app_name = "privacy-api"

urlpatterns = [
    path("privacy/requests", views.PrivacyRequestsApi.as_view(), name="requests"),
    path("privacy/requests/<uuid:request_id>", views.PrivacyRequestApi.as_view(), name="request"),
    path("privacy/requests/<uuid:request_id>/cancel", views.CancelPrivacyRequestApi.as_view(), name="cancel"),
    path("privacy/requests/<uuid:request_id>/download", views.DownloadExportApi.as_view(), name="download"),
    path("privacy/callbacks/<str:service>", views.ServiceCallbackApi.as_view(), name="service-callback"),
]
