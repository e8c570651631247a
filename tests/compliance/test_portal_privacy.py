"""The listener's privacy pages: file a request from the portal, follow it, cancel it.

Requirement: issue #4 "Channels: portal" and "A listener can file every request type from the portal
and the API and follow it"; CONTRACT.md (access, portability and erasure need step-up);
REGULATIONS.md G-11 (proportionate verification), C-20 (opt-outs need no verification).
"""

from __future__ import annotations

import pytest

from compliance.models import PrivacyRequest
from tests.accounts.test_portal_pages import signed_in

pytestmark = pytest.mark.django_db


def test_the_privacy_page_lists_requests_and_files_new_ones(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    page = client.get("/privacy/")
    assert page.status_code == 200 and b"You have not made any request." in page.content
    assert b'aria-current="page">Privacy' in page.content
    response = client.post("/privacy/", {"kind": "objection", "details": "stop the profiling"})
    request = PrivacyRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/privacy/requests/{request.pk}/"
    # An objection to profiling (legitimate interests) waits for an officer, the data restricted meanwhile (G-21).
    assert (request.channel, request.status, request.details) == ("portal", "awaiting_review", "stop the profiling")
    detail = client.get(f"/privacy/requests/{request.pk}/")
    assert b"Objection" in detail.content and str(request.pk).encode() in detail.content


def test_a_copy_needs_a_fresh_second_factor(client, alice) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    response = client.post("/privacy/", {"kind": "access"})
    assert response.status_code == 302 and response["Location"].startswith("/account/verify?next=")
    assert not PrivacyRequest.objects.exists()


def test_cancel_and_another_listener_gets_404(client, alice, charlie) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, alice)
    client.post("/privacy/", {"kind": "rectification"})
    request = PrivacyRequest.objects.get()
    client.post(f"/privacy/requests/{request.pk}/cancel")
    assert PrivacyRequest.objects.get(pk=request.pk).status == "cancelled"

    client.logout()
    signed_in(client, charlie)
    assert client.get(f"/privacy/requests/{request.pk}/").status_code == 404
    assert client.post(f"/privacy/requests/{request.pk}/cancel").status_code == 404
    assert str(request.pk).encode() not in client.get("/privacy/").content


def test_bad_input_is_refused_and_anonymous_visitors_sign_in_first(client, alice) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/privacy/")["Location"] == "/account/sign-in?next=%2Fprivacy%2F"
    signed_in(client, alice)
    response = client.post("/privacy/", {"kind": "telepathy"})
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    assert not PrivacyRequest.objects.exists()


def test_an_objection_names_the_uses_it_is_about_g21(client, alice) -> None:  # type: ignore[no-untyped-def]
    """G-21: the listener says which use they object to; marketing stops at once, without review."""
    signed_in(client, alice)
    page = client.get("/privacy/")
    assert b"News and offers by e-mail" in page.content
    client.post("/privacy/", {"kind": "objection", "purposes": ["marketing_email"]})
    request = PrivacyRequest.objects.get()
    assert request.purposes == ["marketing_email"] and request.status == "in_progress"
    refused = client.post("/privacy/", {"kind": "rectification", "purposes": ["marketing_email"]})
    assert refused.status_code == 200 and b"does not take purposes" in refused.content


def test_people_who_cannot_sign_in_find_the_public_request_form(client) -> None:  # type: ignore[no-untyped-def]
    """Issue #4 channels (C-27): the sign-in page and every page's footer lead to the public form."""
    for path in ("/account/sign-in", "/privacy/notice/"):
        assert b'href="/privacy/requests/without-account/"' in client.get(path).content, path
