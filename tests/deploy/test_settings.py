"""STYLE.md, settings: outside DEBUG a missing secret or key stops start-up with a message naming it.

DESIGN.md requirement 1 (encryption at rest) needs the keys, and a malformed key must not be echoed
into a log; requirement 2 (TLS 1.3 in transit) is what `check --deploy` guards on the Django side.
Each case runs the real identity.settings in a fresh interpreter with a clean environment.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SETUP = "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'identity.settings'; django.setup()"
CLEARED = ("DJANGO_", "FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY")


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def clean_env(**values: str) -> dict[str, str]:
    """os.environ without any Django setting or key, plus ``values``.

    identity.settings reads the project's git-ignored .env with override=False. A variable that is
    present but empty is not overridden and counts as unset, so every name the .env could supply
    is set to "" here unless the case sets it.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith(CLEARED)}
    dotenv_file = PROJECT_ROOT / ".env"
    if dotenv_file.exists():
        for name in dotenv_values(dotenv_file):
            env[name] = ""
    for name in (
        "DJANGO_DEBUG",
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS",
        "FIELD_ENCRYPTION_KEYS",
        "BLIND_INDEX_KEY",
    ):
        env[name] = ""
    env.update(values)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def production_env(**overrides: str) -> dict[str, str]:
    values = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters
        "DJANGO_ALLOWED_HOSTS": "example.org",
        "FIELD_ENCRYPTION_KEYS": f"prod-1:{random_key()}",
        "BLIND_INDEX_KEY": random_key(),
    }
    values.update(overrides)
    return clean_env(**values)


def test_missing_secret_key_stops_start_up() -> None:
    """STYLE.md: with DEBUG off and no DJANGO_SECRET_KEY, start-up fails and names it."""
    result = run(["-c", SETUP], clean_env())

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_missing_field_encryption_keys_stops_start_up() -> None:
    """DESIGN.md requirement 1: AES-256 at rest; DEBUG off and no FIELD_ENCRYPTION_KEYS stops start-up."""
    result = run(["-c", SETUP], production_env(FIELD_ENCRYPTION_KEYS=""))

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS is not set" in result.stderr


def test_missing_blind_index_key_stops_start_up() -> None:
    """DESIGN.md requirement 1: lookups on encrypted values need BLIND_INDEX_KEY; none stops start-up."""
    result = run(["-c", SETUP], production_env(BLIND_INDEX_KEY=""))

    assert result.returncode != 0
    assert "BLIND_INDEX_KEY is not set" in result.stderr


@pytest.mark.parametrize("variable", ["FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY"])
def test_key_of_wrong_length_stops_start_up_without_echoing_it(variable: str) -> None:
    """DESIGN.md requirement 1: AES-256 needs 32-byte keys; the error says so and never repeats the key."""
    short_key = base64.b64encode(os.urandom(16)).decode()
    value = f"prod-1:{short_key}" if variable == "FIELD_ENCRYPTION_KEYS" else short_key

    result = run(["-c", SETUP], production_env(**{variable: value}))

    assert result.returncode != 0
    assert "32 bytes" in result.stderr
    assert variable in result.stderr
    assert short_key not in result.stderr
    assert short_key not in result.stdout


def test_production_settings_pass_the_deployment_checklist() -> None:
    """DESIGN.md requirement 2: TLS 1.3 in transit; `check --deploy` finds nothing with DEBUG off.

    It covers HSTS, the HTTPS redirect and secure cookies, the Django half of requirement 2.
    """
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())

    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(("value", "expected"), [("", "0"), ("true", "0"), ("false", "None")])
def test_prepared_statements_can_be_turned_off_for_a_pooler(value: str, expected: str) -> None:
    """deploy/README.md, DATABASE_PREPARED_STATEMENTS: on by default (psycopg's prepare_threshold 0
    for the fixed statements, identity/db.py); off behind a pooler that cannot keep them."""
    env = production_env(DATABASE_URL="postgresql://identity@db.invalid:5432/identity")
    env["DATABASE_PREPARED_STATEMENTS"] = value
    options = "settings.DATABASES['default']['OPTIONS']"
    code = f"{SETUP}; from django.conf import settings; print({options}.get('prepare_threshold'))"
    result = run(["-c", code], env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected
