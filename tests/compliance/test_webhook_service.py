"""External services as data systems: a signed webhook out, a signed callback back.

Requirement: issue #4 "external services get a signed webhook (HMAC, timestamp, replay-protected)
and report back on a callback endpoint"; "The request completes only when every system has reported".
"""

from __future__ import annotations

import datetime
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from compliance import exports, fulfilment
from compliance.dsr import services
from compliance.models import ExportFile, PrivacyRequest, SystemRun
from compliance.systems import webhooks
from tests.compliance.fake_service import receiving_service

pytestmark = pytest.mark.django_db

SECRET = "s3cret-shared-with-the-recommendation-service"


@pytest.fixture
def service(tmp_path: Path, settings, monkeypatch) -> Iterator[list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RECS_SECRET", SECRET)
    settings.EXPORT_ROOT = str(tmp_path / "exports")
    settings.CONNECTED_DATASETS = []
    with receiving_service() as (url, received):
        settings.CONNECTED_SERVICES = [
            {
                "name": "recommendations",
                "url": url,
                "secret_env": "RECS_SECRET",
                "purpose": "personalised recommendations",
                "categories": ["usage"],
            }
        ]
        yield received


def callback(data: dict[str, Any], *, secret: str = SECRET, timestamp: int | None = None) -> Any:
    body = json.dumps(data).encode()
    stamp = str(timestamp or int(time.time()))
    return APIClient().generic(
        "POST",
        "/api/v1/privacy/callbacks/recommendations",
        body,
        content_type="application/json",
        HTTP_X_SIGNATURE_TIMESTAMP=stamp,
        HTTP_X_SIGNATURE_SHA256=webhooks.sign(secret.encode(), stamp, body),
    )


def start(user, kind: str, django_capture_on_commit_callbacks) -> PrivacyRequest:  # type: ignore[no-untyped-def]
    request = services.submit_request(
        subject=user, kind=kind, channel="api", actor=user, verification="session+mfa"
    ).request
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=8 if kind == "erasure" else 0)
    with time_machine.travel(later), django_capture_on_commit_callbacks(execute=True):
        fulfilment.start_fulfilment(request=request, actor="system:officer")
    return request


def test_an_export_waits_for_the_service_and_includes_what_it_sends(
    service, alice, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    request = start(alice, "access", django_capture_on_commit_callbacks)
    (delivery,) = service
    body, headers = delivery["body"], delivery["headers"]
    assert webhooks.verify(SECRET.encode(), headers["X-Signature-Timestamp"], body, headers["X-Signature-Sha256"])
    sent = json.loads(body)
    assert sent["action"] == "export" and sent["subject"] == {"user_id": str(alice.pk)}
    assert headers["Idempotency-Key"] == f"run-{sent['run']}"
    assert PrivacyRequest.objects.get(pk=request.pk).status == "in_progress"
    assert SystemRun.objects.get(pk=sent["run"]).status == "waiting"

    answer = {
        "run": sent["run"],
        "status": "done",
        "records": [{"category": "usage", "source": "profile", "values": {"favourite_genre": "jazz"}}],
    }
    stamp = int(time.time())  # one timestamp: the very same signed message, sent twice
    assert callback(answer, timestamp=stamp).status_code == 204
    assert callback(answer, timestamp=stamp).status_code == 409  # the same signed callback twice: a replay
    request.refresh_from_db()
    assert request.status == "completed"
    export = ExportFile.objects.get(request=request)
    data = b"".join(exports.read_encrypted(Path(export.path), context=f"compliance.export.{request.pk}"))
    usage = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("usage.json"))
    assert {"source": "recommendations.profile", "values": {"favourite_genre": "jazz"}} in usage


def test_a_request_for_the_categories_only_counts_what_the_service_sends_and_keeps_none_of_it_c12(
    service, alice, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    request = start(alice, "access_categories", django_capture_on_commit_callbacks)
    sent = json.loads(service[0]["body"])
    records = [{"category": "usage", "source": "profile", "values": {"favourite_genre": g}} for g in ("jazz", "soul")]
    assert callback({"run": sent["run"], "status": "done", "records": records}).status_code == 204
    request.refresh_from_db()
    assert request.status == "completed"
    assert SystemRun.objects.get(pk=sent["run"]).counts == {"usage": 2}
    parts = Path(exports.export_root()) / str(request.pk) / "parts"
    assert not parts.exists() or not list(parts.glob("recommendations__*"))
    export = ExportFile.objects.get(request=request)
    archive = zipfile.ZipFile(
        io.BytesIO(b"".join(exports.read_encrypted(Path(export.path), context=f"compliance.export.{request.pk}")))
    )
    assert json.loads(archive.read("about-this-export.json"))["record_counts"]["usage"] == 2
    assert all(b"jazz" not in archive.read(name) for name in archive.namelist())


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"category": "favourites", "values": {"a": 1}}], "unknown category 'favourites': use one of account,"),
        ([{"category": "usage", "source": "../x", "values": {}}], "a record's source must be"),
        ([{"category": "usage", "values": ["jazz"]}], "an object of values"),
        ({"category": "usage"}, "records must be a list"),
    ],
)
def test_an_export_callback_with_records_the_export_cannot_hold_is_refused_and_nothing_written(  # type: ignore[no-untyped-def]
    service, alice, django_capture_on_commit_callbacks, records: object, message: str
) -> None:
    """The export's files and its count check use a record's category as it is: a category outside the
    registry, or an odd source name, is refused with a clear error and the run keeps waiting."""
    request = start(alice, "access", django_capture_on_commit_callbacks)
    sent = json.loads(service[0]["body"])
    answer = callback({"run": sent["run"], "status": "done", "records": records})
    assert answer.status_code == 400 and message in answer.json()["detail"]
    assert SystemRun.objects.get(pk=sent["run"]).status == "waiting"
    assert PrivacyRequest.objects.get(pk=request.pk).status == "in_progress"
    assert not (Path(exports.export_root()) / str(request.pk) / "parts").exists() or not list(
        (Path(exports.export_root()) / str(request.pk) / "parts").glob("recommendations__*")
    )


def test_an_erasure_completes_only_when_the_service_reports(service, alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    request = start(alice, "erasure", django_capture_on_commit_callbacks)
    sent = json.loads(service[0]["body"])
    assert PrivacyRequest.objects.get(pk=request.pk).status == "in_progress"
    assert (
        callback(
            {
                "run": sent["run"],
                "status": "done",
                "counts": {"profiles": 1, "signals": 240},
                "read_back": {"profiles": 0, "signals": 0},
            }
        ).status_code
        == 204
    )
    request.refresh_from_db()
    assert request.status == "completed" and request.evidence["read_back"]["recommendations"] == {
        "profiles": 0,
        "signals": 0,
    }
    assert {
        "system": "recommendations",
        "action": "erase",
        "status": "done",
        "attempts": 1,
        "counts": {"profiles": 1, "signals": 240},
        "kept": [],
    } in request.evidence["systems"]


def test_callbacks_that_are_not_genuine_are_refused(service, alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    start(alice, "access", django_capture_on_commit_callbacks)
    run = json.loads(service[0]["body"])["run"]
    answer = {"run": run, "status": "done", "records": []}
    assert callback(answer, secret="guessed").status_code == 403
    assert callback(answer, timestamp=int(time.time()) - 3600).status_code == 403  # stale
    assert callback({"run": run + 999, "status": "done"}).status_code == 400
    assert callback({"status": "done"}).status_code == 400
    assert SystemRun.objects.get(pk=run).status == "waiting"
