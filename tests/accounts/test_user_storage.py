"""The user model stores every personal field as AES-256-GCM ciphertext; lookups use blind indexes.

Requirement: DESIGN.md requirement 1 (plaintext personal data never appears in the database or a
dump); issue #2 "Users" and its tests "raw SQL ... shows no plaintext", "a whole-database dump
(PostgreSQL) holds none of a created user's personal values".
"""

from __future__ import annotations

import datetime
import os
import subprocess

import pytest
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, connection, transaction

from accounts.hashers import Argon2idHasher
from accounts.models import User

PERSONAL_FIELDS = ["email", "display_name", "date_of_birth", "country", "region", "phone"]

# Distinctive values, so that a match in raw storage cannot be a coincidence.
VALUES = {
    "email": "Zelda.Quantum-7731@listeners.example",
    "display_name": "Zelda Quintessa Marchbanks",
    "phone": "+1 415 555 0199",
    "date_of_birth": datetime.date(1987, 11, 23),
    "country": "US",
    "region": "US-CA",
}
NEEDLES = [
    "Zelda.Quantum-7731",
    "zelda.quantum-7731",
    "Quintessa",
    "Marchbanks",
    "415 555 0199",
    "4155550199",
    "1987-11-23",
    "US-CA",
]


def create_zelda() -> User:
    return User.objects.create_user(password="an adequately long passphrase", **VALUES)  # type: ignore[arg-type]


@pytest.mark.django_db
def test_create_user_and_read_back_every_field() -> None:
    user = create_zelda()
    loaded = User.objects.get(pk=user.pk)
    assert loaded.email == "Zelda.Quantum-7731@listeners.example"
    assert loaded.display_name == VALUES["display_name"]
    assert loaded.phone == VALUES["phone"]
    assert loaded.date_of_birth == VALUES["date_of_birth"]
    assert (loaded.country, loaded.region) == ("US", "US-CA")
    assert loaded.check_password("an adequately long passphrase")
    assert str(loaded) == f"user {user.pk}"  # no personal data in the string form


@pytest.mark.django_db
def test_raw_sql_on_the_user_table_shows_no_plaintext() -> None:
    create_zelda()
    columns = [connection.ops.quote_name(User._meta.get_field(name).column) for name in PERSONAL_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {User._meta.db_table}")
        whole_rows = cursor.fetchall()
        cursor.execute(f"SELECT {', '.join(columns)} FROM {User._meta.db_table}")
        personal = cursor.fetchone()
    for value in personal:
        assert isinstance(value, bytes | memoryview), "personal columns hold binary ciphertext"
        assert bytes(value)[0] == 1  # ciphertext format version 1
    blob = repr(whole_rows).lower()
    for needle in NEEDLES:
        assert needle.lower() not in blob


@pytest.mark.django_db
def test_email_lookup_is_case_insensitive_through_the_blind_index() -> None:
    user = create_zelda()
    assert User.objects.get_by_natural_key("ZELDA.quantum-7731@LISTENERS.example").pk == user.pk
    assert User.objects.with_phone("+14155550199").get().pk == user.pk
    assert not User.objects.with_email("someone.else@listeners.example").exists()


@pytest.mark.django_db
def test_email_uniqueness_is_enforced_by_the_blind_index() -> None:
    create_zelda()
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(email="zelda.quantum-7731@listeners.EXAMPLE", password="another long passphrase!")
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_changing_the_email_moves_the_index() -> None:
    user = create_zelda()
    user.email = "new.address@listeners.example"
    user.save(update_fields=["email"])
    assert User.objects.with_email("new.address@listeners.example").get().pk == user.pk
    assert not User.objects.with_email(VALUES["email"]).exists()


def test_password_hasher_is_argon2id_at_owasp_cost_or_stronger() -> None:
    hasher = Argon2idHasher()
    # OWASP Password Storage Cheat Sheet: Argon2id with m >= 19 MiB, t >= 2, p = 1, or an equivalent
    # listed trade-off: m = 46 MiB, t = 1, p = 1.
    assert hasher.memory_cost >= 47_104 and hasher.time_cost >= 1 and hasher.parallelism == 1
    encoded = make_password("correct horse battery staple")
    assert encoded.startswith("argon2$argon2id$")
    assert "m=47104,t=1,p=1" in encoded


@pytest.mark.django_db
def test_a_pbkdf2_hash_still_verifies_and_is_upgraded_to_argon2id() -> None:
    user = create_zelda()
    user.password = make_password("legacy passphrase of old", hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    assert user.check_password("legacy passphrase of old")
    assert User.objects.get(pk=user.pk).password.startswith("argon2$argon2id$")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_whole_database_dump_holds_none_of_the_users_personal_values(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from compliance import audit

    user = create_zelda()
    audit.record("accounts.user.created", actor=user, subject=user, data={"email": VALUES["email"]}, ip="203.0.113.9")
    params = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": params.get("PASSWORD") or ""}
    dump = subprocess.run(
        [
            "pg_dump",
            "--no-owner",
            "--host",
            params.get("HOST") or "127.0.0.1",
            "--port",
            str(params.get("PORT") or 5432),
            "--username",
            params.get("USER") or "postgres",
            params["NAME"],
        ],
        capture_output=True,
        check=True,
        env=env,
    ).stdout.decode("utf-8", errors="replace")
    assert "accounts_user" in dump and "compliance_auditevent" in dump  # the dump is real
    lowered = dump.lower()
    for needle in [*NEEDLES, "203.0.113.9"]:
        assert needle.lower() not in lowered, "a personal value is in the dump"
