"""The compliance console: auditors read the event log and model-change history (nobody can edit or
delete them); privacy officers work the request queue against its deadlines."""

from __future__ import annotations

import json
from typing import Any

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from compliance import audit
from compliance.admin_intake import AgentAuthorisationInline, SignedDeclarationInline, agent_document_view
from compliance.dsr import services
from compliance.dsr.services import RequestRefused
from compliance.models import AuditEvent, ConsentRecord, PrivacyRequest, ProcessingRestriction, SystemRun
from compliance.tasks import DUE_SOON_DAYS
from identity.crypto.blind import email_index
from identity.crypto.envelope import Erased
from identity.crypto.errors import EncryptionError


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "occurred_at", "action", "actor_type", "actor_ref", "subject_ref")
    list_filter = ("actor_type", "action")
    search_fields = ("=action", "=actor_ref", "=subject_ref")
    date_hierarchy = "occurred_at"
    fields = (
        "id",
        "occurred_at",
        "action",
        "actor_type",
        "actor_ref",
        "subject_ref",
        "details_shown",
        "prev_hash",
        "entry_hash",
    )
    readonly_fields = fields

    @admin.display(description="details")
    def details_shown(self, obj: AuditEvent) -> str:
        try:
            payload = audit.read_payload(obj)
        except EncryptionError as exc:
            return f"unreadable: {type(exc).__name__}"
        if isinstance(payload, Erased):
            return "[erased: the subject's key was destroyed]"
        return format_html("<pre>{}</pre>", json.dumps(payload, indent=2, ensure_ascii=False))


admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class ModelChangeAdmin(LogEntryAdmin):
    # auditlog's admin searches the actor's name and e-mail columns, which are ciphertext here.
    search_fields = ["=object_pk", "=actor__id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# -- the privacy officers' request queue ----------------------------------------------------------


class DeadlineFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", "overdue"), ("soon", f"due within {DUE_SOON_DAYS} days"), ("open", "all open")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        today = timezone.now().date()
        if self.value() == "overdue":
            return queryset.overdue(today)
        if self.value() == "soon":
            return queryset.due_within(today, DUE_SOON_DAYS)
        if self.value() == "open":
            return queryset.open()
        return queryset


class OfficerActionForm(forms.Form):
    reason = forms.CharField(
        label="Reason (sent to the subject for an extension)", widget=forms.Textarea, required=False
    )
    basis = forms.CharField(label="Legal basis (denial)", required=False, max_length=200)
    text = forms.CharField(label="Text sent to the subject (denial)", widget=forms.Textarea, required=False)
    method = forms.CharField(label="How the identity was verified", required=False, max_length=40)


OFFICER_ACTIONS = {
    "carry_out": ("Carry out across all systems (export or erasure)", ()),
    "complete": ("Complete: uphold, or apply and carry to every system (not exports/erasures)", ("reason",)),
    "notify_lift": ("Tell the listener the restriction will be lifted", ()),
    "lift": ("Lift the restriction (after telling the listener)", ("reason",)),
    "verify": ("Mark verified", ("method",)),
    "extend": ("Extend the deadline", ("reason",)),
    "hold": ("Place a legal hold", ("reason",)),
    "release": ("Release the legal hold", ()),
    "deny": ("Deny", ("basis", "text")),
    "pause": ("Pause the clock (waiting for the subject)", ("reason",)),
    "resume": ("Resume the clock", ()),
}


class FileRequestForm(forms.Form):
    """An officer files a request received by phone, post or e-mail."""

    email = forms.EmailField(label="The subject's account e-mail")
    kind = forms.ChoiceField(choices=PrivacyRequest.Kind.choices)
    channel = forms.ChoiceField(
        choices=[
            (c.value, c.label)
            for c in (PrivacyRequest.Channel.PHONE, PrivacyRequest.Channel.MAIL, PrivacyRequest.Channel.EMAIL)
        ]
    )
    details = forms.CharField(widget=forms.Textarea, required=False, max_length=5000)
    verification = forms.CharField(
        required=False, max_length=40, help_text="How you verified the caller (leave empty if not yet verified)."
    )


class SystemRunInline(admin.TabularInline):  # type: ignore[type-arg]
    """Each system's part, with attempts and the last error: a stuck request explains itself."""

    model = SystemRun
    extra = 0
    can_delete = False
    fields = (
        "system",
        "action",
        "status",
        "attempts",
        "last_error",
        "started_at",
        "finished_at",
        "counts",
        "read_back",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    inlines = [SystemRunInline, AgentAuthorisationInline, SignedDeclarationInline]
    change_form_template = "admin/compliance/privacyrequest/change_form.html"
    change_list_template = "admin/compliance/privacyrequest/change_list.html"
    list_display = ("received_on", "kind", "status", "jurisdiction", "channel", "due", "legal_due_on", "subject_ref")
    list_filter = (DeadlineFilter, "status", "kind", "regime", "channel")
    search_fields = ("=id", "=subject_ref", "=jurisdiction")
    ordering = ("due_on", "received_at")
    date_hierarchy = "received_at"
    show_full_result_count = False
    readonly_fields = (
        "id",
        "subject_ref",
        "kind",
        "purposes",
        "restriction_state",
        "channel",
        "status",
        "jurisdiction",
        "regime",
        "received_at",
        "deadline_table",
        "ack_due_on",
        "due_on",
        "legal_due_on",
        "acknowledged_at",
        "verified_at",
        "verification_method",
        "extended_at",
        "extension_reason",
        "hold_reason",
        "hold_placed_by",
        "hold_placed_at",
        "denial_basis",
        "denial_text",
        "execute_after",
        "completed_at",
        "progress",
        "finish_error",
        "duplicate_of",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # officers file requests through "File a request" (a service, not a model form)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # request records have their own retention; they are never deleted by hand

    @admin.display(description="due", ordering="due_on")
    def due(self, obj: PrivacyRequest) -> str:
        if not obj.is_open:
            return format_html("{}", obj.due_on)
        days = (obj.due_on - timezone.now().date()).days
        label = f"{-days} days overdue" if days < 0 else ("today" if days == 0 else f"in {days} days")
        css = "color:#ba2121;font-weight:bold" if days < 0 else ("color:#c77c02" if days <= DUE_SOON_DAYS else "")
        return format_html('<span style="{}">{} ({})</span>', css, obj.due_on, label)

    @admin.display(description="restriction of processing (G-18)")
    def restriction_state(self, obj: PrivacyRequest) -> str:
        rows = list(obj.restrictions.all())
        if not rows:
            return "none"
        return format_html_join(
            "; ",
            "{} since {}: {}",
            (
                (
                    r.get_ground_display(),
                    r.placed_at.date(),
                    f"lifted {r.lifted_at.date()}"
                    if r.lifted_at
                    else ("in force; the listener was told it will be lifted" if r.lift_notified_at else "in force"),
                )
                for r in rows
            ),
        )

    @admin.display(description="deadlines and the rules behind them")
    def deadline_table(self, obj: PrivacyRequest) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((d["name"], d["due"], d["legal"], d["rule"]) for d in obj.deadlines),
        )
        return format_html(
            "<table><tr><th>deadline</th><th>target</th><th>legal maximum</th><th>rule</th></tr>{}</table>", rows
        )

    def get_urls(self) -> list[Any]:
        custom = [
            path("file/", self.admin_site.admin_view(self.file_view), name="compliance_privacyrequest_file"),
            path(
                "agent-document/<uuid:pk>/",
                self.admin_site.admin_view(agent_document_view),
                name="compliance_privacyrequest_agent_document",
            ),
            path(
                "<uuid:pk>/evidence.json",
                self.admin_site.admin_view(self.evidence_view),
                name="compliance_privacyrequest_evidence",
            ),
            path(
                "<uuid:pk>/act/<str:action>/",
                self.admin_site.admin_view(self.action_view),
                name="compliance_privacyrequest_act",
            ),
        ]
        return custom + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        extra = {"file_url": reverse("admin:compliance_privacyrequest_file"), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        actions = [
            (name, label, reverse("admin:compliance_privacyrequest_act", args=[object_id, name]))
            for name, (label, _) in OFFICER_ACTIONS.items()
        ] + [
            ("evidence", "Evidence pack (JSON)", reverse("admin:compliance_privacyrequest_evidence", args=[object_id]))
        ]
        return super().change_view(request, object_id, form_url, {"officer_actions": actions, **(extra_context or {})})

    def evidence_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        """The evidence pack (JSON) for auditors: as frozen (at completion; for an erasure, before the
        key was destroyed, then completed with the read-back), or as it stands now."""
        from compliance.fulfilment import evidence_for

        if not request.user.has_perm("compliance.view_privacyrequest"):
            raise PermissionDenied
        obj = PrivacyRequest.objects.filter(pk=pk).first()
        if obj is None:
            raise Http404("no such request")
        pack = obj.evidence or evidence_for(obj, list(obj.runs.all()))
        response = HttpResponse(json.dumps(pack, indent=2, sort_keys=True), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="evidence-{obj.pk}.json"'
        audit.record("compliance.dsr.evidence_downloaded", actor=request.user, data={"request": str(obj.pk)})
        return response

    def file_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("compliance.change_privacyrequest"):
            raise PermissionDenied
        form = FileRequestForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            user_model = get_user_model()
            subject = user_model._default_manager.filter(email_index=email_index(form.cleaned_data["email"])).first()
            if subject is None:
                form.add_error("email", "No account has this e-mail address.")
            else:
                submission = services.submit_request(
                    subject=subject,
                    kind=form.cleaned_data["kind"],
                    channel=form.cleaned_data["channel"],
                    actor=request.user,
                    details=form.cleaned_data["details"],
                    verification=form.cleaned_data["verification"],
                )
                verb = "Filed" if submission.created else "An open request of this kind exists:"
                messages.success(request, f"{verb} {submission.request}.")
                return redirect(reverse("admin:compliance_privacyrequest_change", args=[submission.request.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "File a privacy request",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/compliance/privacyrequest/action_form.html", context)

    def action_view(self, request: HttpRequest, pk: Any, action: str) -> HttpResponse:
        if action not in OFFICER_ACTIONS:
            raise Http404("no such action")
        if not request.user.has_perm("compliance.change_privacyrequest"):
            raise PermissionDenied
        obj = PrivacyRequest.objects.filter(pk=pk).first()
        if obj is None:
            raise Http404("no such request")
        label, wanted = OFFICER_ACTIONS[action]
        form = OfficerActionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                run_officer_action(action, obj, data, actor=request.user)
            except RequestRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"{label}: done.")
                return redirect(reverse("admin:compliance_privacyrequest_change", args=[obj.pk]))
        for name in list(form.fields):
            if name not in wanted:
                del form.fields[name]
        context = {
            **self.admin_site.each_context(request),
            "title": f"{label}: {obj}",
            "form": form,
            "opts": self.model._meta,
            "original": obj,
        }
        return TemplateResponse(request, "admin/compliance/privacyrequest/action_form.html", context)


def run_officer_action(action: str, obj: PrivacyRequest, data: dict[str, Any], *, actor: Any) -> None:
    if action == "carry_out":
        from compliance.fulfilment import start_fulfilment

        start_fulfilment(request=obj, actor=actor)
    elif action == "complete":
        services.complete_request(request=obj, actor=actor, note=data.get("reason", ""))
    elif action == "verify":
        services.verify_request(request=obj, method=data.get("method", ""), actor=actor)
    elif action == "extend":
        services.extend_request(request=obj, reason=data.get("reason", ""), actor=actor)
    elif action == "hold":
        services.place_hold(request=obj, reason=data.get("reason", ""), actor=actor)
    elif action == "release":
        services.release_hold(request=obj, actor=actor)
    elif action == "deny":
        services.deny_request(request=obj, basis=data.get("basis", ""), text=data.get("text", ""), actor=actor)
    elif action == "pause":
        services.pause_clock(request=obj, reason=data.get("reason", ""), actor=actor)
    elif action == "resume":
        services.resume_clock(request=obj, actor=actor)
    elif action in ("notify_lift", "lift"):
        from compliance import propagation

        restriction = obj.restrictions.filter(lifted_at__isnull=True).first()
        if restriction is None:
            raise RequestRefused("invalid_state", "this request has no restriction in force")
        try:
            if action == "notify_lift":
                propagation.notify_lift(restriction, actor=actor)
            else:
                propagation.lift_restriction(restriction, actor=actor, reason=data.get("reason", ""))
        except propagation.PropagationRefused as exc:
            raise RequestRefused(exc.code, str(exc)) from exc


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdmin):
    """The consent ledger, for auditors and officers (G-04): who chose what, when, under which notice."""

    list_display = ("id", "recorded_at", "subject_ref", "purpose", "granted", "actor", "surface", "notice_version")
    list_filter = ("purpose", "granted", "actor", "surface", "notice_version")
    search_fields = ("=subject_ref",)
    date_hierarchy = "recorded_at"
    fields = (
        "id",
        "recorded_at",
        "subject_ref",
        "purpose",
        "granted",
        "actor",
        "actor_ref",
        "legal_basis",
        "notice_version",
        "notice_hash",
        "surface",
        "method",
        "interaction_id",
        "jurisdiction",
        "request",
    )
    readonly_fields = fields


@admin.register(ProcessingRestriction)
class ProcessingRestrictionAdmin(ReadOnlyAdmin):
    """Restrictions in force and lifted (G-18); lift them from their request's page (two steps)."""

    list_display = ("id", "placed_at", "subject_ref", "ground", "request", "lift_notified_at", "lifted_at")
    list_filter = ("ground", ("lifted_at", admin.EmptyFieldListFilter))
    search_fields = ("=subject_ref",)
    fields = (*list_display, "lifted_by", "lift_reason")
    readonly_fields = fields
