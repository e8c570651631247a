"""A throw-away PostgreSQL database for a connected system's tables, dropped afterwards."""

from __future__ import annotations

import contextlib
import secrets
import urllib.parse
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from psycopg import sql


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """The URL of a new database on DATABASE_URL's server (skips the test on SQLite)."""
    base = settings.DATABASE_URL
    if not base.startswith(("postgres://", "postgresql://")):
        pytest.skip("SKIPPED: needs PostgreSQL; set DATABASE_URL=postgresql://...")
    # The server's maintenance database: DATABASE_URL's own may not exist (pytest-django uses test_<name>).
    server = urllib.parse.urlsplit(base)._replace(path="/postgres").geturl()
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urllib.parse.urlsplit(base)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
