"""Demo data for `make run`: a listener with a second factor, a privacy officer, an administrator.

Idempotent: run it again and it reuses what exists. Refuses to run with DEBUG off unless --force,
so that demo passwords never land in production.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts.models import TotpFactor, User
from accounts.services.factors import otpauth_uri, start_totp
from compliance import audit
from compliance.dsr.services import submit_request
from compliance.systems.streaming_demo import prepare_demo_database, seed_demo_listener

DEMO_PASSWORD = "demo-listener-passphrase-2026"  # noqa: S105 (demo only; the command refuses production)
STAFF_PASSWORD = "demo-staff-passphrase-2026"  # noqa: S105

PERSONAS: list[dict[str, Any]] = [
    {
        "email": "listener@demo.invalid",
        "password": DEMO_PASSWORD,
        "display_name": "Demo Listener",
        "date_of_birth": datetime.date(1994, 3, 14),
        "country": "DE",
        "region": "DE-BE",
        "role": "listener",
    },
    {
        "email": "officer@demo.invalid",
        "password": STAFF_PASSWORD,
        "display_name": "Demo Privacy Officer",
        "country": "IE",
        "role": "privacy officer",
    },
    {
        "email": "admin@demo.invalid",
        "password": STAFF_PASSWORD,
        "display_name": "Demo Administrator",
        "country": "IE",
        "role": "administrator",
    },
]

OFFICER_PERMISSIONS = [
    "view_user",
    "view_auditevent",
    "view_logentry",
    "view_privacyrequest",
    "change_privacyrequest",
    "view_securityevent",
]
# Sample requests for the officer's queue: (kind, days ago, verification).
SAMPLE_REQUESTS = [("access", 3, "session+mfa"), ("rectification", 20, "session"), ("objection", 40, "session")]


class Command(BaseCommand):
    help = "Create demo accounts (idempotent) and print their logins. Development only."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="run even with DEBUG off (never in production)")

    def handle(self, *args: Any, force: bool, **options: Any) -> None:
        if not settings.DEBUG and not force:
            raise CommandError("seed_demo creates accounts with published passwords; it runs only with DJANGO_DEBUG=1")
        unusable = prepare_demo_database()  # before the demo requests, whose choices propagate to it
        with transaction.atomic():
            officers, _ = Group.objects.get_or_create(name="Privacy officers")
            officers.permissions.set(Permission.objects.filter(codename__in=OFFICER_PERMISSIONS))
            for persona in PERSONAS:
                self._ensure(persona, officers)
        self.stdout.write(self.style.SUCCESS("Demo logins (http://127.0.0.1:8000/admin/ for staff):"))
        for persona in PERSONAS:
            self.stdout.write(f"  {persona['role']:<16} {persona['email']:<26} {persona['password']}")
        self.stdout.write("Second factors (add each to an authenticator app; staff need theirs for the admin):")
        for persona in PERSONAS:
            user = User.objects.with_email(persona["email"]).get()
            for factor in TotpFactor.objects.filter(user=user, confirmed=True):
                self.stdout.write(f"  {persona['role']:<16} {otpauth_uri(factor)}")
        listener = User.objects.with_email(PERSONAS[0]["email"]).get()
        # The listener's history in the connected streaming database (issue #4); quiet when it is not connected.
        streaming = unusable or seed_demo_listener(str(listener.pk))
        if streaming:
            self.stdout.write(streaming)

    def _ensure(self, persona: dict[str, Any], officers: Group) -> None:
        user = User.objects.with_email(persona["email"]).first()
        if user is not None:
            return
        role = persona["role"]
        user = User.objects.create_user(
            email=persona["email"],
            password=persona["password"],
            display_name=persona["display_name"],
            date_of_birth=persona.get("date_of_birth"),
            country=persona["country"],
            region=persona.get("region", ""),
            is_staff=role != "listener",
            is_superuser=role == "administrator",
        )
        if role == "privacy officer":
            user.groups.add(officers)
        # Everyone gets a second factor: the admin accepts staff only after one (django-otp).
        factor = start_totp(user=user, name=f"Demo {role}")
        factor.confirmed = True
        factor.save(update_fields=["confirmed"])
        if role == "listener":
            now = timezone.now()
            for kind, days_ago, verification in SAMPLE_REQUESTS:
                submit_request(
                    subject=user,
                    kind=kind,
                    channel="portal",
                    actor=user,
                    verification=verification,
                    received_at=now - datetime.timedelta(days=days_ago),
                )
        audit.record("accounts.user.seeded", actor="system:seed_demo", subject=user, data={"role": role})
