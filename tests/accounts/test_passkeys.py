"""Passkeys (WebAuthn, django-otp-webauthn) as a second factor: the services, with real cryptography.

Requirement: issue #3 ("passkeys/WebAuthn on the portal"; a listener enrols TOTP, a passkey and
backup codes and signs in with the risk engine deciding; adding or removing a factor is recorded,
audited and e-mailed); README "Sign-in and the risk policy" (passkeys); W3C WebAuthn Level 3
§6.1 (authenticator data), §7.1/§7.2 (registration and assertion checks: challenge, origin, RP id
hash, signature, signature counter); RFC 9053 (COSE EC2 key, ES256).

``SoftAuthenticator`` is an authenticator in software: an EC P-256 key pair made by ``cryptography``,
"none" attestation, authenticator data built byte by byte and clientDataJSON carrying the challenge
of the begin step. Nothing on the server side is mocked: py_webauthn, through the package's helper,
verifies what it makes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core import mail
from django.http import HttpRequest
from django.test import RequestFactory
from django.urls import resolve
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp_webauthn import exceptions as webauthn_errors
from django_otp_webauthn.models import WebAuthnAttestation, WebAuthnCredential, WebAuthnUserHandle
from rest_framework.test import APIClient
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse

from accounts.models import AuthSession, MfaChallenge, SecurityEvent, User
from accounts.portal import passkeys
from accounts.services import factors
from accounts.services.signin import (
    MfaError,
    complete_mfa,
    complete_mfa_with_device,
    open_challenge,
    record_mfa_failure,
)
from compliance import audit
from compliance.checks import check_model
from compliance.models import AuditEvent
from compliance.registry import registry
from tests.accounts.api_helpers import assert_problem, login
from tests.accounts.test_portal_sign_in import enrol_totp

pytestmark = pytest.mark.django_db

RP_ID = "testserver"  # the Django test client's host
ORIGIN = "http://testserver"
STRICT_POLICY = {"decisions": {"low": "challenge", "medium": "challenge", "high": "deny"}}

# authenticatorData flags (WebAuthn L3 §6.1)
UP, UV, AT = 0x01, 0x04, 0x40


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class SoftAuthenticator:
    """One passkey on a software authenticator that counts its signatures, as security keys do."""

    origin: str = ORIGIN
    key: ec.EllipticCurvePrivateKey = field(default_factory=new_key)
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    aaguid: bytes = bytes(16)
    sign_count: int = 0
    counts: bool = True  # many synced passkeys always answer 0
    user_handle: bytes = b""

    def cose_public_key(self) -> bytes:
        """COSE_Key of the public key: kty EC2 (2), alg ES256 (-7), crv P-256 (1), x, y (RFC 9053)."""
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def authenticator_data(self, rp_id: str, *, flags: int, attested: bool = False) -> bytes:
        """rpIdHash (32) | flags (1) | signCount (4, big-endian) [| AAGUID | L | credentialId | COSE key]."""
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + self.sign_count.to_bytes(4, "big")
        if attested:
            data += self.aaguid + len(self.credential_id).to_bytes(2, "big") + self.credential_id
            data += self.cose_public_key()
        return data

    def client_data(self, kind: str, challenge: str, origin: str | None = None) -> bytes:
        body = {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        return json.dumps(body, separators=(",", ":")).encode()

    def create(self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None) -> dict[str, Any]:
        """The browser's JSON answer to navigator.credentials.create() for ``options`` (the begin step's)."""
        self.user_handle = unb64u(options["user"]["id"])
        client_data = self.client_data("webauthn.create", options["challenge"], origin)
        auth_data = self.authenticator_data(rp_id or options["rp"]["id"], flags=UP | UV | AT, attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64u(client_data),
                "attestationObject": b64u(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {"credProps": {"rk": True}},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> dict[str, Any]:
        """The JSON answer to navigator.credentials.get(): authenticatorData and clientDataJSON,
        signed with the passkey's private key (ECDSA P-256 SHA-256, DER) unless ``signing_key``."""
        if self.counts:
            self.sign_count += 1
        client_data = self.client_data("webauthn.get", options["challenge"], origin)
        auth_data = self.authenticator_data(rp_id or options["rpId"], flags=UP)
        signature = (signing_key or self.key).sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64u(client_data),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(signature),
                "userHandle": b64u(self.user_handle) if self.user_handle else None,
            },
            "clientExtensionResults": {},
        }


