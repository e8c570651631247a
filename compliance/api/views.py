"""Privacy requests through the mobile API: file, list, follow, cancel (CONTRACT.md, Privacy).

A caller only ever sees their own requests: any other id answers 404.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance import consents, exports
from compliance.consents import PURPOSES
from compliance.dsr import services
from compliance.dsr.services import STRONG_VERIFICATION, RequestRefused
from compliance.models import PrivacyRequest
from identity.api import Problem
from identity.hooks import require_step_up
from identity.net import client_ip

PROBLEM = OpenApiResponse(description="application/problem+json error (CONTRACT.md Conventions)")
TYPES = [k for k in PrivacyRequest.Kind.values]


class RequestInput(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.ChoiceField(choices=TYPES)
    details = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    purposes = serializers.ListField(
        child=serializers.ChoiceField(choices=list(PURPOSES)), required=False, default=list, max_length=20
    )


class RequestOutput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    jurisdiction = serializers.CharField()
    received_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    due_on = serializers.DateField()
    legal_due_on = serializers.DateField()
    progress = serializers.IntegerField()
    completed_at = serializers.DateTimeField(allow_null=True)
    cancellable_until = serializers.DateTimeField(allow_null=True)
    download_url = serializers.CharField(allow_null=True)
    purposes = serializers.ListField(child=serializers.CharField())


def _end_of_day(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(23, 59, 59), tzinfo=datetime.UTC)


def represent(request: PrivacyRequest) -> dict[str, Any]:
    return {
        "id": str(request.pk),
        "type": request.kind,
        "status": request.status,
        "jurisdiction": request.jurisdiction,
        "received_at": request.received_at,
        "due_at": _end_of_day(request.due_on),
        "due_on": request.due_on,
        "legal_due_on": request.legal_due_on,
        "progress": request.progress,
        "completed_at": request.completed_at,
        "cancellable_until": request.execute_after if request.kind == "erasure" and request.is_open else None,
        "download_url": download_url(request),
        "purposes": list(request.purposes),
    }


def download_url(request: PrivacyRequest) -> str | None:
    export = getattr(request, "export", None) if request.status == PrivacyRequest.Status.COMPLETED else None
    if export is None or export.deleted_at is not None or export.expires_at <= timezone.now():
        return None
    return f"/api/v1/privacy/requests/{request.pk}/download"


def _own(request: Request, request_id: uuid.UUID) -> PrivacyRequest:
    found = PrivacyRequest.objects.for_subject(request.user).filter(pk=request_id).first()
    if found is None:
        raise Problem(404, "not_found", "No such request.")
    return found


class PrivacyRequestsApi(APIView):
    @extend_schema(responses={200: RequestOutput(many=True)}, tags=["privacy"])
    def get(self, request: Request) -> Response:
        rows = PrivacyRequest.objects.for_subject(request.user).order_by("-received_at")
        return Response(RequestOutput([represent(r) for r in rows], many=True).data)

    @extend_schema(
        request=RequestInput,
        responses={201: RequestOutput, 200: RequestOutput, 400: PROBLEM, 403: PROBLEM},
        description="`access`, `portability` and `erasure` need a second factor from the last few minutes "
        "(403 step_up_required with an mfa_token otherwise). An open request of the same type is returned "
        "(200) instead of being filed twice.",
        tags=["privacy"],
    )
    def post(self, request: Request) -> Response:
        data = RequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        kind = data.validated_data["type"]
        verification = "session"
        if kind in STRONG_VERIFICATION:
            require_step_up(request)
            verification = "session+mfa"
        try:
            submission = services.submit_request(
                subject=request.user,
                kind=kind,
                channel=PrivacyRequest.Channel.API,
                actor=request.user,
                details=data.validated_data["details"],
                verification=verification,
                ip=client_ip(request._request),
                purposes=data.validated_data["purposes"],
            )
        except RequestRefused as exc:
            raise Problem(400, exc.code, str(exc)) from exc
        code = status.HTTP_201_CREATED if submission.created else status.HTTP_200_OK
        return Response(RequestOutput(represent(submission.request)).data, status=code)


class PrivacyRequestApi(APIView):
    @extend_schema(responses={200: RequestOutput, 404: PROBLEM}, tags=["privacy"])
    def get(self, request: Request, request_id: uuid.UUID) -> Response:
        return Response(RequestOutput(represent(_own(request, request_id))).data)


class CancelPrivacyRequestApi(APIView):
    @extend_schema(request=None, responses={200: RequestOutput, 404: PROBLEM, 409: PROBLEM}, tags=["privacy"])
    def post(self, request: Request, request_id: uuid.UUID) -> Response:
        found = _own(request, request_id)
        try:
            cancelled = services.cancel_request(request=found, actor=request.user)
        except RequestRefused as exc:
            raise Problem(409, "not_cancellable", str(exc)) from exc
        return Response(RequestOutput(represent(cancelled)).data)


class DownloadExportApi(APIView):
    """The export ZIP, to its owner only, with a second factor from the last few minutes, until the
    link expires (CONTRACT.md: download_url)."""

    @extend_schema(
        responses={(200, "application/zip"): bytes, 403: PROBLEM, 404: PROBLEM, 410: PROBLEM}, tags=["privacy"]
    )
    def get(self, request: Request, request_id: uuid.UUID) -> StreamingHttpResponse:
        found = _own(request, request_id)
        export = getattr(found, "export", None)
        if export is None or export.deleted_at is not None:
            raise Problem(404, "not_found", "This request has no export to download.")
        if export.expires_at <= timezone.now():
            raise Problem(410, "expired", "The download link has expired; file a new request for a fresh copy.")
        require_step_up(request)
        return stream_export(found, export, actor=request.user)


def stream_export(found: PrivacyRequest, export: Any, *, actor: Any) -> StreamingHttpResponse:
    from compliance import audit

    type(export).objects.filter(pk=export.pk).update(downloaded_at=timezone.now())
    audit.record(
        "compliance.dsr.export_downloaded", actor=actor, subject=found.subject, data={"request": str(found.pk)}
    )
    response = StreamingHttpResponse(exports.stream_for_owner(export.path, found.pk), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="my-data-{found.received_on.isoformat()}.zip"'
    response["Cache-Control"] = "no-store"
    return response


class ServiceCallbackApi(APIView):
    """Where an external service reports a run's result (compliance.systems.webhooks): HMAC-signed,
    at most five minutes old, each signature accepted once."""

    permission_classes: list[Any] = []
    authentication_classes: list[Any] = []

    @extend_schema(request=None, responses={204: None, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM}, tags=["privacy"])
    def post(self, request: Request, service: str) -> Response:
        from django.core.cache import cache

        from compliance.fulfilment import CallbackRefused, complete_from_callback
        from compliance.systems import webhooks

        config = next((c for c in webhooks.configured_services() if c.name == service), None)
        if config is None:
            raise Problem(404, "not_found", "No such service.")
        body = request.body
        timestamp = request.headers.get("X-Signature-Timestamp", "")
        signature = request.headers.get("X-Signature-SHA256", "")
        if not webhooks.verify(config.secret, timestamp, body, signature):
            raise Problem(403, "bad_signature", "The signature is missing, wrong or too old.")
        if not cache.add(f"privacy-callback:{signature}", 1, timeout=2 * webhooks.MAX_SKEW_SECONDS):
            raise Problem(409, "replayed", "This callback was already received.")
        try:
            data = webhooks.parse_callback(body)
            complete_from_callback(system_name=service, data=data)
        except (ValueError, KeyError, TypeError) as exc:
            raise Problem(
                400,
                "validation_error",
                str(exc) if isinstance(exc, CallbackRefused) else "The callback body is not valid.",
            ) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConsentChoiceOutput(serializers.Serializer):  # type: ignore[type-arg]
    granted = serializers.BooleanField()
    default = serializers.BooleanField(help_text="true: nothing was ever chosen; the purpose's default applies")
    notice_version = serializers.CharField(allow_null=True)
    given_at = serializers.DateTimeField(allow_null=True)
    given_by = serializers.CharField(allow_null=True, help_text="self, parent, agent, officer or signal (GPC)")
    surface = serializers.CharField(allow_null=True)
    method = serializers.CharField(allow_null=True)


class ConsentsOutput(serializers.Serializer):  # type: ignore[type-arg]
    notice_version = serializers.CharField()
    restricted = serializers.BooleanField()
    opt_out_honored = serializers.BooleanField(allow_null=True)
    purposes = serializers.DictField(child=ConsentChoiceOutput())
    may_ask_from = serializers.DictField(
        child=serializers.DateField(),
        help_text="Per purpose opted out of or limited: the first day an app may ask to opt in again (C-22)",
    )
    catalogue = serializers.DictField(child=serializers.DictField())


def consents_payload(user: Any) -> dict[str, Any]:
    from compliance.processing import is_restricted

    opt_out = consents.last_opt_out(user)
    return {
        "notice_version": consents.NOTICE_VERSION,
        "restricted": is_restricted(user),
        "opt_out_honored": None if opt_out is None else opt_out.status == PrivacyRequest.Status.COMPLETED,
        "purposes": {name: choice.as_json() for name, choice in consents.current(user).items()},
        # C-22: apps must not ask to opt back in before these dates.
        "may_ask_from": consents.may_ask_from(user),
        "catalogue": {
            name: {
                "label": p.label,
                "description": p.description,
                "legal_basis": p.legal_basis,
                "sale_or_sharing": p.sale_sharing,
                "sensitive": p.sensitive,
            }
            for name, p in PURPOSES.items()
        },
    }


class ConsentsApi(APIView):
    """The listener's privacy choices (CONTRACT.md: GET/PUT /api/v1/privacy/consents)."""

    @extend_schema(responses={200: ConsentsOutput}, tags=["privacy"])
    def get(self, request: Request) -> Response:
        return Response(consents_payload(request.user))

    @extend_schema(
        request={"application/json": {"type": "object", "additionalProperties": True}},
        responses={200: ConsentsOutput, 202: ConsentsOutput, 400: PROBLEM, 403: PROBLEM},
        description='`{"purpose": bool, ...}`; every change is appended to the consent ledger. Agreeing '
        "(true) also needs `interaction_id`, the id of the app event where the listener agreed (G-03). "
        "Opting in to a sale or sharing is two steps (C-22): the first answer is 202 with a "
        "`confirmation` token per purpose in `pending`; send the same choice again with `confirmation` "
        "within 10 minutes. Withdrawing is always one step; withdrawing a sale/sharing or sensitive "
        "purpose files an opt-out or limit request, listed in `requests`.",
        tags=["privacy"],
    )
    def put(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise Problem(400, "validation_error", "Send an object of purpose names and true or false.")
        meta = {"interaction_id", "confirmation"}
        for key in meta:
            if key in body and not isinstance(body[key], str):
                raise Problem(400, "validation_error", f"{key} must be a string.")
        choices = {k: v for k, v in body.items() if k not in meta}
        if not choices:
            raise Problem(400, "validation_error", "Name at least one purpose.")
        try:
            outcome = consents.record_choices(
                request.user,
                choices,
                surface="api",
                interaction_id=str(body.get("interaction_id", "")),
                confirmation=str(body.get("confirmation", "")),
                ip=client_ip(request._request),
            )
        except consents.ChoiceRefused as exc:
            raise Problem(exc.status, exc.code, str(exc)) from exc
        payload = consents_payload(request.user)
        payload["requests"] = [represent(r) for r in outcome["requests"]]
        if outcome["pending"]:
            payload["pending"] = {
                name: {"confirmation": token, "expires_in": consents.OPT_IN_CONFIRMATION_SECONDS}
                for name, token in outcome["pending"].items()
            }
            return Response(payload, status=status.HTTP_202_ACCEPTED)
        return Response(payload)
