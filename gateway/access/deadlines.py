"""Deadlines in working days (工作日), by jurisdiction profile.

A provider answers a conditional-share application within 5 working days
(Yingkou art. 20, Yichuan art. 29) or 7 (Aba 2021 art. 27); a conditional-open
application within 10 (Yingkou art. 29) or 15 (Aba 2021 art. 35); a correction
request (校核) within 5, extendable once to 10 (Aba 2024 art. 22). Yichuan's
measures cover sharing only, so its profile has no open deadline.

Working days follow China's State Council holiday schedule, including the
make-up working days (调休上班) on weekends, from the `chinese-calendar`
package, or for a year it does not cover yet from the operator's copy of the
State Council notice (gateway.access.holidays). That schedule is published a
year at a time; a deadline that would reach a year neither covers raises
`CalendarNotCovered` instead of guessing from weekdays (a guess would be wrong
around every holiday).

Counting: the day of receipt is not counted (期间开始的日不计算在内); the
first working day after it is day 1, and the deadline is the end of day N in
China Standard Time. Timestamps are converted to UTC+8 before taking the date.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum

import chinese_calendar

from gateway.access.holidays import SUPPLEMENTS

CHINA_TZ = timezone(timedelta(hours=8), "CST")


class DeadlineKind(StrEnum):
    SHARE = "share"  # conditional share application (有条件共享)
    OPEN = "open"  # conditional open application (依申请开放)
    CORRECTION = "correction"  # correction request (校核)


@dataclass(frozen=True)
class Profile:
    """A jurisdiction's working-day limits; None where its measures set none."""

    name: str
    share: int | None
    open: int | None
    correction: int = 5
    correction_extended: int = 10

    def days(self, kind: DeadlineKind) -> int:
        n = {
            DeadlineKind.SHARE: self.share,
            DeadlineKind.OPEN: self.open,
            DeadlineKind.CORRECTION: self.correction,
        }[kind]
        if n is None:
            raise NoDeadline(f"jurisdiction profile {self.name} sets no {kind} deadline")
        return n


PROFILES: dict[str, Profile] = {
    "yingkou": Profile("yingkou", share=5, open=10),
    "yichuan": Profile("yichuan", share=5, open=None),
    "aba": Profile("aba", share=7, open=15),
}
DEFAULT_PROFILE = "aba"


class DeadlineError(ValueError):
    """A deadline cannot be computed; `reason` is the UPPER_SNAKE error reason."""

    reason = "DEADLINE_INVALID"


class UnknownProfile(DeadlineError):
    reason = "JURISDICTION_UNKNOWN"


class NoDeadline(DeadlineError):
    reason = "DEADLINE_NOT_DEFINED"


class CalendarNotCovered(DeadlineError):
    """The holiday schedule of a year the deadline reaches is not known."""

    reason = "CALENDAR_NOT_COVERED"


class NotExtendable(DeadlineError):
    reason = "DEADLINE_NOT_EXTENDABLE"


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(
            f"unknown jurisdiction profile {name!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None


def china_date(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise DeadlineError("a time without a time zone cannot be placed on the calendar")
    return moment.astimezone(CHINA_TZ).date()


def is_working_day(day: date) -> bool:
    """True on working days, including make-up Saturdays and Sundays (调休上班)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        pass
    supplement = SUPPLEMENTS.schedule(day.year)
    if supplement is None:
        raise CalendarNotCovered(
            f"the holiday schedule for {day.year} is not known to this gateway "
            f"(chinese-calendar {chinese_calendar.__version__}); update the package or"
            f" enter the State Council notice with `govgw calendar add`"
        )
    return supplement.is_working_day(day)


def add_working_days(start: date, n: int) -> date:
    """The n-th working day after `start` (start itself not counted); n >= 1."""
    if n < 1:
        raise DeadlineError("a deadline is at least one working day")
    day, counted = start, 0
    while counted < n:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return day


@dataclass(frozen=True)
class Deadline:
    kind: DeadlineKind
    jurisdiction: str
    received: date  # China-time date of receipt
    working_days: int
    due: date  # the answer is due by the end of this day, China time
    extended: bool = False

    @property
    def due_at(self) -> datetime:
        """The end of the due day (China time) as an aware datetime."""
        return datetime.combine(self.due + timedelta(days=1), datetime.min.time(), CHINA_TZ)

    def overdue(self, now: datetime) -> bool:
        return now >= self.due_at

    def extend(self) -> Deadline:
        """A correction request's one extension, to its longer limit (情况复杂的)."""
        if self.kind is not DeadlineKind.CORRECTION:
            raise NotExtendable(f"a {self.kind} deadline cannot be extended")
        if self.extended:
            raise NotExtendable("a correction deadline can be extended once only")
        days = profile(self.jurisdiction).correction_extended
        return replace(
            self, working_days=days, due=add_working_days(self.received, days), extended=True
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "jurisdiction": self.jurisdiction,
            "received": self.received.isoformat(),
            "working_days": self.working_days,
            "due": self.due.isoformat(),
            "extended": self.extended,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> Deadline:
        return cls(
            kind=DeadlineKind(str(doc["kind"])),
            jurisdiction=str(doc["jurisdiction"]),
            received=date.fromisoformat(str(doc["received"])),
            working_days=int(str(doc["working_days"])),
            due=date.fromisoformat(str(doc["due"])),
            extended=bool(doc.get("extended", False)),
        )


def deadline(kind: DeadlineKind | str, jurisdiction: str, received_at: datetime) -> Deadline:
    """The deadline for answering something received at `received_at`."""
    kind = DeadlineKind(kind)
    days = profile(jurisdiction).days(kind)
    received = china_date(received_at)
    return Deadline(kind, jurisdiction, received, days, add_working_days(received, days))
