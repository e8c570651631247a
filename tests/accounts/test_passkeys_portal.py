"""Passkeys in the portal, through the Django test client: add one on the Security page, confirm a
sign-in the risk engine challenged or a step-up with it, name it, remove it.

Requirement: issue #3 ("passkeys/WebAuthn on the portal"; adding or removing a factor needs a fresh
second factor; factor changes are e-mailed and recorded); README "Sign-in and the risk policy"
(passkeys are a second factor: the password and the risk engine run first, passwordless sign-in
is off); README "CSP" (no inline script: the package's scripts come from /static/). The ceremonies
use real cryptography (``SoftAuthenticator``, tests/accounts/test_passkeys.py).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp_webauthn.models import WebAuthnCredential

from accounts.models import AuthSession, MfaChallenge, SecurityEvent, TotpFactor, User
from accounts.portal.passkeys import PASSKEY_FAILED
from accounts.services import factors
from compliance import audit
from compliance.models import AuditEvent
from tests.accounts.test_passkeys import (
    STRICT_POLICY,
    SoftAuthenticator,
    b64u,
    enrol_passkey,
    new_key,
    relying_party,  # noqa: F401 (autouse fixture: the test client's host is the relying party)
    unb64u,
)
from tests.accounts.test_portal_pages import portal_sign_in, signed_in
from tests.accounts.test_portal_security import fresh_factor
from tests.accounts.test_portal_sign_in import enrol_totp, totp_code

pytestmark = pytest.mark.django_db

CHROME_ON_LINUX = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
BEGIN_REGISTRATION = "/webauthn/registration/begin/"
COMPLETE_REGISTRATION = "/webauthn/registration/complete/"
BEGIN_AUTHENTICATION = "/webauthn/authentication/begin/"
COMPLETE_AUTHENTICATION = "/webauthn/authentication/complete/"


def post_json(client: Client, path: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(path, json.dumps(body or {}), content_type="application/json", HTTP_USER_AGENT=CHROME_ON_LINUX)


def add_passkey(client: Client, authenticator: SoftAuthenticator) -> Any:
    """The Security page's button: begin, the authenticator, complete (what the package's script does)."""
    begun = post_json(client, BEGIN_REGISTRATION)
    assert begun.status_code == 200, begun.content
    return post_json(client, COMPLETE_REGISTRATION, authenticator.create(begun.json()))


def use_passkey(client: Client, authenticator: SoftAuthenticator, **kwargs: Any) -> Any:
    """The MFA page's "Use a passkey": begin, the authenticator, complete."""
    begun = post_json(client, BEGIN_AUTHENTICATION)
    assert begun.status_code == 200, begun.content
    return post_json(client, COMPLETE_AUTHENTICATION, authenticator.get(begun.json(), **kwargs))


def challenged(client: Client, user: User, settings: Any, *, next_url: str = "") -> None:
    """Password accepted, and the risk policy asks for a second factor."""
    settings.RISK_POLICY = STRICT_POLICY
    response = portal_sign_in(client, str(user.email), next_url=next_url)
    assert response["Location"] == "/account/sign-in/verify"


def signed_in_now(client: Client) -> bool:
    return client.get("/account").status_code == 200


def config_on(html: str) -> dict[str, Any]:
    found = re.search(r'<script id="otp_webauthn_config" type="application/json">(.*?)</script>', html)
    assert found is not None
    result: dict[str, Any] = json.loads(found.group(1))
    return result


# -- adding a passkey on the Security page --------------------------------------------------------------


def test_the_security_page_offers_a_passkey_with_scripts_from_static(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    html = client.get("/account/security").content.decode()
    assert 'id="passkey-register-button"' in html and "Add a passkey" in html
    config = config_on(html)
    assert (config["beginRegistrationUrl"], config["completeRegistrationUrl"]) == (
        BEGIN_REGISTRATION,
        COMPLETE_REGISTRATION,
    )
    assert config["csrfToken"]
    for src in (
        "/static/django_otp_webauthn/otp_webauthn_register.js",
        "/static/js/passkeys.js",
        "/webauthn/jsi18n/",
    ):
        assert f'src="{src}"' in html, src
    # The only script without src is JSON data, which CSP does not treat as script.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [
        '<script id="otp_webauthn_config" type="application/json">'
    ]
    assert client.get("/webauthn/jsi18n/").status_code == 200


