"""Auditors read the event log and model-change history here; nobody can edit or delete them."""

from __future__ import annotations

import json
from typing import Any

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from compliance import audit
from compliance.models import AuditEvent
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
