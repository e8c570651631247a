from django.urls import path

from compliance.portal import views

app_name = "privacy"

urlpatterns = [
    path("privacy/", views.privacy, name="home"),
    path("privacy/requests/<uuid:request_id>/", views.request_detail, name="request"),
    path("privacy/requests/<uuid:request_id>/cancel", views.cancel, name="cancel"),
    path("privacy/requests/<uuid:request_id>/download", views.download, name="download"),
]
