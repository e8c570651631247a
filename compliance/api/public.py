"""Public privacy endpoints: requests without an account (C-27) and from authorised agents (C-28).

No authentication: the e-mailed code is the proof. Each answer is the same whether or not an account
holds the address; throttling, codes and matching live in ``compliance.dsr.intake``. Errors are
problem+json with stable codes (``identity.api``).
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.dsr import intake as svc
from compliance.dsr.intake import Claims, Document, IntakeRefused
from compliance.models import PrivacyRequest, RequestIntake
from identity.api import Problem
from identity.net import client_ip

# Every request type; named once in the schema (settings.SPECTACULAR_SETTINGS ENUM_NAME_OVERRIDES).
REQUEST_TYPES = list(PrivacyRequest.Kind.values)
PROBLEM = OpenApiResponse(description="application/problem+json error (CONTRACT.md Conventions)")
STATUS = {
    "validation_error": 400,
    "invalid_code": 400,
    "not_found": 404,
    "invalid_state": 409,
    "code_expired": 410,
    "too_many_attempts": 429,
    "rate_limited": 429,
}
STARTED = "If the address can receive e-mail, a code is on its way. Send it to the verify endpoint."
CHECKED = "The code is confirmed. We have e-mailed what happens next."
AGENT_CHECKED = (
    "Your address is confirmed. If we hold personal information about the consumer, we will contact them "
    "(or check the power of attorney) before we act."
)


def problem(exc: IntakeRefused) -> Problem:
    extra = {"errors": {name: [message] for name, message in exc.errors.items()}} if exc.errors else None
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return Problem(STATUS.get(exc.code, 400), exc.code, str(exc), extra=extra, headers=headers)


class ClaimsInput(serializers.Serializer):  # type: ignore[type-arg]
    date_of_birth = serializers.DateField(required=False, allow_null=True, default=None)
    country = serializers.CharField(required=False, allow_blank=True, max_length=2, default="")
    declaration_accepted = serializers.BooleanField(required=False, default=False)
    declaration_name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class PublicRequestInput(ClaimsInput):
    email = serializers.EmailField(max_length=254)
    type = serializers.ChoiceField(choices=REQUEST_TYPES)
    details = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class AgentRequestInput(serializers.Serializer):  # type: ignore[type-arg]
    agent_name = serializers.CharField(max_length=200)
    agent_email = serializers.EmailField(max_length=254)
    agent_organisation = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    subject_email = serializers.EmailField(max_length=254)
    type = serializers.ChoiceField(choices=REQUEST_TYPES)
    details = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    power_of_attorney = serializers.BooleanField(required=False, default=False)
    document = serializers.FileField(help_text="PDF, PNG or JPEG, at most 5 MB; the type is read from the content")


class IntakeCodeInput(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField(min_length=6, max_length=12)


class IntakeOutput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.UUIDField()
    verification_level = serializers.ChoiceField(choices=["none", "reasonable", "reasonably_high"])
    code_valid_minutes = serializers.IntegerField()
    detail = serializers.CharField()


class CheckedOutput(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.UUIDField()
    detail = serializers.CharField()


def _claims(data: dict[str, Any]) -> Claims:
    return Claims(
        date_of_birth=data.get("date_of_birth"),
        country=data.get("country") or "",
        declaration_name=data.get("declaration_name") or "",
        declaration_accepted=bool(data.get("declaration_accepted")),
    )


def _started(intake: RequestIntake) -> Response:
    body = {
        "id": intake.pk,
        "verification_level": intake.level,
        "code_valid_minutes": svc.CODE_MINUTES,
        "detail": STARTED,
    }
    return Response(IntakeOutput(body).data, status=status.HTTP_202_ACCEPTED)


class PublicApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []


class StartPublicRequestApi(PublicApi):
    @extend_schema(
        request=PublicRequestInput,
        responses={202: IntakeOutput, 400: PROBLEM, 429: PROBLEM},
        description="A request from someone who does not sign in (C-27). The answer is the same whether or "
        "not an account holds the address. Data points by type: opt-outs need none; access_categories, "
        "rectification, restriction, objection need date_of_birth; access, portability, erasure need "
        "date_of_birth, country, declaration_accepted and declaration_name.",
        tags=["privacy (public)"],
    )
    def post(self, request: Request) -> Response:
        data = PublicRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            started = svc.start_public_request(
                email=v["email"],
                kind=v["type"],
                details=v["details"],
                claims=_claims(v),
                channel=PrivacyRequest.Channel.API,
                ip=client_ip(request._request),
            )
        except IntakeRefused as exc:
            raise problem(exc) from exc
        return _started(started)


class VerifyIntakeApi(PublicApi):
    source = RequestIntake.Source.PUBLIC
    answer = CHECKED

    @extend_schema(
        request=IntakeCodeInput,
        responses={200: CheckedOutput, 400: PROBLEM, 404: PROBLEM, 409: PROBLEM, 410: PROBLEM, 429: PROBLEM},
        description="The e-mailed code (single use, 15 minutes, 5 tries). The answer to a right code is the "
        "same whatever follows; the outcome is e-mailed.",
        tags=["privacy (public)"],
    )
    def post(self, request: Request, intake_id: uuid.UUID) -> Response:
        data = IntakeCodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            svc.verify_code(
                intake_id=intake_id,
                code=data.validated_data["code"],
                source=self.source,
                ip=client_ip(request._request),
            )
        except IntakeRefused as exc:
            raise problem(exc) from exc
        return Response(CheckedOutput({"id": intake_id, "detail": self.answer}).data)


class ResendCodeApi(PublicApi):
    source = RequestIntake.Source.PUBLIC

    @extend_schema(
        request=None,
        responses={202: IntakeOutput, 404: PROBLEM, 409: PROBLEM, 410: PROBLEM, 429: PROBLEM},
        description="A new code (at most 3 per request, one a minute).",
        tags=["privacy (public)"],
    )
    def post(self, request: Request, intake_id: uuid.UUID) -> Response:
        try:
            intake = svc.resend_code(intake_id=intake_id, source=self.source, ip=client_ip(request._request))
        except IntakeRefused as exc:
            raise problem(exc) from exc
        return _started(intake)


class StartAgentRequestApi(PublicApi):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={"multipart/form-data": AgentRequestInput},
        responses={202: IntakeOutput, 400: PROBLEM, 429: PROBLEM},
        description="An authorised agent's request (C-28) with the consumer's signed permission, or a power "
        "of attorney (power_of_attorney=true). The agent's address is confirmed by code; the answer is the "
        "same whether or not we hold data about the consumer.",
        tags=["privacy (public)"],
    )
    def post(self, request: Request) -> Response:
        # Before the body is read: uploads stay in memory, never in a clear temporary file.
        request._request.upload_handlers = [svc.BoundedMemoryUploadHandler(request._request)]
        data = AgentRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        upload = v["document"]
        document = Document(content=upload.read(svc.MAX_DOCUMENT_BYTES + 1), size=upload.size or 0)
        try:
            started = svc.start_agent_request(
                agent_name=v["agent_name"],
                agent_email=v["agent_email"],
                agent_organisation=v["agent_organisation"],
                subject_email=v["subject_email"],
                kind=v["type"],
                details=v["details"],
                power_of_attorney=v["power_of_attorney"],
                document=document,
                channel=PrivacyRequest.Channel.API,
                ip=client_ip(request._request),
            )
        except IntakeRefused as exc:
            raise problem(exc) from exc
        return _started(started)


class VerifyAgentApi(VerifyIntakeApi):
    source = RequestIntake.Source.AGENT
    answer = AGENT_CHECKED


class ResendAgentCodeApi(ResendCodeApi):
    source = RequestIntake.Source.AGENT
