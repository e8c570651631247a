"""The consent ledger, the consents API, the choices page and Global Privacy Control.

Requirement: CONTRACT.md Privacy (`GET/PUT /api/v1/privacy/consents`, `Sec-GPC: 1`); issue #4
"opt-outs reach the consent state"; REGULATIONS.md "Build one consent ledger", G-03 (no default
consent, an interaction id), G-04 (demonstrable), G-06 (withdrawal as easy, history kept), G-07
(refusing everything still lets the account stream), G-18 (restriction blocks processors), C-19/C-21
(two opt-out methods: the link and the GPC header), C-20 (confirmation), C-22 (two-step opt-in),
C-24 (no sale of a child's data without a parent).
"""

from __future__ import annotations

import datetime
from unittest import mock

import pytest
from rest_framework.test import APIClient

from compliance import consents, processing
from compliance.models import ConsentRecord, PrivacyRequest, ProcessingRestriction
from tests.accounts.api_helpers import assert_problem, bearer, login
from tests.accounts.test_portal_pages import signed_in

pytestmark = pytest.mark.django_db


def api_for(email: str) -> APIClient:
    client = APIClient()
    bearer(client, login(client, email).json()["access"])
    return client


def opt_in(api: APIClient, purpose: str) -> None:
    first = api.put("/api/v1/privacy/consents", {purpose: True, "interaction_id": "tap-1"}, format="json")
    assert first.status_code == 202, first.content
    token = first.json()["pending"][purpose]["confirmation"]
    second = api.put(
        "/api/v1/privacy/consents", {purpose: True, "interaction_id": "tap-2", "confirmation": token}, format="json"
    )
    assert second.status_code == 200 and second.json()["purposes"][purpose]["granted"] is True


def test_defaults_are_no_for_every_consent_and_sale_g03(alice) -> None:  # type: ignore[no-untyped-def]
    body = api_for("alice@example.test").get("/api/v1/privacy/consents").json()
    assert body["notice_version"] == consents.NOTICE_VERSION and body["restricted"] is False
    for name, purpose in consents.PURPOSES.items():
        choice = body["purposes"][name]
        assert choice["default"] is True and choice["given_at"] is None
        assert choice["granted"] is (purpose.legal_basis == "legitimate_interests"), name
    assert body["opt_out_honored"] is None
    assert not ConsentRecord.objects.exists()


def test_agreeing_needs_an_interaction_id_and_is_recorded_demonstrably_g03_g04(alice) -> None:  # type: ignore[no-untyped-def]
    api = api_for("alice@example.test")
    refused = api.put("/api/v1/privacy/consents", {"marketing_email": True}, format="json")
    assert_problem(refused, 400, "interaction_required")
    assert not ConsentRecord.objects.exists()

    ok = api.put("/api/v1/privacy/consents", {"marketing_email": True, "interaction_id": "evt-42"}, format="json")
    assert ok.status_code == 200
    choice = ok.json()["purposes"]["marketing_email"]
    assert (choice["granted"], choice["given_by"], choice["surface"], choice["default"]) == (True, "self", "api", False)
    record = ConsentRecord.objects.get()
    # G-04: who, when, to what notice (version and hash), for which purpose, how, and where.
    assert (record.subject_id, record.actor, record.purpose, record.granted) == (
        alice.pk,
        "self",
        "marketing_email",
        True,
    )
    assert record.notice_version == consents.NOTICE_VERSION and record.notice_hash == consents.notice_hash()
    assert len(record.notice_hash) == 64 and record.interaction_id == "evt-42"
    assert (record.legal_basis, record.jurisdiction, record.surface) == ("consent", "EU-DE", "api")


def test_withdrawing_is_one_step_and_keeps_the_history_g06(alice) -> None:  # type: ignore[no-untyped-def]
    api = api_for("alice@example.test")
    api.put("/api/v1/privacy/consents", {"marketing_email": True, "interaction_id": "evt-1"}, format="json")
    withdrawn = api.put("/api/v1/privacy/consents", {"marketing_email": False}, format="json")
    assert withdrawn.status_code == 200 and withdrawn.json()["purposes"]["marketing_email"]["granted"] is False
    history = list(ConsentRecord.objects.filter(subject=alice).values_list("purpose", "granted"))
    assert history == [("marketing_email", True), ("marketing_email", False)]
    # Records are never changed in place.
    first = ConsentRecord.objects.order_by("id").first()
    assert first is not None
    first.granted = False
    with pytest.raises(ValueError, match="never changed"):
        first.save()
    # Saying the same thing again writes nothing.
    api.put("/api/v1/privacy/consents", {"marketing_email": False}, format="json")
    assert ConsentRecord.objects.count() == 2


