"""Working-day deadlines against the real State Council holiday schedules."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.access.deadlines import (
    CHINA_TZ,
    CalendarNotCovered,
    DeadlineError,
    DeadlineKind,
    NoDeadline,
    NotExtendable,
    UnknownProfile,
    add_working_days,
    deadline,
    is_working_day,
)


def cst(y: int, m: int, d: int, hour: int = 10) -> datetime:
    return datetime(y, m, d, hour, tzinfo=CHINA_TZ)


def test_make_up_working_days_count_and_holidays_do_not() -> None:
    assert is_working_day(date(2026, 2, 14))  # Saturday, 调休上班 before Spring Festival
    assert is_working_day(date(2026, 2, 28))  # Saturday, 调休上班 after it
    assert not is_working_day(date(2026, 2, 16))  # Monday in the holiday
    assert is_working_day(date(2025, 9, 28))  # Sunday, 调休上班 before National Day
    assert not is_working_day(date(2025, 10, 8))  # Wednesday in the golden week
    assert not is_working_day(date(2025, 9, 27))  # an ordinary Saturday


@pytest.mark.requirement("R3")
def test_spring_festival_2026_aba_share_counts_both_make_up_saturdays() -> None:
    # Received Thu 12 Feb: 13, 14(Sat, make-up), [15-23 holiday], 24, 25, 26, 27, 28(Sat, make-up).
    d = deadline(DeadlineKind.SHARE, "aba", cst(2026, 2, 12))
    assert (d.working_days, d.due) == (7, date(2026, 2, 28))


def test_national_day_2025_golden_week() -> None:
    received = cst(2025, 9, 26)  # Friday before the golden week
    # 28(Sun, make-up), 29, 30, [1-8 Oct holiday], 9, 10.
    assert deadline("share", "yingkou", received).due == date(2025, 10, 10)
    # ... 11(Sat, make-up), 13, 14, 15, 16.
    assert deadline("open", "yingkou", received).due == date(2025, 10, 16)
    assert deadline("share", "yichuan", received).due == date(2025, 10, 10)


def test_received_on_a_holiday_counts_from_the_next_working_day() -> None:
    d = deadline("share", "yingkou", cst(2025, 10, 3))
    assert d.received == date(2025, 10, 3)
    assert d.due == date(2025, 10, 14)  # 9, 10, 11(Sat, make-up), 13, 14


def test_date_is_taken_in_china_time() -> None:
    late_utc = datetime(2025, 9, 30, 17, 0, tzinfo=UTC)  # 01:00 on 1 Oct in Beijing
    assert deadline("share", "yingkou", late_utc).received == date(2025, 10, 1)
    with pytest.raises(DeadlineError):
        deadline("share", "yingkou", datetime(2025, 9, 30, 17, 0))  # naive


@pytest.mark.requirement("R6")
def test_aba_open_fifteen_days_across_new_year() -> None:
    # Received Tue 23 Dec 2025; 1-3 Jan 2026 are the holiday, 4 Jan 2026 (Sun) a make-up day.
    d = deadline("open", "aba", cst(2025, 12, 23))
    days = [add_working_days(date(2025, 12, 23), n) for n in range(1, 16)]
    assert date(2026, 1, 2) not in days and date(2026, 1, 4) in days
    assert d.due == days[-1] == date(2026, 1, 14)


@pytest.mark.requirement("R8")
def test_correction_extends_once_to_ten() -> None:
    d = deadline("correction", "aba", cst(2026, 2, 12))
    assert (d.working_days, d.due) == (5, date(2026, 2, 26))  # 13, 14, 24, 25, 26
    e = d.extend()  # ... 27, 28(Sat, make-up), 2, 3, 4 Mar
    assert (e.working_days, e.due, e.extended) == (10, date(2026, 3, 4), True)
    with pytest.raises(NotExtendable):
        e.extend()
    with pytest.raises(NotExtendable):
        deadline("share", "aba", cst(2026, 2, 12)).extend()


def test_overdue_after_the_end_of_the_due_day_in_china_time() -> None:
    d = deadline("share", "yingkou", cst(2025, 9, 26))  # due 10 Oct
    assert not d.overdue(datetime(2025, 10, 10, 23, 59, tzinfo=CHINA_TZ))
    assert d.overdue(datetime(2025, 10, 11, 0, 0, tzinfo=CHINA_TZ))
    assert d.overdue(datetime(2025, 10, 10, 16, 0, tzinfo=UTC))  # 00:00 on 11 Oct in Beijing


def test_round_trip_through_a_dict() -> None:
    d = deadline("correction", "yingkou", cst(2025, 9, 26)).extend()
    assert type(d).from_dict(d.to_dict()) == d


def test_profiles_without_a_deadline_or_unknown_are_refused() -> None:
    with pytest.raises(NoDeadline):  # Yichuan's measures cover sharing only
        deadline("open", "yichuan", cst(2025, 9, 26))
    with pytest.raises(UnknownProfile):
        deadline("share", "nowhere", cst(2025, 9, 26))
    with pytest.raises(ValueError):
        deadline("lookup", "aba", cst(2025, 9, 26))


def test_uncovered_years_raise_instead_of_guessing() -> None:
    with pytest.raises(CalendarNotCovered, match="2099"):
        deadline("share", "aba", cst(2099, 3, 2))
    with pytest.raises(CalendarNotCovered):
        is_working_day(date(2003, 6, 2))
    # chinese-calendar 1.11.0 (pinned) knows 2004-2026: a deadline running into
    # 2027 is refused rather than counted on weekdays alone.
    with pytest.raises(CalendarNotCovered, match="2027"):
        deadline("open", "aba", cst(2026, 12, 24))
    assert deadline("share", "yingkou", cst(2026, 12, 22)).due == date(2026, 12, 29)
