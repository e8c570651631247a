"""Shared fixtures and personas (STYLE.md): alice (listener), bob (privacy officer), charlie (another listener)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection

from identity.crypto import keystore

PASSWORD = "a long enough passphrase for tests"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    has_redis = bool(settings.REDIS_URL)
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="SKIPPED: needs PostgreSQL; set DATABASE_URL=postgresql://..."))
        if "redis" in item.keywords and not has_redis:
            item.add_marker(pytest.mark.skip(reason="SKIPPED: needs Redis; set REDIS_URL=redis://..."))


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Iterator[None]:
    keystore.clear_cache()
    yield
    keystore.clear_cache()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Throttle counters and IP blocks live in the cache: each test starts without them."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_user(db):  # type: ignore[no-untyped-def]
    from accounts.models import User

    def make(email: str, **kwargs: object) -> User:
        defaults: dict[str, object] = {
            "password": PASSWORD,
            "display_name": email.split("@")[0].title(),
            "date_of_birth": datetime.date(1990, 5, 17),
            "country": "DE",
        }
        defaults.update(kwargs)
        return User.objects.create_user(email=email, **defaults)  # type: ignore[arg-type]

    return make


@pytest.fixture
def alice(make_user):  # type: ignore[no-untyped-def]
    return make_user("alice@example.test", display_name="Alice Listener", phone="+49 30 1234567", region="DE-BE")


@pytest.fixture
def bob(make_user):  # type: ignore[no-untyped-def]
    return make_user("bob@example.test", display_name="Bob Officer", is_staff=True)


@pytest.fixture
def charlie(make_user):  # type: ignore[no-untyped-def]
    return make_user("charlie@example.test", display_name="Charlie Other", country="US", region="US-CA")


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def verified_admin(client, make_user):  # type: ignore[no-untyped-def]
    """A superuser signed in to the admin with a verified second factor (django-otp)."""
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.services.factors import start_totp

    user = make_user("root@example.test", is_staff=True, is_superuser=True)
    factor = start_totp(user=user, name="Phone")
    factor.confirmed = True
    factor.save(update_fields=["confirmed"])
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = factor.persistent_id
    session.save()
    return user
