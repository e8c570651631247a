"""The deadline table: every rule against the worked examples of REGULATIONS.md.

Requirement: issue #4 "Deadlines (the engine every anchor gets wrong)"; REGULATIONS.md G-12, G-13,
§3 (Reg. 1182/71), U-01/U-02, C-06, C-07, C-20, L-01 and the §9 table.
"""

from __future__ import annotations

import datetime

import pytest

from compliance.deadlines import (
    ExtensionRefused,
    Pause,
    Regime,
    add_business_days,
    add_months_clamped,
    apply_pauses,
    check_extension,
    jurisdiction_for,
    schedule,
)

D = datetime.date


@pytest.mark.parametrize(
    ("country", "region", "code", "regime"),
    [
        ("de", "", "EU-DE", Regime.GDPR),
        ("NO", "", "EU-NO", Regime.GDPR),  # EEA
        ("GB", "", "UK", Regime.UK_GDPR),
        ("US", "US-CA", "US-CA", Regime.CCPA),
        ("US", "US-VA", "US-VA", Regime.US_STATE),
        ("US", "US-IA", "US-IA", Regime.IOWA),
        ("US", "US-NY", "US-NY", Regime.DEFAULT),
        ("BR", "", "BR", Regime.LGPD),
        ("JP", "", "OTHER-JP", Regime.DEFAULT),
    ],
)
def test_jurisdiction_from_country_and_region(country: str, region: str, code: str, regime: str) -> None:
    j = jurisdiction_for(country, region)
    assert (j.code, j.regime) == (code, regime)


@pytest.mark.parametrize(
    ("received", "months", "expected"),
    [
        (D(2026, 1, 31), 1, D(2026, 2, 28)),  # §3: no 31 February: the month's last day
        (D(2028, 1, 31), 1, D(2028, 2, 29)),  # leap year
        (D(2026, 3, 31), 1, D(2026, 4, 30)),
        (D(2026, 1, 31), 3, D(2026, 4, 30)),  # from receipt, not chained from 28 February
        (D(2026, 12, 15), 1, D(2027, 1, 15)),  # across the year end
    ],
)
def test_calendar_months_clamped(received: datetime.date, months: int, expected: datetime.date) -> None:
    assert add_months_clamped(received, months) == expected


# REGULATIONS.md §3 test vectors (GDPR, Germany's holidays).
@pytest.mark.parametrize(
    ("received", "due", "legal", "three_months"),
    [
        (D(2026, 3, 5), D(2026, 4, 5), D(2026, 4, 7), D(2026, 6, 5)),  # Sunday, then Easter Monday
        (D(2026, 1, 31), D(2026, 2, 28), D(2026, 3, 2), D(2026, 4, 30)),  # Saturday -> Monday
        (D(2028, 1, 31), D(2028, 2, 29), D(2028, 2, 29), D(2028, 4, 30)),  # leap year; 30 Apr 2028 is Sunday
        (D(2026, 3, 31), D(2026, 4, 30), D(2026, 4, 30), D(2026, 6, 30)),
        (D(2026, 1, 30), D(2026, 2, 28), D(2026, 3, 2), D(2026, 4, 30)),
        (D(2026, 4, 2), D(2026, 5, 2), D(2026, 5, 4), D(2026, 7, 2)),
    ],
)
def test_gdpr_one_month_and_three_months_g12(received, due, legal, three_months) -> None:  # type: ignore[no-untyped-def]
    s = schedule(jurisdiction_for("DE"), "access", received)
    respond, extended = s.get("respond"), s.get("respond_extended")
    assert (respond.due, respond.legal) == (due, legal)  # type: ignore[union-attr]
    assert extended.due == three_months  # type: ignore[union-attr]
    assert "G-12" in respond.rule  # type: ignore[union-attr]


