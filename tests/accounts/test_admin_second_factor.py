"""The admin console refuses staff who have not completed a second factor.

Requirement: issue #3 "The admin console requires staff to have completed a second factor";
DESIGN.md requirement 3.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.services.factors import start_totp
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_staff_signed_in_without_a_factor_are_sent_to_the_login(client, make_user) -> None:  # type: ignore[no-untyped-def]
    staff = make_user("staff@example.test", is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_admin_login_needs_password_and_a_current_totp_code(client, make_user) -> None:  # type: ignore[no-untyped-def]
    staff = make_user("staff@example.test", is_staff=True)
    factor = start_totp(user=staff, name="Phone")
    factor.confirmed = True
    factor.save(update_fields=["confirmed"])
    form = {"username": "staff@example.test", "password": PASSWORD, "otp_device": factor.persistent_id}

    refused = client.post(reverse("admin:login"), {**form, "otp_token": "000000"})
    assert refused.status_code == 200 and not refused.wsgi_request.user.is_authenticated

    factor.refresh_from_db()
    factor.throttling_failure_count = 0
    factor.save(update_fields=["throttling_failure_count"])
    code = f"{factor.totp().token():06d}"
    response = client.post(reverse("admin:login") + "?next=/admin/", {**form, "otp_token": code})
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200
    # The same code cannot be used again (RFC 6238 single use).
    client.logout()
    again = client.post(reverse("admin:login"), {**form, "otp_token": code})
    assert again.status_code == 200 and not again.wsgi_request.user.is_authenticated


def test_listeners_never_reach_the_admin(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    assert client.get(reverse("admin:index")).status_code == 302
