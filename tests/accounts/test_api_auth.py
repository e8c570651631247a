"""The authentication API of CONTRACT.md through the DRF client, with problem+json errors.

Requirement: issue #3 (sign-up, sign-in with adaptive MFA, tokens, lockout, enumeration safety);
CONTRACT.md Authentication; RFC 9700 §4.14 (refresh-token rotation and reuse detection);
NIST SP 800-63B-4 (password rules, MFA); OWASP ASVS 5.0 V6 (no account enumeration).
"""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.core import mail
from rest_framework.test import APIClient

from accounts.models import (
    AccessToken,
    AuthSession,
    ParentalConsentRequest,
    SecurityAlert,
    SecurityEvent,
    User,
)
from compliance.models import AuditEvent
from tests.accounts.api_helpers import HOME_IP, assert_problem, bearer, login
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

SIGNUP = {
    "email": "new.listener@example.test",
    "password": "violet elephants juggle quietly",
    "date_of_birth": "1995-07-01",
    "country": "de",
    "region": "DE-BE",
    "display_name": "Nova Listener",
}


@pytest.fixture
def api() -> APIClient:
    return APIClient()


# -- sign-up --------------------------------------------------------------------------------------


def test_sign_up_creates_an_account_that_can_sign_in_at_once(api, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/auth/register", SIGNUP, format="json")
    assert response.status_code == 201
    user_out = response.json()["user"]
    assert user_out["email"] == "new.listener@example.test"
    assert (user_out["country"], user_out["region"], user_out["email_verified"]) == ("DE", "DE-BE", False)
    user = User.objects.with_email("new.listener@example.test").get()
    assert user.is_active and user.email_verified_at is None
    assert [m.subject for m in mail.outbox] == ["Welcome: please confirm your e-mail address"]
    assert "/account/verify-email/" in mail.outbox[0].body
    assert login(api, SIGNUP["email"], SIGNUP["password"]).status_code == 200


def test_sign_up_with_a_taken_address_answers_the_same_and_tells_the_owner(  # type: ignore[no-untyped-def]
    api, alice, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/auth/register", {**SIGNUP, "email": "ALICE@example.test"}, format="json")
    assert response.status_code == 201
    assert set(response.json()["user"]) == {
        "id",
        "email",
        "display_name",
        "date_of_birth",
        "country",
        "region",
        "phone",
        "mfa_enrolled",
        "email_verified",
        "created_at",
    }
    assert response.json()["user"]["id"] != str(alice.pk)
    assert User.objects.count() == 1
    assert [m.subject for m in mail.outbox] == ["Someone tried to sign up with your address"]
    assert mail.outbox[0].to == ["alice@example.test"]


def test_a_child_under_13_waits_for_a_parent(api) -> None:  # type: ignore[no-untyped-def]
    today = datetime.date.today()
    child = {**SIGNUP, "email": "kid@example.test", "date_of_birth": today.replace(year=today.year - 10).isoformat()}
    body = assert_problem(api.post("/api/v1/auth/register", child, format="json"), 400, "validation_error")
    assert body["errors"] == {"parent_email": ["A parent's e-mail address is required under 13."]}
    assert not User.objects.exists()

    response = api.post("/api/v1/auth/register", {**child, "parent_email": "parent@example.test"}, format="json")
    assert response.status_code == 202
    assert response.json() == {"status": "parental_consent_required"}
    kid = User.objects.with_email("kid@example.test").get()
    assert not kid.is_active
    assert ParentalConsentRequest.objects.get(child=kid).parent_email == "parent@example.test"
    assert_problem(login(api, "kid@example.test", SIGNUP["password"]), 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short pass", "Use at least 15 characters (this one has 10). A passphrase of a few words works well."),
        ("1234567890qwertyuiop", "This password is on a list of common or breached passwords. Choose another."),
        ("new.listener and more words", "Do not build the password from your e-mail address or name."),
        ("🎵" * 14, "Use at least 15 characters (this one has 14). A passphrase of a few words works well."),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(api, password: str, message: str) -> None:  # type: ignore[no-untyped-def]
    body = assert_problem(
        api.post("/api/v1/auth/register", {**SIGNUP, "password": password}, format="json"), 400, "validation_error"
    )
    assert message in body["errors"]["password"]
    assert not User.objects.exists()


def test_long_unicode_passphrases_are_accepted(api) -> None:  # type: ignore[no-untyped-def]
    response = api.post("/api/v1/auth/register", {**SIGNUP, "password": "ñandú " * 12 + "x" * 60}, format="json")
    assert response.status_code == 201


def test_bad_input_is_refused_field_by_field(api) -> None:  # type: ignore[no-untyped-def]
    bad = {**SIGNUP, "email": "not-an-address", "country": "Germany", "date_of_birth": "2999-01-01", "region": "XX"}
    body = assert_problem(api.post("/api/v1/auth/register", bad, format="json"), 400, "validation_error")
    assert set(body["errors"]) == {"email", "country", "date_of_birth", "region"}
    assert_problem(api.post("/api/v1/auth/register", "not json", content_type="application/json"), 400, "parse_error")


# -- sign-in --------------------------------------------------------------------------------------


def test_sign_in_returns_tokens_with_the_risk_and_records_the_decision(api, alice) -> None:  # type: ignore[no-untyped-def]
    response = login(api, "alice@example.test")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    assert body["risk"] == {"level": "low", "reasons": ["new_device"]}
    event = SecurityEvent.objects.get(user=alice, kind="signin")
    assert (event.decision, event.level, event.reasons) == ("allow", "low", ["new_device"])
    assert event.context["ip"] == HOME_IP  # encrypted at rest, readable by its owner
    me = bearer(api, body["access"]).get("/api/v1/me")
    assert me.status_code == 200 and me.json()["email"] == "alice@example.test"


def test_unknown_address_and_wrong_password_get_the_same_answer(api, alice) -> None:  # type: ignore[no-untyped-def]
    unknown = login(api, "nobody@example.test")
    wrong = login(api, "alice@example.test", "not the password at all")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.json()["code"] == "invalid_credentials"
    assert AccessToken.objects.count() == 0


def test_tokens_are_stored_only_as_hashes(api, alice) -> None:  # type: ignore[no-untyped-def]
    body = login(api, "alice@example.test").json()
    stored = list(AccessToken.objects.values_list("token_hash", flat=True))
    assert body["access"] not in stored and len(stored[0]) == 64


def test_requests_without_a_valid_token_are_refused(api) -> None:  # type: ignore[no-untyped-def]
    assert_problem(api.get("/api/v1/me"), 401, "not_authenticated")
    assert_problem(bearer(api, "ima_forged").get("/api/v1/me"), 401, "invalid_token")


def test_access_tokens_expire_after_15_minutes(api, alice) -> None:  # type: ignore[no-untyped-def]
    access = login(api, "alice@example.test").json()["access"]
    with time_machine.travel(datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=16)):
        assert_problem(bearer(api, access).get("/api/v1/me"), 401, "invalid_token")


# -- refresh, reuse, logout ---------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_whole_session(api, alice) -> None:  # type: ignore[no-untyped-def]
    first = login(api, "alice@example.test").json()
    second = api.post("/api/v1/auth/token/refresh", {"refresh": first["refresh"]}, format="json").json()
    assert second["refresh"] != first["refresh"] and second["session_id"] == first["session_id"]

    reused = api.post("/api/v1/auth/token/refresh", {"refresh": first["refresh"]}, format="json")
    assert_problem(reused, 401, "token_reused")
    session = AuthSession.objects.get(pk=first["session_id"])
    assert session.revoked_reason == "token_reused"
    # Every token of the family is dead: the newest access and refresh tokens too.
    assert_problem(bearer(api, second["access"]).get("/api/v1/me"), 401, "invalid_token")
    api.credentials()
    assert_problem(
        api.post("/api/v1/auth/token/refresh", {"refresh": second["refresh"]}, format="json"), 401, "token_reused"
    )
    assert SecurityEvent.objects.filter(user=alice, kind="token_reused").exists()
    assert SecurityAlert.objects.get(kind="token_reuse").severity == "critical"
    assert AuditEvent.objects.filter(action="accounts.session.token_reused").count() >= 1


def test_logout_ends_the_session(api, alice) -> None:  # type: ignore[no-untyped-def]
    tokens = login(api, "alice@example.test").json()
    assert api.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code == 204
    assert_problem(bearer(api, tokens["access"]).get("/api/v1/me"), 401, "invalid_token")
    api.credentials()
    assert_problem(
        api.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json"), 401, "token_reused"
    )


def test_sessions_have_an_absolute_lifetime(api, alice) -> None:  # type: ignore[no-untyped-def]
    tokens = login(api, "alice@example.test").json()
    refresh = tokens["refresh"]
    start = datetime.datetime.now(datetime.UTC)
    for days in (10, 20, 29):  # kept alive by use, but never beyond 30 days
        with time_machine.travel(start + datetime.timedelta(days=days)):
            refresh = api.post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json").json()["refresh"]
    with time_machine.travel(start + datetime.timedelta(days=31)):
        assert_problem(
            api.post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json"), 401, "invalid_token"
        )


# -- lockout and credential stuffing --------------------------------------------------------------


def test_repeated_failures_lock_the_account_and_ip_pair_with_a_cool_off(api, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        login(api, "alice@example.test", "wrong password number one")
    locked = assert_problem(login(api, "alice@example.test"), 429, "locked_out")
    assert locked["detail"] == "Too many failed attempts. Try again later."
    assert int(login(api, "alice@example.test")["Retry-After"]) == 15 * 60
    assert SecurityEvent.objects.filter(user=alice, kind="locked_out").exists()
    # Another network is not locked out of the same account.
    assert login(api, "alice@example.test", ip="89.160.20.10").status_code == 200
    with time_machine.travel(datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=16)):
        assert login(api, "alice@example.test").status_code == 200


def test_credential_stuffing_blocks_the_address_and_raises_an_alert(api, make_user, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RISK_IP_FAILED_ACCOUNTS = 5
    victim = make_user("victim@example.test")
    for n in range(5):
        login(api, f"user{n}@example.test", "guessed password 123", ip="89.160.20.66")
    assert_problem(login(api, victim.email, ip="89.160.20.66"), 429, "locked_out")
    alert = SecurityAlert.objects.get(kind="credential_stuffing")
    assert alert.details["failed_accounts"] == 5
    assert "89.160.20.66" not in str(alert.details)
    assert login(api, victim.email, ip=HOME_IP).status_code == 200


def test_impossible_travel_is_refused_notified_and_alerted(  # type: ignore[no-untyped-def]
    api, alice, geoip, django_capture_on_commit_callbacks
) -> None:
    assert login(api, "alice@example.test", ip="81.2.69.10").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = login(api, "alice@example.test", ip="89.160.20.10", device="laptop-9")
    body = assert_problem(response, 403, "login_blocked")
    assert body["risk"]["level"] == "high"
    assert {"impossible_travel", "new_country", "new_network", "new_device"} <= set(body["risk"]["reasons"])
    assert SecurityAlert.objects.filter(kind="impossible_travel", user=alice).exists()
    assert [m.subject for m in mail.outbox] == ["We stopped a sign-in to your account"]
    assert "US" in mail.outbox[0].body and "/account/not-me/" in mail.outbox[0].body


def test_a_new_place_after_history_asks_for_a_second_factor(api, alice, geoip) -> None:  # type: ignore[no-untyped-def]
    assert login(api, "alice@example.test", ip="81.2.69.10").status_code == 200
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=12)
    with time_machine.travel(later):  # 12 hours: a flight, not impossible
        response = login(api, "alice@example.test", ip="89.160.20.10")
    body = response.json()
    assert body["mfa_required"] is True and body["methods"] == ["email"]
    assert body["risk"]["level"] == "medium"
    assert set(body["risk"]["reasons"]) == {"new_network", "new_country"}
    assert "access" not in body


def test_password_on_the_blocklist_raises_the_risk(api, make_user) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth.hashers import make_password

    user = make_user("legacy@example.test")
    User.objects.filter(pk=user.pk).update(password=make_password("password123"))
    body = login(api, "legacy@example.test", "password123").json()
    assert "password_on_blocklist" in body["risk"]["reasons"]
    assert body["mfa_required"] is True


# -- schema ---------------------------------------------------------------------------------------


def test_openapi_schema_validates_and_lists_every_endpoint(api) -> None:  # type: ignore[no-untyped-def]
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert paths >= {
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/mfa/verify",
        "/api/v1/auth/mfa/email",
        "/api/v1/auth/token/refresh",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/me/sessions",
        "/api/v1/me/sessions/{session_id}",
        "/api/v1/me/security-events",
        "/api/v1/mfa/devices",
        "/api/v1/mfa/devices/{factor_id}/confirm",
        "/api/v1/mfa/devices/{factor_id}",
        "/api/v1/mfa/backup-codes",
    }
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    docs = api.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert PASSWORD  # the personas' password constant is shared with the helpers


def test_the_cool_off_grows_with_each_lockout_and_is_never_permanent(api, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AXES_FAILURE_LIMIT = 3
    start = datetime.datetime.now(datetime.UTC)
    with time_machine.travel(start, tick=False):
        for _ in range(3):
            login(api, "alice@example.test", "wrong password number one")
        assert login(api, "alice@example.test")["Retry-After"] == str(15 * 60)
    with time_machine.travel(start + datetime.timedelta(minutes=16), tick=False):
        for _ in range(3):
            login(api, "alice@example.test", "wrong password number two")
        second = assert_problem(login(api, "alice@example.test"), 429, "locked_out")
        assert second and login(api, "alice@example.test")["Retry-After"] == str(30 * 60)
    with time_machine.travel(start + datetime.timedelta(minutes=16 + 20), tick=False):
        assert_problem(login(api, "alice@example.test"), 429, "locked_out")
    with time_machine.travel(start + datetime.timedelta(minutes=16 + 31), tick=False):
        assert login(api, "alice@example.test").status_code == 200
    assert SecurityEvent.objects.filter(user=alice, kind="locked_out").count() == 2


def test_lockout_behind_a_proxy_counts_the_client_not_the_proxy(api, alice, settings) -> None:  # type: ignore[no-untyped-def]
    """PITFALLS.md: django-axes often sees the proxy's address (#1099, #528)."""
    settings.AXES_FAILURE_LIMIT = 3
    settings.TRUSTED_PROXY_COUNT = 1

    def via_proxy(client_ip: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
        return api.post(
            "/api/v1/auth/login",
            {"email": "alice@example.test", "password": password, "device": {"id": "phone-1"}},
            format="json",
            REMOTE_ADDR="10.0.0.2",  # nginx
            HTTP_X_FORWARDED_FOR=f"6.6.6.6, {client_ip}",  # a forged entry, then the one nginx appended
        )

    for _ in range(3):
        via_proxy("89.160.20.10", "wrong password again and again")
    assert_problem(via_proxy("89.160.20.10"), 429, "locked_out")
    # Another client behind the same proxy is not locked out.
    assert via_proxy("81.2.69.10").status_code == 200


def test_a_successful_sign_in_clears_the_pairs_failures(api, alice, settings) -> None:  # type: ignore[no-untyped-def]
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        login(api, "alice@example.test", "wrong password number one")
    assert AccessAttempt.objects.get().failures_since_start == 2
    assert login(api, "alice@example.test").status_code == 200
    assert not AccessAttempt.objects.exists()
    for _ in range(2):  # two more failures do not lock: the count started again
        login(api, "alice@example.test", "wrong password number two")
    assert login(api, "alice@example.test").status_code == 200
