"""One class per operation of the accounts API (CONTRACT.md: Authentication, Account).

Views translate HTTP to the services in ``accounts.services`` and back; the rules live there.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_otp_webauthn.models import WebAuthnCredential
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers as drf_serializers
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts import passwords
from accounts.api import serializers as s
from accounts.models import AuthSession, BackupCodeFactor, KnownDevice, MfaChallenge, SecurityEvent, TotpFactor, User
from accounts.services import factors, sessions
from accounts.services.account import change_password, update_profile
from accounts.services.registration import register_listener
from accounts.services.signin import Client, MfaError, complete_mfa, open_challenge, send_email_code, sign_in
from identity.api import Problem
from identity.net import client_ip

PROBLEM = OpenApiResponse(description="application/problem+json error (CONTRACT.md Conventions)")


def _client(request: Request, device: dict[str, Any] | None = None) -> Client:
    device = device or {}
    return Client(
        ip=client_ip(request._request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        device_id=str(device.get("id", "")),
        device_name=str(device.get("name", "")),
        platform=str(device.get("platform", KnownDevice.Platform.OTHER)),
    )


def _mfa_problem(exc: MfaError) -> Problem:
    if exc.code == "rate_limited":
        return Problem(429, "rate_limited", str(exc), headers={"Retry-After": str(max(exc.retry_after, 1))})
    status_code = 400 if exc.code == "mfa_method_unavailable" else 401
    return Problem(status_code, exc.code, str(exc))


def profile(user: User) -> dict[str, Any]:
    return {
        "id": str(user.pk),
        "email": str(user.email),
        "display_name": str(user.display_name),
        "date_of_birth": dob.isoformat() if isinstance(dob := user.date_of_birth, datetime.date) else None,
        "country": str(user.country),
        "region": str(user.region),
        "phone": str(user.phone) or None,
        "mfa_enrolled": user.has_second_factor,
        "email_verified": user.email_verified_at is not None,
        "created_at": user.date_joined.isoformat(),
    }


def require_step_up(request: Request) -> None:
    """403 step_up_required, with an mfa_token, unless a second factor was verified recently."""
    session = request.auth
    if sessions.has_fresh_second_factor(session):
        return
    token, methods = open_challenge(
        user=request.user,
        purpose=MfaChallenge.Purpose.STEP_UP,
        assessment=None,
        context=session.context if isinstance(session.context, dict) else {},
        session=session,
    )
    raise Problem(
        403,
        "step_up_required",
        "Confirm it is you with a second factor, then repeat the request.",
        extra={"mfa_token": token, "methods": methods},
    )


# -- authentication -----------------------------------------------------------------------------


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "register"

    @extend_schema(
        request=s.RegisterInput,
        responses={201: s.RegisterOutput, 202: s.ConsentRequiredOutput, 400: PROBLEM, 429: PROBLEM},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        data = s.RegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = register_listener(**data.validated_data, ip=client_ip(request._request))
        if result.status == "parental_consent_required":
            return Response({"status": "parental_consent_required"}, status=status.HTTP_202_ACCEPTED)
        return Response({"user": result.profile}, status=status.HTTP_201_CREATED)


class LoginApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        request=s.LoginInput,
        responses={200: s.TokensOutput, 401: PROBLEM, 403: PROBLEM, 429: PROBLEM},
        description="Tokens, or `mfa_required` with an `mfa_token` (see MfaRequiredOutput) when the risk engine asks "
        "for a second factor.",
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        data = s.LoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = sign_in(
            request=request._request, email=v["email"], password=v["password"], client=_client(request, v["device"])
        )
        if result.status == "locked":
            raise Problem(
                429,
                "locked_out",
                "Too many failed attempts. Try again later.",
                headers={"Retry-After": str(result.retry_after)},
            )
        if result.status == "invalid":
            raise Problem(401, "invalid_credentials", "The e-mail address or password is not right.")
        if result.status == "blocked":
            raise Problem(
                403,
                "login_blocked",
                "This sign-in looked too risky and was refused. We have e-mailed the account holder.",
                extra={"risk": result.risk()},
            )
        if result.status == "mfa_required":
            return Response(
                {"mfa_required": True, "mfa_token": result.mfa_token, "methods": result.methods, "risk": result.risk()}
            )
        assert result.tokens is not None
        return Response({**result.tokens.as_dict(), "risk": result.risk()})


class VerifyMfaApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "mfa"

    @extend_schema(request=s.MfaVerifyInput, responses={200: s.TokensOutput, 401: PROBLEM, 429: PROBLEM}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = s.MfaVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            tokens = complete_mfa(
                request=request._request, mfa_token=v["mfa_token"], method=v["method"], code=v["code"]
            )
        except MfaError as exc:
            raise _mfa_problem(exc) from exc
        assert isinstance(tokens, sessions.IssuedTokens)
        return Response(tokens.as_dict())


class SendEmailCodeApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "mfa_email"

    @extend_schema(
        request=s.MfaTokenInput, responses={204: None, 400: PROBLEM, 401: PROBLEM, 429: PROBLEM}, tags=["auth"]
    )
    def post(self, request: Request) -> Response:
        data = s.MfaTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            send_email_code(mfa_token=data.validated_data["mfa_token"])
        except MfaError as exc:
            raise _mfa_problem(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class RefreshTokenApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "refresh"

    @extend_schema(request=s.RefreshInput, responses={200: s.TokensOutput, 401: PROBLEM}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = s.RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            tokens = sessions.refresh_session(refresh=data.validated_data["refresh"])
        except sessions.TokenReused as exc:
            raise Problem(401, "token_reused", "This refresh token was already used; the session is ended.") from exc
        except sessions.TokenError as exc:
            raise Problem(401, "invalid_token", "The refresh token is invalid or expired.") from exc
        return Response(tokens.as_dict())


class LogoutApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=s.RefreshInput, responses={204: None, 400: PROBLEM}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = s.RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        sessions.logout(refresh=data.validated_data["refresh"])  # unknown tokens: nothing to end
        return Response(status=status.HTTP_204_NO_CONTENT)


# -- account ------------------------------------------------------------------------------------


class MeApi(APIView):
    @extend_schema(responses={200: s.ProfileOutput, 401: PROBLEM}, tags=["account"])
    def get(self, request: Request) -> Response:
        return Response(profile(request.user))

    @extend_schema(
        request=s.MePatchInput, responses={200: s.ProfileOutput, 400: PROBLEM, 403: PROBLEM}, tags=["account"]
    )
    def patch(self, request: Request) -> Response:
        user = User.objects.get(pk=request.user.pk)
        data = s.MePatchInput(data=request.data, partial=True, context={"current_country": str(user.country)})
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        if "email" in changes:
            require_step_up(request)
        try:
            update_profile(user=user, changes=changes, actor=request.user)
        except ValueError as exc:
            raise Problem(
                400, "validation_error", "The request has invalid fields.", extra={"errors": {"email": [str(exc)]}}
            ) from exc
        return Response(profile(User.objects.get(pk=user.pk)))


class ChangePasswordApi(APIView):
    @extend_schema(request=s.PasswordChangeInput, responses={204: None, 400: PROBLEM}, tags=["account"])
    def post(self, request: Request) -> Response:
        data = s.PasswordChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = User.objects.get(pk=request.user.pk)
        v = data.validated_data
        if not user.check_password(v["current_password"]):
            raise Problem(
                400,
                "validation_error",
                "The request has invalid fields.",
                extra={"errors": {"current_password": ["This is not your current password."]}},
            )
        found = passwords.problems(
            v["new_password"],
            email=str(user.email),
            display_name=str(user.display_name),
            has_second_factor=user.has_second_factor,
        )
        if found:
            raise Problem(
                400,
                "validation_error",
                "The request has invalid fields.",
                extra={"errors": {"new_password": [str(e.message) for e in found]}},
            )
        change_password(user=user, new_password=v["new_password"], keep_session=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _session_out(session: AuthSession, current: AuthSession | None) -> dict[str, Any]:
    context = session.context if isinstance(session.context, dict) else {}
    place = context.get("place") or {}
    return {
        "id": str(session.pk),
        "kind": session.kind,
        "device": {"name": session.device.name, "platform": session.device.platform} if session.device else None,
        "created_at": session.created_at,
        "last_used_at": session.last_used_at,
        "expires_at": session.expires_at,
        "country": place.get("country"),
        "current": current is not None and session.pk == current.pk,
    }


class ListSessionsApi(APIView):
    @extend_schema(responses={200: s.SessionOutput(many=True)}, tags=["account"])
    def get(self, request: Request) -> Response:
        rows = AuthSession.objects.active().for_user(request.user).select_related("device")
        return Response(s.SessionOutput([_session_out(r, request.auth) for r in rows], many=True).data)


class RevokeSessionApi(APIView):
    @extend_schema(responses={204: None, 404: PROBLEM}, tags=["account"])
    def delete(self, request: Request, session_id: uuid.UUID) -> Response:
        session = AuthSession.objects.for_user(request.user).filter(pk=session_id, revoked_at__isnull=True).first()
        if session is None:
            raise Problem(404, "not_found", "No such session.")
        sessions.revoke_session(session=session, actor=request.user, reason="revoked_by_owner")
        return Response(status=status.HTTP_204_NO_CONTENT)


class ListSecurityEventsApi(APIView):
    @extend_schema(responses={200: s.SecurityEventOutput(many=True)}, tags=["account"])
    def get(self, request: Request) -> Response:
        rows = SecurityEvent.objects.for_user(request.user).select_related("device")[:100]
        out = []
        for event in rows:
            context = event.context if isinstance(event.context, dict) else {}
            out.append(
                {
                    "id": str(event.pk),
                    "kind": event.kind,
                    "occurred_at": event.occurred_at,
                    "decision": event.decision,
                    "level": event.level,
                    "reasons": s.reasons_out(list(event.reasons)),
                    "country": (context.get("place") or {}).get("country"),
                    "device": str(event.device.name) if event.device else None,
                }
            )
        return Response(s.SecurityEventOutput(out, many=True).data)


# -- factors ------------------------------------------------------------------------------------


def _factor_id(kind: str, pk: int) -> str:
    return f"{kind}-{pk}"


def _parse_factor_id(value: str) -> tuple[str, int]:
    kind, _, pk = value.rpartition("-")
    if kind not in {"totp", "backup_code", "webauthn"} or not pk.isdigit():
        raise Problem(404, "not_found", "No such factor.")
    return kind, int(pk)


class FactorsApi(APIView):
    @extend_schema(responses={200: s.FactorOutput(many=True)}, tags=["mfa"])
    def get(self, request: Request) -> Response:
        out = (
            [
                {"id": _factor_id("totp", f.pk), "type": "totp", "name": f.name, "confirmed": f.confirmed}
                for f in TotpFactor.objects.filter(user=request.user).order_by("pk")
            ]
            + [
                {"id": _factor_id("backup_code", f.pk), "type": "backup_code", "name": f.name, "confirmed": f.confirmed}
                for f in BackupCodeFactor.objects.filter(user=request.user).order_by("pk")
            ]
            + [
                # Passkeys are made and used on the portal; the app lists them and can remove them.
                {"id": _factor_id("webauthn", f.pk), "type": "webauthn", "name": f.name, "confirmed": f.confirmed}
                for f in WebAuthnCredential.objects.filter(user=request.user).order_by("pk")
            ]
        )
        return Response(s.FactorOutput(out, many=True).data)

    @extend_schema(
        request=s.FactorCreateInput, responses={201: s.FactorCreatedOutput, 400: PROBLEM, 403: PROBLEM}, tags=["mfa"]
    )
    def post(self, request: Request) -> Response:
        data = s.FactorCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        if factors.methods_for(request.user):
            require_step_up(request)  # adding a factor to an account that has one needs that one
        factor = factors.start_totp(user=request.user, name=data.validated_data["name"])
        return Response(
            {
                "id": _factor_id("totp", factor.pk),
                "type": "totp",
                "otpauth_uri": factors.otpauth_uri(factor),
                "confirmed": False,
            },
            status=status.HTTP_201_CREATED,
        )


class ConfirmFactorApi(APIView):
    @extend_schema(
        request=s.CodeInput,
        responses={
            200: inline_serializer("Confirmed", {"confirmed": drf_serializers.BooleanField()}),
            400: PROBLEM,
            404: PROBLEM,
            429: PROBLEM,
        },
        tags=["mfa"],
    )
    def post(self, request: Request, factor_id: str) -> Response:
        kind, pk = _parse_factor_id(factor_id)
        if kind != "totp":
            raise Problem(404, "not_found", "No such factor.")
        data = s.CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = factors.confirm_totp(user=request.user, factor_id=pk, code=data.validated_data["code"])
        except factors.FactorError as exc:
            raise Problem(404 if exc.code == "not_found" else 400, exc.code, str(exc)) from exc
        if result.throttled:
            raise Problem(
                429,
                "rate_limited",
                "Too many wrong codes; wait and try again.",
                headers={"Retry-After": str(result.retry_after)},
            )
        if not result.ok:
            raise Problem(400, "mfa_invalid", "The code is not valid; check the time on your phone.")
        with transaction.atomic():
            AuthSession.objects.filter(pk=request.auth.pk).update(mfa_at=timezone.now())
        return Response({"confirmed": True})


class DeleteFactorApi(APIView):
    @extend_schema(responses={204: None, 403: PROBLEM, 404: PROBLEM}, tags=["mfa"])
    def delete(self, request: Request, factor_id: str) -> Response:
        kind, pk = _parse_factor_id(factor_id)
        model = {"totp": TotpFactor, "backup_code": BackupCodeFactor, "webauthn": WebAuthnCredential}[kind]
        if not model.objects.filter(pk=pk, user=request.user).exists():
            raise Problem(404, "not_found", "No such factor.")
        require_step_up(request)
        factors.remove_factor(user=request.user, kind=kind, factor_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BackupCodesApi(APIView):
    @extend_schema(request=None, responses={201: s.BackupCodesOutput, 403: PROBLEM}, tags=["mfa"])
    def post(self, request: Request) -> Response:
        require_step_up(request)
        codes = factors.regenerate_backup_codes(user=request.user)
        return Response({"codes": codes}, status=status.HTTP_201_CREATED)
