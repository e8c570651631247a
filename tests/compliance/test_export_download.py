"""Downloading an export: owner only, fresh second factor, until the link expires, then deleted.

Requirement: issue #4 "Export ... downloadable by its owner with a fresh second factor through an
expiring link; deleted when the link expires"; CONTRACT.md Privacy (download_url); REGULATIONS.md G-15,
C-13 (the self-service portal's download is the request's export).
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from pathlib import Path

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from compliance import fulfilment
from compliance.dsr import services
from compliance.models import ExportFile, PrivacyRequest
from compliance.tasks import purge_expired_exports
from tests.accounts.api_helpers import assert_problem, bearer, login

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _export_root(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EXPORT_ROOT = str(tmp_path / "exports")
    settings.CONNECTED_DATASETS = []


def exported(user, django_capture_on_commit_callbacks) -> PrivacyRequest:  # type: ignore[no-untyped-def]
    request = services.submit_request(
        subject=user, kind="access", channel="api", actor=user, verification="session+mfa"
    ).request
    with django_capture_on_commit_callbacks(execute=True):
        fulfilment.start_fulfilment(request=request, actor=user)
    return PrivacyRequest.objects.get(pk=request.pk)


def fresh_mfa_client(email: str) -> APIClient:
    """Signed in, with the session's second factor just verified (as after /auth/mfa/verify)."""
    from accounts.models import AuthSession

    api = APIClient()
    tokens = login(api, email).json()
    AuthSession.objects.filter(pk=tokens["session_id"]).update(mfa_at=timezone.now())
    return bearer(api, tokens["access"])


def test_the_owner_downloads_with_a_fresh_second_factor(alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    request = exported(alice, django_capture_on_commit_callbacks)
    stale = bearer(APIClient(), login(APIClient(), "alice@example.test").json()["access"])
    body = stale.get(f"/api/v1/privacy/requests/{request.pk}").json()
    assert body["download_url"] == f"/api/v1/privacy/requests/{request.pk}/download"
    assert_problem(stale.get(body["download_url"]), 403, "step_up_required")

    response = fresh_mfa_client("alice@example.test").get(body["download_url"])
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Cache-Control"] == "no-store"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert json.loads(archive.read("contact.json"))[0]["values"]["email"] == "alice@example.test"
    assert ExportFile.objects.get(request=request).downloaded_at is not None


def test_nobody_else_can_download(alice, charlie, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    request = exported(alice, django_capture_on_commit_callbacks)
    intruder = fresh_mfa_client("charlie@example.test")
    assert_problem(intruder.get(f"/api/v1/privacy/requests/{request.pk}/download"), 404, "not_found")


def test_the_link_expires_and_the_file_is_deleted(alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    request = exported(alice, django_capture_on_commit_callbacks)
    path = Path(ExportFile.objects.get(request=request).path)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=8)
    with time_machine.travel(later):
        api = fresh_mfa_client("alice@example.test")
        assert api.get(f"/api/v1/privacy/requests/{request.pk}").json()["download_url"] is None
        assert_problem(api.get(f"/api/v1/privacy/requests/{request.pk}/download"), 410, "expired")
        assert purge_expired_exports() == 1
    assert not path.exists() and not path.parent.exists()
    assert ExportFile.objects.get(request=request).deleted_at is not None


def test_portal_download_asks_for_the_second_factor_first(client, alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    from tests.accounts.test_portal_pages import signed_in

    request = exported(alice, django_capture_on_commit_callbacks)
    session = signed_in(client, alice)
    page = client.get(f"/privacy/requests/{request.pk}/")
    assert b"Download (ZIP)" in page.content
    detour = client.get(f"/privacy/requests/{request.pk}/download")
    assert detour.status_code == 302 and detour["Location"].startswith("/account/verify?next=")
    type(session).objects.filter(pk=session.pk).update(mfa_at=timezone.now())
    response = client.get(f"/privacy/requests/{request.pk}/download")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    # C-13: the portal's self-service download is the request's export, byte for byte, as the API gives it.
    through_api = fresh_mfa_client("alice@example.test").get(f"/api/v1/privacy/requests/{request.pk}/download")
    assert b"".join(response.streaming_content) == b"".join(through_api.streaming_content)


def test_officer_carries_out_and_downloads_the_evidence(
    client, verified_admin, alice, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    request = services.submit_request(
        subject=alice, kind="portability", channel="api", actor=alice, verification="session+mfa"
    ).request
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:compliance_privacyrequest_act", args=[request.pk, "carry_out"]))
    assert response.status_code == 302
    assert PrivacyRequest.objects.get(pk=request.pk).status == "completed"
    page = client.get(reverse("admin:compliance_privacyrequest_change", args=[request.pk]))
    assert b"identity" in page.content and b"Evidence pack" in page.content
    pack = json.loads(client.get(reverse("admin:compliance_privacyrequest_evidence", args=[request.pk])).content)
    assert pack["request"] == str(request.pk) and pack["systems"][0]["status"] == "done"
    assert "compliance.dsr.started" in [d["action"] for d in pack["decisions"]]
    assert "alice" not in json.dumps(pack).lower()


def test_manual_completion_for_rectification_only(
    client, verified_admin, alice, settings, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    settings.CONNECTED_DATASETS = []  # no system keeps a copy: completing needs no acknowledgement
    fix = services.submit_request(
        subject=alice, kind="rectification", channel="api", actor=alice, verification="session"
    ).request
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:compliance_privacyrequest_act", args=[fix.pk, "complete"]), {"reason": "name fixed"})
    assert PrivacyRequest.objects.get(pk=fix.pk).status == "completed"
    copy = services.submit_request(
        subject=alice, kind="access", channel="api", actor=alice, verification="session+mfa"
    ).request
    refused = client.post(reverse("admin:compliance_privacyrequest_act", args=[copy.pk, "complete"]), {"reason": "x"})
    assert b"every system has reported" in refused.content
