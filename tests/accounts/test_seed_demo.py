"""seed_demo: the demo personas of CONTRACT.md (a listener with MFA, a privacy officer), idempotent.

Requirement: CONTRACT.md Operations "demo data"; README "make run ... with the demo logins printed".
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import TotpFactor, User
from compliance.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_personas_once_and_prints_logins(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = True
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())
    assert User.objects.count() == 3
    listener = User.objects.with_email("listener@demo.invalid").get()
    officer = User.objects.with_email("officer@demo.invalid").get()
    assert not listener.is_staff and TotpFactor.objects.filter(user=listener, confirmed=True).count() == 1
    assert officer.is_staff and not officer.is_superuser
    assert officer.groups.get().name == "Privacy officers"
    assert officer.has_perm("compliance.view_auditevent")
    text = out.getvalue()
    assert "listener@demo.invalid" in text and "officer@demo.invalid" in text
    assert AuditEvent.objects.filter(action="accounts.user.seeded").count() == 3
    from compliance.models import PrivacyRequest

    assert sorted(PrivacyRequest.objects.filter(subject=listener).values_list("kind", flat=True)) == [
        "access",
        "objection",
        "rectification",
    ]
    assert officer.has_perm("compliance.change_privacyrequest")
    assert TotpFactor.objects.filter(user=officer, confirmed=True).count() == 1  # staff reach the admin only with one
    assert text.count("otpauth://totp/") == 3


def test_seed_demo_refuses_to_run_with_debug_off(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG=1"):
        call_command("seed_demo", stdout=StringIO())
    assert User.objects.count() == 0