def ledger(user, purpose: str, granted: bool, at: datetime.datetime) -> ConsentRecord:  # type: ignore[no-untyped-def]
    return consents.write_record(
        user,
        purpose,
        granted,
        actor=ConsentRecord.Actor.SELF,
        actor_ref=user.pk,
        surface=ConsentRecord.Surface.API,
        method="grant" if granted else "withdraw",
        jurisdiction="US-CA",
        at=at,
        interaction_id="tap",
    )


def test_the_current_choice_is_the_newest_record_in_one_query_however_long_the_ledger_g04_g06(  # type: ignore[no-untyped-def]
    alice, charlie, django_assert_num_queries
) -> None:
    """G-06 (history kept, the newest choice counts), G-04 (the record that proves it is returned)."""
    start = datetime.datetime(2026, 1, 5, 9, 0, tzinfo=datetime.UTC)
    minute = datetime.timedelta(minutes=1)
    # Given one record per purpose but one, then a long history for two purposes
    for n, name in enumerate(list(consents.PURPOSES)[:-1]):
        ledger(alice, name, True, start + n * minute)
    with django_assert_num_queries(1):
        short = consents.current(alice)
    for i in range(40):
        ledger(alice, "marketing_email", i % 2 == 0, start + (10 + i) * minute)
        ledger(alice, "personalised_ads", i % 2 == 1, start + (10 + i) * minute)
    # A record written later with an earlier time does not win; on equal times the later id does.
    ledger(alice, "marketing_email", True, start)
    tie_first = ledger(alice, "personalised_ads", False, start + 60 * minute)
    tie_last = ledger(alice, "personalised_ads", True, start + 60 * minute)
    ledger(charlie, "marketing_email", True, start + 100 * minute)  # someone else's newer record

    # When the choices are read, neither the query count nor the rows read grow with the ledger
    with (
        django_assert_num_queries(1),
        mock.patch.object(ConsentRecord, "from_db", side_effect=ConsentRecord.from_db) as rows,
    ):
        choices = consents.current(alice)
    assert rows.call_count == len(consents.PURPOSES) - 1  # the newest per purpose, not 88 rows

    # Then each is the newest record by time, then id, exactly as reading the whole ledger gives
    expected: dict[str, ConsentRecord] = {}
    for record in ConsentRecord.objects.filter(subject=alice).order_by("recorded_at", "id"):
        expected[record.purpose] = record
    assert {name: c.record for name, c in choices.items()} == {name: expected.get(name) for name in consents.PURPOSES}
    assert choices["marketing_email"].granted is False  # the 40th alternating record (i = 39)
    assert choices["personalised_ads"].record == tie_last and tie_last.pk > tie_first.pk
    assert choices["personalised_ads"].granted is True
    last = list(consents.PURPOSES)[-1]
    assert (choices[last].record, choices[last].granted) == (None, consents.PURPOSES[last].default)
    assert short.keys() == choices.keys()


def test_bad_choices_are_refused_with_nothing_written(alice) -> None:  # type: ignore[no-untyped-def]
    api = api_for("alice@example.test")
    assert_problem(api.put("/api/v1/privacy/consents", {"telepathy": True}, format="json"), 400, "validation_error")
    assert_problem(
        api.put("/api/v1/privacy/consents", {"marketing_email": "yes"}, format="json"), 400, "validation_error"
    )
    assert_problem(api.put("/api/v1/privacy/consents", {}, format="json"), 400, "validation_error")
    assert_problem(api.put("/api/v1/privacy/consents", ["x"], format="json"), 400, "validation_error")
    assert_problem(APIClient().get("/api/v1/privacy/consents"), 401, "not_authenticated")
    assert not ConsentRecord.objects.exists()


def test_a_sale_or_sharing_opt_in_takes_two_distinct_steps_c22(charlie) -> None:  # type: ignore[no-untyped-def]
    api = api_for("charlie@example.test")
    first = api.put("/api/v1/privacy/consents", {"personalised_ads": True, "interaction_id": "tap-1"}, format="json")
    assert first.status_code == 202 and first.json()["purposes"]["personalised_ads"]["granted"] is False
    assert not ConsentRecord.objects.exists()
    wrong = api.put(
        "/api/v1/privacy/consents",
        {"personalised_ads": True, "interaction_id": "tap-2", "confirmation": "guessed"},
        format="json",
    )
    assert wrong.status_code == 202 and not ConsentRecord.objects.exists()
    token = wrong.json()["pending"]["personalised_ads"]["confirmation"]
    done = api.put(
        "/api/v1/privacy/consents",
        {"personalised_ads": True, "interaction_id": "tap-3", "confirmation": token},
        format="json",
    )
    assert done.status_code == 200 and done.json()["purposes"]["personalised_ads"]["granted"] is True
    assert ConsentRecord.objects.get().interaction_id == "tap-3"


