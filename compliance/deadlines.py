"""The deadline engine for data-subject requests: table-driven, absolute dates, each with its rule.

Every deadline is computed once, from the day of receipt, and stored as an absolute date together
with the rule that produced it (Fides drifts because it stores "N days" and recomputes: PITFALLS.md).
Each deadline has two dates (REGULATIONS.md §0 rule 3): ``due``, the internal target, the earliest
plausible legal date (no holiday roll-over, the stricter counting); and ``legal``, the latest date the
law allows (with the roll-over the law grants). Officers work to ``due``; ``legal`` is kept beside it.

Sources (REGULATIONS.md): GDPR G-12/G-13 and §3 (Reg. 1182/71); UK U-01/U-02; CCPA C-06, C-07,
C-20; other US states and LGPD from §9. Items marked [K] there are to be confirmed by counsel; the
rules below cite the item each comes from.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import holidays

# The 27 EU member states and the three EEA states (IS, LI, NO) where the GDPR applies.
EU_EEA = frozenset("AT BE BG HR CY CZ DK EE FI FR DE GR IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO".split(" "))
# 45 days, +45 once (REGULATIONS.md §9; the list grows: confirm with counsel).
US_45_DAY_STATES = frozenset("VA CO CT TX OR UT MT DE NH NJ TN MN MD NE KY RI IN".split(" "))


class Regime:
    GDPR = "gdpr"
    UK_GDPR = "uk_gdpr"
    CCPA = "ccpa"
    US_STATE = "us_state"
    IOWA = "us_iowa"
    LGPD = "lgpd"
    DEFAULT = "default"


KNOW_DELETE_CORRECT = frozenset({"access", "access_categories", "portability", "erasure", "rectification"})
OPT_OUTS = frozenset({"opt_out_sale_sharing", "limit_sensitive"})
REQUEST_KINDS = KNOW_DELETE_CORRECT | OPT_OUTS | {"restriction", "objection"}


@dataclass(frozen=True)
class Jurisdiction:
    code: str  # "EU-DE", "UK", "US-CA", "US-VA", "US-IA", "BR", "OTHER-JP"
    regime: str
    holiday_country: str | None
    holiday_subdiv: str | None = None


def jurisdiction_for(country: str, region: str = "") -> Jurisdiction:
    """The jurisdiction of a request from the subject's country and region at receipt."""
    country = (country or "").upper()
    region = (region or "").upper()
    subdiv = region.split("-", 1)[1] if "-" in region else ""
    if country in EU_EEA:
        return Jurisdiction(f"EU-{country}", Regime.GDPR, country)
    if country in {"GB", "UK"}:
        return Jurisdiction("UK", Regime.UK_GDPR, "GB")
    if country == "US":
        if subdiv == "CA":
            return Jurisdiction("US-CA", Regime.CCPA, "US", "CA")
        if subdiv == "IA":
            return Jurisdiction("US-IA", Regime.IOWA, "US", "IA")
        if subdiv in US_45_DAY_STATES:
            return Jurisdiction(f"US-{subdiv}", Regime.US_STATE, "US", subdiv)
        return Jurisdiction(f"US-{subdiv}" if subdiv else "US", Regime.DEFAULT, "US", subdiv or None)
    if country == "BR":
        return Jurisdiction("BR", Regime.LGPD, "BR")
    return Jurisdiction(f"OTHER-{country}" if country else "OTHER", Regime.DEFAULT, None)


def jurisdiction_from_code(code: str) -> Jurisdiction:
    """The jurisdiction a stored code names (the inverse of ``jurisdiction_for(...).code``)."""
    if code.startswith("EU-"):
        return jurisdiction_for(code[3:])
    if code == "UK":
        return jurisdiction_for("GB")
    if code == "US" or code.startswith("US-"):
        return jurisdiction_for("US", code if code != "US" else "")
    if code.startswith("OTHER-"):
        return jurisdiction_for(code[6:])
    return jurisdiction_for(code if code != "OTHER" else "")


# -- calendar arithmetic ----------------------------------------------------------------------------


