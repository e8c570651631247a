"""What officers see of agents' requests and signed declarations on a PrivacyRequest (compliance.admin),
and the audited download of an agent's permission document (C-28)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from compliance import audit
from compliance.dsr.intake import DOCUMENT_TYPES, read_document
from compliance.models import AgentAuthorisation, SignedDeclaration


class _ReadOnlyInline(admin.StackedInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AgentAuthorisationInline(_ReadOnlyInline):
    """Who asked on the subject's behalf, on what authority, and what the subject answered."""

    model = AgentAuthorisation
    fk_name = "request"
    verbose_name = "authorised agent"
    fields = (
        "proof",
        "agent_name",
        "agent_email",
        "agent_organisation",
        "answer",
        "answered_at",
        "document_link",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="permission document")
    def document_link(self, obj: AgentAuthorisation) -> str:
        if obj.document_deleted_at is not None:
            return "deleted"
        url = reverse("admin:compliance_privacyrequest_agent_document", args=[obj.pk])
        return format_html(
            '<a href="{}">Download ({}, {} KB)</a> (the download is recorded in the audit log)',
            url,
            obj.document_type,
            max(1, obj.document_size // 1024),
        )


class SignedDeclarationInline(_ReadOnlyInline):
    """Declarations under penalty of perjury kept with the request (C-27)."""

    model = SignedDeclaration
    fields = ("signed_name", "statement_version", "statement", "signed_at")
    readonly_fields = fields


def agent_document_view(request: HttpRequest, pk: Any) -> HttpResponse:
    """The decrypted permission document, to staff who may view requests; every download is audited.

    Wrapped in ``admin_site.admin_view`` (staff with a verified second factor) by PrivacyRequestAdmin.
    """
    if not request.user.has_perm("compliance.view_privacyrequest"):
        raise PermissionDenied
    found = AgentAuthorisation.objects.select_related("subject").filter(pk=pk).first()
    if found is None or found.document_deleted_at is not None:
        raise Http404("no such document")
    try:
        content = read_document(found)
    except FileNotFoundError as exc:
        raise Http404("no such document") from exc
    except LookupError:
        return HttpResponse(
            "This document was destroyed with the subject's key.", status=410, content_type="text/plain"
        )
    audit.record(
        "compliance.agent.document_downloaded",
        actor=request.user,
        subject=found.subject,
        data={"authorisation": str(found.pk), "request": str(found.request_id or "")},
    )
    response = HttpResponse(content, content_type=found.document_type)
    extension = DOCUMENT_TYPES.get(found.document_type, "bin")
    response["Content-Disposition"] = f'attachment; filename="permission-{found.pk}.{extension}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