def test_no_sale_of_a_childs_data_without_a_parent_c24(make_user) -> None:  # type: ignore[no-untyped-def]
    today = datetime.date.today()
    child = make_user(
        "kid@example.test", date_of_birth=today.replace(year=today.year - 12), country="US", region="US-CA"
    )
    with pytest.raises(consents.ChoiceRefused) as refused:
        consents.record_choices(child, {"partner_insights": True}, surface="api", interaction_id="tap")
    assert refused.value.code == "parental_authorisation_required"
    assert not ConsentRecord.objects.exists()


def test_withdrawing_a_sale_files_an_opt_out_request_c20(charlie) -> None:  # type: ignore[no-untyped-def]
    api = api_for("charlie@example.test")
    opt_in(api, "personalised_ads")
    answer = api.put("/api/v1/privacy/consents", {"personalised_ads": False}, format="json").json()
    (filed,) = answer["requests"]
    assert (filed["type"], filed["purposes"]) == ("opt_out_sale_sharing", ["personalised_ads"])
    request = PrivacyRequest.objects.get(pk=filed["id"])
    assert (request.verification_method, request.jurisdiction) == ("not_required", "US-CA")
    assert ConsentRecord.objects.filter(request=request, granted=False).count() == 1
    assert answer["opt_out_honored"] is False  # being carried to the systems; True once they acknowledged


def test_gpc_opts_a_signed_in_listener_out_and_its_absence_never_opts_back_in_c21(charlie) -> None:  # type: ignore[no-untyped-def]
    api = api_for("charlie@example.test")
    opt_in(api, "partner_insights")
    assert api.get("/api/v1/me", HTTP_SEC_GPC="1").status_code == 200
    choice = api.get("/api/v1/privacy/consents").json()["purposes"]["partner_insights"]
    assert (choice["granted"], choice["given_by"], choice["surface"]) == (False, "signal", "gpc")
    assert PrivacyRequest.objects.filter(subject=charlie, kind="opt_out_sale_sharing").count() == 1
    # Later requests without the signal (and with it again) change nothing.
    api.get("/api/v1/me")
    api.get("/api/v1/me", HTTP_SEC_GPC="1")
    assert api.get("/api/v1/privacy/consents").json()["purposes"]["partner_insights"]["granted"] is False
    assert ConsentRecord.objects.filter(actor="signal").count() == 1
    assert PrivacyRequest.objects.filter(subject=charlie, kind="opt_out_sale_sharing").count() == 1


def test_gpc_from_a_listener_who_never_opted_in_is_still_an_honoured_opt_out_c21(charlie) -> None:  # type: ignore[no-untyped-def]
    api_for("charlie@example.test").get("/api/v1/privacy/requests", HTTP_SEC_GPC="1")
    request = PrivacyRequest.objects.get(subject=charlie)
    assert (request.kind, request.verification_method) == ("opt_out_sale_sharing", "not_required")


def test_anonymous_gpc_changes_nothing(client, charlie) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/privacy/choices/", HTTP_SEC_GPC="1")
    assert page.status_code == 200 and b"Opt-Out Preference Signal Honored" in page.content
    assert not ConsentRecord.objects.exists() and not PrivacyRequest.objects.exists()


def test_the_choices_page_link_form_opt_out_and_confirmation_c19_c20(client, charlie) -> None:  # type: ignore[no-untyped-def]
    home = client.get("/privacy/notice/")
    assert b"Do Not Sell or Share My Personal Information" in home.content  # the footer link on every page
    signed_in(client, charlie)
    page = client.get("/privacy/choices/")
    assert page.status_code == 200 and b'id="sale"' in page.content and b'id="sensitive"' in page.content
    interaction = page.context["interaction_id"]
    # Opting in: ask, then confirm on a separate step (C-22).
    asked = client.post("/privacy/choices/", {"personalised_ads": "on", "interaction_id": interaction})
    assert asked.status_code == 200 and b"Please confirm" in asked.content
    confirmed = client.post(
        "/privacy/choices/",
        {"personalised_ads": "on", "interaction_id": interaction, "confirmation": asked.context["confirmation"]},
    )
    assert confirmed.status_code == 302
    assert consents.current(charlie)["personalised_ads"].granted is True
    # Opting out: one button (G-06: never harder than agreeing).
    client.post("/privacy/choices/", {"opt_out_all": "1", "interaction_id": interaction})
    assert consents.opted_out_of_sale_sharing(charlie)
    shown = client.get("/privacy/choices/").content
    assert b"Opt-out being processed" in shown or b"Opt-Out Request Honored" in shown


