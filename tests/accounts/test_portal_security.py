"""Second factors and step-up in the portal: add TOTP with a QR code, backup codes, removal.

Requirement: issue #3 "Factors" and "Step-up" (sensitive changes need a second factor no older
than STEP_UP_MAX_AGE_MINUTES; a listener without a factor gets an e-mailed code); CONTRACT.md
Account (mfa/devices: adding a factor to an account that has one, removing one and new backup
codes need step-up; codes shown once); RFC 6238; NIST SP 800-63B-4 (single-use codes).
"""

from __future__ import annotations

import base64
import datetime
import re
import urllib.parse

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from django_otp.oath import TOTP

from accounts.models import AuthSession, BackupCode, BackupCodeFactor, SecurityEvent, TotpFactor
from accounts.services import factors
from compliance.models import AuditEvent
from tests.accounts.test_portal_pages import signed_in
from tests.accounts.test_portal_sign_in import enrol_totp, totp_code

pytestmark = pytest.mark.django_db


def code_from_secret(secret: str, *, at: float | None = None) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key, step=30, t0=0, digits=6)
    if at is not None:
        totp.time = at
    return f"{totp.token():06d}"


def fresh_factor(session: AuthSession) -> None:
    AuthSession.objects.filter(pk=session.pk).update(mfa_at=timezone.now())


def test_adding_an_authenticator_app_shows_a_qr_code_and_the_key(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    security = client.get("/account/security").content.decode()
    assert "You have no authenticator app yet." in security

    response = client.post("/account/security/totp", {"name": "Pixel"})
    factor = TotpFactor.objects.get(user=alice)
    assert response["Location"] == f"/account/security/totp/{factor.pk}/confirm"
    assert not factor.confirmed

    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    qr = re.search(r'<img class="qr" src="(data:image/svg\+xml[^"]+)"', html)
    assert qr is not None and "%3Csvg" in qr.group(1)  # an inline SVG, allowed by img-src data:
    secret = re.search(r'data-secret="([A-Z2-7]+)"', html)
    assert secret is not None
    assert base64.b32decode(secret.group(1) + "=" * (-len(secret.group(1)) % 8)) == factor.bin_key

    wrong = client.post(response["Location"], {"code": "000000"})
    assert wrong.status_code == 200 and "That code is not right." in wrong.content.decode()
    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=5), tick=False):
        done = client.post(response["Location"], {"code": code_from_secret(secret.group(1))})
        assert done["Location"] == "/account/security"
        # Proving the factor counts as a fresh second factor: no second prompt for backup codes.
        assert client.get("/account/security/backup-codes").status_code == 200
    factor.refresh_from_db()
    assert factor.confirmed
    assert SecurityEvent.objects.filter(user=alice, kind="factor_added").count() == 1
    assert "Pixel" in client.get("/account/security").content.decode()


def test_the_qr_code_encodes_the_otpauth_uri_without_personal_data(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    client.post("/account/security/totp", {"name": "Pixel"})
    factor = TotpFactor.objects.get(user=alice)
    html = client.get(f"/account/security/totp/{factor.pk}/confirm").content.decode()
    uri = factors.otpauth_uri(factor)
    assert "alice" not in uri.lower()
    assert "otpauth" not in html  # the URI itself is only inside the QR image


def test_another_listeners_pending_factor_is_not_found(client, alice, charlie) -> None:  # type: ignore[no-untyped-def]
    theirs = factors.start_totp(user=charlie, name="Theirs")
    signed_in(client, alice)
    assert client.get(f"/account/security/totp/{theirs.pk}/confirm").status_code == 404
    assert client.post(f"/account/security/totp/{theirs.pk}/confirm", {"code": "123456"}).status_code == 404
    assert client.get(f"/account/security/totp/{theirs.pk}/remove").status_code == 404


def test_adding_a_second_app_needs_step_up(client, alice) -> None:  # type: ignore[no-untyped-def]
    enrol_totp(alice)
    signed_in(client, alice)
    response = client.post("/account/security/totp", {"name": "Tablet"})
    assert response["Location"] == "/account/verify?next=%2Faccount%2Fsecurity"
    assert TotpFactor.objects.filter(user=alice).count() == 1


def test_backup_codes_need_step_up_then_are_shown_once(client, alice) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    session = signed_in(client, alice)
    response = client.get("/account/security/backup-codes")
    assert response["Location"] == "/account/verify?next=%2Faccount%2Fsecurity%2Fbackup-codes"

    page = client.get(response["Location"])
    assert page.status_code == 200 and "Confirm it is you" in page.content.decode()
    done = client.post(
        "/account/verify",
        {"method": "totp", "code": totp_code(factor), "next": "/account/security/backup-codes"},
    )
    assert done["Location"] == "/account/security/backup-codes"
    session.refresh_from_db()
    assert session.mfa_at is not None
    assert AuditEvent.objects.filter(action="accounts.mfa.step_up").count() == 1

    assert client.get("/account/security/backup-codes").status_code == 200
    shown = client.post("/account/security/backup-codes")
    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    codes = re.findall(r"<li>([2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4})</li>", shown.content.decode())
    assert len(codes) == 10
    assert BackupCode.objects.filter(factor__user=alice, used_at__isnull=True).count() == 10
    assert factors.verify_factor(user=alice, method="backup_code", code=codes[0]).ok
    # Shown once: the security page only counts them.
    security = client.get("/account/security").content.decode()
    assert codes[1] not in security and "9 of 10" in security


def test_a_listener_without_a_factor_steps_up_with_an_emailed_code(  # type: ignore[no-untyped-def]
    client, alice, django_capture_on_commit_callbacks
) -> None:
    signed_in(client, alice)
    assert client.get("/account/email")["Location"] == "/account/verify?next=%2Faccount%2Femail"
    page = client.get("/account/verify?next=/account/email").content.decode()
    assert "We send a code to your e-mail" in page
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post("/account/verify/send-code")
    assert sent["Location"] == "/account/verify?next=%2Faccount%2Femail"
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
    assert code is not None
    client.get(sent["Location"])  # the page again: the same challenge, not a new one
    done = client.post("/account/verify", {"method": "email", "code": code.group(1), "next": "/account/email"})
    assert done["Location"] == "/account/email"
    assert client.get("/account/email").status_code == 200


def test_step_up_next_must_stay_on_the_site(client, alice) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    signed_in(client, alice)
    client.get("/account/verify?next=https://evil.example/")
    done = client.post(
        "/account/verify", {"method": "totp", "code": totp_code(factor), "next": "https://evil.example/"}
    )
    assert done["Location"] == "/account"


def test_a_fresh_factor_skips_the_verify_page(client, alice) -> None:  # type: ignore[no-untyped-def]
    fresh_factor(signed_in(client, alice))
    assert client.get("/account/verify?next=/account/security")["Location"] == "/account/security"


def test_a_stale_factor_asks_again(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    session = signed_in(client, alice)
    fresh_factor(session)
    assert client.get("/account/security/backup-codes").status_code == 200
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=settings.STEP_UP_MAX_AGE_MINUTES + 1)):
        assert client.get("/account/security/backup-codes")["Location"].startswith("/account/verify")


