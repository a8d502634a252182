"""`govgw calendar ...`: the holiday schedules working-day deadlines count on.

    govgw calendar status --data-dir DIR [--json]
    govgw calendar check FILE [--json]
    govgw calendar add FILE --data-dir DIR [--replace] [--json]

`check` and `add` read a year's State Council notice entered as JSON (see
gateway.access.holidays); `add` installs it where every gateway process on
the data directory finds it on its next deadline (with `--database-url`, in the
database, for every node on it).
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clients.cli_common import CliHelpers


def _problems(args: argparse.Namespace, h: CliHelpers, e: Any) -> int:
    doc = {
        "reason": "SCHEDULE_INVALID",
        "problems": [{"path": p, "message": m} for p, m in e.problems],
    }
    text = "schedule refused:\n" + "\n".join(f"  {p}: {m}" for p, m in e.problems)
    return h.fail(args, doc, text)


def _described(s: dict[str, Any]) -> str:
    workdays = ", ".join(s["workdays"]) or "none"
    return f"{s['year']}: {s['holidays']} days off, make-up working days {workdays} ({s['source']})"


def cmd_check(args: argparse.Namespace, h: CliHelpers) -> int:
    from gateway.access.holidays import ScheduleInvalid, load

    try:
        summary = load(args.file).summary()
    except ScheduleInvalid as e:
        return _problems(args, h, e)
    h.emit(args, summary, lambda: "ok: " + _described(summary))
    return 0


def cmd_add(args: argparse.Namespace, h: CliHelpers) -> int:
    from gateway.access.holidays import ScheduleInvalid, install_file
    from gateway.admin import shared_storage
    from gateway.config import Layout

    target = Layout(Path(args.data_dir)).calendar_dir
    storage = shared_storage(Path(args.data_dir))
    try:
        summary = install_file(args.file, target, replace=args.replace, storage=storage).summary()
    except ScheduleInvalid as e:
        return _problems(args, h, e)
    where = target if storage is None else "the database"
    h.emit(args, summary, lambda: f"installed in {where}: " + _described(summary))
    return 0


def cmd_status(args: argparse.Namespace, h: CliHelpers) -> int:
    import chinese_calendar

    from gateway.access.holidays import Supplements, package_covers
    from gateway.admin import shared_storage
    from gateway.config import Layout

    covered = [y for y in range(2000, 2101) if package_covers(y)]
    supplements = Supplements()
    supplements.use(Layout(Path(args.data_dir)).calendar_dir, shared_storage(Path(args.data_dir)))
    doc = {
        "package": {
            "name": "chinese-calendar",
            "version": chinese_calendar.__version__,
            "years": [covered[0], covered[-1]] if covered else [],
        },
        "supplements": supplements.installed(),
    }

    def human() -> str:
        years = doc["package"]["years"]
        lines = [f"chinese-calendar {doc['package']['version']}: {years[0]}-{years[-1]}"]
        for s in doc["supplements"]:
            if s["ok"]:
                lines.append(f"{s['file']}: " + _described(s))
            else:
                lines.append(f"{s['file']}: REFUSED ({len(s['problems'])} problem(s))")
        if not doc["supplements"]:
            lines.append("no schedules entered (govgw calendar add FILE)")
        return "\n".join(lines)

    h.emit(args, doc, human)
    return 0


def register(sub: Any, h: CliHelpers) -> None:
    group = sub.add_parser(
        "calendar", help="holiday schedules for working-day deadlines"
    ).add_subparsers(dest="sub", required=True)
    sp = h.cmd(
        group,
        "status",
        partial(cmd_status, h=h),
        "which years' holiday schedules this gateway knows (package and entered)",
    )
    h.data_dir(sp)
    sp = h.cmd(group, "check", partial(cmd_check, h=h), "check a year's schedule file")
    sp.add_argument("file", type=Path)
    sp = h.cmd(
        group,
        "add",
        partial(cmd_add, h=h),
        "check a year's schedule (the State Council notice) and install it for every gateway"
        " on the data directory",
    )
    sp.add_argument("file", type=Path)
    h.data_dir(sp)
    sp.add_argument("--replace", action="store_true", help="replace that year's installed file")
