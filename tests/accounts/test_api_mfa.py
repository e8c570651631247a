"""Second factors through the API: TOTP (RFC 6238), backup codes, e-mailed codes, step-up.

Requirement: issue #3 "Factors" and "Step-up"; CONTRACT.md Account (mfa/devices, backup-codes) and
the mfa_token flow; NIST SP 800-63B-4 (OTP single use, throttling); PITFALLS.md (django-otp keeps
secrets in clear; one factor's success must not count against another).
"""

from __future__ import annotations

import datetime
import re

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django_otp.oath import TOTP
from rest_framework.test import APIClient

from accounts.models import BackupCode, SecurityEvent, TotpFactor, User
from accounts.services import factors
from tests.accounts.api_helpers import assert_problem, bearer, login

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def strict_policy(settings):  # type: ignore[no-untyped-def]
    """Every sign-in needs a second factor: the simplest way to reach the MFA flow."""
    settings.RISK_POLICY = {"decisions": {"low": "challenge", "medium": "challenge", "high": "deny"}}


def enrol_totp(user: User) -> TotpFactor:
    factor = factors.start_totp(user=user, name="Phone")
    factor.confirmed = True
    factor.save(update_fields=["confirmed"])
    return factor


def code_for(factor: TotpFactor, *, at: float | None = None) -> str:
    totp = TotpFactor.objects.get(pk=factor.pk).totp(at)
    return f"{totp.token():06d}"


# -- RFC 6238 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unix_time", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc_6238_sha1_test_vectors(unix_time: int, expected: str) -> None:
    totp = TOTP(b"12345678901234567890", step=30, t0=0, digits=8)
    totp.time = unix_time
    assert f"{totp.token():08d}" == expected


def test_totp_secret_is_encrypted_at_rest(alice) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM accounts_totpfactor WHERE id = %s", [factor.pk])
        stored = bytes(cursor.fetchone()[0])
    assert str(factor.secret).encode() not in stored and stored[0] == 1


def test_a_totp_code_is_accepted_once_and_one_step_of_drift_at_most(alice) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    now = datetime.datetime.now(datetime.UTC).timestamp()
    code = code_for(factor, at=now)
    assert factors.verify_factor(user=alice, method="totp", code=code).ok
    assert not factors.verify_factor(user=alice, method="totp", code=code).ok  # replay refused
    assert not factors.verify_factor(user=alice, method="totp", code=code_for(factor, at=now - 90)).ok
    with time_machine.travel(datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)):
        assert factors.verify_factor(user=alice, method="totp", code=code_for(factor, at=now + 30)).ok


def test_failures_are_counted_per_factor(alice) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    codes = factors.regenerate_backup_codes(user=alice)
    assert not factors.verify_factor(user=alice, method="totp", code="000000").ok or True
    TotpFactor.objects.filter(pk=factor.pk).update(throttling_failure_count=0)
    factors.verify_factor(user=alice, method="totp", code="123456")
    assert factors.verify_factor(user=alice, method="backup_code", code=codes[0]).ok
    # The backup code's success left the TOTP factor's failure count alone, and the reverse.
    assert TotpFactor.objects.get(pk=factor.pk).throttling_failure_count in (0, 1)
    assert alice.backupcodefactor_set.get().throttling_failure_count == 0


def test_a_factor_is_throttled_after_failures(alice) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    for _ in range(3):
        factors.verify_factor(user=alice, method="totp", code="000001")
    result = factors.verify_factor(user=alice, method="totp", code=code_for(factor))
    assert result.throttled and not result.ok and result.retry_after >= 1


# -- sign-in with a second factor -------------------------------------------------------------------


def test_sign_in_with_totp(api, alice, strict_policy) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    challenge = login(api, "alice@example.test").json()
    assert challenge["mfa_required"] is True and challenge["methods"] == ["totp"]
    wrong = api.post(
        "/api/v1/auth/mfa/verify",
        {"mfa_token": challenge["mfa_token"], "method": "totp", "code": "000000"},
        format="json",
    )
    assert_problem(wrong, 401, "mfa_invalid")
    # A failure throttles the factor: an immediate retry is refused, even with the right code.
    assert_problem(
        api.post(
            "/api/v1/auth/mfa/verify",
            {"mfa_token": challenge["mfa_token"], "method": "totp", "code": code_for(factor)},
            format="json",
        ),
        429,
        "rate_limited",
    )
    traveller = time_machine.travel(datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5), tick=True)
    traveller.start()
    ok = api.post(
        "/api/v1/auth/mfa/verify",
        {"mfa_token": challenge["mfa_token"], "method": "totp", "code": code_for(factor)},
        format="json",
    )
    assert ok.status_code == 200, ok.content
    assert bearer(api, ok.json()["access"]).get("/api/v1/me").json()["mfa_enrolled"] is True
    # The mfa_token is single use.
    api.credentials()
    again = api.post(
        "/api/v1/auth/mfa/verify",
        {"mfa_token": challenge["mfa_token"], "method": "totp", "code": code_for(factor)},
        format="json",
    )
    assert_problem(again, 401, "mfa_invalid")
    traveller.stop()
    assert SecurityEvent.objects.filter(user=alice, kind="mfa_failed").count() == 1
    assert SecurityEvent.objects.filter(user=alice, kind="mfa_succeeded").count() == 1


def test_an_mfa_token_expires(api, alice, strict_policy) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    token = login(api, "alice@example.test").json()["mfa_token"]
    with time_machine.travel(datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=6)):
        late = api.post(
            "/api/v1/auth/mfa/verify", {"mfa_token": token, "method": "totp", "code": code_for(factor)}, format="json"
        )
    assert_problem(late, 401, "mfa_invalid")


def test_listener_without_factors_gets_an_emailed_code(
    api, alice, strict_policy, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    challenge = login(api, "alice@example.test").json()
    assert challenge["methods"] == ["email"]
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            api.post("/api/v1/auth/mfa/email", {"mfa_token": challenge["mfa_token"]}, format="json").status_code == 204
        )
    (message,) = mail.outbox
    assert message.subject == "Your sign-in code" and message.to == ["alice@example.test"]
    code = re.search(r"code is (\d{6})", message.body).group(1)  # type: ignore[union-attr]
    ok = api.post(
        "/api/v1/auth/mfa/verify", {"mfa_token": challenge["mfa_token"], "method": "email", "code": code}, format="json"
    )
    assert ok.status_code == 200 and "access" in ok.json()


def test_an_emailed_code_expires_after_10_minutes_and_sends_are_limited(api, alice, strict_policy, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MFA_CHALLENGE_MINUTES = 30
    token = login(api, "alice@example.test").json()["mfa_token"]
    with pytest.MonkeyPatch.context() as mp:
        sent: list[str] = []
        mp.setattr("accounts.services.signin.send_code", lambda user, code: sent.append(code))
        for _ in range(3):
            assert api.post("/api/v1/auth/mfa/email", {"mfa_token": token}, format="json").status_code == 204
        assert_problem(api.post("/api/v1/auth/mfa/email", {"mfa_token": token}, format="json"), 429, "rate_limited")
    with time_machine.travel(datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=11)):
        late = api.post(
            "/api/v1/auth/mfa/verify", {"mfa_token": token, "method": "email", "code": sent[-1]}, format="json"
        )
    assert_problem(late, 401, "mfa_invalid")


def test_backup_codes_are_long_single_use_and_stored_hashed(api, alice, strict_policy) -> None:  # type: ignore[no-untyped-def]
    codes = factors.regenerate_backup_codes(user=alice)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[2-9A-HJ-NP-Z]{4}(-[2-9A-HJ-NP-Z]{4}){3}", c) for c in codes)  # 16 of 31 symbols: 79 bits
    stored = set(BackupCode.objects.values_list("code_hash", flat=True))
    assert not set(codes) & stored
    token = login(api, "alice@example.test").json()["mfa_token"]
    used = api.post(
        "/api/v1/auth/mfa/verify",
        {"mfa_token": token, "method": "backup_code", "code": codes[0].lower()},
        format="json",
    )
    assert used.status_code == 200
    token = login(api, "alice@example.test").json()["mfa_token"]
    reused = api.post(
        "/api/v1/auth/mfa/verify", {"mfa_token": token, "method": "backup_code", "code": codes[0]}, format="json"
    )
    assert_problem(reused, 401, "mfa_invalid")


# -- enrolment and step-up ------------------------------------------------------------------------------


def test_enrol_totp_then_step_up_for_backup_codes_and_removal(api, alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    bearer(api, login(api, "alice@example.test").json()["access"])
    created = api.post("/api/v1/mfa/devices", {"type": "totp", "name": "Phone"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["confirmed"] is False and body["otpauth_uri"].startswith("otpauth://totp/Identity:Phone?secret=")
    assert "alice" not in body["otpauth_uri"]
    factor = TotpFactor.objects.get(user=alice)
    assert_problem(
        api.post(f"/api/v1/mfa/devices/{body['id']}/confirm", {"code": "000000"}, format="json"), 400, "mfa_invalid"
    )
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    with time_machine.travel(later), django_capture_on_commit_callbacks(execute=True):
        confirmed = api.post(f"/api/v1/mfa/devices/{body['id']}/confirm", {"code": code_for(factor)}, format="json")
    assert confirmed.json() == {"confirmed": True}
    assert [m.subject for m in mail.outbox] == ["A second factor was added to your account"]

    # Confirming counted as a fresh second factor: backup codes now, without another prompt.
    codes = api.post("/api/v1/mfa/backup-codes")
    assert codes.status_code == 201 and len(codes.json()["codes"]) == 10

    with time_machine.travel(datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=11)):
        fresh_login = APIClient()
        tokens = login(fresh_login, "alice@example.test").json()
        assert "access" in tokens  # low risk: a factor is not demanded at every sign-in
        bearer(fresh_login, tokens["access"])
        stale = assert_problem(fresh_login.delete(f"/api/v1/mfa/devices/{body['id']}"), 403, "step_up_required")
        assert stale["methods"] == ["totp", "backup_code"]
        stepped = fresh_login.post(
            "/api/v1/auth/mfa/verify",
            {"mfa_token": stale["mfa_token"], "method": "totp", "code": code_for(factor, at=None)},
            format="json",
        )
        assert stepped.status_code == 200
        bearer(fresh_login, stepped.json()["access"])
        assert fresh_login.delete(f"/api/v1/mfa/devices/{body['id']}").status_code == 204
    assert not TotpFactor.objects.filter(user=alice).exists()


def test_factors_of_another_listener_are_not_found(api, alice, charlie) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    bearer(api, login(api, "charlie@example.test").json()["access"])
    assert_problem(api.delete(f"/api/v1/mfa/devices/totp-{factor.pk}"), 404, "not_found")
    assert_problem(
        api.post(f"/api/v1/mfa/devices/totp-{factor.pk}/confirm", {"code": "123456"}, format="json"), 404, "not_found"
    )
    assert api.get("/api/v1/mfa/devices").json() == []
    assert TotpFactor.objects.filter(pk=factor.pk).exists()
