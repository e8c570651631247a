"""Erasure reaches backups: with the key store in its own database, restoring a backup taken
before an erasure does not bring the erased subject's data back.

Requirement: issue #2 "Destroying it ('crypto-shredding') leaves that subject's ciphertext
unreadable everywhere, including backups"; DESIGN.md "Field encryption and crypto-shredding";
REGULATIONS.md G-17 (erasure covers backups).

Runs real processes against real PostgreSQL databases: a main database, a key store, and a third
database restored from a pg_dump of the main one (the "backup").
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

CREATE = """
import datetime, json
from accounts.models import User
erased = User.objects.create_user(
    email="Backup.Subject-4471@listeners.example", password="long enough passphrase 1",
    display_name="Bartholomew Backupsson", phone="+1 212 555 0142", date_of_birth=datetime.date(1979, 4, 1),
    country="US",
)
kept = User.objects.create_user(email="kept.subject@listeners.example", password="long enough passphrase 2",
    display_name="Kept Keeper", country="IE")
print(json.dumps({"erased": str(erased.pk), "erased_key": str(erased.data_key_id), "kept": str(kept.pk)}))
"""

SHRED = """
import os, uuid
from identity.crypto import keystore
print(keystore.shred(uuid.UUID(os.environ["TEST_ARGS"])))
"""

READ = """
import json, os
from accounts.models import User
from identity.crypto.envelope import Erased
out = {}
for user in User.objects.filter(pk__in=os.environ["TEST_ARGS"].split(",")):
    out[str(user.pk)] = {"erased": isinstance(user.email, Erased), "name": str(user.display_name)}
print(json.dumps(out))
"""


def _admin(sql: str) -> None:
    params = connection.settings_dict
    with psycopg.connect(
        host=params.get("HOST") or "127.0.0.1",
        port=params.get("PORT") or 5432,
        user=params.get("USER") or "postgres",
        password=params.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def _url(name: str) -> str:
    p = connection.settings_dict
    auth = p.get("USER") or "postgres"
    if p.get("PASSWORD"):
        auth += f":{p['PASSWORD']}"
    return f"postgresql://{auth}@{p.get('HOST') or '127.0.0.1'}:{p.get('PORT') or 5432}/{name}"


@pytest.fixture
def databases() -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"identity_{role}_{suffix}" for role in ("main", "keys", "restored")}
    for name in names.values():
        _admin(f'CREATE DATABASE "{name}"')
    try:
        yield names
    finally:
        for name in names.values():
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(main: str, keys: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=_url(main),
        KEYSTORE_DATABASE_URL=_url(keys),
        FIELD_ENCRYPTION_KEYS=SHARED_KEYS["kek"],
        BLIND_INDEX_KEY=SHARED_KEYS["blind"],
        DJANGO_SECRET_KEY=SHARED_KEYS["secret"],
    )
    return env


SHARED_KEYS = {
    "kek": "backup-test:" + base64.b64encode(os.urandom(32)).decode(),
    "blind": base64.b64encode(os.urandom(32)).decode(),
    "secret": base64.b64encode(os.urandom(48)).decode(),
}


def _run(env: dict[str, str], *args: str, script_args: str = "") -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**env, "TEST_ARGS": script_args},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _pg(tool: str, *args: str) -> str:
    p = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": p.get("PASSWORD") or ""}
    base = ["-h", p.get("HOST") or "127.0.0.1", "-p", str(p.get("PORT") or 5432), "-U", p.get("USER") or "postgres"]
    result = subprocess.run([tool, *base, *args], env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_a_backup_restored_after_erasure_holds_nothing_readable(databases: dict[str, str], tmp_path: Path) -> None:
    live = _env(databases["main"], databases["keys"])
    _run(live, "migrate", "--noinput", "-v0")
    _run(live, "migrate", "--database", "keystore", "--noinput", "-v0")
    ids = json.loads(_run(live, "shell", "-c", CREATE).strip().splitlines()[-1])

    # The nightly backup, taken before the erasure. It has no key table and no plaintext.
    backup = tmp_path / "main.sql"
    backup.write_text(_pg("pg_dump", "--no-owner", databases["main"]))
    dump = backup.read_text()
    assert "identity_subjectkey" not in dump and "accounts_user" in dump
    for needle in ("Backup.Subject-4471", "Bartholomew", "555 0142", "1979-04-01"):
        assert needle not in dump

    assert _run(live, "shell", "-c", SHRED, script_args=ids["erased_key"]).strip().endswith("True")

    # Disaster: the main database is restored from that backup, beside the live key store.
    _pg("psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", databases["restored"], "-f", str(backup))
    restored = _env(databases["restored"], databases["keys"])
    seen = json.loads(
        _run(restored, "shell", "-c", READ, script_args=f"{ids['erased']},{ids['kept']}").strip().splitlines()[-1]
    )

    assert seen[ids["erased"]] == {"erased": True, "name": "[erased]"}
    assert seen[ids["kept"]] == {"erased": False, "name": "Kept Keeper"}
