"""The hot paths' fixed statements are prepared once per connection on PostgreSQL (identity/db.py).

Requirement: issue #3 performance ("Sign-in overhead", "GET /api/v1/me"), docs/architecture.md
"The sign-in's SQL is written once". A prepared statement must still behave as the ORM's cursor
does: errors translated to django.db exceptions, statements visible to CaptureQueriesContext (the
statement-count tests rely on it), and no parameter values in the logged text.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from accounts.services.sessions import user_for_sign_in
from identity.db import fixed_cursor

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: PostgreSQL only"),
]


def _prepared() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def test_the_sign_in_lookup_is_prepared_and_the_orm_is_not(alice) -> None:  # type: ignore[no-untyped-def]
    before = _prepared()
    assert user_for_sign_in("alice@example.test") is not None
    assert user_for_sign_in("alice@example.test") is not None
    new = _prepared() - before
    assert any("email_index" in text for text in new)
    list(User.objects.filter(display_name__isnull=False)[:1])
    assert not any("display_name" in text and "LIMIT" in text for text in _prepared() - before)


def test_a_prepared_statement_is_logged_without_its_values_and_errors_are_djangos(alice) -> None:  # type: ignore[no-untyped-def]
    table = connection.ops.quote_name(User._meta.db_table)
    with CaptureQueriesContext(connection) as queries, fixed_cursor("default") as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE email_index = %s", ["not-an-index-of-anyone"])
        assert cursor.fetchone()[0] == 0
    assert queries.captured_queries[-1]["sql"].endswith("email_index = %s")
    assert "not-an-index-of-anyone" not in queries.captured_queries[-1]["sql"]
    with pytest.raises(IntegrityError), transaction.atomic(), fixed_cursor("default") as cursor:
        cursor.execute(f"UPDATE {table} SET email_index = NULL WHERE id = %s", [alice.pk])