def test_the_choices_page_with_gpc_opts_the_listener_out(client, charlie) -> None:  # type: ignore[no-untyped-def]
    signed_in(client, charlie)
    client.get("/privacy/choices/", HTTP_SEC_GPC="1")
    assert ConsentRecord.objects.filter(subject=charlie).count() == 0  # nothing was granted to withdraw
    assert PrivacyRequest.objects.get(subject=charlie).kind == "opt_out_sale_sharing"


def test_refusing_every_optional_use_still_lets_the_account_work_g07(alice) -> None:  # type: ignore[no-untyped-def]
    consents.record_choices(alice, dict.fromkeys(consents.PURPOSES, False), surface="api")
    api = api_for("alice@example.test")
    assert api.get("/api/v1/me").status_code == 200


def test_a_restriction_blocks_every_processor_but_storage_and_legal_hold_g18(alice) -> None:  # type: ignore[no-untyped-def]
    consents.record_choices(alice, {"marketing_email": True}, surface="api", interaction_id="tap")
    assert processing.may_process(alice, "marketing_email") and processing.may_process(
        alice, "personalised_recommendations"
    )
    assert not processing.may_process(alice, "personalised_ads")  # never agreed
    assert not processing.may_process(alice, "an_undeclared_purpose")
    ProcessingRestriction.objects.create(
        subject=alice, subject_ref=str(alice.pk), ground="accuracy", placed_at=datetime.datetime.now(datetime.UTC)
    )
    assert [p for p in consents.PURPOSES if processing.may_process(alice, p)] == []
    assert processing.may_process(alice, "storage") and processing.may_process(alice, "legal_hold")


def test_apps_may_not_ask_to_opt_back_in_for_12_months_c22(charlie) -> None:  # type: ignore[no-untyped-def]
    api = api_for("charlie@example.test")
    assert api.get("/api/v1/privacy/consents").json()["may_ask_from"] == {}
    opt_in(api, "personalised_ads")
    api.put("/api/v1/privacy/consents", {"personalised_ads": False}, format="json")
    today = datetime.date.today()
    later = (today + datetime.timedelta(days=365)).isoformat()
    shown = api.get("/api/v1/privacy/consents").json()["may_ask_from"]
    # The opt-out request covers every sale and sharing, and the withdrawal itself is recorded.
    assert shown == {"partner_insights": later, "personalised_ads": later}


def test_every_sale_or_sharing_names_what_it_discloses_and_to_whom_c09() -> None:
    """CCPA §1798.115(a): the right to know names the categories sold or shared and the categories
    of third parties for each; so every sale or sharing purpose declares them."""
    from compliance.registry import Category

    assert consents.SALE_SHARING
    for name in consents.SALE_SHARING:
        purpose = consents.PURPOSES[name]
        assert purpose.disclosure in ("sale", "sharing"), name
        assert purpose.categories and set(purpose.categories) <= {c.value for c in Category}, name
        assert purpose.third_parties, name
        assert purpose.default is False, name  # G-03: so a purpose never allowed was never sold or shared


def test_what_was_sold_or_shared_is_read_from_the_ledger_with_its_periods_c09(charlie) -> None:  # type: ignore[no-untyped-def]
    start = datetime.datetime(2026, 3, 1, 9, tzinfo=datetime.UTC)

    def record(purpose: str, granted: bool, days: int) -> None:
        consents.write_record(
            charlie,
            purpose,
            granted,
            actor="self",
            actor_ref=charlie.pk,
            surface="api",
            method="grant" if granted else "withdraw",
            jurisdiction="US-CA",
            at=start + datetime.timedelta(days=days),
        )

    assert consents.sold_or_shared(charlie, until=start + datetime.timedelta(days=400)) == []
    record("personalised_ads", True, 0)
    record("personalised_ads", True, 5)  # a repeated grant does not open a second period
    record("personalised_ads", False, 30)
    record("personalised_ads", True, 60)
    record("partner_insights", False, 10)  # withdrawn without ever being allowed: nothing was sold
    record("marketing_email", True, 1)  # not a sale or sharing
    (entry,) = consents.sold_or_shared(charlie, until=start + datetime.timedelta(days=400))
    day = lambda n: (start + datetime.timedelta(days=n)).isoformat()  # noqa: E731
    assert entry == {
        "purpose": "personalised_ads",
        "label": consents.PURPOSES["personalised_ads"].label,
        "disclosure": "sharing",
        "categories": ["usage"],
        "third_parties": list(consents.PURPOSES["personalised_ads"].third_parties),
        "periods": [{"from": day(0), "until": day(30)}, {"from": day(60), "until": None}],
    }
    # As of an earlier date, only what the ledger held then.
    (earlier,) = consents.sold_or_shared(charlie, until=start + datetime.timedelta(days=40))
    assert earlier["periods"] == [{"from": day(0), "until": day(30)}]
