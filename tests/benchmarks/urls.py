"""URLs for the sign-in benchmark: the project's, plus ``bench/bare``, the throughput baseline.

``bench/bare`` is the least a DRF endpoint can do behind our middleware: no authentication, no
permission check beyond AllowAny, no throttle, no database, a constant JSON body. Set against it,
``GET /api/v1/me`` shows what bearer-token authentication and the profile cost.
"""

from typing import Any

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.urls import urlpatterns as project_urlpatterns


class BareApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [*project_urlpatterns, path("bench/bare", BareApi.as_view(), name="bench-bare")]
