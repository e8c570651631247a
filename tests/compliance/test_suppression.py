"""The suppression list: an erased listener's address is recognised at a later sign-up or import.

Requirement: issue #4 "an HMAC of the email goes to a suppression list so that a later import or
sign-up with it is recognised"; REGULATIONS.md G-17, C-17 (CCR §7022(e): deleted PI stays deleted).
"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from compliance import suppression
from compliance.audit import read_payload
from compliance.models import AuditEvent, SuppressionEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ERASED = "Gone.Listener-4410@example.test"


def test_only_a_keyed_hash_is_kept() -> None:
    suppression.add(ERASED)
    suppression.add(ERASED.lower())  # normalised: the same entry
    (entry,) = SuppressionEntry.objects.all()
    assert len(entry.email_hmac) == 64 and "gone" not in entry.email_hmac.lower()
    assert suppression.is_suppressed(" gone.listener-4410@EXAMPLE.test ")
    assert not suppression.is_suppressed("someone.else@example.test")


def test_a_sign_up_with_an_erased_address_is_recognised_as_a_return(client) -> None:  # type: ignore[no-untyped-def]
    suppression.add(ERASED)
    response = client.post(
        "/api/v1/auth/register",
        {"email": ERASED, "password": PASSWORD, "date_of_birth": "1990-01-01", "country": "DE"},
        content_type="application/json",
    )
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="accounts.user.registered")
    assert read_payload(event)["data"]["returning_after_erasure"] is True  # type: ignore[index]


def test_an_import_is_filtered_and_the_report_names_nobody(tmp_path) -> None:  # type: ignore[no-untyped-def]
    suppression.add(ERASED)
    source = tmp_path / "contacts.csv"
    source.write_text(f"name,email\nGone,{ERASED}\nStays,stays@example.test\nNo address,\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    call_command("filter_suppressed", str(source), stdout=out, stderr=err)
    assert out.getvalue() == "name,email\nStays,stays@example.test\n"
    assert err.getvalue().strip() == "1 rows kept, 1 dropped (erased subjects), 1 without an address"
    assert "Gone" not in err.getvalue() and ERASED not in err.getvalue()


def test_a_bad_import_is_refused_with_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "contacts.csv"
    source.write_text("name,mail\nA,a@example.test\n", encoding="utf-8")
    with pytest.raises(CommandError, match="no column 'email'"):
        call_command("filter_suppressed", str(source))
    with pytest.raises(CommandError, match="cannot be read"):
        call_command("filter_suppressed", str(tmp_path / "missing.csv"))