@pytest.fixture(autouse=True)
def relying_party(settings) -> None:  # type: ignore[no-untyped-def]
    """The test client's host as relying party (production takes WEBAUTHN_RP_ID or SITE_URL's host)."""
    settings.WEBAUTHN_RP_ID = RP_ID
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [ORIGIN]


def helper_for(request: HttpRequest | None = None) -> passkeys.PortalWebAuthnHelper:
    return passkeys.PortalWebAuthnHelper(request=request or RequestFactory().post("/"))


def enrol_passkey(
    user: User, authenticator: SoftAuthenticator | None = None, *, name: str = "Laptop"
) -> tuple[WebAuthnCredential, SoftAuthenticator]:
    """A registration ceremony end to end through the service (begin, the authenticator, complete)."""
    authenticator = authenticator or SoftAuthenticator()
    helper = helper_for()
    options, state = helper.register_begin(user=user)
    credential = factors.add_passkey(
        user=user, helper=helper, state=state, data=authenticator.create(options), name=name
    )
    return credential, authenticator


def assertion_for(user: User, authenticator: SoftAuthenticator, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """Begin an authentication for ``user``; the state to complete it, and the authenticator's answer."""
    options, state = helper_for().authenticate_begin(user=user, require_user_verification=False)
    return state, authenticator.get(options, **kwargs)


def web_request() -> HttpRequest:
    """A request as the portal's views see it: a session, nobody logged in yet."""
    request = RequestFactory().post("/webauthn/authentication/complete/", REMOTE_ADDR="81.2.69.10")
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


# -- registration ----------------------------------------------------------------------------------


def test_a_passkey_is_kept_with_its_public_key_and_the_listener_is_told(
    alice, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        credential, authenticator = enrol_passkey(alice, name="Laptop")

    credential.refresh_from_db()
    assert (credential.user_id, credential.name, credential.confirmed) == (alice.pk, "Laptop", True)
    assert bytes(credential.credential_id) == authenticator.credential_id
    assert bytes(credential.public_key) == authenticator.cose_public_key()  # only the public half
    assert credential.sign_count == 0 and credential.transports == ["internal"] and credential.discoverable is True
    assert WebAuthnAttestation.objects.get(credential=credential).fmt == "none"
    assert bytes(WebAuthnUserHandle.objects.get(user=alice).handle) == authenticator.user_handle

    assert SecurityEvent.objects.filter(user=alice, kind="factor_added").count() == 1
    recorded = AuditEvent.objects.get(action="accounts.mfa.passkey_added")
    assert audit.read_payload(recorded)["data"] == {"factor": credential.pk}  # type: ignore[index]
    assert [m.subject for m in mail.outbox] == ["A second factor was added to your account"]
    assert mail.outbox[0].to == ["alice@example.test"]


def test_the_registration_options_name_this_site_and_exclude_passkeys_already_there(alice) -> None:  # type: ignore[no-untyped-def]
    first, _ = enrol_passkey(alice)
    options, state = helper_for().register_begin(user=alice)
    assert options["rp"] == {"id": RP_ID, "name": "Identity"}
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"  # passwordless is off
    assert [unb64u(c["id"]) for c in options["excludeCredentials"]] == [bytes(first.credential_id)]
    assert state["challenge"] == options["challenge"] and len(unb64u(options["challenge"])) >= 32


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"origin": "https://phishing.example"}, id="another-origin"),
        pytest.param({"rp_id": "phishing.example"}, id="another-rp-id"),
        pytest.param({"challenge": "from-another-begin"}, id="another-challenge"),
    ],
)
def test_a_registration_that_does_not_match_its_begin_step_keeps_nothing(
    alice, tamper: dict[str, str], django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    helper = helper_for()
    options, state = helper.register_begin(user=alice)
    if "challenge" in tamper:
        other, _ = helper.register_begin(user=alice)
        options = {**options, "challenge": other["challenge"]}
    answer = SoftAuthenticator().create(options, origin=tamper.get("origin"), rp_id=tamper.get("rp_id"))
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvalidRegistrationResponse):
        factors.add_passkey(user=alice, helper=helper, state=state, data=answer, name="Laptop")
    assert not WebAuthnCredential.objects.exists()
    assert not SecurityEvent.objects.filter(kind="factor_added").exists()
    assert not AuditEvent.objects.filter(action="accounts.mfa.passkey_added").exists()
    assert mail.outbox == []


# -- which factors are offered ---------------------------------------------------------------------


