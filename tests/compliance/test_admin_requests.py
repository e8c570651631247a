"""The privacy officers' queue in the admin: deadlines first, officer decisions, filing by phone.

Requirement: issue #4 "an officer can verify, review, extend, hold, deny and complete requests in the
admin", "an officer files one received by phone, mail or email, with the channel recorded", "the admin
request list ... renders with a constant number of queries"; REGULATIONS.md G-12, G-13.
"""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from compliance.dsr import services
from compliance.models import PrivacyRequest

pytestmark = pytest.mark.django_db


def file_for(user, kind: str = "objection", days_ago: int = 0):  # type: ignore[no-untyped-def]
    received = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days_ago)
    return services.submit_request(
        subject=user, kind=kind, channel="portal", actor=user, verification="session", received_at=received
    ).request


def test_the_queue_lists_requests_by_deadline_with_constant_queries(client, verified_admin, make_user) -> None:  # type: ignore[no-untyped-def]
    url = reverse("admin:compliance_privacyrequest_changelist")
    users = [make_user(f"listener{n}@example.test") for n in range(12)]
    for user in users[:3]:
        file_for(user)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for n, user in enumerate(users[3:]):
        file_for(user, days_ago=40 if n % 2 else 0)
    with CaptureQueriesContext(connection) as many:
        page = client.get(url)
    assert len(many) == len(few)
    assert b"days overdue" in page.content and b"File a request" in page.content
    overdue = client.get(url, {"deadline": "overdue"})
    assert len(overdue.context["cl"].result_list) == 4


def test_an_officer_files_a_phone_request(client, verified_admin, alice) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        reverse("admin:compliance_privacyrequest_file"),
        {
            "email": "ALICE@example.test",
            "kind": "access",
            "channel": "phone",
            "details": "called in",
            "verification": "",
        },
    )
    request = PrivacyRequest.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"{request.pk}/change/")
    assert (request.channel, request.status, request.subject_id) == ("phone", "received", alice.pk)
    unknown = client.post(
        reverse("admin:compliance_privacyrequest_file"),
        {"email": "nobody@example.test", "kind": "access", "channel": "mail"},
    )
    assert b"No account has this e-mail address." in unknown.content
    assert PrivacyRequest.objects.count() == 1


def test_officer_decisions_from_the_request_page(client, verified_admin, alice) -> None:  # type: ignore[no-untyped-def]
    request = file_for(alice, kind="access")
    page = client.get(reverse("admin:compliance_privacyrequest_change", args=[request.pk]))
    assert b"Extend the deadline" in page.content and b"G-12" in page.content
    act = lambda action, **data: client.post(  # noqa: E731
        reverse("admin:compliance_privacyrequest_act", args=[request.pk, action]), data
    )
    assert act("verify", method="matched the account's e-mail").status_code == 302
    refused = act("extend", reason="")
    assert b"reason" in refused.content and PrivacyRequest.objects.get(pk=request.pk).extended_at is None
    assert act("extend", reason="many systems to search").status_code == 302
    assert act("hold", reason="litigation hold").status_code == 302
    assert PrivacyRequest.objects.get(pk=request.pk).status == "on_hold"
    assert act("release").status_code == 302
    assert act("deny", basis="GDPR Art. 12(5)", text="Repetitive request.").status_code == 302
    assert PrivacyRequest.objects.get(pk=request.pk).status == "denied"
    assert client.get(reverse("admin:compliance_privacyrequest_act", args=[request.pk, "explode"])).status_code == 404


def test_listeners_and_staff_without_permission_cannot_act(client, make_user, alice) -> None:  # type: ignore[no-untyped-def]
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.services.factors import start_totp

    support = make_user("support@example.test", is_staff=True)
    factor = start_totp(user=support, name="Phone")
    factor.confirmed = True
    factor.save(update_fields=["confirmed"])
    client.force_login(support)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = factor.persistent_id
    session.save()
    request = file_for(alice)
    response = client.post(
        reverse("admin:compliance_privacyrequest_act", args=[request.pk, "deny"]), {"basis": "x", "text": "y"}
    )
    assert response.status_code == 403
    assert PrivacyRequest.objects.get(pk=request.pk).status == request.status
