"""Holiday schedules for years the packaged calendar does not know yet.

`chinese-calendar` ships the State Council's holiday schedule a year at a time,
some weeks after the notice (国务院办公厅关于××××年部分节假日安排的通知) appears
each November. Without the next year's schedule no deadline reaching into it
can be computed (gateway.access.deadlines refuses rather than guess), so every
application filed in the last weeks of December would fail. An operator need
not wait for a package release: they enter the notice as a file, checked by
`govgw calendar check FILE` and installed by `govgw calendar add FILE` into
`<data-dir>/calendar/<year>.json`, where every gateway process finds it on
the next deadline it computes (no restart). With a database URL the years live
in a row of PostgreSQL's `documents` table instead, shared by every node and
reloaded in memory when announced (`govgw calendar add --database-url …`).

A year the package covers is never overridden by a file: the package is the
reviewed source, and two sources for one year could disagree silently.

The file mirrors the notice: the seven statutory festivals with their first
and last day off, and the make-up working days (调休上班), which always fall on
a Saturday or Sunday:

    {"year": 2027,
     "source": "国办发明电〔2026〕N号",
     "holidays": [{"name": "元旦", "from": "2027-01-01", "to": "2027-01-03"}, ...],
     "workdays": ["2027-02-06", ...]}

A holiday may start in the previous December (the New Year break sometimes
does); only the days inside `year` are used, since the previous year has a
schedule of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import chinese_calendar

from gateway.files import replace_atomically
from gateway.storage import Storage, documents

log = logging.getLogger("govgw.calendar")

# The festivals every State Council notice schedules (全国年节及纪念日放假办法).
FESTIVALS = ("元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节")
# The longest break a notice has given (Spring Festival and National Day: 8 days).
MAX_BREAK_DAYS = 10
_KEYS = {"year", "source", "holidays", "workdays"}
STORE = "calendar"  # its row in `documents` (year -> schedule document), and announcements


class ScheduleInvalid(ValueError):
    """A schedule file was refused; `problems` are (JSON path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))


@dataclass(frozen=True)
class YearSchedule:
    year: int
    source: str
    holidays: frozenset[date]  # days off inside `year`
    workdays: frozenset[date]  # make-up working days on weekends

    def is_working_day(self, day: date) -> bool:
        if day.year != self.year:
            raise ValueError(f"{day} is not in {self.year}")
        if day in self.workdays:
            return True
        return day not in self.holidays and day.weekday() < 5

    def summary(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "source": self.source,
            "holidays": len(self.holidays),
            "workdays": sorted(d.isoformat() for d in self.workdays),
        }


