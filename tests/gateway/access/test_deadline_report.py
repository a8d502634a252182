"""The deadlines report's counting on the real holiday calendar, and its filters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from stdnum.cn import ric

from gateway import keys
from gateway.access.applications import ApplicationInput, ApplicationStore
from gateway.access.corrections import CorrectionStore
from gateway.access.deadline_report import (
    COLUMNS,
    report,
    row,
    to_csv,
    working_days_between,
)
from gateway.access.deadlines import CalendarNotCovered, DeadlineKind, deadline
from gateway.access.subject_tokens import SubjectIdentity
from gateway.callers import Caller
from gateway.catalog import load
from gateway.grants import GrantStore
from gateway.subjects import PERSON

BODY = "51322119850315001"
PID = BODY + ric.calc_check_digit(BODY + "0")
FAR = Caller("agency-far", "agency", "松潘县公安局", "513224")
CIVIL = Caller(
    "agency-civil", "agency", "汶川县民政局", "513221", provider_ids=("county.civil-affairs",)
)
POLICE = Caller(
    "agency-police", "agency", "汶川县公安局", "513221", provider_ids=("county.public-security",)
)
ROOT = Caller("root", "admin", "州大数据局", "513200")
PORTAL = Caller("public-portal", "public", "公众", "513200")


def at(y: int, m: int, d: int, hour_utc: int = 2) -> datetime:
    return datetime(y, m, d, hour_utc, 0, tzinfo=UTC)


def test_working_days_between_skips_weekends_holidays_and_counts_make_up_days() -> None:
    # National Day 2026: 1-7 October off; Saturday 10 October is a make-up working day.
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 8)) == 1
    assert working_days_between(date(2026, 10, 8), date(2026, 10, 10)) == 2
    assert working_days_between(date(2026, 10, 10), date(2026, 10, 8)) == 0


def test_a_friday_deadline_is_overdue_by_zero_on_saturday_and_one_on_monday() -> None:
    due = deadline(DeadlineKind.CORRECTION, "aba", at(2026, 5, 29))  # Fri -> Fri 5 June
    assert due.due == date(2026, 6, 5)
    friday = row("c", "correction", "d", "p", due, at(2026, 6, 5, 15))  # 23:00 in China
    assert (friday.overdue, friday.working_days_left, friday.overdue_working_days) == (
        False,
        1,
        0,
    )
    saturday = row("c", "correction", "d", "p", due, at(2026, 6, 6))
    assert (saturday.overdue, saturday.working_days_left, saturday.overdue_working_days) == (
        True,
        0,
        0,
    )
    monday = row("c", "correction", "d", "p", due, at(2026, 6, 8))
    assert (monday.overdue, monday.overdue_working_days) == (True, 1)


def test_spring_festival_left_and_overdue() -> None:
    # Received Thursday 12 Feb 2026: 5 working days -> 26 Feb (make-up Sat 14 Feb counts).
    due = deadline(DeadlineKind.CORRECTION, "aba", at(2026, 2, 12))
    assert due.due == date(2026, 2, 26)
    during = row("c", "correction", "d", "p", due, at(2026, 2, 18))  # in the holiday
    assert during.working_days_left == 3  # 24, 25, 26 Feb
    after = row("c", "correction", "d", "p", due, at(2026, 3, 2))
    # 27 Feb, make-up Saturday 28 Feb, 2 Mar.
    assert (after.overdue, after.overdue_working_days) == (True, 3)


def test_a_year_the_calendar_does_not_know_raises() -> None:
    due = deadline(DeadlineKind.CORRECTION, "aba", at(2026, 12, 1))
    with pytest.raises(CalendarNotCovered):
        row("c", "correction", "d", "p", due, at(2027, 1, 5))


@pytest.fixture
def stores(tmp_path: Path) -> tuple[ApplicationStore, CorrectionStore]:
    ring = keys.generate(tmp_path / "keys" / "keyring.json")
    catalog = load()
    apps = ApplicationStore(tmp_path / "applications.sqlite", GrantStore(tmp_path / "g.json"),
                            catalog)  # fmt: skip
    return apps, CorrectionStore(tmp_path / "corrections.sqlite", catalog, ring)


def test_report_filters_and_sorts(stores: tuple[ApplicationStore, CorrectionStore]) -> None:
    apps, corrections = stores
    app = apps.apply(
        FAR,
        ApplicationInput(
            "social_assistance.recipient", ("name",), "低保对象复核", "复核救助类型", 90
        ),
        at(2026, 6, 1),
    )
    subject = SubjectIdentity(PID, PERSON, "idp", "t", at(2026, 6, 2))
    cor = corrections.file(subject, dataset="population.basic", field="name", statement="x",
                           evidence_ref="", now=at(2026, 5, 25))  # fmt: skip
    kw = {"applications": apps, "corrections": corrections, "catalog": load()}
    now = at(2026, 6, 3)
    everything = report(ROOT, now=now, **kw)
    assert [r.id for r in everything] == [cor["id"], app["id"]]  # soonest due first
    assert [r.kind for r in everything] == ["correction", "share_application"]
    assert [r.id for r in report(ROOT, now=now, overdue_only=True, **kw)] == [cor["id"]]
    assert [r.id for r in report(CIVIL, now=now, **kw)] == [app["id"]]
    assert [r.id for r in report(POLICE, now=now, **kw)] == [cor["id"]]
    # Another county's police bureau: its name ends like the provider's (县公安局), but
    # it is not bound to the provider id, and its own application is not its to answer.
    assert report(FAR, now=now, **kw) == []
    assert report(PORTAL, now=now, **kw) == []
    assert report(ROOT, now=now, dataset="legal_entity.basic", **kw) == []
    text = to_csv(everything)
    lines = text.splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 3
    assert lines[1].startswith(f"{cor['id']},correction,population.basic,县公安局,2026-05-25,")
    assert lines[1].endswith(",5,false,true,0,2")  # due 1 June: 2 and 3 June past it
