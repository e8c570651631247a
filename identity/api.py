"""API platform: RFC 9457 problem+json errors with stable codes, for every DRF endpoint.

Views raise ``Problem(status, code, detail)`` or let DRF's own exceptions through; either way the
client gets ``{"type", "title", "status", "detail", "code"}`` (plus ``errors`` for validation)
and never a stack trace or personal data.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://identity.invalid/problems/"

DRF_CODES: dict[type[Exception], str] = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "parse_error",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "invalid_token",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


class Problem(exceptions.APIException):
    """An error with a stable machine-readable code (CONTRACT.md Conventions)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.problem_code = code
        self.extra = extra or {}
        self.headers = headers or {}


def problem_response(
    status_code: int,
    code: str,
    detail: str,
    *,
    errors: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return Response(body, status=status_code, headers=headers, content_type=PROBLEM_JSON)


def _field_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {"non_field_errors": [str(detail)]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, Problem):
        return problem_response(
            exc.status_code, exc.problem_code, str(exc.detail), extra=exc.extra, headers=exc.headers
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        response = drf_exception_handler(exc, context)
        code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), "error")
        headers = {
            k: v
            for k, v in (response.headers.items() if response is not None else [])
            if k in {"Retry-After", "WWW-Authenticate"}
        }
        if isinstance(exc, exceptions.ValidationError):
            return problem_response(
                400, code, "The request has invalid fields.", errors=_field_errors(exc.detail), headers=headers
            )
        detail = exc.detail if isinstance(exc.detail, str) else "The request failed."
        return problem_response(exc.status_code, code, str(detail), headers=headers)
    # Anything else is our bug: log it (redacted, with the request id) and say nothing about it.
    logger.exception("unhandled API error")
    return problem_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "Something went wrong on our side.")
