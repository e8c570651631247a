"""Privacy requests through the API (CONTRACT.md, Privacy): file, follow, cancel; step-up; 404 for others.

Requirement: issue #4 "Channels" (API), "another listener never seeing a request (404)";
CONTRACT.md ("access, portability and erasure need step-up"); REGULATIONS.md G-11, C-20.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from compliance.models import PrivacyRequest
from tests.accounts.api_helpers import assert_problem, bearer, login

pytestmark = pytest.mark.django_db


def signed_in(email: str) -> APIClient:
    client = APIClient()
    bearer(client, login(client, email).json()["access"])
    return client


def test_file_a_request_that_needs_no_step_up_and_follow_it(alice) -> None:  # type: ignore[no-untyped-def]
    api = signed_in("alice@example.test")
    created = api.post(
        "/api/v1/privacy/requests", {"type": "rectification", "details": "my name is wrong"}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["type"], body["status"], body["jurisdiction"]) == ("rectification", "verified", "EU-DE")
    assert body["due_at"].endswith("T23:59:59Z") and body["download_url"] is None
    listed = api.get("/api/v1/privacy/requests").json()
    assert [r["id"] for r in listed] == [body["id"]]
    one = api.get(f"/api/v1/privacy/requests/{body['id']}").json()
    assert one["progress"] == 0 and one["completed_at"] is None


def test_access_portability_and_erasure_need_a_fresh_second_factor(alice) -> None:  # type: ignore[no-untyped-def]
    api = signed_in("alice@example.test")
    for kind in ("access", "portability", "erasure"):
        body = assert_problem(
            api.post("/api/v1/privacy/requests", {"type": kind}, format="json"), 403, "step_up_required"
        )
        assert body["mfa_token"] and body["methods"] == ["email"]
    assert not PrivacyRequest.objects.exists()


def test_opt_outs_need_no_verification_c20(charlie) -> None:  # type: ignore[no-untyped-def]
    api = signed_in("charlie@example.test")
    body = api.post("/api/v1/privacy/requests", {"type": "opt_out_sale_sharing"}, format="json").json()
    # Carried out at once: nothing to verify, the connected systems are being told (compliance.propagation).
    assert (body["status"], body["jurisdiction"]) == ("in_progress", "US-CA")


def test_a_second_identical_request_returns_the_open_one(alice) -> None:  # type: ignore[no-untyped-def]
    api = signed_in("alice@example.test")
    first = api.post("/api/v1/privacy/requests", {"type": "objection"}, format="json")
    again = api.post("/api/v1/privacy/requests", {"type": "objection"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and PrivacyRequest.objects.count() == 1


def test_another_listener_never_sees_a_request(alice, charlie) -> None:  # type: ignore[no-untyped-def]
    mine = (
        signed_in("alice@example.test")
        .post("/api/v1/privacy/requests", {"type": "rectification"}, format="json")
        .json()
    )
    intruder = signed_in("charlie@example.test")
    assert_problem(intruder.get(f"/api/v1/privacy/requests/{mine['id']}"), 404, "not_found")
    assert_problem(intruder.post(f"/api/v1/privacy/requests/{mine['id']}/cancel"), 404, "not_found")
    assert intruder.get("/api/v1/privacy/requests").json() == []
    assert PrivacyRequest.objects.get(pk=mine["id"]).status == "verified"


def test_cancel_and_bad_input(alice) -> None:  # type: ignore[no-untyped-def]
    api = signed_in("alice@example.test")
    body = api.post("/api/v1/privacy/requests", {"type": "objection"}, format="json").json()
    assert api.post(f"/api/v1/privacy/requests/{body['id']}/cancel").json()["status"] == "cancelled"
    assert_problem(api.post(f"/api/v1/privacy/requests/{body['id']}/cancel"), 409, "not_cancellable")
    bad = assert_problem(
        api.post("/api/v1/privacy/requests", {"type": "telepathy"}, format="json"), 400, "validation_error"
    )
    assert "type" in bad["errors"]
    assert_problem(APIClient().get("/api/v1/privacy/requests"), 401, "not_authenticated")
