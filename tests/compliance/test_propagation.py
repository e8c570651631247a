"""Rectification, restriction, objection and opt-outs reach the account and every connected system.

Requirement: issue #4 "Rectification, restriction, objection, opt-outs: applied to the account and
propagated to the systems (restriction flags processing; opt-outs reach the consent state and
downstream webhooks)"; REGULATIONS.md G-16 (corrections propagate to all stores), G-18 (restriction;
the subject told before it is lifted), G-19 (recipients notified, with an acknowledgement), G-21
(marketing objection immediate; a 21(1) objection restricts and goes to review), C-20 (opt-out
carried to third parties and confirmed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from rest_framework.test import APIClient

from compliance import consents, propagation
from compliance.dsr import services
from compliance.models import ConsentRecord, PrivacyRequest, ProcessingRestriction, SystemRun
from compliance.systems import streaming_demo, webhooks
from compliance.systems.sql import DatasetError, open_database, parse_dataset
from tests.accounts.api_helpers import bearer, login
from tests.compliance.fake_service import receiving_service

pytestmark = pytest.mark.django_db

SECRET = "shared-with-the-ads-partner"


@pytest.fixture
def streaming(tmp_path: Path, settings) -> str:  # type: ignore[no-untyped-def]
    settings.STREAMING_DATABASE_URL = f"sqlite:///{tmp_path / 'streaming.sqlite3'}"
    settings.CONNECTED_SERVICES = []
    return str(settings.STREAMING_DATABASE_URL)


def seeded(url: str, *users: Any) -> None:
    streaming_demo.seed(url, [str(u.pk) for u in users], events_per_user=5, seed=3)


def settings_row(url: str, user: Any) -> dict[str, Any]:
    with open_database(url) as db:
        columns = db.columns("listener_settings")
        rows = db.fetch("SELECT * FROM listener_settings WHERE user_id = ?", [str(user.pk)], limit=2)
    assert len(rows) == 1
    return dict(zip(columns, rows[0], strict=True))


def file(user: Any, kind: str, **kwargs: Any) -> PrivacyRequest:
    return services.submit_request(
        subject=user, kind=kind, channel="api", actor=user, verification="session", **kwargs
    ).request


def test_an_opt_out_reaches_the_connected_database_and_is_confirmed_c20(
    streaming, charlie, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    seeded(streaming, charlie)
    with django_capture_on_commit_callbacks(execute=True):
        consents.record_choices(charlie, {"personalised_ads": True}, surface="api", interaction_id="t1")
        token = consents.record_choices(charlie, {"personalised_ads": True}, surface="api", interaction_id="t1")
    assert token["pending"]  # asked twice without the confirmation: still pending (C-22)
    with django_capture_on_commit_callbacks(execute=True):
        consents.record_choices(
            charlie,
            {"personalised_ads": True},
            surface="api",
            interaction_id="t2",
            confirmation=token["pending"]["personalised_ads"],
        )
    assert bool(settings_row(streaming, charlie)["ads_sharing"]) is True  # the listener's own change, synced

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request = file(charlie, "opt_out_sale_sharing")
    request.refresh_from_db()
    row = settings_row(streaming, charlie)
    assert (bool(row["ads_sharing"]), bool(row["partner_sharing"])) == (False, False)
    assert request.status == "completed", request.evidence
    (run,) = SystemRun.objects.filter(request=request)
    assert (run.system, run.action, run.status, run.counts) == (
        "streaming_history",
        "opt_out",
        "done",
        {"streaming_history.listener_settings": 1},
    )
    assert request.evidence["consent_records"] == list(
        ConsentRecord.objects.filter(request=request).values_list("pk", flat=True)
    )
    assert any("Opt-out request honored" in m.body for m in mail.outbox)
    assert consents.current(charlie)["personalised_ads"].granted is False


def test_a_restriction_flags_processing_everywhere_and_is_lifted_only_after_notice_g18(
    streaming, alice, bob, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    seeded(streaming, alice)
    with django_capture_on_commit_callbacks(execute=True):
        request = file(alice, "restriction", details="my country is wrong")
    request.refresh_from_db()
    restriction = ProcessingRestriction.objects.get(subject=alice)
    assert (restriction.ground, restriction.in_force, request.status) == ("accuracy", True, "completed")
    assert bool(settings_row(streaming, alice)["processing_restricted"]) is True
    api = APIClient()
    bearer(api, login(api, "alice@example.test").json()["access"])
    assert api.get("/api/v1/privacy/consents").json()["restricted"] is True

    with pytest.raises(propagation.PropagationRefused, match="tell the listener first"):
        propagation.lift_restriction(restriction, actor=bob, reason="country checked")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        propagation.notify_lift(restriction, actor=bob)
    assert [m.subject for m in mail.outbox] == ["We are about to lift the restriction on your data"]
    assert bool(settings_row(streaming, alice)["processing_restricted"]) is True  # told, not lifted yet
    with django_capture_on_commit_callbacks(execute=True):
        propagation.lift_restriction(restriction, actor=bob, reason="country checked")
    restriction.refresh_from_db()
    assert restriction.lifted_at is not None and restriction.lift_notified_at <= restriction.lifted_at
    assert bool(settings_row(streaming, alice)["processing_restricted"]) is False
    lift = SystemRun.objects.get(request=request, action="unrestrict")
    assert lift.status == "done"
    assert PrivacyRequest.objects.get(pk=request.pk).status == "completed"


def test_an_objection_to_marketing_stops_it_at_once_g21(streaming, alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    seeded(streaming, alice)
    consents.record_choices(alice, {"push_new_releases": True}, surface="api", interaction_id="t")
    with django_capture_on_commit_callbacks(execute=True):
        request = file(alice, "objection", purposes=["push_new_releases"])
    request.refresh_from_db()
    assert request.status == "completed" and not ProcessingRestriction.objects.exists()
    assert consents.current(alice)["push_new_releases"].granted is False
    assert bool(settings_row(streaming, alice)["push_new_releases"]) is False


def test_an_objection_to_profiling_restricts_until_an_officer_upholds_it_g21(
    streaming, alice, bob, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    seeded(streaming, alice)
    with django_capture_on_commit_callbacks(execute=True):
        request = file(alice, "objection")
    request.refresh_from_db()
    assert request.status == "awaiting_review"  # the review ticket
    assert ProcessingRestriction.objects.get(request=request).ground == "objection"  # Art. 18(1)(d)
    assert bool(settings_row(streaming, alice)["processing_restricted"]) is True
    assert consents.current(alice)["personalised_recommendations"].granted is True  # not decided yet

    with django_capture_on_commit_callbacks(execute=True):
        services.complete_request(request=request, actor=bob, note="no compelling grounds")
    request.refresh_from_db()
    assert request.status == "completed"
    record = ConsentRecord.objects.get(request=request)
    assert (record.purpose, record.granted, record.actor, record.actor_ref) == (
        "personalised_recommendations",
        False,
        "officer",
        str(bob.pk),
    )
    assert not ProcessingRestriction.objects.filter(request=request, lifted_at__isnull=True).exists()
    row = settings_row(streaming, alice)
    assert (bool(row["recommendations"]), bool(row["processing_restricted"])) == (False, False)


def test_a_rejected_objection_ends_the_restriction_with_the_denial(
    streaming, alice, bob, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    seeded(streaming, alice)
    with django_capture_on_commit_callbacks(execute=True):
        request = file(alice, "objection")
        services.deny_request(
            request=request, basis="GDPR Art. 21(1): compelling legitimate grounds", text="We must...", actor=bob
        )
    restriction = ProcessingRestriction.objects.get(request=request)
    assert restriction.lifted_at is not None and restriction.lift_reason == "request denied"
    assert bool(settings_row(streaming, alice)["processing_restricted"]) is False
    assert consents.current(alice)["personalised_recommendations"].granted is True


def test_a_correction_reaches_every_copy_g16(streaming, alice, bob, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    seeded(streaming, alice)
    api = APIClient()
    bearer(api, login(api, "alice@example.test").json()["access"])
    with django_capture_on_commit_callbacks(execute=True):
        assert api.patch("/api/v1/me", {"display_name": "Alice Corrected"}, format="json").status_code == 200
    assert settings_row(streaming, alice)["display_name"] == "Alice Corrected"

    # An officer's correction, through a rectification request, is carried the same way.
    request = file(alice, "rectification", details="my region is Hamburg")
    alice.region = "DE-HH"  # the officer corrects the account in the admin
    alice.save(update_fields=["region"])
    with django_capture_on_commit_callbacks(execute=True):
        services.complete_request(request=request, actor=bob, note="region corrected")
    request.refresh_from_db()
    assert request.status == "completed"
    assert settings_row(streaming, alice)["region"] == "DE-HH"
    assert SystemRun.objects.get(request=request).action == "rectify"


def test_an_officer_cannot_complete_a_request_still_being_carried(streaming, charlie, bob) -> None:  # type: ignore[no-untyped-def]
    request = file(charlie, "opt_out_sale_sharing")  # on-commit work not run: the systems were not told yet
    assert PrivacyRequest.objects.get(pk=request.pk).status == "in_progress"
    with pytest.raises(services.RequestRefused, match="being carried"):
        services.complete_request(request=request, actor=bob)


def test_purposes_are_checked(charlie) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(services.RequestRefused, match="unknown purpose"):
        file(charlie, "objection", purposes=["mind_reading"])
    with pytest.raises(services.RequestRefused, match="is about"):
        file(charlie, "opt_out_sale_sharing", purposes=["marketing_email"])
    with pytest.raises(services.RequestRefused, match="does not take purposes"):
        file(charlie, "rectification", purposes=["marketing_email"])
    assert not PrivacyRequest.objects.exists()


def test_the_choices_section_of_a_dataset_is_validated() -> None:
    data = json.loads(Path(streaming_demo.DATASET_PATH).read_text())
    data["choices"]["purposes"]["telepathy"] = "recommendations"
    with pytest.raises(DatasetError, match=r"choices\.purposes"):
        parse_dataset(data)
    data = json.loads(Path(streaming_demo.DATASET_PATH).read_text())
    data["choices"]["restricted"] = "no_such_column"
    with pytest.raises(DatasetError, match=r"choices\.restricted"):
        parse_dataset(data)
    data = json.loads(Path(streaming_demo.DATASET_PATH).read_text())
    data["choices"]["table"] = "elsewhere"
    with pytest.raises(DatasetError, match=r"choices\.table"):
        parse_dataset(data)


@pytest.fixture
def ads_partner(settings, monkeypatch) -> Iterator[list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADS_SECRET", SECRET)
    settings.CONNECTED_DATASETS = []
    with receiving_service() as (url, received):
        settings.CONNECTED_SERVICES = [{"name": "ads", "url": url, "secret_env": "ADS_SECRET"}]
        yield received


def test_an_opt_out_reaches_a_downstream_webhook_and_completes_on_its_acknowledgement_g19(
    ads_partner, charlie, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        request = file(charlie, "opt_out_sale_sharing")
    (delivery,) = ads_partner
    sent = json.loads(delivery["body"])
    assert webhooks.verify(
        SECRET.encode(),
        delivery["headers"]["X-Signature-Timestamp"],
        delivery["body"],
        delivery["headers"]["X-Signature-Sha256"],
    )
    assert sent["action"] == "opt_out" and sent["state"]["purposes"]["personalised_ads"] is False
    assert "profile" not in sent["state"]  # minimised: no account values for an opt-out
    assert PrivacyRequest.objects.get(pk=request.pk).status == "in_progress"

    body = json.dumps({"run": sent["run"], "status": "done", "counts": {"ad_profiles": 1}}).encode()
    stamp = str(int(time.time()))
    answer = APIClient().generic(
        "POST",
        "/api/v1/privacy/callbacks/ads",
        body,
        content_type="application/json",
        HTTP_X_SIGNATURE_TIMESTAMP=stamp,
        HTTP_X_SIGNATURE_SHA256=webhooks.sign(SECRET.encode(), stamp, body),
    )
    assert answer.status_code == 204
    request.refresh_from_db()
    assert request.status == "completed"
    assert request.evidence["systems"] == [
        {
            "system": "ads",
            "action": "opt_out",
            "status": "done",
            "attempts": 1,
            "counts": {"ad_profiles": 1},
            "kept": [],
        }
    ]


def test_a_listeners_own_change_is_sent_without_a_request(
    ads_partner, alice, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        consents.record_choices(alice, {"marketing_email": True}, surface="portal", interaction_id="t")
    (delivery,) = ads_partner
    sent = json.loads(delivery["body"])
    assert sent["action"] == "sync" and sent["run"] is None
    assert sent["state"]["purposes"]["marketing_email"] is True
    assert not PrivacyRequest.objects.exists()


def test_officers_lift_a_restriction_in_two_steps_in_the_admin_g18(
    client, verified_admin, streaming, alice, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from django.urls import reverse

    seeded(streaming, alice)
    with django_capture_on_commit_callbacks(execute=True):
        request = file(alice, "restriction")
    act = lambda name, **data: client.post(  # noqa: E731
        reverse("admin:compliance_privacyrequest_act", args=[request.pk, name]), data
    )
    page = client.get(reverse("admin:compliance_privacyrequest_change", args=[request.pk]))
    assert b"Art. 18(1)(a)" in page.content and b"in force" in page.content
    refused = act("lift", reason="checked")
    assert refused.status_code == 200 and b"tell the listener first" in refused.content
    with django_capture_on_commit_callbacks(execute=True):
        assert act("notify_lift").status_code == 302
        assert act("lift", reason="accuracy checked").status_code == 302
    assert ProcessingRestriction.objects.get(request=request).lifted_at is not None
    assert bool(settings_row(streaming, alice)["processing_restricted"]) is False
    assert client.get(reverse("admin:compliance_processingrestriction_changelist")).status_code == 200
    ledger = client.get(reverse("admin:compliance_consentrecord_changelist"))
    assert ledger.status_code == 200


def test_a_request_whose_systems_reported_during_a_legal_hold_completes_on_release(
    streaming, charlie, bob, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    seeded(streaming, charlie)
    request = file(charlie, "opt_out_sale_sharing")  # on-commit work not run yet: the runs wait
    services.place_hold(request=request, reason="litigation hold", actor=bob)
    from compliance.fulfilment import run_system

    for run in SystemRun.objects.filter(request=request):
        run_system.delay(run.pk)  # the systems report while the hold stands
    assert PrivacyRequest.objects.get(pk=request.pk).status == "on_hold"
    with django_capture_on_commit_callbacks(execute=True):
        services.release_hold(request=request, actor=bob)
    assert PrivacyRequest.objects.get(pk=request.pk).status == "completed"