def test_a_first_passkey_needs_no_step_up_and_is_recorded(client, alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    session = signed_in(client, alice)
    authenticator = SoftAuthenticator()
    begun = post_json(client, BEGIN_REGISTRATION)
    options = begun.json()
    assert options["rp"] == {"id": "testserver", "name": "Identity"}
    assert options["user"]["name"] == "alice@example.test"
    assert "no-store" in begun["Cache-Control"] or "max-age=0" in begun["Cache-Control"]

    with django_capture_on_commit_callbacks(execute=True):
        done = post_json(client, COMPLETE_REGISTRATION, authenticator.create(options))

    credential = WebAuthnCredential.objects.get(user=alice)
    assert done.status_code == 200
    assert done.json() == {"id": credential.pk, "redirect_url": f"/account/security/passkeys/{credential.pk}"}
    assert credential.name == "Passkey (Chrome on Linux)"
    assert bytes(credential.public_key) == authenticator.cose_public_key()
    assert SecurityEvent.objects.filter(user=alice, kind="factor_added").count() == 1
    assert AuditEvent.objects.filter(action="accounts.mfa.passkey_added").count() == 1
    assert [m.subject for m in mail.outbox] == ["A second factor was added to your account"]
    # Making the passkey proves it: a fresh second factor, and django-otp counts the session verified.
    session.refresh_from_db()
    assert session.mfa_at is not None
    assert client.session[DEVICE_ID_SESSION_KEY] == credential.persistent_id

    # The script goes to the naming page; the name shows on the Security page.
    page = client.get(done.json()["redirect_url"])
    assert page.status_code == 200 and "Your passkey is added." in page.content.decode()
    assert client.post(done.json()["redirect_url"], {"name": "Work laptop"})["Location"] == "/account/security"
    security = client.get("/account/security").content.decode()
    assert "Work laptop" in security
    assert f'href="/account/security/webauthn/{credential.pk}/remove"' in security


def test_a_registration_cannot_be_completed_twice(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    begun = post_json(client, BEGIN_REGISTRATION)
    answer = SoftAuthenticator().create(begun.json())
    assert post_json(client, COMPLETE_REGISTRATION, answer).status_code == 200
    again = post_json(client, COMPLETE_REGISTRATION, answer)
    assert again.status_code == 400 and again.json()["code"] == "invalid_state"
    assert WebAuthnCredential.objects.count() == 1


def test_adding_a_passkey_to_an_account_with_a_factor_needs_step_up(
    client, alice, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    factor = enrol_totp(alice)
    signed_in(client, alice)
    html = client.get("/account/security").content.decode()
    assert 'href="/account/verify?next=%2Faccount%2Fsecurity%23passkeys"' in html
    assert "passkey-register-button" not in html and "otp_webauthn_register.js" not in html

    with django_capture_on_commit_callbacks(execute=True):
        refused = post_json(client, BEGIN_REGISTRATION)
        also_refused = post_json(client, COMPLETE_REGISTRATION, SoftAuthenticator().create(_fake_options()))
    for response in (refused, also_refused):
        assert response.status_code == 403 and response.json()["code"] == "step_up_required"
    assert not WebAuthnCredential.objects.exists()
    assert not SecurityEvent.objects.filter(kind="factor_added").exists() and mail.outbox == []

    client.get("/account/verify?next=/account/security%23passkeys")
    done = client.post(
        "/account/verify", {"method": "totp", "code": totp_code(factor), "next": "/account/security#passkeys"}
    )
    assert done["Location"] == "/account/security#passkeys"
    assert "passkey-register-button" in client.get("/account/security").content.decode()
    assert add_passkey(client, SoftAuthenticator()).status_code == 200
    assert WebAuthnCredential.objects.filter(user=alice).count() == 1


def _fake_options() -> dict[str, Any]:
    return {"challenge": b64u(b"x" * 32), "rp": {"id": "testserver"}, "user": {"id": b64u(b"u")}}


def test_registration_needs_a_portal_session(client, alice) -> None:  # type: ignore[no-untyped-def]
    anonymous = post_json(client, BEGIN_REGISTRATION)
    assert anonymous.status_code == 403 and anonymous.json()["code"] == "not_authenticated"
    client.force_login(alice)  # a Django login without a portal session (the admin's) does not count
    assert post_json(client, BEGIN_REGISTRATION).status_code == 403


def test_the_ceremony_endpoints_need_the_csrf_token(alice) -> None:  # type: ignore[no-untyped-def]
    browser = Client(enforce_csrf_checks=True)
    for path in (BEGIN_REGISTRATION, BEGIN_AUTHENTICATION, COMPLETE_AUTHENTICATION):
        assert browser.post(path, "{}", content_type="application/json").status_code == 403, path


# -- signing in with a passkey ---------------------------------------------------------------------------


def test_a_challenged_sign_in_is_completed_with_a_passkey(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    credential, authenticator = enrol_passkey(alice)
    challenged(client, alice, settings, next_url="/account/sessions")
    page = client.get("/account/sign-in/verify").content.decode()
    assert 'id="passkey-verification-button"' in page and "Use a passkey" in page
    assert 'name="code"' not in page  # a passkey is all she has: no code form
    assert config_on(page)["beginAuthenticationUrl"] == BEGIN_AUTHENTICATION
    assert 'src="/static/django_otp_webauthn/otp_webauthn_auth.js"' in page

    begun = post_json(client, BEGIN_AUTHENTICATION)
    options = begun.json()
    assert options["rpId"] == "testserver" and options["userVerification"] == "discouraged"
    assert [unb64u(c["id"]) for c in options["allowCredentials"]] == [bytes(credential.credential_id)]
    done = post_json(client, COMPLETE_AUTHENTICATION, authenticator.get(options))

    assert done.status_code == 200
    assert done.json() == {"id": credential.pk, "redirect_url": "/account/sessions"}
    assert signed_in_now(client)
    session = AuthSession.objects.get(user=alice)
    assert session.kind == "web" and session.mfa_at is not None
    assert client.session[DEVICE_ID_SESSION_KEY] == credential.persistent_id
    assert "portal_signin_mfa" not in client.session
    assert MfaChallenge.objects.get().used_at is not None
    assert list(SecurityEvent.objects.filter(user=alice).values_list("kind", flat=True)) == [
        "mfa_succeeded",
        "signin",
        "factor_added",
    ]
    recorded = AuditEvent.objects.get(action="accounts.signin.mfa_completed")
    assert audit.read_payload(recorded)["data"] == {"method": "webauthn"}  # type: ignore[index]
    credential.refresh_from_db()
    assert credential.sign_count == 1 and credential.last_used_at is not None


def test_with_a_passkey_and_an_app_both_are_offered(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    enrol_passkey(alice)
    enrol_totp(alice)
    challenged(client, alice, settings)
    page = client.get("/account/sign-in/verify").content.decode()
    assert "Use a passkey" in page and "Or enter a code" in page and 'name="code"' in page


def test_a_replayed_assertion_signs_nobody_in(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    _, authenticator = enrol_passkey(alice)
    challenged(client, alice, settings)
    begun = post_json(client, BEGIN_AUTHENTICATION)
    answer = authenticator.get(begun.json())
    assert post_json(client, COMPLETE_AUTHENTICATION, answer).status_code == 200
    client.post("/account/sign-out")

    # An attacker who captured the answer replays it on a sign-in of their own (with the password).
    attacker = Client()
    challenged(attacker, alice, settings)
    no_state = post_json(attacker, COMPLETE_AUTHENTICATION, answer)
    assert no_state.status_code == 400 and no_state.json()["code"] == "invalid_state"
    post_json(attacker, BEGIN_AUTHENTICATION)
    replayed = post_json(attacker, COMPLETE_AUTHENTICATION, answer)
    assert replayed.status_code == 422 and replayed.json() == {
        "detail": PASSKEY_FAILED,
        "code": "invalid_authentication_response",
    }
    assert not signed_in_now(attacker)
    assert MfaChallenge.objects.filter(used_at__isnull=True).get().attempts == 1
    assert SecurityEvent.objects.filter(user=alice, kind="mfa_failed").count() == 1


def test_a_passkey_answer_belongs_to_the_sign_in_it_was_begun_for(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    _, authenticator = enrol_passkey(alice)
    challenged(client, alice, settings)
    answer = authenticator.get(post_json(client, BEGIN_AUTHENTICATION).json())
    challenged(client, alice, settings)  # she starts again in the same browser: a new challenge
    refused = post_json(client, COMPLETE_AUTHENTICATION, answer)
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_state"
    assert not signed_in_now(client)
    assert MfaChallenge.objects.filter(used_at__isnull=False).count() == 0


def test_an_assertion_is_good_for_one_sign_in_only(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    _, authenticator = enrol_passkey(alice)
    challenged(client, alice, settings)
    begun = post_json(client, BEGIN_AUTHENTICATION)
    answer = authenticator.get(begun.json())
    assert post_json(client, COMPLETE_AUTHENTICATION, answer).status_code == 200
    again = post_json(client, COMPLETE_AUTHENTICATION, answer)
    assert again.status_code == 403 and again.json()["code"] == "mfa_challenge_missing"
    assert AuthSession.objects.count() == 1


def test_another_listeners_passkey_cannot_confirm_her_sign_in(client, alice, charlie, settings) -> None:  # type: ignore[no-untyped-def]
    enrol_passkey(alice)
    _, charlies = enrol_passkey(charlie)
    challenged(client, alice, settings)
    refused = use_passkey(client, charlies)
    assert refused.status_code == 403
    assert refused.json() == {"detail": PASSKEY_FAILED, "code": "credential_user_mismatch"}
    assert not signed_in_now(client)
    assert not AuthSession.objects.exists()
    assert MfaChallenge.objects.get().attempts == 1
    assert SecurityEvent.objects.filter(user=alice, kind="mfa_failed").count() == 1


@pytest.mark.parametrize(
    "forgery",
    [
        pytest.param({"signing_key": "other"}, id="signed-by-another-key"),
        pytest.param({"origin": "https://phishing.example"}, id="relayed-by-a-phishing-site"),
    ],
)
def test_a_forged_assertion_signs_nobody_in(client, alice, settings, forgery: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    _, authenticator = enrol_passkey(alice)
    kwargs = {**forgery, "signing_key": new_key()} if "signing_key" in forgery else forgery
    challenged(client, alice, settings)
    refused = use_passkey(client, authenticator, **kwargs)
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_authentication_response"
    assert not signed_in_now(client) and not AuthSession.objects.exists()


def test_too_many_failed_passkeys_end_the_sign_in(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    _, authenticator = enrol_passkey(alice)
    challenged(client, alice, settings)
    for _ in range(settings.MFA_CHALLENGE_MAX_ATTEMPTS):
        assert use_passkey(client, authenticator, signing_key=new_key()).status_code == 422
    ended = post_json(client, BEGIN_AUTHENTICATION)
    assert ended.status_code == 403 and ended.json()["code"] == "mfa_challenge_missing"
    assert not AuthSession.objects.exists()


def test_passwordless_sign_in_is_refused(client, alice) -> None:  # type: ignore[no-untyped-def]
    """Without a sign-in whose password was right, there is nothing a passkey can confirm."""
    _, authenticator = enrol_passkey(alice)
    begun = post_json(client, BEGIN_AUTHENTICATION)
    assert begun.status_code == 403 and begun.json()["code"] == "mfa_challenge_missing"
    answer = authenticator.get({"challenge": b64u(b"c" * 32), "rpId": "testserver"})
    assert post_json(client, COMPLETE_AUTHENTICATION, answer).status_code == 403
    assert not signed_in_now(client)


def test_a_passkey_is_not_offered_where_the_listener_has_none(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    enrol_totp(alice)
    challenged(client, alice, settings)
    page = client.get("/account/sign-in/verify").content.decode()
    assert "Use a passkey" not in page and "otp_webauthn" not in page
    assert post_json(client, BEGIN_AUTHENTICATION).status_code == 403


def test_the_ceremony_endpoints_are_rate_limited(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "mfa": "2/minute"},
    }
    enrol_passkey(alice)
    challenged(client, alice, settings)
    post_json(client, BEGIN_AUTHENTICATION)
    post_json(client, BEGIN_AUTHENTICATION)
    limited = post_json(client, BEGIN_AUTHENTICATION)
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert int(limited["Retry-After"]) >= 1


# -- step-up and removal ------------------------------------------------------------------------------


def test_removing_a_passkey_needs_step_up_which_the_passkey_can_give(
    client, alice, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    credential, authenticator = enrol_passkey(alice)
    session = signed_in(client, alice)  # the risk engine allowed it: no second factor yet
    url = f"/account/security/webauthn/{credential.pk}/remove"
    to_step_up = client.get(url)
    assert to_step_up["Location"] == f"/account/verify?next={urllib.parse.quote(url, safe='')}"
    assert client.post(url)["Location"].startswith("/account/verify")
    assert WebAuthnCredential.objects.filter(pk=credential.pk).exists()

    page = client.get(to_step_up["Location"]).content.decode()
    assert "Confirm it is you" in page and "Use a passkey" in page
    done = use_passkey(client, authenticator)
    assert done.status_code == 200 and done.json()["redirect_url"] == url
    session.refresh_from_db()
    assert session.mfa_at is not None
    assert AuditEvent.objects.filter(action="accounts.mfa.step_up").count() == 1
    assert "portal_step_up" not in client.session

    confirm = client.get(url).content.decode()
    assert "Remove “Laptop”?" in confirm and "password manager" in confirm
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url)["Location"] == "/account/security"
    assert not WebAuthnCredential.objects.filter(user=alice).exists()
    assert SecurityEvent.objects.filter(user=alice, kind="factor_removed").count() == 1
    assert AuditEvent.objects.filter(action="accounts.mfa.factor_removed").count() == 1
    assert [m.subject for m in mail.outbox] == ["A second factor was removed from your account"]


def test_a_step_up_assertion_cannot_be_used_by_another_session(client, alice) -> None:  # type: ignore[no-untyped-def]
    _, authenticator = enrol_passkey(alice)
    signed_in(client, alice)
    client.get("/account/verify?next=/account/email")
    begun = post_json(client, BEGIN_AUTHENTICATION)
    answer = authenticator.get(begun.json())

    other = Client()  # another browser of hers, with its own step-up page open
    signed_in(other, alice)
    other.get("/account/verify?next=/account/email")
    refused = post_json(other, COMPLETE_AUTHENTICATION, answer)
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_state"
    assert not AuthSession.objects.filter(mfa_at__isnull=False).exists()


def test_other_listeners_passkeys_are_not_found(client, alice, charlie) -> None:  # type: ignore[no-untyped-def]
    theirs, _ = enrol_passkey(charlie)
    fresh_factor(signed_in(client, alice))
    assert client.get(f"/account/security/passkeys/{theirs.pk}").status_code == 404
    assert client.post(f"/account/security/passkeys/{theirs.pk}", {"name": "Mine now"}).status_code == 404
    assert client.get(f"/account/security/webauthn/{theirs.pk}/remove").status_code == 404
    assert client.post(f"/account/security/webauthn/{theirs.pk}/remove").status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Laptop"


def test_a_passkey_name_is_required_and_short(client, alice) -> None:  # type: ignore[no-untyped-def]
    credential, _ = enrol_passkey(alice)
    signed_in(client, alice)
    url = f"/account/security/passkeys/{credential.pk}"
    assert client.post(url, {"name": ""}).status_code == 200
    assert client.post(url, {"name": "x" * 65}).status_code == 200
    credential.refresh_from_db()
    assert credential.name == "Laptop"


def test_a_listener_can_enrol_every_factor_and_sign_in_with_each(client, alice, settings) -> None:  # type: ignore[no-untyped-def]
    """Issue #3: TOTP, a passkey and backup codes through the portal; the risk engine decides."""
    signed_in(client, alice)
    client.post("/account/security/totp", {"name": "Phone"})
    totp = TotpFactor.objects.get(user=alice)
    assert client.post(f"/account/security/totp/{totp.pk}/confirm", {"code": totp_code(totp)}).status_code == 302
    # Confirming the app was a fresh second factor: the passkey and the codes need no other step-up.
    authenticator = SoftAuthenticator()
    assert add_passkey(client, authenticator).status_code == 200
    shown = client.post("/account/security/backup-codes").content.decode()
    codes = re.findall(r"<li>([2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4})</li>", shown)
    assert len(codes) == 10
    assert factors.methods_for(alice) == ["webauthn", "totp", "backup_code"]
    client.post("/account/sign-out")

    challenged(client, alice, settings)
    page = client.get("/account/sign-in/verify").content.decode()
    assert "Use a passkey" in page and 'value="totp"' in page and 'value="backup_code"' in page
    assert use_passkey(client, authenticator).status_code == 200
    assert signed_in_now(client)
    client.post("/account/sign-out")

    challenged(client, alice, settings)
    done = client.post("/account/sign-in/verify", {"method": "backup_code", "code": codes[0]})
    assert done["Location"] == "/account" and signed_in_now(client)