def package_covers(year: int) -> bool:
    """Does the installed chinese-calendar know this year's schedule?"""
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def _date(value: Any, path: str, problems: list[tuple[str, str]]) -> date | None:
    if not isinstance(value, str):
        problems.append((path, "must be a date written YYYY-MM-DD"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append((path, f"{value!r} is not a date written YYYY-MM-DD"))
        return None


def parse(doc: Any) -> YearSchedule:
    """Check a schedule document; every problem is reported, not just the first."""
    problems: list[tuple[str, str]] = []
    if not isinstance(doc, dict):
        raise ScheduleInvalid([("$", "must be an object with year, source, holidays, workdays")])
    for key in sorted(set(doc) - _KEYS):
        problems.append((f"$.{key}", "unknown key"))
    year = doc.get("year")
    if not isinstance(year, int) or isinstance(year, bool) or not 2000 <= year <= 2100:
        raise ScheduleInvalid([*problems, ("$.year", "must be a year between 2000 and 2100")])
    if package_covers(year):
        problems.append(
            (
                "$.year",
                f"{year} is covered by chinese-calendar {chinese_calendar.__version__},"
                " whose schedule is used",
            )
        )
    source = doc.get("source")
    if not isinstance(source, str) or not source.strip():
        problems.append(("$.source", "name the State Council notice (文号) the schedule is from"))
    off: set[date] = set()
    seen: set[str] = set()
    holidays = doc.get("holidays")
    if not isinstance(holidays, list):
        problems.append(("$.holidays", "must be a list of {name, from, to}"))
        holidays = []
    for i, h in enumerate(holidays):
        path = f"$.holidays[{i}]"
        if not isinstance(h, dict) or set(h) != {"name", "from", "to"}:
            problems.append((path, "must be an object with exactly name, from and to"))
            continue
        name = h["name"]
        if name not in FESTIVALS:
            problems.append((f"{path}.name", f"must be one of {', '.join(FESTIVALS)}"))
        elif name in seen:
            problems.append((f"{path}.name", f"{name} is listed twice"))
        seen.add(name)
        first = _date(h["from"], f"{path}.from", problems)
        last = _date(h["to"], f"{path}.to", problems)
        if first is None or last is None:
            continue
        if last < first:
            problems.append((f"{path}.to", "is before from"))
        elif (last - first).days + 1 > MAX_BREAK_DAYS:
            problems.append((f"{path}.to", f"a break is at most {MAX_BREAK_DAYS} days"))
        elif last.year != year or first.year not in (year, year - 1):
            problems.append((path, f"must end in {year} (it may start the December before)"))
        else:
            day = first
            while day <= last:
                if day.year == year:
                    off.add(day)
                day += timedelta(days=1)
    for name in FESTIVALS:
        if name not in seen:
            problems.append(("$.holidays", f"{name} is missing: a notice schedules all seven"))
    workdays: set[date] = set()
    listed = doc.get("workdays")
    if not isinstance(listed, list):
        problems.append(("$.workdays", "must be a list of dates (may be empty)"))
        listed = []
    for i, value in enumerate(listed):
        path = f"$.workdays[{i}]"
        day = _date(value, path, problems)
        if day is None:
            continue
        if day.year != year:
            problems.append((path, f"must be in {year}"))
        elif day.weekday() < 5:
            problems.append((path, "a make-up working day falls on a Saturday or Sunday"))
        elif day in off:
            problems.append((path, "is also a day off"))
        else:
            workdays.add(day)
    if problems:
        raise ScheduleInvalid(problems)
    assert isinstance(source, str)
    return YearSchedule(year, source.strip(), frozenset(off), frozenset(workdays))


def load(path: Path) -> YearSchedule:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ScheduleInvalid([("$", f"cannot read {path}: {e}")]) from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise ScheduleInvalid([("$", f"not JSON: {where}: {e.msg}")]) from None
    return parse(doc)


def install_file(
    source: Path, calendar_dir: Path, *, replace: bool = False, storage: Storage | None = None
) -> YearSchedule:
    """Check a schedule and put it where the gateways look, atomically: the calendar
    directory, or on a shared storage the database (one transaction, announced)."""
    schedule = load(source)
    db = documents.shared(storage)
    if db is not None:
        doc = json.loads(Path(source).read_text(encoding="utf-8"))  # load() read it whole
        with documents.change(db, STORE, {}) as years:
            if str(schedule.year) in years and not replace:
                raise ScheduleInvalid(
                    [("$.year", f"{schedule.year} is installed; pass --replace to replace it")]
                )
            years[str(schedule.year)] = doc
        return schedule
    target = calendar_dir / f"{schedule.year}.json"
    if target.exists() and not replace:
        raise ScheduleInvalid([("$.year", f"{target} exists; pass --replace to replace it")])
    replace_atomically(target, Path(source).read_bytes())
    return schedule


class Supplements:
    """The installed schedule files, read when a year is first needed and
    again whenever its file changes (stat), so a file added to a running
    gateway's data directory serves its next deadline."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[tuple[int, int], YearSchedule | None]] = {}
        self.storage: Storage | None = None
        # The storages whose announcements reload this (weak: a closed one is forgotten).
        self._subscribed: weakref.WeakSet[Storage] = weakref.WeakSet()
        self._years: dict[str, Any] = {}  # on a shared storage: year -> schedule document
        self._parsed: dict[int, YearSchedule | None] = {}

    def use(self, directory: Path | None, storage: Storage | None = None) -> None:
        """Where the schedules are: `directory`, or (a database URL) the database."""
        with self._lock:
            self.directory = Path(directory) if directory is not None else None
            self._cache.clear()
            self.storage = documents.shared(storage)
            self._years, self._parsed = {}, {}
        db = self.storage
        if db is not None:
            self._db_load()
            if db not in self._subscribed:
                self._subscribed.add(db)
                db.subscribe(STORE, self._db_load)  # in the listener thread

    def _db_load(self) -> None:
        db = self.storage
        if db is None:
            return
        _, _, years = documents.read(db, STORE, {})
        parsed: dict[int, YearSchedule | None] = {}
        for year, doc in years.items():
            try:
                parsed[int(year)] = parse(doc)
            except ScheduleInvalid as e:
                # Refused, not half-used: deadlines into this year stay not covered.
                log.error("holiday schedule %s refused: %s", year, e)
                parsed[int(year)] = None
        with self._lock:
            self._years, self._parsed = dict(years), parsed

    def schedule(self, year: int) -> YearSchedule | None:
        if self.storage is not None:  # kept current by the announcements: memory only
            return self._parsed.get(year)
        directory = self.directory
        if directory is None:
            return None
        path = directory / f"{year}.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._cache.get(year)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        try:
            schedule: YearSchedule | None = load(path)
        except ScheduleInvalid as e:
            # Refused, not half-used: deadlines into this year stay not covered.
            log.error("holiday schedule %s refused: %s", path, e)
            schedule = None
        with self._lock:
            self._cache[year] = (stamp, schedule)
        return schedule

    def installed(self) -> list[dict[str, Any]]:
        """Every file in the directory (or year in the database), with its summary or
        why it is refused."""
        if self.storage is not None:
            out = []
            for year, doc in sorted(self._years.items()):
                try:
                    out.append({"file": f"{year}.json", "ok": True, **parse(doc).summary()})
                except ScheduleInvalid as e:
                    out.append({"file": f"{year}.json", "ok": False, "problems": e.problems})
            return out
        if self.directory is None or not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                out.append({"file": path.name, "ok": True, **load(path).summary()})
            except ScheduleInvalid as e:
                out.append({"file": path.name, "ok": False, "problems": e.problems})
        return out


# One per process, like the packaged calendar itself; `gateway.app` points it
# at the data directory.
SUPPLEMENTS = Supplements()