def test_passkeys_are_offered_on_the_web_only(alice) -> None:  # type: ignore[no-untyped-def]
    assert factors.methods_for(alice) == [] and not alice.has_second_factor
    enrol_passkey(alice)
    assert factors.methods_for(alice) == ["webauthn"] and alice.has_second_factor
    assert factors.methods_for(alice, channel="api") == []
    enrol_totp(alice)
    assert factors.methods_for(alice, channel="web") == ["webauthn", "totp"]
    assert factors.methods_for(alice, channel="api") == ["totp"]
    WebAuthnCredential.objects.filter(user=alice).update(confirmed=False)  # disabled by an analyst
    assert factors.methods_for(alice) == ["totp"]


def test_a_challenge_offers_a_passkey_on_the_web_and_never_to_the_api(alice) -> None:  # type: ignore[no-untyped-def]
    enrol_passkey(alice)
    common = {"user": alice, "purpose": MfaChallenge.Purpose.SIGNIN, "assessment": None, "context": {}}
    assert open_challenge(**common, channel="web")[1] == ["webauthn"]
    # Nothing the app can complete: an e-mailed code, as for a listener without a factor.
    assert open_challenge(**common, channel="api")[1] == ["email"]
    assert open_challenge(**common)[1] == ["email"]  # without a web session, a challenge is the API's


