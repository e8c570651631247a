"""Every portal page renders for a signed-in listener and is closed to everyone else.

Requirement: issue #3 "listener web portal" (pages for account, security, sessions, activity);
DESIGN.md "listeners ... web portal (server-rendered)"; README "CSP" (no inline script or style,
so the portal runs under `default-src 'self'`); REGULATIONS.md G-16 (the rectification form is
reachable), G-25 (security of processing: personal pages are never cached).

The helpers here (``portal_sign_in``, ``STRICT_POLICY``) are shared by the other test_portal_* files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import AuthSession, User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

HOME_IP = "81.2.69.10"
STRICT_POLICY = {"decisions": {"low": "challenge", "medium": "challenge", "high": "deny"}}
SIGNED_IN_PAGES = [
    "/account",
    "/account/security",
    "/account/sessions",
    "/account/activity",
    "/account/password",
    "/account/welcome",
]
STEP_UP_PAGES = ["/account/email", "/account/security/backup-codes"]


def portal_sign_in(client: Client, email: str, password: str = PASSWORD, *, next_url: str = "", **extra: Any) -> Any:
    data = {"email": email, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post("/account/sign-in", data, REMOTE_ADDR=extra.pop("ip", HOME_IP), **extra)


def signed_in(client: Client, user: User) -> AuthSession:
    """Sign ``user`` in through the portal (a real web AuthSession, as the middleware expects)."""
    response = portal_sign_in(client, str(user.email))
    assert response.status_code == 302, response.content[:500]
    return AuthSession.objects.filter(user=user, kind=AuthSession.Kind.WEB).latest("created_at")


def csrf_free(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


@pytest.mark.parametrize("path", SIGNED_IN_PAGES)
def test_each_page_renders_for_a_signed_in_listener(client, alice, path: str) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert 'href="#main"' in html and 'id="main"' in html
    assert "Sign out" in html
    # Personal pages are never stored by the browser or a proxy.
    assert "no-store" in response["Cache-Control"]
    assert "default-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("path", SIGNED_IN_PAGES + STEP_UP_PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/account/sign-in?next={path.replace('/', '%2F')}"


def test_a_django_login_without_a_portal_session_does_not_count(client, alice) -> None:  # type: ignore[no-untyped-def]
    """Only sessions the listener can list and revoke give access (an AuthSession behind the login)."""
    client.force_login(alice)
    assert client.get("/account")["Location"].startswith("/account/sign-in")


def test_home_sends_visitors_to_sign_in_and_listeners_to_their_account(client, alice) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/")["Location"] == "/account/sign-in"
    signed_in(client, alice)
    assert client.get("/")["Location"] == "/account"


def test_public_pages_render(client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/account/sign-in", "/account/sign-up", "/account/password-reset", "/account/sign-up/parent"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"csrfmiddlewaretoken" in response.content or path.endswith("parent")


def test_the_account_page_shows_the_profile_to_its_owner(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    html = client.get("/account").content.decode()
    for text in ("alice@example.test", "Alice Listener", "17 May 1990", "DE (DE-BE)", "+49 30 1234567"):
        assert text in html
    assert "not confirmed" in html


def test_templates_have_no_inline_script_or_style() -> None:
    """CSP is `default-src 'self'` with no 'unsafe-inline': inline code would be blocked, so none exists."""
    templates = [p for p in Path(settings.BASE_DIR, "templates").rglob("*.html")]
    assert templates
    for path in templates:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert "<style" not in text and " style=" not in text, path
        assert not re.search(r"\son[a-z]+=", text), path  # no inline event handlers
        assert "//cdn" not in text and "https://" not in text, path  # nothing from other sites


def test_static_stylesheet_is_served_by_the_app(client) -> None:  # type: ignore[no-untyped-def]
    html = client.get("/account/sign-in").content.decode()
    assert re.search(r'<link rel="stylesheet" href="/static/css/portal\.css">', html)
    assert Path(settings.BASE_DIR, "static", "css", "portal.css").is_file()


@pytest.mark.parametrize(
    "path",
    ["/account/sign-in", "/account/sign-up", "/account/password-reset", "/account/sign-out", "/account/not-me/x"],
)
def test_every_form_post_needs_the_csrf_token(alice, path: str) -> None:  # type: ignore[no-untyped-def]
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(path, {"email": "alice@example.test", "password": PASSWORD}, REMOTE_ADDR=HOME_IP)
    assert response.status_code == 403
    assert not AuthSession.objects.exists()
