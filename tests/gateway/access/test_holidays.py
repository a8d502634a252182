"""Holiday schedules entered by the operator for years chinese-calendar does not cover."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.access.deadlines import (
    CHINA_TZ,
    CalendarNotCovered,
    DeadlineKind,
    add_working_days,
    deadline,
    is_working_day,
)
from gateway.access.holidays import (
    FESTIVALS,
    SUPPLEMENTS,
    ScheduleInvalid,
    install_file,
    package_covers,
    parse,
)

# Shaped like a State Council notice, with dates invented for the tests: this
# is NOT the real 2027 schedule (2027 is used because chinese-calendar 1.11.0
# stops at 2026; a test below checks that this is still so).
SCHEDULE_2027: dict[str, Any] = {
    "year": 2027,
    "source": "测试用安排（非真实通知）",
    "holidays": [
        {"name": "元旦", "from": "2027-01-01", "to": "2027-01-03"},
        {"name": "春节", "from": "2027-02-05", "to": "2027-02-12"},
        {"name": "清明节", "from": "2027-04-03", "to": "2027-04-05"},
        {"name": "劳动节", "from": "2027-05-01", "to": "2027-05-05"},
        {"name": "端午节", "from": "2027-06-09", "to": "2027-06-11"},
        {"name": "中秋节", "from": "2027-09-15", "to": "2027-09-17"},
        {"name": "国庆节", "from": "2027-10-01", "to": "2027-10-07"},
    ],
    "workdays": ["2027-01-31", "2027-02-20", "2027-04-25", "2027-09-26", "2027-10-09"],
}


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def calendar_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "calendar"
    SUPPLEMENTS.use(directory)
    yield directory
    SUPPLEMENTS.use(None)


def problems_of(doc: Any) -> list[tuple[str, str]]:
    with pytest.raises(ScheduleInvalid) as e:
        parse(doc)
    return e.value.problems


def test_the_fixture_year_is_one_the_package_does_not_cover() -> None:
    # If a chinese-calendar release covers 2027, these tests move to a later year.
    assert package_covers(2026) and not package_covers(2027)


def test_a_notice_gives_days_off_and_make_up_working_days() -> None:
    s = parse(SCHEDULE_2027)
    assert not s.is_working_day(date(2027, 2, 8))  # Monday in the Spring Festival break
    assert s.is_working_day(date(2027, 2, 20))  # Saturday, make-up working day
    assert not s.is_working_day(date(2027, 2, 13))  # an ordinary Saturday
    assert s.is_working_day(date(2027, 2, 15))  # an ordinary Monday
    assert len(s.holidays) == 3 + 8 + 3 + 5 + 3 + 3 + 7


def test_without_a_schedule_a_deadline_into_the_year_is_refused(calendar_dir: Path) -> None:
    with pytest.raises(CalendarNotCovered, match="govgw calendar add"):
        deadline(DeadlineKind.SHARE, "aba", datetime(2026, 12, 28, 10, tzinfo=CHINA_TZ))


def test_an_installed_schedule_serves_the_next_deadline(calendar_dir: Path, tmp_path: Path) -> None:
    received = datetime(2026, 12, 28, 10, tzinfo=CHINA_TZ)  # Monday
    with pytest.raises(CalendarNotCovered):
        deadline(DeadlineKind.SHARE, "aba", received)
    install_file(write(tmp_path / "notice.json", SCHEDULE_2027), calendar_dir)
    # 29, 30, 31 Dec (2026, the package's schedule); 1-3 Jan off; 4, 5, 6, 7 Jan.
    d = deadline(DeadlineKind.SHARE, "aba", received)
    assert (d.working_days, d.due) == (7, date(2027, 1, 7))
    # The make-up Sunday before Spring Festival counts, the break does not.
    assert add_working_days(date(2027, 1, 29), 1) == date(2027, 1, 31)
    assert add_working_days(date(2027, 2, 4), 1) == date(2027, 2, 15)
    # The package still decides its own years.
    assert not is_working_day(date(2026, 10, 1))


def test_a_changed_file_is_read_again_and_a_broken_one_is_refused(
    calendar_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    install_file(write(tmp_path / "notice.json", SCHEDULE_2027), calendar_dir)
    assert not is_working_day(date(2027, 6, 10))
    moved = json.loads(json.dumps(SCHEDULE_2027))
    moved["holidays"][4] = {"name": "端午节", "from": "2027-06-12", "to": "2027-06-14"}
    target = write(calendar_dir / "2027.json", moved)
    os.utime(target, ns=(1, 1))  # a different stamp even within one clock tick
    assert is_working_day(date(2027, 6, 10))
    target.write_text("{not json", encoding="utf-8")
    with (
        caplog.at_level(logging.ERROR, logger="govgw.calendar"),
        pytest.raises(CalendarNotCovered),
    ):
        is_working_day(date(2027, 6, 10))
    assert "refused" in caplog.text


def test_install_refuses_to_replace_unless_asked(calendar_dir: Path, tmp_path: Path) -> None:
    source = write(tmp_path / "notice.json", SCHEDULE_2027)
    install_file(source, calendar_dir)
    with pytest.raises(ScheduleInvalid, match="--replace"):
        install_file(source, calendar_dir)
    assert install_file(source, calendar_dir, replace=True).year == 2027
    assert sorted(p.name for p in calendar_dir.iterdir()) == ["2027.json"]


def test_a_covered_year_is_never_overridden() -> None:
    doc = {**SCHEDULE_2027, "year": 2026, "holidays": [], "workdays": []}
    assert ("$.year", "2026 is covered by chinese-calendar 1.11.0, whose schedule is used") in (
        problems_of(doc)
    )


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"source": " "}, "$.source", "notice"),
        ({"extra": 1}, "$.extra", "unknown key"),
        ({"holidays": "元旦"}, "$.holidays", "list"),
        ({"workdays": None}, "$.workdays", "list"),
        ({"workdays": ["2027-02-08"]}, "$.workdays[0]", "Saturday or Sunday"),
        ({"workdays": ["2027-02-06"]}, "$.workdays[0]", "also a day off"),
        ({"workdays": ["2028-01-01"]}, "$.workdays[0]", "must be in 2027"),
        ({"workdays": ["1 Feb"]}, "$.workdays[0]", "YYYY-MM-DD"),
    ],
)
def test_each_problem_names_its_place(change: dict[str, Any], path: str, words: str) -> None:
    found = problems_of({**SCHEDULE_2027, **change})
    assert any(p == path and words in m for p, m in found), found


def test_holiday_entries_are_checked_one_by_one() -> None:
    holidays = [dict(h) for h in SCHEDULE_2027["holidays"]]
    holidays[0] = {"name": "元旦", "from": "2027-01-03", "to": "2027-01-01"}
    holidays[1] = {"name": "春节", "from": "2027-02-01", "to": "2027-02-20"}
    holidays[2] = {"name": "清明", "from": "2027-04-03", "to": "2027-04-05"}
    holidays[3] = {"name": "国庆节", "from": "2027-05-01", "to": "2027-05-05"}
    holidays[4] = {"name": "端午节", "from": "2028-06-09", "to": "2028-06-11"}
    holidays[5] = {"name": "中秋节", "from": "2027-09-15"}
    found = dict(problems_of({**SCHEDULE_2027, "holidays": holidays}))
    assert "before from" in found["$.holidays[0].to"]
    assert "at most" in found["$.holidays[1].to"]
    assert FESTIVALS[0] in found["$.holidays[2].name"]  # not a festival's name
    assert "twice" in found["$.holidays[6].name"]  # 国庆节 again, after [3]
    assert "must end in 2027" in found["$.holidays[4]"]
    assert "exactly name, from and to" in found["$.holidays[5]"]
    missing = [
        m for p, m in problems_of({**SCHEDULE_2027, "holidays": holidays}) if p == "$.holidays"
    ]
    assert any("清明节 is missing" in m for m in missing)
    assert any("劳动节 is missing" in m for m in missing)


def test_a_new_year_break_may_start_the_december_before() -> None:
    holidays = [dict(h) for h in SCHEDULE_2027["holidays"]]
    holidays[0] = {"name": "元旦", "from": "2026-12-31", "to": "2027-01-02"}
    s = parse({**SCHEDULE_2027, "holidays": holidays})
    assert date(2027, 1, 1) in s.holidays and date(2026, 12, 31) not in s.holidays


def test_not_an_object_or_no_year() -> None:
    assert problems_of([]) == [("$", "must be an object with year, source, holidays, workdays")]
    assert problems_of({**SCHEDULE_2027, "year": "2027"})[-1][0] == "$.year"
    assert problems_of({**SCHEDULE_2027, "year": True})[-1][0] == "$.year"