def add_months_clamped(start: datetime.date, months: int) -> datetime.date:
    """Reg. 1182/71 Art. 3(2)(c): the same date number in the final month, else that month's last day."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return datetime.date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


@lru_cache(maxsize=64)
def _holidays(country: str | None, subdiv: str | None, year: int) -> frozenset[datetime.date]:
    if not country:
        return frozenset()
    try:
        return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=[year, year + 1]))
    except NotImplementedError:
        return frozenset(holidays.country_holidays(country, years=[year, year + 1]))


def is_working_day(day: datetime.date, j: Jurisdiction) -> bool:
    return day.weekday() < 5 and day not in _holidays(j.holiday_country, j.holiday_subdiv, day.year)


def roll_to_working_day(day: datetime.date, j: Jurisdiction) -> datetime.date:
    """Art. 3(4): a period ending on a weekend or public holiday ends on the next working day."""
    while not is_working_day(day, j):
        day += datetime.timedelta(days=1)
    return day


def add_business_days(start: datetime.date, count: int, j: Jurisdiction | None) -> datetime.date:
    """``count`` business days after ``start`` (the day of receipt not counted). With ``j`` None,
    only weekends are skipped (the stricter internal count); with a jurisdiction, its holidays too."""
    day = start
    added = 0
    while added < count:
        day += datetime.timedelta(days=1)
        if day.weekday() < 5 and (j is None or is_working_day(day, j)):
            added += 1
    return day


# -- deadlines ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    name: str  # acknowledge | respond | respond_extended | extension_notice
    due: datetime.date  # internal target: the earliest plausible legal date
    legal: datetime.date  # the legal maximum
    rule: str  # the rule that produced it, with its REGULATIONS.md item


@dataclass(frozen=True)
class Schedule:
    jurisdiction: Jurisdiction
    kind: str
    received: datetime.date
    deadlines: tuple[Deadline, ...]
    pause_allowed: bool
    extension_allowed: bool
    notes: tuple[str, ...] = field(default=())

    def get(self, name: str) -> Deadline | None:
        return next((d for d in self.deadlines if d.name == name), None)


def _calendar_days(received: datetime.date, days: int) -> datetime.date:
    return received + datetime.timedelta(days=days)


def schedule(j: Jurisdiction, kind: str, received: datetime.date) -> Schedule:
    """Every deadline of a request of ``kind`` received on ``received`` in ``j``."""
    if kind not in REQUEST_KINDS:
        raise ValueError(f"unknown request kind {kind!r}")
    if j.regime in (Regime.GDPR, Regime.UK_GDPR):
        return _gdpr(j, kind, received)
    if j.regime == Regime.CCPA:
        return _ccpa(j, kind, received)
    if j.regime in (Regime.US_STATE, Regime.IOWA):
        return _us_state(j, kind, received)
    if j.regime == Regime.LGPD:
        return _lgpd(j, kind, received)
    return _default(j, kind, received)


def _gdpr(j: Jurisdiction, kind: str, received: datetime.date) -> Schedule:
    item = "U-01" if j.regime == Regime.UK_GDPR else "G-12"
    one = add_months_clamped(received, 1)
    three = add_months_clamped(received, 3)  # from receipt, never chained from the clamped date
    respond = Deadline(
        "respond",
        one,
        roll_to_working_day(one, j),
        f"{item}: one month from receipt (Reg. 1182/71 Art. 3(2)(c)); legal date rolled to a working day (Art. 3(4))",
    )
    extended = Deadline(
        "respond_extended",
        three,
        roll_to_working_day(three, j),
        f"{item}: extension by two further months, three months from receipt",
    )
    notice = Deadline(
        "extension_notice",
        one,
        respond.legal,
        f"{item}: the extension, with reasons, must be notified within one month of receipt",
    )
    return Schedule(
        j,
        kind,
        received,
        (respond, extended, notice),
        pause_allowed=True,
        extension_allowed=True,
        notes=("U-02: the clock pauses while identity or clarification is awaited",)
        if j.regime == Regime.UK_GDPR
        else ("EDPB 01/2022 §5.3: pausing for a justified identity query has been accepted",),
    )


def _ccpa(j: Jurisdiction, kind: str, received: datetime.date) -> Schedule:
    if kind in OPT_OUTS:
        stop = Deadline(
            "respond",
            add_business_days(received, 15, None),
            add_business_days(received, 15, j),
            "C-20: stop selling/sharing no later than 15 business days from receipt (CCR §7026(f), §7027)",
        )
        return Schedule(j, kind, received, (stop,), pause_allowed=False, extension_allowed=False)
    deadlines = []
    if kind in KNOW_DELETE_CORRECT:
        deadlines.append(
            Deadline(
                "acknowledge",
                add_business_days(received, 10, None),
                add_business_days(received, 10, j),
                "C-06: confirm receipt within 10 business days (CCR §7021(a)); internal count skips weekends only",
            )
        )
    legal_45 = roll_to_working_day(_calendar_days(received, 45), j)
    deadlines += [
        Deadline(
            "respond",
            _calendar_days(received, 44),
            legal_45,
            "C-07: 45 calendar days beginning on the day of receipt, verification included (CCR §7021(b)); "
            "internal target day 44, legal day 45 (CCP §12 holiday rule)",
        ),
        Deadline(
            "respond_extended",
            _calendar_days(received, 89),
            roll_to_working_day(_calendar_days(received, 90), j),
            "C-07: one extension of up to 45 days, 90 days from receipt at most",
        ),
        Deadline(
            "extension_notice",
            _calendar_days(received, 44),
            legal_45,
            "C-07: notice of the extension, with the reason, within the first 45 days",
        ),
    ]
    return Schedule(
        j,
        kind,
        received,
        tuple(deadlines),
        pause_allowed=False,
        extension_allowed=True,
        notes=("C-07: verification time counts: the clock does not pause",),
    )


def _us_state(j: Jurisdiction, kind: str, received: datetime.date) -> Schedule:
    days, extra = (90, 45) if j.regime == Regime.IOWA else (45, 45)
    respond = Deadline(
        "respond",
        _calendar_days(received, days),
        _calendar_days(received, days),
        f"§9: {days} calendar days ({j.code})",
    )
    extended = Deadline(
        "respond_extended",
        _calendar_days(received, days + extra),
        _calendar_days(received, days + extra),
        f"§9: one extension of {extra} days ({j.code})",
    )
    notice = Deadline(
        "extension_notice", respond.due, respond.legal, f"§9: notice of the extension within the first {days} days"
    )
    return Schedule(j, kind, received, (respond, extended, notice), pause_allowed=False, extension_allowed=True)


def _lgpd(j: Jurisdiction, kind: str, received: datetime.date) -> Schedule:
    rule = (
        "L-01: access: simplified answer at once, full declaration within 15 days of the request (Art. 19 II)"
        if kind in {"access", "access_categories", "portability"}
        else "L-02: answer without delay; 15 days used as the outer bound [K]"
    )
    respond = Deadline("respond", _calendar_days(received, 15), _calendar_days(received, 15), rule)
    return Schedule(j, kind, received, (respond,), pause_allowed=False, extension_allowed=False)


def _default(j: Jurisdiction, kind: str, received: datetime.date) -> Schedule:
    respond = Deadline(
        "respond",
        _calendar_days(received, 30),
        _calendar_days(received, 30),
        "default: 30 calendar days, the strictest common deadline, where no specific law applies",
    )
    return Schedule(j, kind, received, (respond,), pause_allowed=False, extension_allowed=False)


# -- pauses and extensions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    start: datetime.date
    end: datetime.date  # the day the clock runs again

    @property
    def days(self) -> int:
        return max((self.end - self.start).days, 0)


def apply_pauses(s: Schedule, pauses: Iterable[Pause]) -> Schedule:
    """Move the response deadlines by the days the clock stood still, where the law allows pausing
    (GDPR as accepted by DPAs, UK Art. 12A). Elsewhere the schedule is returned unchanged."""
    paused = sum(p.days for p in pauses)
    if not s.pause_allowed or paused == 0:
        return s
    moved = []
    for d in s.deadlines:
        if d.name in {"respond", "respond_extended", "extension_notice"}:
            due = d.due + datetime.timedelta(days=paused)
            legal = roll_to_working_day(d.legal + datetime.timedelta(days=paused), s.jurisdiction)
            moved.append(Deadline(d.name, due, legal, f"{d.rule}; moved {paused} days for clock pauses"))
        else:
            moved.append(d)
    return Schedule(s.jurisdiction, s.kind, s.received, tuple(moved), s.pause_allowed, s.extension_allowed, s.notes)


class ExtensionRefused(ValueError):
    pass


def check_extension(s: Schedule, *, on: datetime.date, reason: str, already_extended: bool) -> Deadline:
    """The extended deadline, if an extension given ``on`` with ``reason`` is lawful; else ExtensionRefused."""
    if not s.extension_allowed:
        raise ExtensionRefused(f"{s.jurisdiction.code}: this request cannot be extended")
    if already_extended:
        raise ExtensionRefused("a request can be extended once only (G-12, C-07)")
    if not reason.strip():
        raise ExtensionRefused("an extension needs the reason sent to the subject (G-12, C-07)")
    notice = s.get("extension_notice")
    extended = s.get("respond_extended")
    assert notice is not None and extended is not None
    if on > notice.legal:
        raise ExtensionRefused(f"too late: the extension had to be notified by {notice.legal.isoformat()}")
    return extended