def test_the_api_refuses_webauthn_with_a_clear_problem(alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RISK_POLICY = STRICT_POLICY
    enrol_passkey(alice)
    enrol_totp(alice)
    client = APIClient()
    challenge = login(client, "alice@example.test").json()
    assert challenge["mfa_required"] is True and challenge["methods"] == ["totp"]
    response = client.post(
        "/api/v1/auth/mfa/verify",
        {"mfa_token": challenge["mfa_token"], "method": "webauthn", "code": "anything"},
        format="json",
    )
    body = assert_problem(response, 401, "mfa_invalid")
    assert "passkeys work in the web portal only" in body["detail"]
    assert MfaChallenge.objects.get().attempts == 0  # not a wrong code: a method the app cannot use
    assert not AuthSession.objects.exists()


def test_a_web_challenge_cannot_take_webauthn_as_a_code(alice) -> None:  # type: ignore[no-untyped-def]
    enrol_passkey(alice)
    token, _ = open_challenge(user=alice, purpose="signin", assessment=None, context={}, channel="web")
    with pytest.raises(MfaError, match="not with a code"):
        complete_mfa(request=web_request(), mfa_token=token, method="webauthn", code="123456", channel="web")
    assert not AuthSession.objects.exists()


# -- authentication: what py_webauthn checks, through the package's helper -------------------------------


def test_an_assertion_is_verified_and_the_sign_count_moves_on(alice) -> None:  # type: ignore[no-untyped-def]
    credential, authenticator = enrol_passkey(alice)
    state, answer = assertion_for(alice, authenticator)
    device = helper_for().authenticate_complete(user=alice, state=state, data=answer)
    assert device.pk == credential.pk
    credential.refresh_from_db()
    assert credential.sign_count == 1 and credential.last_used_at is not None


def test_the_authentication_options_allow_only_this_users_passkeys(alice, charlie) -> None:  # type: ignore[no-untyped-def]
    mine, _ = enrol_passkey(alice)
    enrol_passkey(charlie)
    options, state = helper_for().authenticate_begin(user=alice, require_user_verification=False)
    assert options["rpId"] == RP_ID and options["userVerification"] == "discouraged"
    assert [unb64u(c["id"]) for c in options["allowCredentials"]] == [bytes(mine.credential_id)]
    assert state == {"challenge": options["challenge"], "require_user_verification": False}


def test_a_replayed_assertion_is_refused(alice) -> None:  # type: ignore[no-untyped-def]
    _, authenticator = enrol_passkey(alice)
    state, answer = assertion_for(alice, authenticator)
    helper_for().authenticate_complete(user=alice, state=state, data=answer)
    # The same answer again: its counter is not above the stored one.
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        helper_for().authenticate_complete(user=alice, state=state, data=answer)
    # Against a new begin step: it signed another challenge.
    fresh, _ = assertion_for(alice, SoftAuthenticator())
    with pytest.raises(InvalidAuthenticationResponse, match="challenge"):
        helper_for().authenticate_complete(user=alice, state=fresh, data=answer)


def test_a_passkey_that_does_not_count_is_still_bound_to_its_challenge(alice) -> None:  # type: ignore[no-untyped-def]
    """Synced passkeys often always answer 0: then only the single-use challenge stops a replay."""
    _, authenticator = enrol_passkey(alice, SoftAuthenticator(counts=False))
    state, answer = assertion_for(alice, authenticator)
    helper_for().authenticate_complete(user=alice, state=state, data=answer)
    fresh, _ = assertion_for(alice, authenticator)
    with pytest.raises(InvalidAuthenticationResponse, match="challenge"):
        helper_for().authenticate_complete(user=alice, state=fresh, data=answer)


def test_a_cloned_authenticator_is_refused(alice) -> None:  # type: ignore[no-untyped-def]
    _, authenticator = enrol_passkey(alice)
    clone = SoftAuthenticator(key=authenticator.key, credential_id=authenticator.credential_id)
    for _ in range(3):
        state, answer = assertion_for(alice, authenticator)
        helper_for().authenticate_complete(user=alice, state=state, data=answer)
    state, answer = assertion_for(alice, clone)  # the clone's counter is behind
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        helper_for().authenticate_complete(user=alice, state=state, data=answer)


@pytest.mark.parametrize(
    "forgery",
    [
        pytest.param({"signing_key": "other"}, id="signed-by-another-key"),
        pytest.param({"origin": "https://phishing.example"}, id="relayed-from-another-origin"),
        pytest.param({"rp_id": "phishing.example"}, id="made-for-another-site"),
    ],
)
def test_a_forged_assertion_is_refused(alice, forgery: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    credential, authenticator = enrol_passkey(alice)
    kwargs: dict[str, Any] = dict(forgery)
    if kwargs.get("signing_key") == "other":
        kwargs["signing_key"] = new_key()
    state, answer = assertion_for(alice, authenticator, **kwargs)
    with pytest.raises(InvalidAuthenticationResponse):
        helper_for().authenticate_complete(user=alice, state=state, data=answer)
    credential.refresh_from_db()
    assert credential.sign_count == 0 and credential.last_used_at is None


def test_tampered_authenticator_data_breaks_the_signature(alice) -> None:  # type: ignore[no-untyped-def]
    _, authenticator = enrol_passkey(alice)
    state, answer = assertion_for(alice, authenticator)
    data = bytearray(unb64u(answer["response"]["authenticatorData"]))
    data[33:37] = (10_000).to_bytes(4, "big")  # a counter far ahead, to outrun a clone check
    answer["response"]["authenticatorData"] = b64u(bytes(data))
    with pytest.raises(InvalidAuthenticationResponse, match="signature"):
        helper_for().authenticate_complete(user=alice, state=state, data=answer)


def test_another_users_passkey_is_refused(alice, charlie) -> None:  # type: ignore[no-untyped-def]
    enrol_passkey(alice)
    _, theirs = enrol_passkey(charlie)
    state, answer = assertion_for(alice, theirs)  # a valid signature, by charlie's passkey
    with pytest.raises(webauthn_errors.CredentialUserMismatch):
        helper_for().authenticate_complete(user=alice, state=state, data=answer)


def test_an_unknown_passkey_is_refused(alice) -> None:  # type: ignore[no-untyped-def]
    enrol_passkey(alice)
    state, answer = assertion_for(alice, SoftAuthenticator())
    with pytest.raises(webauthn_errors.CredentialNotFound):
        helper_for().authenticate_complete(user=alice, state=state, data=answer)


# -- completing a challenge with a verified passkey ---------------------------------------------------


def test_a_verified_passkey_completes_a_web_sign_in(alice) -> None:  # type: ignore[no-untyped-def]
    credential, authenticator = enrol_passkey(alice)
    token, _ = open_challenge(user=alice, purpose="signin", assessment=None, context={}, channel="web")
    state, answer = assertion_for(alice, authenticator)
    device = helper_for().authenticate_complete(user=alice, state=state, data=answer)
    request = web_request()

    session = complete_mfa_with_device(request=request, mfa_token=token, device=device)

    assert isinstance(session, AuthSession) and session.kind == "web" and session.mfa_at is not None
    assert request.user == alice
    assert request.session[DEVICE_ID_SESSION_KEY] == credential.persistent_id  # django-otp: verified
    assert MfaChallenge.objects.get().used_at is not None
    assert SecurityEvent.objects.filter(user=alice, kind="mfa_succeeded").count() == 1
    recorded = AuditEvent.objects.get(action="accounts.signin.mfa_completed")
    assert audit.read_payload(recorded)["data"] == {"method": "webauthn"}  # type: ignore[index]
    with pytest.raises(MfaError, match="used or expired"):  # single use
        complete_mfa_with_device(request=web_request(), mfa_token=token, device=device)


def test_a_passkey_cannot_complete_an_api_challenge(alice) -> None:  # type: ignore[no-untyped-def]
    credential, _ = enrol_passkey(alice)
    token, _ = open_challenge(user=alice, purpose="signin", assessment=None, context={}, channel="api")
    with pytest.raises(MfaError, match="not offered"):
        complete_mfa_with_device(request=web_request(), mfa_token=token, device=credential, channel="api")
    assert MfaChallenge.objects.get().used_at is None and not AuthSession.objects.exists()


def test_someone_elses_passkey_cannot_complete_a_challenge(alice, charlie) -> None:  # type: ignore[no-untyped-def]
    enrol_passkey(alice)
    theirs, _ = enrol_passkey(charlie)
    token, _ = open_challenge(user=alice, purpose="signin", assessment=None, context={}, channel="web")
    with pytest.raises(MfaError, match="passkey is not valid"):
        complete_mfa_with_device(request=web_request(), mfa_token=token, device=theirs)
    challenge = MfaChallenge.objects.get()
    assert (challenge.attempts, challenge.used_at) == (1, None)
    assert SecurityEvent.objects.filter(user=alice, kind="mfa_failed").count() == 1
    assert not AuthSession.objects.exists()


def test_failed_ceremonies_count_against_the_challenge(alice, settings) -> None:  # type: ignore[no-untyped-def]
    credential, _ = enrol_passkey(alice)
    token, _ = open_challenge(user=alice, purpose="signin", assessment=None, context={}, channel="web")
    for _ in range(settings.MFA_CHALLENGE_MAX_ATTEMPTS):
        record_mfa_failure(mfa_token=token)
    assert SecurityEvent.objects.filter(user=alice, kind="mfa_failed").count() == settings.MFA_CHALLENGE_MAX_ATTEMPTS
    with pytest.raises(MfaError, match="too many"):
        complete_mfa_with_device(request=web_request(), mfa_token=token, device=credential)
    assert not AuthSession.objects.exists()
    record_mfa_failure(mfa_token=token)  # an ended challenge: nothing more to count
    assert MfaChallenge.objects.get().attempts == settings.MFA_CHALLENGE_MAX_ATTEMPTS


# -- removal ----------------------------------------------------------------------------------------------


def test_removing_a_passkey_is_recorded_and_the_listener_is_told(
    alice, charlie, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    credential, _ = enrol_passkey(alice)
    theirs, _ = enrol_passkey(charlie)
    assert factors.remove_factor(user=alice, kind="webauthn", factor_id=theirs.pk) is False  # not hers
    with django_capture_on_commit_callbacks(execute=True):
        assert factors.remove_factor(user=alice, kind="webauthn", factor_id=credential.pk) is True
    assert list(WebAuthnCredential.objects.all()) == [theirs]
    assert WebAuthnAttestation.objects.count() == 1  # hers went with her passkey
    assert SecurityEvent.objects.filter(user=alice, kind="factor_removed").count() == 1
    recorded = AuditEvent.objects.get(action="accounts.mfa.factor_removed")
    assert audit.read_payload(recorded)["data"] == {"kind": "webauthn", "factor": credential.pk}  # type: ignore[index]
    assert [m.subject for m in mail.outbox] == ["A second factor was removed from your account"]
    assert factors.methods_for(alice) == []


# -- configuration and registry --------------------------------------------------------------------------


def test_every_field_of_the_passkey_tables_is_classified() -> None:
    from django.apps import apps

    for label in (
        "django_otp_webauthn.WebAuthnCredential",
        "django_otp_webauthn.WebAuthnAttestation",
        "django_otp_webauthn.WebAuthnUserHandle",
    ):
        assert label in registry, label
        # Checked as strictly as our own models: every field classified, none unknown.
        assert check_model(apps.get_model(label), registry, ours=True) == [], label
    declaration = registry.get("django_otp_webauthn.WebAuthnCredential")
    assert declaration is not None
    assert declaration.fields["public_key"].kind == "personal"
    assert declaration.fields["credential_id"].kind == "pseudonymous"


def test_a_listeners_passkeys_are_exported_and_erased_with_her_data(alice, charlie) -> None:  # type: ignore[no-untyped-def]
    """The registry drives export and erasure (compliance.systems.internal): passkeys included."""
    from compliance.systems.base import SubjectRef
    from compliance.systems.internal import InternalSystem

    enrol_passkey(alice, name="Laptop")
    enrol_passkey(charlie)
    subject = SubjectRef(user_id=str(alice.pk), email_index=alice.email_index, data_key_id=alice.data_key_id)
    system = InternalSystem()
    exported = [r for r in system.export(subject) if r.source.startswith("django_otp_webauthn.")]
    sources = {r.source for r in exported}
    assert sources == {
        "django_otp_webauthn.WebAuthnCredential",
        "django_otp_webauthn.WebAuthnAttestation",
        "django_otp_webauthn.WebAuthnUserHandle",
    }
    names = [r.values["name"] for r in exported if "name" in r.values]
    assert names == ["Laptop"]

    result = system.erase(subject)
    assert result.counts["django_otp_webauthn.WebAuthnCredential"] >= 1
    assert not WebAuthnCredential.objects.filter(user=alice).exists()
    assert not WebAuthnUserHandle.objects.filter(user=alice).exists()
    assert not WebAuthnAttestation.objects.filter(credential__user=alice).exists()
    read_back = system.read_back(subject)
    assert all(read_back[label] == 0 for label in sources)
    assert WebAuthnCredential.objects.filter(user=charlie).count() == 1  # nobody else's


def test_passwordless_sign_in_stays_off_and_our_views_serve_the_package_urls(settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN is False
    for path, view in (
        ("/webauthn/registration/begin/", passkeys.BeginPasskeyRegistrationView),
        ("/webauthn/registration/complete/", passkeys.CompletePasskeyRegistrationView),
        ("/webauthn/authentication/begin/", passkeys.BeginPasskeyAuthenticationView),
        ("/webauthn/authentication/complete/", passkeys.CompletePasskeyAuthenticationView),
    ):
        match = resolve(path)
        assert match.namespace == "otp_webauthn" and match.func.view_class is view, path  # type: ignore[attr-defined]


def test_the_relying_party_id_comes_from_the_setting_or_the_site(settings) -> None:  # type: ignore[no-untyped-def]
    request = RequestFactory().get("/", HTTP_HOST="localhost:8000")
    assert passkeys.relying_party_id(request) == RP_ID
    settings.WEBAUTHN_RP_ID = ""
    settings.SITE_URL = "https://identity.example.org"
    assert passkeys.relying_party_id(request) == "identity.example.org"
    assert helper_for(request).get_allowed_origins() == [ORIGIN]
    settings.DEBUG = True  # development: wherever the request came to
    assert passkeys.relying_party_id(request) == "localhost"
    assert helper_for(request).get_allowed_origins() == [ORIGIN, "http://localhost:8000"]


def test_the_default_origins_follow_site_url() -> None:
    """identity/settings.py: https SITE_URL -> its origin; otherwise the development server's."""
    import subprocess
    import sys

    script = "from django.conf import settings; print(settings.OTP_WEBAUTHN_ALLOWED_ORIGINS)"
    # Empty, not absent: the project's .env (read without override) must not fill it in.
    env = {**os.environ, "WEBAUTHN_ALLOWED_ORIGINS": ""}
    for site, expected in (
        ("https://identity.example.org/", "['https://identity.example.org']"),
        ("http://127.0.0.1:8000", "['http://localhost:8000']"),
    ):
        out = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {script}"],
            env={**env, "SITE_URL": site, "DJANGO_SETTINGS_MODULE": "tests.settings"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == expected


def test_the_app_lists_passkeys_and_removes_one_after_step_up(alice) -> None:  # type: ignore[no-untyped-def]
    """CONTRACT.md Account: GET/DELETE /api/v1/mfa/devices cover every factor, passkeys included."""
    from django.utils import timezone
    from rest_framework.test import APIClient

    from accounts.models import AuthSession
    from tests.accounts.api_helpers import assert_problem, bearer, login

    credential, _ = enrol_passkey(alice, name="Laptop")
    api = APIClient()
    tokens = login(api, "alice@example.test").json()
    bearer(api, tokens["access"])
    listed = api.get("/api/v1/mfa/devices").json()
    assert {"id": f"webauthn-{credential.pk}", "type": "webauthn", "name": "Laptop", "confirmed": True} in listed
    assert_problem(api.delete(f"/api/v1/mfa/devices/webauthn-{credential.pk}"), 403, "step_up_required")
    AuthSession.objects.filter(pk=tokens["session_id"]).update(mfa_at=timezone.now())
    assert api.delete(f"/api/v1/mfa/devices/webauthn-{credential.pk}").status_code == 204
    assert not WebAuthnCredential.objects.filter(pk=credential.pk).exists()