def test_ccpa_worked_example_c06_c07_c20() -> None:
    ca = jurisdiction_for("US", "US-CA")
    s = schedule(ca, "erasure", D(2026, 3, 2))
    assert s.get("acknowledge").due == D(2026, 3, 16)  # type: ignore[union-attr]
    assert (s.get("respond").due, s.get("respond").legal) == (D(2026, 4, 15), D(2026, 4, 16))  # type: ignore[union-attr]
    # Day 90 is Sunday 31 May 2026: the internal target is day 89; the legal date rolls to Monday (CCP §12).
    assert (s.get("respond_extended").due, s.get("respond_extended").legal) == (D(2026, 5, 30), D(2026, 6, 1))  # type: ignore[union-attr]
    opt_out = schedule(ca, "opt_out_sale_sharing", D(2026, 3, 2))
    assert [d.name for d in opt_out.deadlines] == ["respond"]
    assert opt_out.get("respond").due == D(2026, 3, 23)  # type: ignore[union-attr]
    assert not s.pause_allowed  # C-07: verification time counts


def test_ccpa_business_days_across_thanksgiving() -> None:
    """REGULATIONS.md §9: receipt Fri 2026-11-20: 4 Dec counting weekends only, 8 Dec skipping CA holidays."""
    s = schedule(jurisdiction_for("US", "US-CA"), "access", D(2026, 11, 20))
    ack = s.get("acknowledge")
    assert (ack.due, ack.legal) == (D(2026, 12, 4), D(2026, 12, 8))  # type: ignore[union-attr]


def test_business_days_skip_weekends_and_the_jurisdictions_holidays() -> None:
    de = jurisdiction_for("DE")
    assert add_business_days(D(2026, 12, 23), 2, None) == D(2026, 12, 25)
    assert add_business_days(D(2026, 12, 23), 2, de) == D(2026, 12, 28)  # 24 Dec, then past Christmas and the weekend


def test_other_us_states_and_iowa() -> None:
    va = schedule(jurisdiction_for("US", "US-VA"), "access", D(2026, 3, 2))
    assert (va.get("respond").due, va.get("respond_extended").due) == (D(2026, 4, 16), D(2026, 5, 31))  # type: ignore[union-attr]
    ia = schedule(jurisdiction_for("US", "US-IA"), "access", D(2026, 3, 2))
    assert (ia.get("respond").due, ia.get("respond_extended").due) == (D(2026, 5, 31), D(2026, 7, 15))  # type: ignore[union-attr]


def test_lgpd_full_declaration_in_15_days_l01() -> None:
    s = schedule(jurisdiction_for("BR"), "access", D(2026, 3, 2))
    assert s.get("respond").due == D(2026, 3, 17) and "L-01" in s.get("respond").rule  # type: ignore[union-attr]


def test_pauses_move_gdpr_and_uk_deadlines_but_never_ccpa_u02() -> None:
    uk = schedule(jurisdiction_for("GB"), "access", D(2026, 3, 2))
    paused = apply_pauses(uk, [Pause(D(2026, 3, 3), D(2026, 3, 10)), Pause(D(2026, 3, 20), D(2026, 3, 23))])
    assert paused.get("respond").due == D(2026, 4, 2) + datetime.timedelta(days=10)  # type: ignore[union-attr]
    assert "moved 10 days" in paused.get("respond").rule  # type: ignore[union-attr]
    ca = schedule(jurisdiction_for("US", "US-CA"), "access", D(2026, 3, 2))
    assert apply_pauses(ca, [Pause(D(2026, 3, 3), D(2026, 3, 10))]) == ca


def test_extensions_once_with_reasons_and_in_time_g12_c07() -> None:
    s = schedule(jurisdiction_for("DE"), "access", D(2026, 1, 31))
    assert check_extension(s, on=D(2026, 2, 20), reason="complex request", already_extended=False).due == D(2026, 4, 30)
    with pytest.raises(ExtensionRefused, match="reason"):
        check_extension(s, on=D(2026, 2, 20), reason=" ", already_extended=False)
    with pytest.raises(ExtensionRefused, match="once"):
        check_extension(s, on=D(2026, 2, 20), reason="again", already_extended=True)
    with pytest.raises(ExtensionRefused, match="too late: the extension had to be notified by 2026-03-02"):
        check_extension(s, on=D(2026, 3, 3), reason="late", already_extended=False)
    lgpd = schedule(jurisdiction_for("BR"), "access", D(2026, 3, 2))
    with pytest.raises(ExtensionRefused, match="cannot be extended"):
        check_extension(lgpd, on=D(2026, 3, 3), reason="x", already_extended=False)


def test_unknown_request_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown request kind"):
        schedule(jurisdiction_for("DE"), "telepathy", D(2026, 3, 2))
