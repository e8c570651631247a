"""Bearer tokens found through the shared cache: fewer statements, and revocation still immediate.

Requirement: issue #3 performance targets (docs/benchmarks.md, "Sign-in and GET /api/v1/me"), with
the session rules of issue #3 unchanged: logout, refresh-token reuse, password change, an
analyst's lock and erasure end every token at its next request. The cache holds ids, expiry
times and a flag, never personal data. It is on with Redis; these tests force it on over the
per-process cache, which is one process here.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import AccessToken, AuthSession
from accounts.services import factors
from accounts.services.account import change_password, lock_account
from accounts.services.secrets import token_digest
from accounts.services.sessions import REVOKED, _access_key, revoke_session, token_cache_enabled
from tests.accounts.api_helpers import assert_problem, bearer, login

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _token_cache_on(settings) -> None:  # type: ignore[no-untyped-def]
    settings.ACCESS_TOKEN_CACHE = True


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def _signed_in(api: APIClient) -> dict[str, str]:
    tokens: dict[str, str] = login(api, "alice@example.test").json()
    bearer(api, tokens["access"])
    return tokens


def _me_statements(api: APIClient) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.test"
    return [q["sql"] for q in queries.captured_queries]


def test_the_cache_is_on_only_when_shared_unless_forced(settings) -> None:  # type: ignore[no-untyped-def]
    settings.ACCESS_TOKEN_CACHE = None
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert token_cache_enabled() is False
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    assert token_cache_enabled() is True


def test_a_cached_token_costs_one_statement_and_the_cache_holds_no_personal_data(api, alice) -> None:  # type: ignore[no-untyped-def]
    tokens = _signed_in(api)
    first = _me_statements(api)  # token, session, user and second-factor flags in one statement
    assert len(first) == 1 and "accounts_accesstoken" in first[0]
    again = _me_statements(api)  # the user row alone, by id
    assert len(again) == 1 and "accounts_accesstoken" not in again[0] and "accounts_user" in again[0]
    entry = cache.get(_access_key(token_digest(tokens["access"])))
    user_id, session_id, _expires, has_second_factor = entry
    assert (user_id, session_id, has_second_factor) == (str(alice.pk), tokens["session_id"], False)
    assert "alice" not in repr(entry)


@pytest.mark.parametrize("how", ["logout", "revoke", "password_change", "lock"])
def test_a_revoked_token_is_refused_at_once_even_after_it_was_cached(api, alice, how: str) -> None:  # type: ignore[no-untyped-def]
    tokens = _signed_in(api)
    _me_statements(api)
    _me_statements(api)  # now served from the cache
    session = AuthSession.objects.get(pk=tokens["session_id"])
    if how == "logout":
        client = APIClient()
        assert client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code == 204
    elif how == "revoke":
        revoke_session(session=session, actor=alice, reason="revoked_by_owner")
    elif how == "password_change":
        change_password(user=alice, new_password="another long enough passphrase")
    else:
        lock_account(user=alice, actor="analyst")
    assert cache.get(_access_key(token_digest(tokens["access"]))) == REVOKED
    assert_problem(api.get("/api/v1/me"), 401, "invalid_token")
    assert not AccessToken.objects.filter(session_id=tokens["session_id"]).exists()


def test_a_deactivated_account_is_refused_at_once_with_a_cached_token(api, alice) -> None:  # type: ignore[no-untyped-def]
    _signed_in(api)
    _me_statements(api)
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)  # without ending the sessions
    assert_problem(api.get("/api/v1/me"), 401, "invalid_token")


def test_a_revocation_racing_the_first_lookup_wins(api, alice) -> None:  # type: ignore[no-untyped-def]
    tokens = _signed_in(api)
    key = _access_key(token_digest(tokens["access"]))
    cache.set(key, REVOKED)  # marked while a request that had read the token was still running
    assert_problem(api.get("/api/v1/me"), 401, "invalid_token")
    assert cache.get(key) == REVOKED


def test_a_new_second_factor_shows_at_the_next_request(  # type: ignore[no-untyped-def]
    api, alice, django_capture_on_commit_callbacks
) -> None:
    _signed_in(api)
    assert api.get("/api/v1/me").json()["mfa_enrolled"] is False
    with django_capture_on_commit_callbacks(execute=True):
        factors.regenerate_backup_codes(user=alice)
    assert api.get("/api/v1/me").json()["mfa_enrolled"] is True


def test_views_that_need_the_session_still_get_it_from_a_cached_token(api, alice) -> None:  # type: ignore[no-untyped-def]
    tokens = _signed_in(api)
    _me_statements(api)
    listed = api.get("/api/v1/me/sessions").json()
    assert [(s["id"], s["current"]) for s in listed] == [(tokens["session_id"], True)]
    # Changing the e-mail needs a fresh second factor: the step-up challenge names this session.
    body = assert_problem(
        api.patch("/api/v1/me", {"email": "alice.new@example.test"}, format="json"), 403, "step_up_required"
    )
    assert body["mfa_token"] and body["methods"] == ["email"]