def test_removing_a_factor_needs_step_up_and_a_post(client, alice) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    session = signed_in(client, alice)
    url = f"/account/security/totp/{factor.pk}/remove"
    assert client.post(url)["Location"] == f"/account/verify?next={urllib.parse.quote(url, safe='')}"
    assert TotpFactor.objects.filter(pk=factor.pk).exists()

    fresh_factor(session)
    confirm = client.get(url)
    assert confirm.status_code == 200 and "Remove “Phone”?" in confirm.content.decode()
    assert client.post(url)["Location"] == "/account/security"
    assert not TotpFactor.objects.filter(pk=factor.pk).exists()
    assert SecurityEvent.objects.filter(user=alice, kind="factor_removed").count() == 1


def test_an_unfinished_set_up_can_be_removed_without_step_up(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    client.post("/account/security/totp", {"name": "Abandoned"})
    pending = TotpFactor.objects.get(user=alice)
    assert client.post(f"/account/security/totp/{pending.pk}/remove")["Location"] == "/account/security"
    assert not TotpFactor.objects.filter(user=alice).exists()


def test_backup_codes_can_be_removed_after_step_up(client, alice) -> None:  # type: ignore[no-untyped-def]
    factors.regenerate_backup_codes(user=alice)
    fresh_factor(signed_in(client, alice))
    backup = BackupCodeFactor.objects.get(user=alice)
    assert client.post(f"/account/security/backup_code/{backup.pk}/remove")["Location"] == "/account/security"
    assert not BackupCodeFactor.objects.filter(user=alice).exists()
    assert client.get("/account/security/webauthn/1/remove").status_code == 404


def test_a_step_up_post_without_an_open_challenge_starts_again(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    response = client.post("/account/verify", {"method": "email", "code": "123456", "next": "/account/email"})
    assert response["Location"] == "/account/verify?next=%2Faccount%2Femail"
    assert AuthSession.objects.get(user=alice).mfa_at is None


def test_an_expired_step_up_challenge_opens_a_new_one(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    client.get("/account/verify?next=/account/email")
    later = timezone.now() + datetime.timedelta(minutes=settings.MFA_CHALLENGE_MINUTES + 1)
    with time_machine.travel(later):
        sent = client.post("/account/verify/send-code")
        assert sent["Location"] == "/account/verify?next=%2Faccount%2Femail"
        page = client.get(sent["Location"]).content.decode()
        assert "That took too long. Please start again." in page
        assert "Send me a code" in page
    assert not mail.outbox


def test_e_mailed_codes_are_limited_per_challenge(client, alice, settings, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_CODES_PER_CHALLENGE = 2
    signed_in(client, alice)
    client.get("/account/verify?next=/account/email")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            client.post("/account/verify/send-code")
    assert len(mail.outbox) == 2
    page = client.get("/account/verify?next=/account/email").content.decode()
    assert "We have sent as many codes as we can" in page
